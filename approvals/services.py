"""Deciding approval requests. Every way of deciding (admin, inbox page, API) calls `approval_decide`."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone

from approvals.models import ApprovalRequest, ApprovalStatus, Decision
from runs.events import run_transition
from runs.services import node_resume


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


def approval_decide(*, approval_id: int, user: AbstractBaseUser, decision: str, comment: str = "") -> ApprovalRequest:
    """Record the decision and resume the run, exactly once: of two concurrent decisions, one wins and the
    other gets ApprovalAlreadyDecided. Raises ApprovalForbidden for someone who may not decide."""
    if decision not in Decision.values:
        raise ApprovalError(f"decision must be one of {', '.join(Decision.values)}, not {decision!r}")
    approval = ApprovalRequest.objects.select_related("run", "run__workflow").get(pk=approval_id)
    if not approval_can_decide(approval=approval, user=user):
        raise ApprovalForbidden(f"{user} may not decide approval {approval_id}")
    with run_transition(approval.run_id) as tx:
        now = timezone.now()
        # The conditional update is what picks the winner, not a read before the write.
        won = ApprovalRequest.objects.filter(pk=approval_id, status=ApprovalStatus.PENDING).update(
            status=decision, decision=decision, comment=comment, decided_by=user, decided_at=now
        )
        if not won:
            current = ApprovalRequest.objects.values_list("status", flat=True).get(pk=approval_id)
            raise ApprovalAlreadyDecided(f"approval {approval_id} is already {current}")
        approval.refresh_from_db()
        record: dict[str, Any] = {
            "decision": decision,
            "comment": comment,
            "decided_by": user.get_username(),
            "decided_at": now.isoformat(),
        }
        tx.emit("approval_decided", approval.node_id, {"approval_id": approval_id, **record})
        node_resume(tx, node_id=approval.node_id, fields={"approval": record}, handle=decision, replaces="approval")
    return approval
