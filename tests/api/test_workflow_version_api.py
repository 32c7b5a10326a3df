"""A workflow's versions through the API: list, detail, diff and restore; the message a save leaves; who may
read and who may restore; bad parameters and unknown versions; and the run's link to the version it ran."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from projects.models import Role
from projects.services import member_set, project_create
from tests.factories import linear_graph, make_run, make_workflow
from workflows.models import Workflow, WorkflowVersion
from workflows.services import workflow_create, workflow_soft_delete, workflow_update

pytestmark = pytest.mark.django_db


def versions_url(workflow: Workflow, rest: str = "") -> str:
    return f"/api/workflows/{workflow.pk}/versions/{rest}"


def three_versions(alice: User) -> Workflow:
    """v1: start -> end; v2: renamed, with a transform; v3: the transform's expression changed."""
    workflow = make_workflow(alice, name="Invoices")
    workflow = workflow_update(
        workflow=workflow, name="Bills", graph=linear_graph(("step", "transform", {"expression": "input"})), by=alice
    )
    return workflow_update(
        workflow=workflow, graph=linear_graph(("step", "transform", {"expression": "input.total"})), by=alice
    )


def test_a_save_keeps_its_message_on_the_version_it_creates(api: Callable[..., APIClient], alice: User) -> None:
    client = api(alice)
    created = client.post(
        "/api/workflows/", {"name": "W", "graph": linear_graph(), "message": "first cut"}, format="json"
    )
    assert created.status_code == 201, created.json()
    assert "message" not in created.json()  # write-only: it belongs to the version, not the workflow
    pk = created.json()["id"]
    client.put(f"/api/workflows/{pk}/", {"name": "W", "graph": linear_graph(), "message": "renamed"}, format="json")
    client.patch(f"/api/workflows/{pk}/", {"description": "no message"}, format="json")
    messages = dict(WorkflowVersion.objects.filter(workflow_id=pk).values_list("number", "message"))
    assert messages == {1: "first cut", 2: "renamed", 3: ""}


def test_a_message_over_500_characters_is_refused_naming_it(api: Callable[..., APIClient], alice: User) -> None:
    workflow = make_workflow(alice)
    response = api(alice).patch(f"/api/workflows/{workflow.pk}/", {"message": "x" * 501}, format="json")
    assert response.status_code == 400
    assert "message" in response.json()
    assert list(workflow.versions.values_list("number", flat=True)) == [1]


def test_the_list_is_newest_first_with_author_message_and_the_current_one_marked(
    api: Callable[..., APIClient], alice: User, make_user: Callable[..., User]
) -> None:
    workflow = three_versions(alice)
    gone = make_user("gone", staff=True)
    workflow = workflow_update(workflow=workflow, description="by someone", by=gone, message="described")
    gone.delete()
    body = api(alice).get(versions_url(workflow)).json()
    assert body["count"] == 4 and body["next"] is None
    rows = body["results"]
    assert [row["number"] for row in rows] == [4, 3, 2, 1]
    assert [row["current"] for row in rows] == [True, False, False, False]
    assert rows[0]["author"] is None and rows[0]["message"] == "described"
    assert rows[1]["author"] == "alice"
    assert set(rows[0]) == {"number", "author", "created_at", "message", "current"}
    paged = api(alice).get(versions_url(workflow), {"page_size": 2}).json()
    assert [row["number"] for row in paged["results"]] == [4, 3] and paged["next"]


def test_a_version_is_shown_with_its_document(api: Callable[..., APIClient], alice: User) -> None:
    workflow = three_versions(alice)
    response = api(alice).get(versions_url(workflow, "1/"))
    assert response.status_code == 200
    body = response.json()
    assert body["number"] == 1 and body["current"] is False and body["author"] == "alice"
    assert body["document"] == workflow.version_document(1)
    assert body["document"]["name"] == "Invoices"


def test_an_unknown_version_is_a_404_naming_it(api: Callable[..., APIClient], alice: User) -> None:
    workflow = make_workflow(alice)
    client = api(alice)
    response = client.get(versions_url(workflow, "7/"))
    assert response.status_code == 404 and "no version 7" in response.json()["detail"]
    diff = client.get(versions_url(workflow, "diff/"), {"a": 1, "b": 9})
    assert diff.status_code == 404 and "no version 9 (`b`)" in diff.json()["detail"]
    restore = client.post(versions_url(workflow, "5/restore/"), {}, format="json")
    assert restore.status_code == 404 and "no version 5" in restore.json()["detail"]
    for path in ("/api/workflows/x/versions/", f"/api/workflows/{workflow.pk}/versions/one/"):
        response = client.get(path)
        assert response.status_code == 404 and response.json()["detail"], path


def test_the_diff_lists_what_changed_between_two_versions(api: Callable[..., APIClient], alice: User) -> None:
    workflow = three_versions(alice)
    client = api(alice)
    first = client.get(versions_url(workflow, "diff/"), {"a": 1, "b": 2}).json()
    assert (first["a"], first["b"]) == (1, 2)
    assert first["name"] == {"from": "Invoices", "to": "Bills"} and first["description"] is None
    assert first["nodes"] == {"added": ["step"], "removed": [], "changed": []}
    assert first["edges"]["added"] == ["e1"] and first["edges"]["removed"] == []
    assert first["edges"]["changed"] == [{"id": "e0", "patch": [{"op": "replace", "path": "/target", "value": "step"}]}]

    # By default: the current version against the one before it.
    latest = client.get(versions_url(workflow, "diff/")).json()
    assert (latest["a"], latest["b"]) == (2, 3) and latest["name"] is None
    assert latest["nodes"]["changed"] == [
        {"id": "step", "patch": [{"op": "replace", "path": "/data/expression", "value": "input.total"}]}
    ]
    assert latest["edges"] == {"added": [], "removed": [], "changed": []}
    only_b = client.get(versions_url(workflow, "diff/"), {"b": 2}).json()
    assert (only_b["a"], only_b["b"]) == (1, 2)


@pytest.mark.parametrize(
    ("query", "named"),
    [({"a": "two"}, "a"), ({"b": "0"}, "b"), ({"a": ""}, "a"), ({"b": "-1"}, "b"), ({"b": "1"}, "a")],
)
def test_bad_diff_parameters_are_a_400_naming_them(
    api: Callable[..., APIClient], alice: User, query: dict[str, str], named: str
) -> None:
    workflow = three_versions(alice)
    response = api(alice).get(versions_url(workflow, "diff/"), query)
    assert response.status_code == 400, response.json()
    assert named in response.json() and named in response.json()["detail"]


def test_restoring_a_version_saves_its_document_as_the_next_version(api: Callable[..., APIClient], alice: User) -> None:
    workflow = three_versions(alice)
    client = api(alice)
    response = client.post(versions_url(workflow, "1/restore/"), format="json")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["version"] == 4 and body["name"] == "Invoices"
    workflow.refresh_from_db()
    assert workflow.document() == workflow.version_document(1)
    restored = workflow.versions.get(number=4)
    assert restored.message == "Restored version 1" and restored.author == alice
    same = client.get(versions_url(workflow, "diff/"), {"a": 1, "b": 4}).json()
    empty: dict[str, list[Any]] = {"added": [], "removed": [], "changed": []}
    assert same["name"] is None and same["description"] is None
    assert same["nodes"] == empty and same["edges"] == empty

    again = client.post(versions_url(workflow, "3/restore/"), {"message": "back to totals"}, format="json")
    assert again.status_code == 200
    assert workflow.versions.get(number=5).message == "back to totals"
    newest = client.get(versions_url(workflow)).json()["results"][0]
    assert (newest["number"], newest["current"], newest["message"]) == (5, True, "back to totals")


def test_a_restore_body_with_unknown_fields_or_a_long_message_is_a_400(
    api: Callable[..., APIClient], alice: User
) -> None:
    workflow = three_versions(alice)
    client = api(alice)
    for body, field in (({"graph": {}}, "graph"), ({"message": "x" * 501}, "message")):
        response = client.post(versions_url(workflow, "1/restore/"), body, format="json")
        assert response.status_code == 400 and field in response.json()
    assert workflow.versions.count() == 3


def test_a_version_whose_graph_no_longer_saves_is_refused_and_nothing_is_saved(
    api: Callable[..., APIClient], alice: User
) -> None:
    child = make_workflow(alice, name="Child")
    parent = make_workflow(alice, name="Parent", graph=linear_graph(("call", "subworkflow", {"workflow": child.pk})))
    parent = workflow_update(workflow=parent, graph=linear_graph(), by=alice)
    workflow_soft_delete(workflow=child)
    response = api(alice).post(versions_url(parent, "1/restore/"), format="json")
    assert response.status_code == 400, response.json()
    assert any(issue.get("node_id") == "call" for issue in response.json()["graph"])
    parent.refresh_from_db()
    assert parent.version == 2 and parent.versions.count() == 2


# --- who may ------------------------------------------------------------------------------------------------


@pytest.fixture
def team_workflow(alice: User, make_user: Callable[..., User]) -> Workflow:
    """Alice's workflow in a team project where bob is a viewer and carol an editor."""
    team = project_create(name="Team", by=alice)
    member_set(project=team, user=make_user("bob"), role=Role.VIEWER, by=alice)
    member_set(project=team, user=make_user("carol"), role=Role.EDITOR, by=alice)
    workflow = workflow_create(owner=alice, name="Shared", graph=linear_graph(), project=team)
    return workflow_update(workflow=workflow, name="Shared v2", by=alice)


def test_an_outsider_gets_404_for_every_version_endpoint(
    api: Callable[..., APIClient], mallory: User, team_workflow: Workflow
) -> None:
    client = api(mallory)
    for path in ("", "1/", "diff/"):
        assert client.get(versions_url(team_workflow, path)).status_code == 404, path
    assert client.post(versions_url(team_workflow, "1/restore/"), format="json").status_code == 404
    assert team_workflow.versions.count() == 2


def test_a_viewer_reads_and_diffs_versions_but_may_not_restore(
    api: Callable[..., APIClient], team_workflow: Workflow
) -> None:
    client = api(User.objects.get(username="bob"))
    assert client.get(versions_url(team_workflow)).json()["count"] == 2
    assert client.get(versions_url(team_workflow, "1/")).status_code == 200
    assert client.get(versions_url(team_workflow, "diff/")).json()["name"] == {"from": "Shared", "to": "Shared v2"}
    refused = client.post(versions_url(team_workflow, "1/restore/"), format="json")
    assert refused.status_code == 403
    assert "viewer" in refused.json()["detail"] and "editor" in refused.json()["detail"]
    assert team_workflow.versions.count() == 2


def test_an_editor_restores_and_the_version_names_them(api: Callable[..., APIClient], team_workflow: Workflow) -> None:
    carol = User.objects.get(username="carol")
    response = api(carol).post(versions_url(team_workflow, "1/restore/"), format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["name"] == "Shared"
    assert team_workflow.versions.get(number=3).author == carol


def test_a_deleted_workflows_versions_are_not_found(api: Callable[..., APIClient], alice: User) -> None:
    workflow = make_workflow(alice)
    workflow_soft_delete(workflow=workflow)
    assert api(alice).get(versions_url(workflow)).status_code == 404


# --- runs link to their version -----------------------------------------------------------------------------


def test_a_run_links_to_the_version_it_ran_and_to_none_once_the_workflow_is_gone(
    api: Callable[..., APIClient], alice: User
) -> None:
    workflow = make_workflow(alice)
    run = make_run(workflow)
    workflow_update(workflow=workflow, name="Later", by=alice)
    client = api(alice)
    url = client.get(f"/api/runs/{run.pk}/").json()["workflow_version_url"]
    assert url == f"http://testserver/api/workflows/{workflow.pk}/versions/1/"
    version: dict[str, Any] = client.get(url).json()
    assert version["number"] == 1 and version["current"] is False
    listed = client.get("/api/runs/").json()["results"]
    assert listed[0]["workflow_version_url"] == url
    workflow_soft_delete(workflow=workflow)
    assert client.get(f"/api/runs/{run.pk}/").json()["workflow_version_url"] is None
