"""Replay pages: run again (same or current version), resume from a node with the side-effect choices, compare
two runs, and the run page's replay part. Runs that must execute use the real worker; the rest are rows."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest
from django.contrib.auth.models import User
from django.http import HttpRequest
from django.template.loader import render_to_string
from django.test import Client, RequestFactory
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from runs.models import LedgerEntry, NodeRun, Run
from runs.replay_views import replay_context
from runs.services import run_start
from tests.conftest import WorkerProcess
from tests.engine_helpers import graph_of, start, wait_for
from tests.factories import make_run, make_workflow

if TYPE_CHECKING:
    from django.test.client import _MonkeyPatchedWSGIResponse
from workflows.services import workflow_soft_delete, workflow_update

HTMX: dict[str, Any] = {"HTTP_HX_REQUEST": "true"}
IF_ELSE: list[tuple[str, str, dict[str, Any]]] = [
    ("start", "start", {}),
    ("check", "if_else", {"left": "{{input.n}}", "operator": ">", "right": "10"}),
    ("big", "end", {"output": {"size": "big"}}),
    ("small", "end", {"output": {"size": "small"}}),
]
IF_ELSE_EDGES = [("start", "check"), ("check", "big", "true"), ("check", "small", "false")]
# start -> call (a tool: acts on the world) -> check -> end; recorded as rows, never executed.
TOOL_GRAPH = graph_of(
    [
        ("start", "start", {}),
        ("call", "tool", {"tool": "refund", "arguments": {"id": "{{input.id}}"}}),
        ("check", "if_else", {"left": "{{nodes.call.status_code}}", "operator": "==", "right": "200"}),
        ("end", "end", {}),
    ],
    [("start", "call"), ("call", "check", "success"), ("check", "end", "true")],
)


def record(run: Run, rows: list[tuple[str, str, str, dict[str, Any] | None]]) -> Run:
    """Node states and ledger entries as a run would leave them: (node id, type, status, input)."""
    now = timezone.now()
    for seq, (node_id, node_type, status, node_input) in enumerate(rows, start=1):
        NodeRun.objects.create(run=run, node_id=node_id, node_type=node_type, status=status, input=node_input)
        LedgerEntry.objects.create(
            run=run,
            seq=seq,
            node_id=node_id,
            node_type=node_type,
            status=status,
            input=node_input,
            output=node_input if status == "succeeded" else None,
            started_at=now,
            finished_at=now,
        )
    return run


def tool_run(owner: User) -> Run:
    run = make_run(make_workflow(owner, name="Refunds", graph=TOOL_GRAPH), input={"id": 7}, status="failed")
    return record(
        run,
        [
            ("start", "start", "succeeded", {"id": 7}),
            ("call", "tool", "succeeded", {"id": 7}),
            ("check", "if_else", "failed", {"id": 7, "result": "ok", "status_code": 200}),
        ],
    )


def reused(run: Run) -> list[tuple[str, bool]]:
    return list(LedgerEntry.objects.filter(run=run).order_by("seq").values_list("node_id", "reused"))


def new_run_from(response: _MonkeyPatchedWSGIResponse) -> Run:
    assert response.status_code == 302, response.content.decode()[:2000]
    location = response["Location"]
    run = Run.objects.get(pk=int(location.rstrip("/").rsplit("/", 1)[1]))
    assert location == reverse("run_detail", args=[run.pk])
    return run


# --- with the real worker ------------------------------------------------------------------------------------


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_run_again_redirects_to_a_new_run_of_the_same_or_the_current_version(
    client: Client, alice: User, celery_worker: WorkerProcess
) -> None:
    first = graph_of([("start", "start", {}), ("end", "end", {"output": {"v": 1}})], [("start", "end")])
    source = wait_for(start(alice, first, {"k": "x"}))
    client.force_login(alice)
    url = reverse("run_rerun", args=[source.pk])

    same = wait_for(new_run_from(client.post(url, {"version": "same"})))
    assert same.status == "succeeded" and same.output == {"v": 1}
    assert same.source_run_id == source.pk and same.input == {"k": "x"}

    assert source.workflow is not None
    workflow_update(
        workflow=source.workflow,
        graph=graph_of([("start", "start", {}), ("end", "end", {"output": {"v": 2}})], [("start", "end")]),
    )
    current = wait_for(new_run_from(client.post(url, {"version": "current"})))
    assert current.output == {"v": 2} and current.workflow_version == 2
    assert wait_for(new_run_from(client.post(url, {"version": "same"}))).output == {"v": 1}  # still the old graph


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_resume_from_the_failed_node_after_fixing_the_workflow(
    client: Client, alice: User, celery_worker: WorkerProcess
) -> None:
    broken = [*IF_ELSE]
    broken[1] = ("check", "if_else", {"left": "{{input.amount_typo}}", "operator": ">", "right": "10"})
    source = wait_for(start(alice, graph_of(broken, IF_ELSE_EDGES), {"n": 50}))
    assert source.status == "failed" and source.workflow is not None
    workflow_update(workflow=source.workflow, graph=graph_of(IF_ELSE, IF_ELSE_EDGES))
    client.force_login(alice)
    url = reverse("run_resume", args=[source.pk])

    form = client.get(url)
    assert form.status_code == 200
    assert form.context["form"]["node_id"].value() == "check"  # the failed node is the default
    page = form.content.decode()
    assert "check (if_else) — failed" in page and "&quot;n&quot;: 50" in page  # its recorded input, prefilled
    assert "The workflow as it is now (v2)" in page

    response = client.post(
        url, {"node_id": "check", "version": "current", "input": form.context["form"]["input"].value()}
    )
    run = wait_for(new_run_from(response))
    assert run.status == "succeeded", run.error
    assert run.output == {"size": "big"} and run.workflow_version == 2 and run.source_run_id == source.pk
    assert reused(run) == [("start", True), ("check", False), ("big", False)]
    assert "resumes run" in client.get(response["Location"]).content.decode()


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_resume_with_edited_input_takes_the_other_branch(
    client: Client, alice: User, celery_worker: WorkerProcess
) -> None:
    source = wait_for(start(alice, graph_of(IF_ELSE, IF_ELSE_EDGES), {"n": 1}))
    assert source.output == {"size": "small"}
    client.force_login(alice)
    response = client.post(
        reverse("run_resume", args=[source.pk]), {"node_id": "check", "version": "same", "input": '{"n": 99}'}
    )
    run = wait_for(new_run_from(response))
    assert run.output == {"size": "big"} and reused(run)[0] == ("start", True)


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_compare_shows_the_changed_nodes_and_their_diff(
    client: Client, alice: User, celery_worker: WorkerProcess
) -> None:
    workflow = make_workflow(alice, graph=graph_of(IF_ELSE, IF_ELSE_EDGES))
    first = wait_for(run_start(workflow=workflow, input={"n": 5}, user=alice))
    second = wait_for(run_start(workflow=workflow, input={"n": 50}, user=alice))
    client.force_login(alice)

    run_page = client.get(reverse("run_detail", args=[first.pk]))
    options = render_replay(run_page.wsgi_request, first)
    assert f'<option value="{second.pk}">' in options and f'name="a" value="{first.pk}"' in options

    response = client.get(reverse("run_compare"), {"a": first.pk, "b": second.pk})
    assert response.status_code == 200
    page = response.content.decode()
    assert 'id="compare-canvas"' in page
    assert '<tr data-node-id="check" class="replay-changed">' in page
    assert "<code>/n</code>" in page and '<code class="replay-old">5</code>' in page  # the inputs differ
    assert "<code>/condition</code>" in page and '<code class="replay-old">false</code>' in page
    assert '<code class="replay-new">true</code>' in page
    data = response.context["compare_data"]
    assert json.loads(page.split('id="compare-data" type="application/json">')[1].split("</script>")[0]) == data
    assert data["graph"] == first.graph
    assert data["changed"] == ["start", "check", "small", "big"]
    assert data["a"]["small"] == "succeeded" and "big" not in data["a"] and data["b"]["big"] == "succeeded"


# --- rows only -----------------------------------------------------------------------------------------------


def render_replay(request: HttpRequest, run: Run) -> str:
    return render_to_string("runs/_replay.html", {"run": run, **replay_context(request, run)}, request=request)


@pytest.mark.django_db
def test_the_side_effect_warning_lists_the_tool_node_before_the_chosen_node(client: Client, alice: User) -> None:
    run = tool_run(alice)
    client.force_login(alice)
    url = reverse("run_resume", args=[run.pk])

    page = client.get(url).content.decode()
    assert 'aria-live="polite"' in page and 'id="replay-side-effects"' in page
    assert '<tr data-node-id="call">' in page  # default node: the failed "check", after the tool

    fragment = client.get(url, {"node_id": "check", "version": "same"}, HTTP_HX_TARGET="replay-side-effects", **HTMX)
    html = fragment.content.decode()
    assert "<html" not in html and '<tr data-node-id="call">' in html
    assert 'name="side_effect_call" value="reuse" checked' in html and 'value="reexecute"' in html
    assert "<code>start</code>, <code>call</code>" in html  # every reused result is named

    before_tool = client.get(url, {"node_id": "call"}, HTTP_HX_TARGET="replay-side-effects", **HTMX).content.decode()
    assert "data-node-id" not in before_tool and "No node that acts on the world is reused." in before_tool

    node_input = client.get(url, {"node_id": "call"}, HTTP_HX_TARGET="replay-node-input", **HTMX).content.decode()
    assert "<html" not in node_input and "&quot;id&quot;: 7" in node_input and "status_code" not in node_input


@pytest.mark.django_db
def test_bad_requests_are_400_next_to_the_form_and_start_nothing(client: Client, alice: User) -> None:
    run = tool_run(alice)
    client.force_login(alice)
    url = reverse("run_resume", args=[run.pk])
    before = Run.objects.count()

    bad_json = client.post(url, {"node_id": "check", "version": "same", "input": '{"id": 7,'})
    assert bad_json.status_code == 400
    assert "Input is not valid JSON" in bad_json.content.decode()
    assert bad_json.context["form"].errors["input"][0].startswith("Input is not valid JSON")
    assert 'name="input"' in bad_json.content.decode() and "{&quot;id&quot;: 7," in bad_json.content.decode()

    not_object = client.post(url, {"node_id": "check", "version": "same", "input": "[1]"})
    assert not_object.status_code == 400 and "Input must be a JSON object, not list." in not_object.content.decode()

    unknown = client.post(url, {"node_id": "nope", "version": "same"})
    assert unknown.status_code == 400 and "nope is not one of the available choices" in unknown.content.decode()

    bad_version = client.post(url, {"node_id": "check", "version": "later"})
    assert bad_version.status_code == 400 and "version" in bad_version.context["form"].errors

    # The edit would be lost: the node waits for the re-executed tool's new output.
    feeding = client.post(
        url, {"node_id": "check", "version": "same", "input": '{"id": 8}', "side_effect_call": "reexecute"}
    )
    assert feeding.status_code == 400 and "re-executing call" in feeding.content.decode()
    assert 'name="side_effect_call" value="reexecute" checked' in feeding.content.decode()  # the choice is kept

    assert run.workflow is not None
    workflow_update(
        workflow=run.workflow, graph=graph_of([("start", "start", {}), ("end", "end", {})], [("start", "end")])
    )
    gone = client.post(url, {"node_id": "check", "version": "current"})
    assert gone.status_code == 400 and "is not in the workflow as it is now" in gone.content.decode()

    workflow_soft_delete(workflow=run.workflow)
    deleted = client.post(url, {"node_id": "check", "version": "current"})
    assert deleted.status_code == 400 and "was deleted" in deleted.content.decode()
    assert Run.objects.count() == before


@pytest.mark.django_db
def test_run_again_when_the_workflow_is_deleted_or_the_version_is_unknown(client: Client, alice: User) -> None:
    run = tool_run(alice)
    client.force_login(alice)
    before = Run.objects.count()
    assert client.post(reverse("run_rerun", args=[run.pk]), {"version": "v9"}).status_code == 400
    assert client.get(reverse("run_rerun", args=[run.pk])).status_code == 405
    assert run.workflow is not None
    workflow_soft_delete(workflow=run.workflow)
    response = client.post(reverse("run_rerun", args=[run.pk]), {"version": "same"}, follow=True)
    assert "was deleted, so the run can&#x27;t be run again" in response.content.decode()
    assert Run.objects.count() == before


@pytest.mark.django_db
def test_the_replay_part_offers_the_current_version_only_when_it_differs(rf: RequestFactory, alice: User) -> None:
    run = tool_run(alice)
    request = rf.get("/")
    request.user = alice
    part = render_replay(request, run)
    assert reverse("run_rerun", args=[run.pk]) in part and reverse("run_resume", args=[run.pk]) in part
    assert 'value="current"' not in part and "csrfmiddlewaretoken" in part
    assert "Compare with" not in part  # no other run of the workflow yet

    assert run.workflow is not None
    workflow_update(workflow=run.workflow, graph=TOOL_GRAPH)
    other = make_run(run.workflow, status="succeeded")
    run.refresh_from_db()
    part = render_replay(request, run)
    assert 'value="current"' in part and "current version" in part
    assert f'<option value="{other.pk}">' in part and 'for="replay-compare-b"' in part

    workflow_soft_delete(workflow=run.workflow)
    run.refresh_from_db()
    part = render_replay(request, run)
    assert "run_rerun" not in part and reverse("run_rerun", args=[run.pk]) not in part and "was deleted" in part


@pytest.mark.django_db
def test_compare_needs_two_run_numbers(client: Client, alice: User) -> None:
    client.force_login(alice)
    response = client.get(reverse("run_compare"), {"a": "1", "b": "x"})
    assert response.status_code == 400 and "must be run numbers" in response.content.decode()


@pytest.mark.django_db
def test_mallory_gets_404_on_alices_replay_pages(client: Client, alice: User, mallory: User) -> None:
    run = tool_run(alice)
    hers = make_run(make_workflow(mallory), status="succeeded")
    before = Run.objects.count()
    client.force_login(mallory)
    assert client.get(reverse("run_resume", args=[run.pk])).status_code == 404
    assert client.post(reverse("run_resume", args=[run.pk]), {"node_id": "check", "version": "same"}).status_code == 404
    assert client.post(reverse("run_rerun", args=[run.pk]), {"version": "same"}).status_code == 404
    assert client.get(reverse("run_compare"), {"a": hers.pk, "b": run.pk}).status_code == 404
    assert client.get(reverse("run_compare"), {"a": run.pk, "b": hers.pk}).status_code == 404
    assert Run.objects.count() == before
    client.logout()
    assert client.get(reverse("run_resume", args=[run.pk])).status_code == 302  # to the login page


@pytest.mark.django_db
def test_posts_need_the_csrf_token(alice: User) -> None:
    from django.test import Client

    run = tool_run(alice)
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    assert client.post(reverse("run_rerun", args=[run.pk]), {"version": "same"}).status_code == 403
    assert client.post(reverse("run_resume", args=[run.pk]), {"node_id": "check"}).status_code == 403


def test_a_child_run_is_replayed_through_its_parent(client: Client, alice: User) -> None:
    """A cognitive node's generated workflow has no version of its own: the pages and the API say to replay
    the parent run, and start nothing."""
    thinker = make_workflow(alice, name="Thinker")
    parent = make_run(thinker, status="succeeded")
    child = make_run(thinker, status="succeeded", parent=parent, parent_node_id="think")
    client.force_login(alice)
    page = client.get(reverse("run_detail", args=[child.pk])).content.decode()
    assert "Run again" not in page and "Resume from a node" not in page
    assert f'node <code>think</code> of <a href="/runs/{parent.pk}/">run #{parent.pk}</a> designed' in page
    # The parent's own page does not offer its child for comparison.
    assert f'value="{child.pk}"' not in client.get(reverse("run_detail", args=[parent.pk])).content.decode()
    before = Run.objects.count()
    answer = client.post(reverse("run_rerun", args=[child.pk]), {"version": "same"}, follow=True)
    assert f"replay run {parent.pk} instead" in answer.content.decode()
    api = APIClient()
    api.force_authenticate(alice)
    for action, body in (("rerun", {}), ("resume", {"node_id": "start"})):
        refused = api.post(f"/api/runs/{child.pk}/{action}/", body, format="json")
        assert refused.status_code == 409 and f"replay run {parent.pk} instead" in refused.json()["detail"]
    assert Run.objects.count() == before
