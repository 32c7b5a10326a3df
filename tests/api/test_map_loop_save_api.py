"""Saving a graph with a map or loop node: the same checks as a subworkflow's (the workflow must be one the
saving user may run, no cycle of workflows, a pinned node records its version), and the templates each may
use."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from tests.engine_helpers import graph_of
from tests.factories import linear_graph, make_workflow

pytestmark = pytest.mark.django_db

UNTIL = {"left": "{{result.done}}", "operator": "==", "right": True}


def mapping(workflow_id: int, **data: Any) -> dict[str, Any]:
    return linear_graph(("each", "map", {"items": "{{input.items}}", "workflow": workflow_id, **data}))


def looping(workflow_id: int, **data: Any) -> dict[str, Any]:
    node = {"workflow": workflow_id, "until": UNTIL, **data}
    return graph_of(
        [("start", "start", {}), ("again", "loop", node), ("a", "end", {}), ("b", "end", {})],
        [("start", "again"), ("again", "a", "done"), ("again", "b", "exhausted")],
    )


def issues(response: Any, node_id: str) -> list[tuple[str, str]]:
    assert response.status_code == 400, response.content
    return [
        (issue.get("field"), issue["message"]) for issue in response.json()["graph"] if issue.get("node_id") == node_id
    ]


def test_map_and_loop_record_the_pinned_version_like_a_subworkflow(api: Callable[..., APIClient], alice: User) -> None:
    child = make_workflow(alice, name="Child")
    for graph, node_id in (
        (mapping(child.pk, input={"n": "{{item}}", "i": "{{index}}"}), "each"),
        (looping(child.pk), "again"),
    ):
        created = api(alice).post("/api/workflows/", {"name": "P", "graph": graph}, format="json")
        assert created.status_code == 201, created.content
        data = next(node["data"] for node in created.json()["graph"]["nodes"] if node["id"] == node_id)
        assert data["pinned_version"] == 1


def test_a_workflow_the_user_may_not_run_is_refused(api: Callable[..., APIClient], alice: User, mallory: User) -> None:
    hidden = make_workflow(alice, name="Alice's")
    response = api(mallory).post("/api/workflows/", {"name": "P", "graph": mapping(hidden.pk)}, format="json")
    assert issues(response, "each") == [
        ("workflow", f'node "each": data.workflow: workflow {hidden.pk} does not exist, was deleted, or is not yours')
    ]
    response = api(mallory).post("/api/workflows/", {"name": "P", "graph": looping(hidden.pk)}, format="json")
    assert issues(response, "again")[0][0] == "workflow"


def test_a_cycle_through_map_and_loop_nodes_is_refused_naming_it(api: Callable[..., APIClient], alice: User) -> None:
    first = make_workflow(alice, name="First")
    second = make_workflow(alice, name="Second", graph=looping(first.pk, version="current"))
    response = api(alice).put(
        f"/api/workflows/{first.pk}/", {"name": "First", "graph": mapping(second.pk)}, format="json"
    )
    assert issues(response, "each") == [
        (
            "workflow",
            'node "each": data.workflow: workflows would run each other in a cycle: '
            f"First (#{first.pk}) -> Second (#{second.pk}) -> First (#{first.pk})",
        )
    ]


def test_item_and_index_only_in_a_maps_input_and_result_only_in_a_loops_until(
    api: Callable[..., APIClient], alice: User
) -> None:
    child = make_workflow(alice)
    bad_map = mapping(child.pk, items="{{item}}", input={"n": "{{result}}"})
    response = api(alice).post("/api/workflows/", {"name": "P", "graph": bad_map}, format="json")
    found = issues(response, "each")
    assert [field for field, _ in found] == ["items", "input"]
    assert 'unknown root "item"; paths start with input or nodes' in found[0][1]
    assert 'unknown root "result"; paths start with input, nodes, item or index' in found[1][1]
    bad_loop = looping(child.pk, input={"n": "{{iteration}}"}, until={"left": "{{item}}", "operator": "is_empty"})
    response = api(alice).post("/api/workflows/", {"name": "P", "graph": bad_loop}, format="json")
    found = issues(response, "again")
    assert [field for field, _ in found] == ["input", "until"]
    assert 'unknown root "item"; paths start with input, result or iteration' in found[1][1]


def test_concurrency_and_max_iterations_are_bounded(api: Callable[..., APIClient], alice: User) -> None:
    child = make_workflow(alice)
    response = api(alice).post(
        "/api/workflows/", {"name": "P", "graph": mapping(child.pk, concurrency=51)}, format="json"
    )
    assert [field for field, _ in issues(response, "each")] == ["concurrency"]
    response = api(alice).post(
        "/api/workflows/", {"name": "P", "graph": looping(child.pk, max_iterations=0)}, format="json"
    )
    assert [field for field, _ in issues(response, "again")] == ["max_iterations"]
    no_handles = linear_graph(("again", "loop", {"workflow": child.pk, "until": UNTIL}))
    response = api(alice).post("/api/workflows/", {"name": "P", "graph": no_handles}, format="json")
    assert response.status_code == 400
