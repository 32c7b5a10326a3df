"""Reads of approval requests shared by the API, the inbox pages and the inbox WebSocket.

Who sees a request: staff see all; anyone else sees the requests they are a named assignee of, those
assigned to one of their groups, and, for a request with no assignee at all, those of the runs of projects
where they may run workflows (the runner role or above, `projects.permissions`).
"""

from __future__ import annotations

from django.contrib.auth.models import User
from django.db.models import Exists, OuterRef, Q, QuerySet

from approvals.models import ApprovalRequest, ApprovalStatus
from projects.permissions import Action, project_ids

__all__ = ["approvals_recently_decided", "approvals_visible_to"]

_AssignedUser = ApprovalRequest.assignee_users.through
_AssignedGroup = ApprovalRequest.assignee_groups.through


def approvals_visible_to(user: User) -> QuerySet[ApprovalRequest]:
    """The approval requests `user` may see (see the module docstring)."""
    requests = ApprovalRequest.objects.all()
    if user.is_staff:
        return requests
    assigned_user = _AssignedUser.objects.filter(approvalrequest=OuterRef("pk"))
    assigned_group = _AssignedGroup.objects.filter(approvalrequest=OuterRef("pk"))
    runs_in = project_ids(user, Action.RUN)
    owns = Q(run__project__in=runs_in) if runs_in is not None else Q()
    return requests.filter(
        Exists(assigned_user.filter(user=user))
        | Exists(assigned_group.filter(group__user=user))
        | (~Exists(assigned_user) & ~Exists(assigned_group) & owns)
    )


def approvals_recently_decided(user: User, *, limit: int = 10) -> QuerySet[ApprovalRequest]:
    """The last `limit` decisions `user` may see, newest first: by a person or by a deadline (approved,
    rejected, expired); requests closed because their run ended are not decisions."""
    decided = [ApprovalStatus.APPROVED, ApprovalStatus.REJECTED, ApprovalStatus.EXPIRED]
    return (
        approvals_visible_to(user)
        .filter(status__in=decided, decided_at__isnull=False)
        .select_related("run", "run__workflow", "decided_by")
        .order_by("-decided_at", "-id")[:limit]
    )
