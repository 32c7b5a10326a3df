"""Export and import through the API: the round trip, the original FlowNova export, refusals naming the problem."""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from tests.api.conftest import approval_graph
from tests.api.seed_sample import CONVERTED_GRAPH, SEED_EXPORT
from tests.factories import make_workflow
from workflows.models import Workflow

pytestmark = pytest.mark.django_db


def test_export_is_the_contract_document(api: Callable[..., APIClient], alice: User) -> None:
    workflow = make_workflow(alice, name="Ship", graph=approval_graph())
    response = api(alice).get(f"/api/workflows/{workflow.pk}/export/")
    assert response.status_code == 200
    assert response.json() == {"name": "Ship", "description": "", "graph": workflow.graph_document()}


def test_importing_an_export_gives_an_equal_document(api: Callable[..., APIClient], alice: User) -> None:
    client = api(alice)
    graph = approval_graph()
    graph["nodes"][0]["position"] = {"x": 10, "y": 20.5}
    original = make_workflow(alice, name="Ship", graph=graph)
    exported = client.get(f"/api/workflows/{original.pk}/export/").json()
    imported = client.post("/api/workflows/import/", exported, format="json")
    assert imported.status_code == 201, imported.json()
    copy_id = imported.json()["id"]
    assert copy_id != original.pk and imported.json()["owner"] == "alice"
    assert client.get(f"/api/workflows/{copy_id}/export/").json() == exported


def test_import_normalises_a_hand_written_document_once(api: Callable[..., APIClient], alice: User) -> None:
    client = api(alice)
    document = {
        "name": "Hand made",
        "graph": {
            "nodes": [
                {"id": "start", "type": "start", "selected": True, "width": 150},
                {"id": "end", "type": "end", "data": None},
            ],
            "edges": [{"source": "start", "target": "end", "animated": True}],
        },
    }
    first = client.post("/api/workflows/import/", document, format="json").json()
    exported = client.get(f"/api/workflows/{first['id']}/export/").json()
    assert exported == {
        "name": "Hand made",
        "description": "",
        "graph": {
            "nodes": [{"id": "start", "type": "start", "data": {}}, {"id": "end", "type": "end", "data": {}}],
            "edges": [{"id": "start->end", "source": "start", "target": "end"}],
        },
    }
    second = client.post("/api/workflows/import/", exported, format="json").json()
    assert client.get(f"/api/workflows/{second['id']}/export/").json() == exported


def test_the_seed_format_is_imported_as_our_graph(api: Callable[..., APIClient], alice: User) -> None:
    client = api(alice)
    response = client.post("/api/workflows/import/", copy.deepcopy(SEED_EXPORT), format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["name"] == "Refund review" and body["description"] == "Large refunds need a person."
    assert body["graph"] == CONVERTED_GRAPH
    # And it runs like any workflow: input is accepted, the graph is the stored one.
    assert (
        client.post(f"/api/workflows/{body['id']}/runs/", {"input": {"amount": 150}}, format="json").status_code == 201
    )


def test_a_seed_document_with_an_unknown_condition_is_refused_naming_the_node(
    api: Callable[..., APIClient], alice: User
) -> None:
    document = copy.deepcopy(SEED_EXPORT)
    document["nodes"][1]["data"]["config"]["condition"] = "roughly"
    response = api(alice).post("/api/workflows/import/", document, format="json")
    assert response.status_code == 400
    (issue,) = response.json()["graph"]
    assert issue["node_id"] == "amount_check" and issue["field"] == "condition"
    assert 'unknown if/else condition "roughly"' in issue["message"]
    assert not Workflow.objects.exists()


def test_an_imported_graph_is_validated_like_any_other(api: Callable[..., APIClient], alice: User) -> None:
    document = copy.deepcopy(SEED_EXPORT)
    document["edges"] = document["edges"][:3]  # the approval's branches are gone
    response = api(alice).post("/api/workflows/import/", document, format="json")
    assert response.status_code == 400
    named = {issue.get("node_id") for issue in response.json()["graph"]}
    assert {"manager", "refund", "decline"} <= named
    assert not Workflow.objects.exists()


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ([1, 2], "non_field_errors"),
        ({"graph": {"nodes": []}}, "name"),
        ({"name": "x" * 201, "graph": approval_graph()}, "name"),
        ({"name": "no graph"}, "graph"),
    ],
)
def test_a_bad_document_is_400_naming_the_key(
    api: Callable[..., APIClient], alice: User, document: object, field: str
) -> None:
    response = api(alice).post("/api/workflows/import/", document, format="json")
    assert response.status_code == 400
    assert field in response.json() and response.json()["detail"]
    assert not Workflow.objects.exists()


def test_export_of_another_users_workflow_is_404_and_import_makes_it_yours(
    api: Callable[..., APIClient], alice: User, mallory: User
) -> None:
    workflow = make_workflow(alice)
    assert api(mallory).get(f"/api/workflows/{workflow.pk}/export/").status_code == 404
    response = api(mallory).post("/api/workflows/import/", {**workflow.document(), "owner": "alice"}, format="json")
    assert response.status_code == 201 and response.json()["owner"] == "mallory"
