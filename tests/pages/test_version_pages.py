"""A workflow's versions on its pages: the Versions section, the diff page with its canvas data, restoring a
version (confirm page, htmx, refused graphs), who sees what, and the run page's link to its version."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from projects.models import Role
from projects.services import member_set, project_create
from tests.factories import linear_graph, make_run, make_workflow
from workflows.models import Workflow
from workflows.services import workflow_create, workflow_soft_delete, workflow_update

pytestmark = pytest.mark.django_db

HTMX: dict[str, Any] = {"HTTP_HX_REQUEST": "true"}


def signed_in(client: Client, user: User) -> Client:
    client.force_login(user)
    return client


def edited(alice: User) -> Workflow:
    """v1 start -> old -> end; v2 start -> new -> end, with end's output changed, and a message."""
    workflow = make_workflow(alice, name="Invoices", graph=linear_graph(("old", "transform", {"expression": "input"})))
    graph = linear_graph(("new", "transform", {"expression": "input.total"}))
    graph["nodes"][-1]["data"] = {"output": {"total": "{{nodes.new.output}}"}}
    return workflow_update(workflow=workflow, name="Bills", graph=graph, by=alice, message="totals only")


def canvas_data(page: str) -> Any:
    return json.loads(page.split('id="version-diff-data" type="application/json">')[1].split("</script>")[0])


def test_the_workflow_page_loads_the_versions_section(client: Client, alice: User) -> None:
    workflow = edited(alice)
    page = signed_in(client, alice).get(f"/workflows/{workflow.pk}/").content.decode()
    assert f'hx-get="/workflows/{workflow.pk}/versions/"' in page
    section = client.get(f"/workflows/{workflow.pk}/versions/", **HTMX)
    assert section.status_code == 200
    html = section.content.decode()
    assert html.lstrip().startswith('<section id="workflow-versions"')  # the fragment, not a page
    assert 'data-version="2"' in html and 'data-version="1"' in html
    assert html.index('data-version="2"') < html.index('data-version="1"')  # newest first
    assert "totals only" in html and "current" in html and "alice" in html
    assert f"/workflows/{workflow.pk}/versions/diff/?a=1&amp;b=2" in html
    assert f"/workflows/{workflow.pk}/versions/1/restore/" in html
    # Without JavaScript, a page of its own.
    assert "<html" in client.get(f"/workflows/{workflow.pk}/versions/").content.decode()


def test_the_diff_page_lists_the_changes_and_draws_the_union_coloured(client: Client, alice: User) -> None:
    workflow = edited(alice)
    response = signed_in(client, alice).get(f"/workflows/{workflow.pk}/versions/diff/", {"a": 1, "b": 2})
    assert response.status_code == 200
    page = response.content.decode()
    assert 'id="version-diff-canvas"' in page and "added in version 2" in page  # the canvas and its legend
    data = canvas_data(page)
    assert [node["id"] for node in data["graph"]["nodes"]] == ["start", "new", "end", "old"]
    assert data["marks"]["nodes"] == {"new": "added", "old": "removed", "end": "changed"}
    assert data["marks"]["edges"]["e0"] == "changed"
    assert 'data-diff="added" data-id="new"' in page and 'data-diff="removed" data-id="old"' in page
    assert 'data-diff="changed" data-id="end"' in page and "/data/output" in page
    assert "Invoices" in page and "Bills" in page
    # Left out, the current version against the one before.
    assert canvas_data(client.get(f"/workflows/{workflow.pk}/versions/diff/").content.decode()) == data


def test_the_diff_of_a_version_with_itself_says_so(client: Client, alice: User) -> None:
    workflow = edited(alice)
    page = signed_in(client, alice).get(f"/workflows/{workflow.pk}/versions/diff/?a=2&b=2").content.decode()
    assert 'id="version-diff-none"' in page
    assert canvas_data(page)["marks"] == {"nodes": {}, "edges": {}}


@pytest.mark.parametrize(
    ("query", "status", "says"),
    [
        ("a=x", 400, "`a` must be a version number"),
        ("b=0", 400, "`b` must be a version number"),
        ("b=1", 400, "no version before it"),
        ("a=1&b=9", 404, "no version 9 (`b`)"),
    ],
)
def test_bad_or_unknown_versions_on_the_diff_page_say_which(
    client: Client, alice: User, query: str, status: int, says: str
) -> None:
    workflow = edited(alice)
    response = signed_in(client, alice).get(f"/workflows/{workflow.pk}/versions/diff/?{query}")
    assert response.status_code == status
    assert says in response.content.decode()


def test_restore_asks_first_then_saves_the_version_as_the_next(client: Client, alice: User) -> None:
    workflow = edited(alice)
    signed_in(client, alice)
    confirm = client.get(f"/workflows/{workflow.pk}/versions/1/restore/")
    assert confirm.status_code == 200 and "Restore version 1" in confirm.content.decode()
    workflow.refresh_from_db()
    assert workflow.version == 2  # asking changes nothing
    done = client.post(f"/workflows/{workflow.pk}/versions/1/restore/")
    assert done.status_code == 302 and done["Location"] == f"/workflows/{workflow.pk}/"
    workflow.refresh_from_db()
    assert workflow.version == 3 and workflow.document() == workflow.version_document(1)
    assert workflow.versions.get(number=3).message == "Restored version 1"
    assert "Restored version 1 as version 3" in client.get(done["Location"]).content.decode()
    by_htmx = client.post(f"/workflows/{workflow.pk}/versions/2/restore/", **HTMX)
    assert by_htmx["HX-Redirect"] == f"/workflows/{workflow.pk}/"
    assert workflow.versions.count() == 4


def test_a_version_that_no_longer_saves_is_not_restored_and_the_page_says_why(client: Client, alice: User) -> None:
    child = make_workflow(alice, name="Child")
    parent = make_workflow(alice, graph=linear_graph(("call", "subworkflow", {"workflow": child.pk})))
    parent = workflow_update(workflow=parent, graph=linear_graph(), by=alice)
    workflow_soft_delete(workflow=child)
    response = signed_in(client, alice).post(f"/workflows/{parent.pk}/versions/1/restore/", follow=True)
    assert "Version 1 cannot be restored" in response.content.decode()
    parent.refresh_from_db()
    assert parent.version == 2


def test_restore_needs_the_csrf_token(alice: User) -> None:
    workflow = edited(alice)
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    assert client.post(f"/workflows/{workflow.pk}/versions/1/restore/").status_code == 403
    assert workflow.versions.count() == 2


def test_a_viewer_sees_versions_and_diffs_without_restore_and_mallory_sees_nothing(
    client: Client, alice: User, mallory: User, make_user: Callable[..., User]
) -> None:
    team = project_create(name="Team", by=alice)
    bob = make_user("bob")
    member_set(project=team, user=bob, role=Role.VIEWER, by=alice)
    workflow = workflow_create(owner=alice, name="Shared", graph=linear_graph(), project=team)
    workflow_update(workflow=workflow, name="Shared v2", by=alice)
    signed_in(client, bob)
    section = client.get(f"/workflows/{workflow.pk}/versions/", **HTMX).content.decode()
    assert 'data-version="1"' in section and "/restore/" not in section
    diff = client.get(f"/workflows/{workflow.pk}/versions/diff/")
    assert diff.status_code == 200 and "/restore/" not in diff.content.decode()
    assert client.post(f"/workflows/{workflow.pk}/versions/1/restore/").status_code == 403
    assert workflow.versions.count() == 2

    signed_in(client, mallory)
    for path in ("versions/", "versions/diff/", "versions/1/restore/"):
        assert client.get(f"/workflows/{workflow.pk}/{path}").status_code == 404, path
    assert client.post(f"/workflows/{workflow.pk}/versions/1/restore/").status_code == 404


def test_the_run_page_links_to_the_version_it_ran(client: Client, alice: User) -> None:
    workflow = make_workflow(alice)
    run = make_run(workflow)
    workflow_update(workflow=workflow, name="Later", by=alice)
    page = signed_in(client, alice).get(f"/runs/{run.pk}/").content.decode()
    assert f'href="/workflows/{workflow.pk}/?version=1#workflow-versions">version 1</a>' in page
    workflow_page = client.get(f"/workflows/{workflow.pk}/?version=1").content.decode()
    assert f'hx-get="/workflows/{workflow.pk}/versions/?version=1"' in workflow_page
    section = client.get(f"/workflows/{workflow.pk}/versions/?version=1", **HTMX).content.decode()
    assert 'id="version-1" data-version="1" class="version-highlight" aria-current="true"' in section
