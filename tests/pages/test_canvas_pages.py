"""What the canvas reads from the server: the editor pages (workflow, node catalogue, tools), the graph check
endpoint, the run canvas's node states, and a node's details when it is clicked. The canvas itself is driven
in a real browser in tests/browser/test_editor_browser.py."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from projects.services import personal_project
from runs.models import LedgerEntry, NodeRun, Run
from tests.engine_helpers import graph_of
from tests.factories import make_run, make_workflow
from tools.models import Tool

if TYPE_CHECKING:
    from django.test.client import _MonkeyPatchedWSGIResponse

pytestmark = pytest.mark.django_db

HTMX: dict[str, Any] = {"HTTP_HX_REQUEST": "true"}


def script_json(response: _MonkeyPatchedWSGIResponse, element_id: str) -> Any:
    """The value of a `json_script` element on the page."""
    html = response.content.decode()
    opening = f'<script id="{element_id}" type="application/json">'
    start = html.index(opening) + len(opening)
    return json.loads(html[start : html.index("</script>", start)])


def designed_run(owner: User) -> Run:
    """A finished run whose cognitive node designed a small workflow."""
    graph = graph_of(
        [("start", "start", {}), ("plan", "cognitive", {"instruction": "plan it"}), ("end", "end", {})],
        [("start", "plan"), ("plan", "end")],
    )
    run = make_run(make_workflow(owner, name="Planner", graph=graph), status="succeeded")
    design = graph_of([("s", "start", {}), ("e", "end", {})], [("s", "e")])
    NodeRun.objects.create(run=run, node_id="start", node_type="start", status="succeeded")
    NodeRun.objects.create(
        run=run,
        node_id="plan",
        node_type="cognitive",
        status="succeeded",
        result={"cognitive": {"reasoning": "short", "graph": design, "output": {}}},
    )
    Run.objects.create(  # the run of the design, as the engine starts it
        workflow=run.workflow,
        workflow_name="Planner / plan",
        workflow_version=run.workflow_version,
        graph=design,
        project_id=run.project_id,
        owner=owner,
        parent=run,
        parent_node_id="plan",
        status="succeeded",
    )
    now = timezone.now()
    for seq, status in ((1, "failed"), (2, "succeeded")):
        LedgerEntry.objects.create(
            run=run,
            seq=seq,
            node_id="plan",
            node_type="cognitive",
            status=status,
            attempt=seq,
            input={"topic": "refunds"},
            output={"topic": "refunds", "done": True} if status == "succeeded" else None,
            error="the model timed out" if status == "failed" else "",
            llm_usage={"prompt_tokens": 9, "completion_tokens": 4, "cost": None},
            started_at=now,
            finished_at=now,
        )
    return run


def test_editor_for_a_new_workflow_embeds_the_starter_graph_catalogue_and_tools(
    client: Client, alice: User, mallory: User
) -> None:
    Tool.objects.create(
        owner=alice, project=personal_project(alice), name="lookup", description="Find it", url="http://127.0.0.1:9/"
    )
    Tool.objects.create(
        owner=mallory,
        project=personal_project(mallory),
        name="secret_tool",
        description="not alice's",
        url="http://127.0.0.1:9/",
    )
    client.force_login(alice)
    page = client.get(reverse("workflow_new"))
    assert page.status_code == 200
    workflow = script_json(page, "editor-workflow")
    assert workflow["id"] is None and workflow["graph"]["nodes"][0]["type"] == "start"
    catalogue = {spec["type"]: spec for spec in script_json(page, "flow-catalogue")}
    # Every registered type, with the contract's handles in reading order and its configuration schema.
    assert {
        "start",
        "end",
        "if_else",
        "agent",
        "tool",
        "guardrails",
        "fork",
        "join",
        "user_approval",
        "cognitive",
    } <= set(catalogue)
    assert catalogue["if_else"]["handles"] == ["true", "false"]
    assert catalogue["guardrails"]["handles"] == ["pass", "fail"]
    assert catalogue["user_approval"]["handles"] == ["approved", "rejected"]
    # `error` is the error path of every type that can fail, drawn from `can_fail`, not one of the tool's own.
    assert catalogue["tool"]["handles"] == ["success"] and catalogue["tool"]["can_fail"] is True
    assert catalogue["if_else"]["can_fail"] is False and catalogue["agent"]["can_fail"] is True
    assert catalogue["end"]["allows_outgoing"] is False
    assert catalogue["tool"]["side_effects"] is True
    assert "operator" in catalogue["if_else"]["data_schema"]["properties"]
    assert script_json(page, "editor-tools") == [{"name": "lookup", "description": "Find it"}]
    assert 'data-api-url="/api/workflows/"' in page.content.decode()
    assert 'src="/static/dist/editor.js"' in page.content.decode()


def test_editor_of_a_workflow_is_scoped_to_its_owner(client: Client, alice: User, mallory: User) -> None:
    workflow = make_workflow(alice, name="Mine")
    client.force_login(mallory)
    assert client.get(reverse("workflow_edit", args=[workflow.pk])).status_code == 404
    client.force_login(alice)
    page = client.get(reverse("workflow_edit", args=[workflow.pk]))
    assert page.status_code == 200
    document = script_json(page, "editor-workflow")
    assert document["id"] == workflow.pk and document["version"] == workflow.version
    assert document["graph"] == workflow.graph_document()
    assert f'data-api-url="/api/workflows/{workflow.pk}/"' in page.content.decode()


def test_anonymous_is_sent_to_login_from_the_editor(client: Client) -> None:
    response = client.get(reverse("workflow_new"))
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_graph_check_reports_every_issue_without_saving(client: Client, alice: User) -> None:
    url = reverse("api:workflow-validate-graph")
    bad = graph_of([("start", "start", {}), ("check", "if_else", {"left": "1"})], [("start", "check")])
    assert client.post(url, {"graph": bad}, content_type="application/json").status_code == 401
    client.force_login(alice)
    answer = client.post(url, {"graph": bad}, content_type="application/json")
    assert answer.status_code == 200
    body = answer.json()
    assert body["valid"] is False
    assert {"node_id": "check", "field": "operator"}.items() <= next(
        issue for issue in body["issues"] if issue.get("field") == "operator"
    ).items()
    assert any("no end node" in issue["message"] for issue in body["issues"])
    good = graph_of([("start", "start", {}), ("end", "end", {})], [("start", "end")])
    assert client.post(url, {"graph": good}, content_type="application/json").json() == {"valid": True, "issues": []}
    # A body that is not `{graph}` is the client's mistake, named.
    wrong = client.post(url, {"graph": good, "name": "x"}, content_type="application/json")
    assert wrong.status_code == 400 and "name" in json.dumps(wrong.json())


def test_run_page_embeds_the_snapshot_and_states_for_the_canvas(client: Client, alice: User) -> None:
    run = designed_run(alice)
    client.force_login(alice)
    page = client.get(reverse("run_detail", args=[run.pk]))
    canvas = script_json(page, "run-canvas-data")
    assert canvas["run_id"] == run.pk and canvas["graph"] == run.graph
    assert canvas["nodes"]["plan"] == {"status": "succeeded", "handle": "", "attempts": 0}
    assert 'src="/static/dist/canvas.js"' in page.content.decode()
    states = client.get(reverse("run_states", args=[run.pk])).json()
    assert states == {"run_id": run.pk, "status": "succeeded", "nodes": canvas["nodes"]}


def test_node_details_show_every_attempt_and_the_designed_graph(client: Client, alice: User) -> None:
    run = designed_run(alice)
    client.force_login(alice)
    part = client.get(reverse("run_node_detail", args=[run.pk, "plan"]), **HTMX)
    html = part.content.decode()
    assert part.status_code == 200 and "<html" not in html
    assert "Entry #1" in html and "Entry #2" in html and "the model timed out" in html
    assert "&quot;done&quot;: true" in html and "&quot;prompt_tokens&quot;: 9" in html
    designed = script_json(part, "designed-graph")
    assert [node["id"] for node in designed["nodes"]] == ["s", "e"]
    assert 'data-flow-graph="designed-graph"' in html
    # Without htmx it is a page of its own, which loads the canvas to draw the design.
    full = client.get(reverse("run_node_detail", args=[run.pk, "plan"]))
    assert "<html" in full.content.decode() and "dist/canvas.js" in full.content.decode()
    # A node not reached yet says so; a node not in the run's graph is a 404.
    assert "not reached" in client.get(reverse("run_node_detail", args=[run.pk, "end"]), **HTMX).content.decode()
    assert client.get(reverse("run_node_detail", args=[run.pk, "nope"])).status_code == 404


def test_outsider_gets_404_from_states_and_node_details(client: Client, alice: User, mallory: User) -> None:
    run = designed_run(alice)
    client.force_login(mallory)
    assert client.get(reverse("run_states", args=[run.pk])).status_code == 404
    assert client.get(reverse("run_node_detail", args=[run.pk, "plan"])).status_code == 404
