"""Approval requests: a run paused at a user_approval node until a person (or a deadline) decides."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import models
from django.db.models import Q


class ApprovalStatus(models.TextChoices):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    # The run was cancelled or failed while the request was pending: nobody may decide it any more.
    CANCELLED = "cancelled"
    # The deadline passed with the timeout action `fail`: the run failed.
    EXPIRED = "expired"


class Decision(models.TextChoices):
    APPROVED = "approved"
    REJECTED = "rejected"


class TimeoutAction(models.TextChoices):
    APPROVE = "approve"
    REJECT = "reject"
    FAIL = "fail"


class ApprovalRequest(models.Model):
    run = models.ForeignKey("runs.Run", on_delete=models.CASCADE, related_name="approval_requests")
    node_id = models.CharField(max_length=64)
    status = models.CharField(max_length=16, choices=ApprovalStatus.choices, default=ApprovalStatus.PENDING)
    message = models.TextField(blank=True, default="", help_text="The node's message, rendered.")
    data = models.JSONField(default=dict, blank=True, help_text="What the approver needs to see.")
    # No assignee at all means: the workflow's owner and staff.
    assignee_users = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="assigned_approvals")
    assignee_groups = models.ManyToManyField(Group, blank=True, related_name="assigned_approvals")
    allow_self_approval = models.BooleanField(default=True)
    editable_fields = models.JSONField(default=list, blank=True, help_text="Fields an approver may edit.")
    deadline = models.DateTimeField(null=True, blank=True)
    timeout_action = models.CharField(max_length=8, choices=TimeoutAction.choices, blank=True, default="")
    decision = models.CharField(max_length=8, choices=Decision.choices, blank=True, default="")
    comment = models.TextField(blank=True, default="")
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="approval_decisions"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    # True when the deadline's timeout action decided, not a person.
    decided_by_timeout = models.BooleanField(default=False)
    # True once a task was sent to apply the timeout action at the deadline (see approvals.services: it is sent
    # only when the deadline is near, and the periodic scan sends it for the others).
    deadline_timer_sent = models.BooleanField(default=False)
    edits = models.JSONField(null=True, blank=True, help_text="The approver's changes to the data, as a diff.")
    created_at = models.DateTimeField(auto_now_add=True)

    # Not stored: what a page works out for its viewer before drawing the request (approvals.views and the run
    # page's panel set them on the instances they show; templates/approvals/_item.html reads them).
    can_decide: bool
    data_json: str

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # A redelivered node task cannot open a second request for the same node of the same run.
            models.UniqueConstraint(fields=["run", "node_id"], name="approval_unique_per_run_node"),
            models.CheckConstraint(
                condition=Q(status="pending", decided_at__isnull=True) | ~Q(status="pending"),
                name="approval_pending_is_undecided",
            ),
        ]
        indexes = [
            # The inbox: pending requests, newest first.
            models.Index(fields=["status", "-created_at"], name="approval_status_recent_idx"),
            # The deadline sweeper looks only at pending requests that have a deadline.
            models.Index(
                fields=["deadline"],
                name="approval_pending_deadline_idx",
                condition=Q(status="pending", deadline__isnull=False),
            ),
            # "Recently decided" on the inbox: the newest decisions first, without sorting every one.
            models.Index(
                fields=["-decided_at", "-id"],
                name="approval_recent_decided_idx",
                condition=Q(decided_at__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"approval {self.pk} for {self.node_id} of run {self.run_id} [{self.status}]"
