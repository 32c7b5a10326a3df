"""Runs through the API without executing them (no worker here: a started run stays queued)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import override_settings
from django.utils import timezone
from rest_framework.test import APIClient

from runs.models import LedgerEntry, Run
from tests.factories import linear_graph, make_run, make_workflow
from workflows.services import workflow_soft_delete, workflow_update

pytestmark = pytest.mark.django_db

RUN_FIELDS = {"id", "workflow", "status", "input", "output", "error", "created_at", "started_at", "finished_at"}

SCHEMA_GRAPH: dict[str, Any] = {
    "nodes": [
        {
            "id": "start",
            "type": "start",
            "data": {
                "input_schema": {
                    "type": "object",
                    "properties": {"order": {"type": "integer"}, "note": {"type": "string"}},
                    "required": ["order"],
                }
            },
        },
        {"id": "end", "type": "end", "data": {}},
    ],
    "edges": [{"id": "e1", "source": "start", "target": "end"}],
}


def test_starting_a_run_answers_201_with_the_run(api: Callable[..., APIClient], alice: User) -> None:
    workflow = make_workflow(alice, graph=SCHEMA_GRAPH)
    response = api(alice).post(f"/api/workflows/{workflow.pk}/runs/", {"input": {"order": 7}}, format="json")
    assert response.status_code == 201
    body = response.json()
    run = Run.objects.get(pk=body["id"])
    assert RUN_FIELDS <= set(body)
    assert body["status"] == "queued" and body["workflow"] == workflow.pk and body["input"] == {"order": 7}
    assert run.owner == alice and body["owner"] == "alice" and body["source_run"] is None


def test_input_is_optional_and_defaults_to_an_empty_object(api: Callable[..., APIClient], alice: User) -> None:
    workflow = make_workflow(alice)
    response = api(alice).post(f"/api/workflows/{workflow.pk}/runs/", {}, format="json")
    assert response.status_code == 201 and response.json()["input"] == {}


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({"input": {}}, {"input": ["input: 'order' is a required property"]}),
        (
            {"input": {"order": "seven", "note": 3}},
            {"input": ["input.note: 3 is not of type 'string'", "input.order: 'seven' is not of type 'integer'"]},
        ),
        ({"input": [1, 2]}, {"input": ["Must be a JSON object, not list."]}),
        ({"input": {"order": 1}, "priority": "high"}, {"priority": ["Unknown field."]}),
    ],
)
def test_bad_input_is_400_listing_every_error_and_starts_nothing(
    api: Callable[..., APIClient], alice: User, body: dict[str, Any], errors: dict[str, list[str]]
) -> None:
    workflow = make_workflow(alice, graph=SCHEMA_GRAPH)
    response = api(alice).post(f"/api/workflows/{workflow.pk}/runs/", body, format="json")
    assert response.status_code == 400
    data = response.json()
    for field, messages in errors.items():
        assert data[field] == messages
        assert field in data["detail"]
    assert not Run.objects.exists()


def test_the_detail_has_the_contract_fields(api: Callable[..., APIClient], alice: User) -> None:
    workflow = make_workflow(alice)
    now = timezone.now()
    run = make_run(workflow, status="succeeded", input={"a": 1}, output={"a": 1}, started_at=now, finished_at=now)
    body = api(alice).get(f"/api/runs/{run.pk}/").json()
    assert {key: body[key] for key in RUN_FIELDS} == {
        "id": run.pk,
        "workflow": workflow.pk,
        "status": "succeeded",
        "input": {"a": 1},
        "output": {"a": 1},
        "error": "",
        "created_at": run.created_at.isoformat().replace("+00:00", "Z"),
        "started_at": now.isoformat().replace("+00:00", "Z"),
        "finished_at": now.isoformat().replace("+00:00", "Z"),
    }


def test_the_list_filters_by_workflow_status_and_date(api: Callable[..., APIClient], alice: User) -> None:
    first, second = make_workflow(alice, name="one"), make_workflow(alice, name="two")
    old = make_run(first, status="failed")
    Run.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=3))
    queued = make_run(first)
    other = make_run(second, status="succeeded")
    client = api(alice)

    def ids(query: str) -> list[int]:
        response = client.get(f"/api/runs/{query}")
        assert response.status_code == 200, response.json()
        return [item["id"] for item in response.json()["results"]]

    assert ids("") == [other.pk, queued.pk, old.pk]
    assert ids(f"?workflow={first.pk}") == [queued.pk, old.pk]
    assert ids("?status=succeeded") == [other.pk]
    assert ids(f"?workflow={first.pk}&status=failed") == [old.pk]
    yesterday = (timezone.now() - timedelta(days=1)).isoformat()
    assert ids(f"?created_after={yesterday.replace('+', '%2B')}") == [other.pk, queued.pk]
    assert ids(f"?created_before={yesterday.replace('+', '%2B')}") == [old.pk]
    assert ids(f"?created_before={(timezone.now() - timedelta(days=1)).date().isoformat()}") == [old.pk]


@pytest.mark.parametrize(
    ("query", "field"),
    [("?status=done", "status"), ("?workflow=abc", "workflow"), ("?created_after=yesterday", "created_after")],
)
def test_a_bad_filter_is_400_naming_it(api: Callable[..., APIClient], alice: User, query: str, field: str) -> None:
    response = api(alice).get(f"/api/runs/{query}")
    assert response.status_code == 400
    assert field in response.json() and response.json()["detail"].startswith(f"Invalid input: {field}: ")


def test_the_ledger_is_a_list_by_seq_paged_with_after_and_limit(api: Callable[..., APIClient], alice: User) -> None:
    run = make_run(make_workflow(alice))
    for seq in (2, 1, 3):
        LedgerEntry.objects.create(run=run, seq=seq, node_id=f"n{seq}", node_type="fork", status="succeeded")
    client = api(alice)
    response = client.get(f"/api/runs/{run.pk}/ledger/")
    assert response.status_code == 200 and "Link" not in response
    entries = response.json()
    assert [entry["seq"] for entry in entries] == [1, 2, 3]
    assert set(entries[0]) >= {
        "seq",
        "node_id",
        "node_type",
        "status",
        "input",
        "output",
        "error",
        "started_at",
        "finished_at",
        "duration_ms",
        "tool_calls",
        "llm_usage",
    }
    page = client.get(f"/api/runs/{run.pk}/ledger/?limit=2")
    assert [entry["seq"] for entry in page.json()] == [1, 2]
    assert page["Link"] == f'<http://testserver/api/runs/{run.pk}/ledger/?after=2&limit=2>; rel="next"'
    rest = client.get(f"/api/runs/{run.pk}/ledger/?after=2&limit=2")
    assert [entry["seq"] for entry in rest.json()] == [3] and "Link" not in rest
    assert client.get(f"/api/runs/{run.pk}/ledger/?limit=0").status_code == 400


def test_cancel_answers_200_then_409_once_the_run_ended(api: Callable[..., APIClient], alice: User) -> None:
    run = make_run(make_workflow(alice))
    client = api(alice)
    response = client.post(f"/api/runs/{run.pk}/cancel/")
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled" and response.json()["finished_at"]
    again = client.post(f"/api/runs/{run.pk}/cancel/")
    assert again.status_code == 409
    assert again.json()["detail"] == f"run {run.pk} already ended (cancelled)"


def test_rerun_starts_a_new_run_with_the_same_input(api: Callable[..., APIClient], alice: User) -> None:
    workflow = make_workflow(alice, graph=SCHEMA_GRAPH)
    run = make_run(workflow, status="failed", input={"order": 3})
    response = api(alice).post(f"/api/runs/{run.pk}/rerun/")
    assert response.status_code == 201
    body = response.json()
    assert body["id"] != run.pk and body["source_run"] == run.pk
    assert body["input"] == {"order": 3} and body["workflow"] == workflow.pk and body["status"] == "queued"


def test_rerun_is_409_when_the_workflow_is_gone_or_the_input_no_longer_fits(
    api: Callable[..., APIClient], alice: User
) -> None:
    workflow = make_workflow(alice, graph=SCHEMA_GRAPH)
    run = make_run(workflow, status="failed", input={"order": 3})
    client = api(alice)
    stricter = {"type": "object", "required": ["order", "customer"]}
    workflow_update(
        workflow=workflow,
        graph={
            "nodes": [{"id": "start", "type": "start", "data": {"input_schema": stricter}}, SCHEMA_GRAPH["nodes"][1]],
            "edges": SCHEMA_GRAPH["edges"],
        },
    )
    # The same version still accepts the input; the current one no longer does.
    response = client.post(f"/api/runs/{run.pk}/rerun/", {"version": "current"}, format="json")
    assert response.status_code == 409
    assert response.json()["input"] == ["input: 'customer' is a required property"]
    assert client.post(f"/api/runs/{run.pk}/rerun/").status_code == 201
    workflow_soft_delete(workflow=workflow)
    response = client.post(f"/api/runs/{run.pk}/rerun/")
    assert response.status_code == 409 and "was deleted" in response.json()["detail"]
    assert Run.objects.count() == 2  # the source and the same-version re-run


def test_an_outsider_gets_404_for_alices_runs(api: Callable[..., APIClient], alice: User, mallory: User) -> None:
    run = make_run(make_workflow(alice))
    client = api(mallory)
    assert client.get("/api/runs/").json()["count"] == 0
    for method, suffix in [("get", ""), ("get", "ledger/"), ("post", "cancel/"), ("post", "rerun/")]:
        response = getattr(client, method)(f"/api/runs/{run.pk}/{suffix}")
        assert response.status_code == 404, suffix
    run.refresh_from_db()
    assert run.status == "queued" and Run.objects.count() == 1


def test_staff_see_every_run(api: Callable[..., APIClient], alice: User, superuser: User) -> None:
    run = make_run(make_workflow(alice))
    client = api(superuser)
    assert [item["id"] for item in client.get("/api/runs/").json()["results"]] == [run.pk]
    assert client.get(f"/api/runs/{run.pk}/ledger/").status_code == 200


def test_run_starts_are_rate_limited_per_user_with_retry_after(
    api: Callable[..., APIClient], alice: User, mallory: User
) -> None:
    mine, theirs = make_workflow(alice, graph=linear_graph()), make_workflow(mallory)
    client = api(alice)
    with override_settings(FLOWNOVA_RUN_START_RATE="2/min"):
        codes = [client.post(f"/api/workflows/{mine.pk}/runs/", {}, format="json").status_code for _ in range(2)]
        assert codes == [201, 201]
        refused = client.post(f"/api/workflows/{mine.pk}/runs/", {}, format="json")
        assert refused.status_code == 429
        assert 0 < int(refused["Retry-After"]) <= 60
        assert refused.json()["detail"].startswith("Request was throttled.")
        # A re-run is a run start too; another user has their own allowance.
        started = Run.objects.first()
        assert started is not None
        assert client.post(f"/api/runs/{started.pk}/rerun/").status_code == 429
        assert api(mallory).post(f"/api/workflows/{theirs.pk}/runs/", {}, format="json").status_code == 201
    assert Run.objects.filter(owner=alice).count() == 2


def test_a_run_started_after_a_save_executes_the_saved_graph(api: Callable[..., APIClient], alice: User) -> None:
    # Parsed graphs are kept per workflow version: a save (a new version) must never start the old graph.
    workflow = make_workflow(alice, graph=linear_graph(("a", "fork", {})))
    client = api(alice)
    first = client.post(f"/api/workflows/{workflow.pk}/runs/", {"input": {}}, format="json").json()
    workflow_update(workflow=workflow, graph=linear_graph())
    second = client.post(f"/api/workflows/{workflow.pk}/runs/", {"input": {}}, format="json").json()
    nodes = {run.pk: [node["id"] for node in run.graph["nodes"]] for run in Run.objects.all()}
    assert nodes[first["id"]] == ["start", "a", "end"]
    assert nodes[second["id"]] == ["start", "end"]
    assert (first["workflow_version"], second["workflow_version"]) == (1, 2)
