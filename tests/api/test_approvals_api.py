"""Approvals through the API: who sees which request, and the answers of decide (the success path, which
resumes a run, is in test_run_life_api.py on the real worker)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.utils import timezone
from rest_framework.test import APIClient

from approvals.models import ApprovalRequest
from runs.models import NodeRun
from tests.api.conftest import approval_graph
from tests.factories import make_run, make_workflow
from workflows.models import Workflow

pytestmark = pytest.mark.django_db

CONTRACT_FIELDS = {"id", "run", "node_id", "message", "status", "assignees", "created_at"}


def request_for(owner: User, **fields: Any) -> ApprovalRequest:
    run = make_run(make_workflow(owner, graph=approval_graph()), status="waiting")
    users = fields.pop("users", [])
    groups = fields.pop("groups", [])
    NodeRun.objects.create(run=run, node_id="ask", node_type="user_approval", status="waiting", input={})
    approval = ApprovalRequest.objects.create(run=run, node_id="ask", message="Ship 42?", **fields)
    approval.assignee_users.set(users)
    approval.assignee_groups.set(groups)
    return approval


def ids(client: APIClient, query: str = "") -> list[int]:
    response = client.get(f"/api/approvals/{query}")
    assert response.status_code == 200, response.json()
    return [item["id"] for item in response.json()["results"]]


def test_the_owner_sees_an_unassigned_request_with_the_contract_fields(
    api: Callable[..., APIClient], alice: User
) -> None:
    approval = request_for(alice)
    body = api(alice).get("/api/approvals/?status=pending").json()
    assert body["count"] == 1
    item = body["results"][0]
    assert CONTRACT_FIELDS <= set(item)
    assert item["id"] == approval.pk and item["run"] == approval.run_id and item["node_id"] == "ask"
    assert item["message"] == "Ship 42?" and item["status"] == "pending" and item["assignees"] == []
    assert item["can_decide"] is True


def test_assignees_see_their_requests_and_nobody_else_does(
    api: Callable[..., APIClient], make_user: Callable[..., User], alice: User, mallory: User
) -> None:
    bob, carol = make_user("bob"), make_user("carol")
    reviewers = Group.objects.create(name="reviewers")
    carol.groups.add(reviewers)
    for_bob = request_for(alice, users=[bob])
    for_reviewers = request_for(alice, groups=[reviewers])
    unassigned = request_for(alice)
    assert ids(api(bob)) == [for_bob.pk]
    assert ids(api(carol)) == [for_reviewers.pk]
    # The owner decides requests without assignees; those assigned to others are theirs to see.
    assert ids(api(alice)) == [unassigned.pk]
    assert ids(api(mallory)) == []
    item = api(bob).get(f"/api/approvals/{for_bob.pk}/").json()
    assert item["assignees"] == ["bob"] and item["can_decide"] is True
    assert api(carol).get(f"/api/approvals/{for_reviewers.pk}/").json()["assignees"] == ["reviewers"]


def test_staff_see_every_request(api: Callable[..., APIClient], alice: User, superuser: User) -> None:
    approvals = [request_for(alice), request_for(alice, users=[alice])]
    assert sorted(ids(api(superuser))) == sorted(a.pk for a in approvals)


def test_the_list_filters_by_status(api: Callable[..., APIClient], alice: User) -> None:
    pending = request_for(alice)
    decided = request_for(alice, status="approved", decision="approved", decided_at=timezone.now(), decided_by=alice)
    client = api(alice)
    assert ids(client, "?status=pending") == [pending.pk]
    assert ids(client, "?status=approved") == [decided.pk]
    assert client.get("/api/approvals/?status=maybe").status_code == 400


def test_an_outsider_gets_404_and_decides_nothing(api: Callable[..., APIClient], alice: User, mallory: User) -> None:
    approval = request_for(alice)
    client = api(mallory)
    assert client.get(f"/api/approvals/{approval.pk}/").status_code == 404
    response = client.post(f"/api/approvals/{approval.pk}/decide/", {"decision": "approved"}, format="json")
    assert response.status_code == 404
    approval.refresh_from_db()
    assert approval.status == "pending" and approval.decided_by is None


def test_one_who_sees_but_may_not_decide_gets_403(api: Callable[..., APIClient], alice: User) -> None:
    approval = request_for(alice, allow_self_approval=False)  # alice started the run: not hers to approve
    client = api(alice)
    assert client.get(f"/api/approvals/{approval.pk}/").json()["can_decide"] is False
    response = client.post(f"/api/approvals/{approval.pk}/decide/", {"decision": "approved"}, format="json")
    assert response.status_code == 403
    assert "may not decide" in response.json()["detail"]
    approval.refresh_from_db()
    assert approval.status == "pending"


def test_deciding_a_decided_request_is_409(api: Callable[..., APIClient], alice: User) -> None:
    approval = request_for(alice, status="rejected", decision="rejected", decided_at=timezone.now(), decided_by=alice)
    response = api(alice).post(
        f"/api/approvals/{approval.pk}/decide/", {"decision": "approved", "comment": "too late"}, format="json"
    )
    assert response.status_code == 409
    assert response.json()["detail"] == f"approval {approval.pk} is already rejected"
    approval.refresh_from_db()
    assert approval.decision == "rejected" and approval.comment == ""


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "decision"),
        ({"decision": "maybe"}, "decision"),
        ({"decision": "approved", "comment": ["x"]}, "comment"),
        ({"decision": "approved", "decided_by": "mallory"}, "decided_by"),
    ],
)
def test_a_bad_decision_body_is_400_naming_the_field(
    api: Callable[..., APIClient], alice: User, body: dict[str, Any], field: str
) -> None:
    approval = request_for(alice)
    response = api(alice).post(f"/api/approvals/{approval.pk}/decide/", body, format="json")
    assert response.status_code == 400
    assert field in response.json() and field in response.json()["detail"]
    approval.refresh_from_db()
    assert approval.status == "pending"


def test_an_approver_may_edit_the_editable_fields_and_nothing_else(api: Callable[..., APIClient], alice: User) -> None:
    approval = request_for(alice, editable_fields=["amount"])
    NodeRun.objects.filter(run=approval.run, node_id="ask").update(input={"amount": 500, "customer": "c1"})
    client = api(alice)
    url = f"/api/approvals/{approval.pk}/decide/"
    refused = client.post(url, {"decision": "approved", "edits": {"customer": "c2"}}, format="json")
    assert refused.status_code == 400
    assert refused.json()["detail"] == "these fields may not be edited: customer (editable: amount)"
    rejected = client.post(url, {"decision": "rejected", "edits": {"amount": 1}}, format="json")
    assert rejected.status_code == 400 and "only be edited when approving" in rejected.json()["detail"]
    not_object = client.post(url, {"decision": "approved", "edits": ["amount"]}, format="json")
    assert not_object.status_code == 400 and "edits" in not_object.json()
    approval.refresh_from_db()
    assert approval.status == "pending"

    decided = client.post(url, {"decision": "approved", "edits": {"amount": 400}}, format="json")
    assert decided.status_code == 200, decided.json()
    body = decided.json()
    assert body["status"] == "approved" and body["editable_fields"] == ["amount"]
    assert body["edits"] == {"by": "alice", "changes": {"amount": {"from": 500, "to": 400}}}


@pytest.mark.parametrize("seconds", [1e12, 366 * 24 * 3600 + 1, 0, -60])
def test_a_deadline_out_of_range_is_refused_at_save_naming_the_field(
    api: Callable[..., APIClient], alice: User, seconds: float
) -> None:
    client = api(alice)
    graph = approval_graph(deadline_seconds=seconds, timeout_action="reject")
    saved = client.post("/api/workflows/", {"name": "Late", "graph": graph}, format="json")
    assert saved.status_code == 400
    checked = client.post("/api/workflows/validate/", {"graph": graph}, format="json")  # the editor's check
    assert checked.status_code == 200 and checked.json()["valid"] is False
    for issues in (saved.json()["graph"], checked.json()["issues"]):
        assert [(issue["node_id"], issue["field"]) for issue in issues] == [("ask", "deadline_seconds")]
        assert issues[0]["message"].startswith('node "ask": data.deadline_seconds: ')
    assert not Workflow.objects.exists()


def test_a_deadline_of_366_days_is_accepted(api: Callable[..., APIClient], alice: User) -> None:
    graph = approval_graph(deadline_seconds=366 * 24 * 3600, timeout_action="approve")
    response = api(alice).post("/api/workflows/", {"name": "Patient", "graph": graph}, format="json")
    assert response.status_code == 201, response.json()
