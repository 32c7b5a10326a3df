"""Workflows through the API: the owner's CRUD, the outsider's 404s, staff, graph errors, whitelisted fields."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from tests.api.conftest import approval_graph
from tests.factories import linear_graph, make_workflow
from workflows.models import Workflow

pytestmark = pytest.mark.django_db


def test_the_owner_creates_reads_lists_updates_and_deletes_a_workflow(
    api: Callable[..., APIClient], alice: User
) -> None:
    client = api(alice)
    created = client.post(
        "/api/workflows/", {"name": "Ship", "description": "orders", "graph": approval_graph()}, format="json"
    )
    assert created.status_code == 201, created.json()
    body = created.json()
    workflow = Workflow.objects.get(pk=body["id"])
    assert body["owner"] == "alice" and body["version"] == 1
    assert body["graph"] == workflow.graph_document()
    assert body["graph"]["edges"][1] == {"id": "e2", "source": "ask", "target": "ok", "sourceHandle": "approved"}

    listed = client.get("/api/workflows/").json()
    assert listed["count"] == 1 and listed["next"] is None and listed["previous"] is None
    assert listed["results"][0]["id"] == workflow.pk and "graph" not in listed["results"][0]

    assert client.get(f"/api/workflows/{workflow.pk}/").json() == body

    patched = client.patch(f"/api/workflows/{workflow.pk}/", {"description": "all orders"}, format="json")
    assert patched.status_code == 200
    assert patched.json()["description"] == "all orders" and patched.json()["version"] == 2
    assert patched.json()["graph"] == body["graph"]

    replaced = client.put(f"/api/workflows/{workflow.pk}/", {"name": "Chain", "graph": linear_graph()}, format="json")
    assert replaced.status_code == 200
    assert replaced.json()["name"] == "Chain" and replaced.json()["version"] == 3
    assert [node["id"] for node in replaced.json()["graph"]["nodes"]] == ["start", "end"]

    assert client.delete(f"/api/workflows/{workflow.pk}/").status_code == 204
    assert client.get(f"/api/workflows/{workflow.pk}/").status_code == 404
    assert client.get("/api/workflows/").json()["count"] == 0
    workflow.refresh_from_db()
    assert workflow.is_deleted  # soft: its runs keep their history


def test_an_outsider_gets_404_for_everything_of_alices(
    api: Callable[..., APIClient], alice: User, mallory: User
) -> None:
    workflow = make_workflow(alice, graph=approval_graph())
    client = api(mallory)
    base = f"/api/workflows/{workflow.pk}/"
    assert client.get("/api/workflows/").json()["count"] == 0
    requests: list[tuple[str, str, dict[str, Any] | None]] = [
        ("get", base, None),
        ("put", base, {"name": "mine now", "graph": linear_graph()}),
        ("patch", base, {"name": "mine now"}),
        ("delete", base, None),
        ("post", f"{base}runs/", {"input": {}}),
        ("get", f"{base}export/", None),
    ]
    for method, path, body in requests:
        response = getattr(client, method)(path, body, format="json")
        assert response.status_code == 404, (method, path)
        assert response.json() == {"detail": "No Workflow matches the given query."}
    workflow.refresh_from_db()
    assert workflow.name == "Example" and workflow.version == 1 and not workflow.is_deleted
    assert not workflow.runs.exists()


def test_staff_see_and_edit_every_workflow(api: Callable[..., APIClient], alice: User, superuser: User) -> None:
    workflow = make_workflow(alice)
    client = api(superuser)
    assert [item["owner"] for item in client.get("/api/workflows/").json()["results"]] == ["alice"]
    response = client.patch(f"/api/workflows/{workflow.pk}/", {"name": "Fixed"}, format="json")
    assert response.status_code == 200 and response.json()["owner"] == "alice"


def test_an_invalid_graph_is_refused_listing_every_issue_by_node_and_edge(
    api: Callable[..., APIClient], alice: User
) -> None:
    graph = {
        "nodes": [
            {"id": "start", "type": "start", "data": {}},
            {"id": "check", "type": "if_else", "data": {"left": "{{input.x}}", "operator": "~"}},
            {"id": "mystery", "type": "teleport", "data": {}},
        ],
        "edges": [
            {"id": "e1", "source": "start", "target": "check"},
            {"id": "e2", "source": "check", "target": "nowhere", "sourceHandle": "true"},
        ],
    }
    response = api(alice).post("/api/workflows/", {"name": "Broken", "graph": graph}, format="json")
    assert response.status_code == 400
    issues = response.json()["graph"]
    assert all(set(issue) <= {"message", "node_id", "edge_id", "field"} for issue in issues)
    named = {(issue.get("node_id"), issue.get("edge_id")) for issue in issues}
    assert ("check", None) in named  # its operator
    assert ("mystery", None) in named  # its type
    assert (None, "e2") in named  # its target
    assert any(issue["message"] == "the graph has no end node; add at least one" for issue in issues)
    assert response.json()["detail"].startswith("Invalid input: graph: ")
    assert not Workflow.objects.exists()


def test_an_invalid_update_changes_nothing(api: Callable[..., APIClient], alice: User) -> None:
    workflow = make_workflow(alice, graph=approval_graph())
    before = workflow.document()
    response = api(alice).put(
        f"/api/workflows/{workflow.pk}/", {"name": "New", "graph": {"nodes": [], "edges": []}}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["graph"][0]["message"]
    workflow.refresh_from_db()
    assert workflow.document() == before and workflow.version == 1


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"graph": None}, {"graph": [{"message": "graph: This field may not be null."}]}),
        (
            {"graph": "nodes"},
            {"graph": [{"message": 'the graph must be an object with "nodes" and "edges" lists, got '}]},
        ),
        ({"name": ["a"]}, {"name": ["Not a valid string."]}),
        ({"name": "x" * 201}, {"name": ["Ensure this field has no more than 200 characters."]}),
        ({"description": 5}, None),  # numbers are fine as text, as DRF does
    ],
)
def test_wrong_types_are_400_naming_the_field(
    api: Callable[..., APIClient], alice: User, body: dict[str, Any], problem: dict[str, Any] | None
) -> None:
    workflow = make_workflow(alice)
    response = api(alice).patch(f"/api/workflows/{workflow.pk}/", body, format="json")
    if problem is None:
        assert response.status_code == 200
        return
    assert response.status_code == 400
    data = response.json()
    field = next(iter(problem))
    if field == "graph":
        assert data["graph"][0]["message"].startswith(problem["graph"][0]["message"])
    else:
        assert data[field] == problem[field]
    assert data["detail"].startswith(f"Invalid input: {field}: ")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"owner": "mallory"}, "This field is read-only; it can't be set."),
        ({"version": 99}, "This field is read-only; it can't be set."),
        ({"id": 7}, "This field is read-only; it can't be set."),
        ({"created_at": "2020-01-01T00:00:00Z"}, "This field is read-only; it can't be set."),
        ({"colour": "red"}, "Unknown field."),
    ],
)
def test_read_only_and_unknown_fields_are_refused_by_name(
    api: Callable[..., APIClient], alice: User, mallory: User, extra: dict[str, Any], message: str
) -> None:
    workflow = make_workflow(alice)
    client = api(alice)
    field = next(iter(extra))
    for response in (
        client.patch(f"/api/workflows/{workflow.pk}/", {"name": "Renamed", **extra}, format="json"),
        client.post("/api/workflows/", {"name": "New", "graph": linear_graph(), **extra}, format="json"),
    ):
        assert response.status_code == 400
        assert response.json()[field] == [message]
        assert field in response.json()["detail"]
    workflow.refresh_from_db()
    assert workflow.name == "Example" and workflow.version == 1 and workflow.owner == alice
    assert Workflow.objects.count() == 1


def test_lists_are_paginated(api: Callable[..., APIClient], alice: User) -> None:
    for index in range(3):
        make_workflow(alice, name=f"w{index}")
    client = api(alice)
    first = client.get("/api/workflows/?page_size=2").json()
    assert first["count"] == 3 and len(first["results"]) == 2 and first["next"].endswith("page=2&page_size=2")
    second = client.get(first["next"]).json()
    assert len(second["results"]) == 1 and second["next"] is None
    assert client.get("/api/workflows/?page=9").status_code == 404
