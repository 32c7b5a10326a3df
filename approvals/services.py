"""Deciding approval requests. Every way of deciding (admin, inbox page, API) calls `approval_decide`."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone

from approvals.models import ApprovalRequest, ApprovalStatus, Decision, TimeoutAction
from runs.events import run_transition
from runs.models import NodeRun
from runs.services import node_fail_waiting, node_resume


class ApprovalError(Exception):
    pass


class ApprovalForbidden(ApprovalError):
    """The user may not decide this request (403)."""


class ApprovalAlreadyDecided(ApprovalError):
    """Somebody (or the deadline) decided first (409)."""


def approval_can_decide(*, approval: ApprovalRequest, user: AbstractBaseUser) -> bool:
    """Staff, a named assignee, a member of an assigned group, or (with no assignee at all) the workflow's owner.
    The run's own starter deciding their own request needs `allow_self_approval`."""
    if not user.is_authenticated or not user.is_active:
        return False
    if user.is_staff:
        return True
    if not approval.allow_self_approval and approval.run.owner_id == user.pk:
        return False
    users = approval.assignee_users.all()
    groups = approval.assignee_groups.all()
    if not users and not groups:
        workflow = approval.run.workflow
        owner_id = workflow.owner_id if workflow else approval.run.owner_id
        return owner_id == user.pk
    return any(u.pk == user.pk for u in users) or user.groups.filter(pk__in=[g.pk for g in groups]).exists()


def approval_decide(
    *,
    approval_id: int,
    user: AbstractBaseUser,
    decision: str,
    comment: str = "",
    edits: dict[str, Any] | None = None,
) -> ApprovalRequest:
    """Record the decision and resume the run, exactly once: of two concurrent decisions, one wins and the
    other gets ApprovalAlreadyDecided. Raises ApprovalForbidden for someone who may not decide.

    `edits` (with an approval only) changes fields of the data the node passes on; only the fields the node
    declared editable may change, and the change is kept as a diff with who made it."""
    if decision not in Decision.values:
        raise ApprovalError(f"decision must be one of {', '.join(Decision.values)}, not {decision!r}")
    approval = ApprovalRequest.objects.select_related("run", "run__workflow").get(pk=approval_id)
    if not approval_can_decide(approval=approval, user=user):
        raise ApprovalForbidden(f"{user} may not decide approval {approval_id}")
    _check_edits(approval, decision, edits)
    return _decide(approval, decision=decision, comment=comment, user=user, edits=edits or {})


def _check_edits(approval: ApprovalRequest, decision: str, edits: dict[str, Any] | None) -> None:
    if not edits:
        return
    if not isinstance(edits, dict):
        raise ApprovalError("edits must be an object of field: new value")
    if decision != Decision.APPROVED:
        raise ApprovalError("data can only be edited when approving")
    refused = sorted(set(edits) - set(approval.editable_fields))
    if refused:
        allowed = ", ".join(approval.editable_fields) or "none"
        raise ApprovalError(f"these fields may not be edited: {', '.join(refused)} (editable: {allowed})")


def _decide(
    approval: ApprovalRequest,
    *,
    decision: str,
    comment: str,
    user: AbstractBaseUser | None,
    edits: dict[str, Any],
    by_timeout: bool = False,
) -> ApprovalRequest:
    with run_transition(approval.run_id) as tx:
        now = timezone.now()
        diff = _edits_diff(approval, edits) if edits else {}
        by = user.get_username() if user is not None else None
        # The conditional update is what picks the winner, not a read before the write.
        won = ApprovalRequest.objects.filter(pk=approval.pk, status=ApprovalStatus.PENDING).update(
            status=decision,
            decision=decision,
            comment=comment,
            decided_by=user,
            decided_at=now,
            decided_by_timeout=by_timeout,
            edits={"by": by, "changes": diff} if diff else None,
        )
        if not won:
            current = ApprovalRequest.objects.values_list("status", flat=True).get(pk=approval.pk)
            raise ApprovalAlreadyDecided(f"approval {approval.pk} is already {current}")
        approval.refresh_from_db()
        record: dict[str, Any] = {
            "decision": decision,
            "comment": comment,
            "decided_by": by,
            "decided_at": now.isoformat(),
        }
        if by_timeout:
            record["decided_by_timeout"] = True
        if diff:
            record["edits"] = {"by": by, "changes": diff}
        tx.emit("approval_decided", approval.node_id, {"approval_id": approval.pk, **record})
        fields = {**{field: change["to"] for field, change in diff.items()}, "approval": record}
        node_resume(tx, node_id=approval.node_id, fields=fields, handle=decision, replaces="approval")
    return approval


def _edits_diff(approval: ApprovalRequest, edits: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each edited field that really changes, with its value before and after."""
    node_input = NodeRun.objects.values_list("input", flat=True).get(run_id=approval.run_id, node_id=approval.node_id)
    before = node_input or {}
    return {
        field: {"from": before.get(field), "to": value} for field, value in edits.items() if before.get(field) != value
    }


def approvals_expire_overdue(*, limit: int = 500) -> int:
    """Apply the timeout action of every pending request past its deadline, exactly once each (the same
    conditional update as a person's decision, so a late click gets 409), recording that no person decided.
    Returns how many were applied."""
    overdue = ApprovalRequest.objects.filter(status=ApprovalStatus.PENDING, deadline__lt=timezone.now())
    applied = 0
    for approval in overdue.select_related("run").order_by("deadline")[:limit]:
        action = approval.timeout_action or TimeoutAction.REJECT
        try:
            if action == TimeoutAction.FAIL:
                _expire_failing(approval)
            else:
                decision = Decision.APPROVED if action == TimeoutAction.APPROVE else Decision.REJECTED
                comment = f"no decision before the deadline ({approval.deadline.isoformat()}): {action} by timeout"
                _decide(approval, decision=decision, comment=comment, user=None, edits={}, by_timeout=True)
        except ApprovalAlreadyDecided:
            continue  # a person decided in the meantime
        applied += 1
    return applied


def _expire_failing(approval: ApprovalRequest) -> None:
    with run_transition(approval.run_id) as tx:
        now = timezone.now()
        won = ApprovalRequest.objects.filter(pk=approval.pk, status=ApprovalStatus.PENDING).update(
            status=ApprovalStatus.EXPIRED,
            decided_at=now,
            decided_by_timeout=True,
            comment=f"no decision before the deadline ({approval.deadline.isoformat()}): the run fails",
        )
        if not won:
            raise ApprovalAlreadyDecided(f"approval {approval.pk} was decided")
        tx.emit(
            "approval_decided",
            approval.node_id,
            {"approval_id": approval.pk, "decision": None, "decided_by_timeout": True, "decided_at": now.isoformat()},
        )
        node_fail_waiting(tx, node_id=approval.node_id, error="nobody decided the approval before its deadline")
