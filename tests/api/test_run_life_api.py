"""The whole life of a run through the API only, on the real Celery worker the suite starts."""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from tests.api.conftest import approval_graph
from tests.conftest import WorkerProcess

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def worker(celery_worker: WorkerProcess) -> WorkerProcess:
    return celery_worker


def wait_for_status(client: APIClient, run_id: int, *wanted: str, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = client.get(f"/api/runs/{run_id}/").json()
        if run["status"] in wanted:
            return run
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} still {run['status']} after {timeout}s; wanted {wanted}")


def logged_in(username: str) -> APIClient:
    client = APIClient()
    response = client.post(
        "/api/auth/token/", {"username": username, "password": f"{username}-password"}, format="json"
    )
    assert response.status_code == 200
    client.credentials(HTTP_AUTHORIZATION=f"Token {response.json()['token']}")
    return client


def test_create_start_wait_approve_and_read_the_ledger(alice: User) -> None:
    client = logged_in("alice")
    created = client.post("/api/workflows/", {"name": "Ship", "graph": approval_graph()}, format="json")
    assert created.status_code == 201
    started = client.post(f"/api/workflows/{created.json()['id']}/runs/", {"input": {"order": 42}}, format="json")
    assert started.status_code == 201
    run_id = started.json()["id"]

    waiting = wait_for_status(client, run_id, "waiting")
    assert waiting["finished_at"] is None

    inbox = client.get(f"/api/approvals/?status=pending&run={run_id}").json()
    assert inbox["count"] == 1
    approval = inbox["results"][0]
    assert approval["message"] == "Ship 42?" and approval["node_id"] == "ask" and approval["can_decide"]

    decided = client.post(
        f"/api/approvals/{approval['id']}/decide/", {"decision": "approved", "comment": "go"}, format="json"
    )
    assert decided.status_code == 200
    assert decided.json()["status"] == "approved" and decided.json()["decided_by"] == "alice"
    again = client.post(f"/api/approvals/{approval['id']}/decide/", {"decision": "rejected"}, format="json")
    assert again.status_code == 409

    done = wait_for_status(client, run_id, "succeeded", "failed", "cancelled")
    assert done["status"] == "succeeded", done["error"]
    assert done["output"] == {"shipped": True}

    ledger = client.get(f"/api/runs/{run_id}/ledger/").json()
    assert [entry["seq"] for entry in ledger] == list(range(1, len(ledger) + 1))
    steps = [(entry["node_id"], entry["status"]) for entry in ledger]
    assert steps[0] == ("start", "succeeded") and steps[-1] == ("ok", "succeeded")
    assert steps.index(("ask", "waiting")) < steps.index(("ask", "succeeded"))
    approval_step = next(entry for entry in ledger if entry["node_id"] == "ask" and entry["status"] == "succeeded")
    assert approval_step["output"]["approval"]["comment"] == "go"

    assert client.post(f"/api/runs/{run_id}/cancel/").status_code == 409


def test_cancelling_a_waiting_run_closes_its_approval(alice: User) -> None:
    client = logged_in("alice")
    workflow_id = client.post("/api/workflows/", {"name": "Ship", "graph": approval_graph()}, format="json").json()[
        "id"
    ]
    run_id = client.post(f"/api/workflows/{workflow_id}/runs/", {"input": {"order": 1}}, format="json").json()["id"]
    wait_for_status(client, run_id, "waiting")
    approval_id = client.get(f"/api/approvals/?run={run_id}").json()["results"][0]["id"]

    cancelled = client.post(f"/api/runs/{run_id}/cancel/")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    late = client.post(f"/api/approvals/{approval_id}/decide/", {"decision": "approved"}, format="json")
    assert late.status_code == 409
    assert client.get(f"/api/runs/{run_id}/").json()["status"] == "cancelled"
