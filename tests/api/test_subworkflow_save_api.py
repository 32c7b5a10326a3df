"""Saving a graph with a subworkflow node: the referenced workflow must be one the saving user may run, a cycle
of workflows is refused naming it, and a pinned node records the version it pins."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from tests.factories import linear_graph, make_workflow
from workflows.models import Workflow
from workflows.services import workflow_soft_delete, workflow_update

pytestmark = pytest.mark.django_db


def calling(workflow_id: int, **data: Any) -> dict[str, Any]:
    return linear_graph(("call", "subworkflow", {"workflow": workflow_id, **data}))


def node_data(body: dict[str, Any], node_id: str = "call") -> dict[str, Any]:
    return next(node["data"] for node in body["graph"]["nodes"] if node["id"] == node_id)


def refused(response: Any, field: str) -> list[dict[str, Any]]:
    assert response.status_code == 400, response.content
    issues = [issue for issue in response.json()["graph"] if issue.get("node_id") == "call"]
    assert issues and all(issue["field"] == field for issue in issues), response.json()
    return issues


def test_a_pinned_subworkflow_records_the_version_saved_then(api: Callable[..., APIClient], alice: User) -> None:
    child = make_workflow(alice, name="Child")
    child = workflow_update(workflow=child, name="Child")  # version 2
    created = api(alice).post("/api/workflows/", {"name": "P", "graph": calling(child.pk)}, format="json")
    assert created.status_code == 201, created.content
    assert node_data(created.json()) == {"workflow": child.pk, "pinned_version": 2}
    # Kept when it is one of the workflow's versions, on later saves too.
    again = api(alice).put(
        f"/api/workflows/{created.json()['id']}/",
        {"name": "P", "graph": calling(child.pk, version="pinned", pinned_version=1)},
        format="json",
    )
    assert again.status_code == 200, again.content
    assert node_data(again.json())["pinned_version"] == 1


def test_current_records_no_pinned_version(api: Callable[..., APIClient], alice: User) -> None:
    child = make_workflow(alice)
    graph = calling(child.pk, version="current", pinned_version=1)
    created = api(alice).post("/api/workflows/", {"name": "P", "graph": graph}, format="json")
    assert created.status_code == 201, created.content
    assert node_data(created.json()) == {"workflow": child.pk, "version": "current"}


def test_a_pinned_version_the_workflow_never_had_is_refused(api: Callable[..., APIClient], alice: User) -> None:
    child = make_workflow(alice)
    response = api(alice).post(
        "/api/workflows/", {"name": "P", "graph": calling(child.pk, pinned_version=9)}, format="json"
    )
    [issue] = refused(response, "pinned_version")
    assert f"workflow {child.pk} has no version 9" in issue["message"]


@pytest.mark.parametrize("whose", ["unknown", "another user's", "deleted"])
def test_a_workflow_the_user_may_not_run_is_refused_naming_node_and_field(
    api: Callable[..., APIClient], alice: User, mallory: User, whose: str
) -> None:
    if whose == "unknown":
        workflow_id = 999999
    elif whose == "another user's":
        workflow_id = make_workflow(alice).pk
    else:
        deleted = make_workflow(mallory)
        workflow_soft_delete(workflow=deleted)
        workflow_id = deleted.pk
    response = api(mallory).post("/api/workflows/", {"name": "P", "graph": calling(workflow_id)}, format="json")
    [issue] = refused(response, "workflow")
    assert issue["message"] == (
        f'node "call": data.workflow: workflow {workflow_id} does not exist, was deleted, or is not yours'
    )
    assert not Workflow.objects.filter(name="P").exists()


def test_a_cycle_of_workflows_is_refused_naming_it(api: Callable[..., APIClient], alice: User) -> None:
    first = make_workflow(alice, name="A")
    second = make_workflow(alice, name="B", graph=calling(first.pk, version="current"))
    response = api(alice).put(f"/api/workflows/{first.pk}/", {"name": "A", "graph": calling(second.pk)}, format="json")
    [issue] = refused(response, "workflow")
    assert issue["message"].endswith(
        f"workflows would run each other in a cycle: A (#{first.pk}) -> B (#{second.pk}) -> A (#{first.pk})"
    )
    first.refresh_from_db()
    assert first.version == 1


def test_a_cycle_through_a_pinned_version_is_refused_and_an_older_pin_is_not_one(
    api: Callable[..., APIClient], alice: User
) -> None:
    first = make_workflow(alice, name="A")
    second = make_workflow(alice, name="B")
    first = workflow_update(workflow=first, graph=calling(second.pk, version="current"))  # A v2 runs B as saved
    response = api(alice).put(f"/api/workflows/{second.pk}/", {"name": "B", "graph": calling(first.pk)}, format="json")
    [issue] = refused(response, "workflow")
    assert issue["message"].endswith(f"B (#{second.pk}) -> A (#{first.pk}) -> B (#{second.pk})")
    # Pinned to A's version 1, which runs nothing: B v2 -> A v1 ends.
    older = calling(first.pk, pinned_version=1)
    ok = api(alice).put(f"/api/workflows/{second.pk}/", {"name": "B", "graph": older}, format="json")
    assert ok.status_code == 200, ok.content


def test_a_workflow_cannot_run_itself(api: Callable[..., APIClient], alice: User) -> None:
    workflow = make_workflow(alice, name="Self")
    response = api(alice).put(
        f"/api/workflows/{workflow.pk}/", {"name": "Self", "graph": calling(workflow.pk)}, format="json"
    )
    [issue] = refused(response, "workflow")
    assert "a workflow cannot run itself" in issue["message"]


def test_checking_a_graph_runs_the_save_checks_as_the_signed_in_user(
    api: Callable[..., APIClient], alice: User, mallory: User
) -> None:
    theirs = make_workflow(mallory, name="Mallory's")
    graph = linear_graph(("sub", "subworkflow", {"workflow": theirs.pk}))
    answer = api(alice).post("/api/workflows/validate/", {"graph": graph}, format="json")
    assert answer.status_code == 200
    body = answer.json()
    assert body["valid"] is False
    assert [(issue["node_id"], issue.get("field")) for issue in body["issues"]] == [("sub", "workflow")]
