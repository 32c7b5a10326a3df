"""Approval deadlines fire on time: a task sent for the deadline applies the timeout action (on the real
worker, with no Celery beat running), a far one gets its task from the periodic scan, which is also the safety
net (applying a deadline whose task was lost: tests/test_approvals.py), and a deadline is bounded."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from approvals.models import ApprovalRequest
from approvals.services import approval_decide, approval_expire, approvals_expire_overdue
from approvals.tasks import expire_overdue
from nodes.base import NodeContext, NodeError
from nodes.types.user_approval import MAX_DEADLINE_SECONDS, execute
from runs.models import NodeRun, Run, RunEvent
from tests.conftest import WorkerProcess
from tests.engine_helpers import graph_of, ledger, start, wait_for
from tests.factories import make_run, make_workflow
from workflows.graph import Node

ON_TIME = 4.0  # seconds from the deadline's start to its action; the scan alone took up to 30


def ask(**data: object) -> dict[str, Any]:
    node = {"message": "Refund {{input.amount}}?", **data}
    return graph_of(
        [("start", "start", {}), ("ask", "user_approval", node), ("yes", "end", {}), ("no", "end", {})],
        [("start", "ask"), ("ask", "yes", "approved"), ("ask", "no", "rejected")],
    )


def waiting(owner: User, graph: dict[str, Any]) -> tuple[Run, ApprovalRequest]:
    run = wait_for(start(owner, graph, {"amount": 120}), "waiting")
    return run, ApprovalRequest.objects.get(run=run)


def decided(approval: ApprovalRequest, timeout: float = 10.0) -> ApprovalRequest:
    """Poll until the request is no longer pending."""
    limit = time.monotonic() + timeout
    while time.monotonic() < limit:
        approval.refresh_from_db()
        if approval.status != "pending":
            return approval
        time.sleep(0.05)
    raise AssertionError(f"approval {approval.pk} still pending after {timeout}s")


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("action", "status", "route"), [("approve", "succeeded", "yes"), ("fail", "failed", None)])
def test_a_two_second_deadline_is_applied_on_time_by_the_worker(
    alice: User, celery_worker: WorkerProcess, action: str, status: str, route: str | None
) -> None:
    run, approval = waiting(alice, ask(deadline_seconds=2, timeout_action=action))
    approval = decided(approval)
    assert approval.decided_by_timeout and approval.decided_by is None
    assert approval.deadline is not None and approval.decided_at is not None
    assert approval.deadline <= approval.decided_at
    assert (approval.decided_at - approval.created_at).total_seconds() < ON_TIME
    run = wait_for(run)
    assert run.status == status
    if route:
        assert ledger(run)[-1] == (route, "succeeded")
        assert run.output is not None and run.output["approval"]["decided_by_timeout"] is True
    else:
        assert approval.status == "expired" and "nobody decided the approval before its deadline" in run.error
    assert RunEvent.objects.filter(run=run, type="approval_decided").count() == 1
    assert approvals_expire_overdue() == 0 and not approval_expire(approval_id=approval.pk)  # once only


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_the_deadline_task_after_a_decision_changes_nothing(alice: User, celery_worker: WorkerProcess) -> None:
    run, approval = waiting(alice, ask(deadline_seconds=1, timeout_action="reject"))
    approval_decide(approval_id=approval.pk, user=alice, decision="approved", comment="in time")
    assert wait_for(run).status == "succeeded"
    time.sleep(1.5)  # the task sent for the deadline has run by now
    approval.refresh_from_db()
    assert (approval.status, approval.decided_by, approval.comment) == ("approved", alice, "in time")
    assert not approval.decided_by_timeout and ledger(run)[-1] == ("yes", "succeeded")
    assert RunEvent.objects.filter(run=run, type="approval_decided").count() == 1


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_far_deadline_gets_its_task_from_the_scan_when_it_comes_near(
    alice: User, celery_worker: WorkerProcess
) -> None:
    run, approval = waiting(alice, ask(deadline_seconds=MAX_DEADLINE_SECONDS, timeout_action="approve"))
    approval.refresh_from_db()
    assert not approval.deadline_timer_sent  # a year ahead: no task held that long by the broker
    assert approval.deadline is not None
    assert timedelta(days=365) < approval.deadline - approval.created_at <= timedelta(days=366)
    expire_overdue()  # the periodic scan: not near yet, nothing to do
    approval.refresh_from_db()
    assert approval.status == "pending" and not approval.deadline_timer_sent

    # Time passes: the deadline is now 1.5 s away, and the next scan sends its task.
    ApprovalRequest.objects.filter(pk=approval.pk).update(deadline=timezone.now() + timedelta(seconds=1.5))
    began = time.monotonic()
    assert expire_overdue() == 0
    approval = decided(approval)
    assert time.monotonic() - began < ON_TIME and approval.decided_by_timeout and approval.status == "approved"
    assert wait_for(run).status == "succeeded"


@pytest.mark.django_db
def test_one_request_that_cannot_be_expired_does_not_hold_back_the_others(alice: User) -> None:
    past = timezone.now() - timedelta(minutes=1)
    broken, fine = (make_run(make_workflow(alice, graph=ask()), status="waiting") for _ in range(2))
    # The first one's node is no longer waiting (the engine cannot resume it); it comes first, by deadline.
    NodeRun.objects.create(run=broken, node_id="ask", node_type="user_approval", status="succeeded", input={})
    NodeRun.objects.create(run=fine, node_id="ask", node_type="user_approval", status="waiting", input={})
    stuck = ApprovalRequest.objects.create(run=broken, node_id="ask", deadline=past, timeout_action="reject")
    due = ApprovalRequest.objects.create(run=fine, node_id="ask", deadline=past + timedelta(seconds=1))
    assert approvals_expire_overdue() == 1
    stuck.refresh_from_db()
    due.refresh_from_db()
    assert stuck.status == "pending" and (due.status, due.decided_by_timeout) == ("rejected", True)


def context(**data: object) -> NodeContext:
    return NodeContext(run_id=1, node=Node(id="ask", type="user_approval", data=data, position=None), input={})


@pytest.mark.parametrize("seconds", [1e12, MAX_DEADLINE_SECONDS + 1, 0, -1, float("inf"), float("nan"), True, "60"])
def test_a_deadline_out_of_range_fails_the_node_naming_the_field(seconds: object) -> None:
    """What the schema refuses at save is refused again where the engine would compute the date."""
    with pytest.raises(NodeError, match="deadline_seconds must be above 0 and at most 31622400 seconds"):
        execute(context(deadline_seconds=seconds))


def test_a_deadline_within_range_is_passed_on() -> None:
    for seconds, expected in ((0.5, 0.5), (MAX_DEADLINE_SECONDS, float(MAX_DEADLINE_SECONDS)), (None, None)):
        data = {} if seconds is None else {"deadline_seconds": seconds}
        wait = execute(context(**data)).wait
        assert wait is not None and wait.timeout_seconds == expected
