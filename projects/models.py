"""Projects and their members.

Every workflow, tool and run belongs to one project (a trigger, to its workflow's). Each user has a personal
project, created on first use (`projects.services.personal_project`), which only they belong to; a team
project has members, each with one role. What a role allows is decided in `projects.permissions`, nowhere else.

`AuditEntry` is the audit log of configuration changes, written by `projects.audit` from every app's services;
PostgreSQL refuses to change or delete its rows (projects migration 0003).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


class Role(models.TextChoices):
    """A member's role, each allowing what the one before it does and more (`projects.permissions`)."""

    VIEWER = "viewer", "viewer"
    RUNNER = "runner", "runner"
    EDITOR = "editor", "editor"
    ADMIN = "admin", "admin"


class Project(models.Model):
    name = models.CharField(max_length=200)
    # Set on a user's personal project (one per user); null on a team project.
    personal_of = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="personal_project",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    members = models.ManyToManyField(  # type: ignore[var-annotated]
        settings.AUTH_USER_MODEL, through="Membership", related_name="projects"
    )

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_personal(self) -> bool:
        return self.personal_of_id is not None


class Membership(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=8, choices=Role.choices)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["project", "user__username"]
        constraints = [
            models.UniqueConstraint(fields=["project", "user"], name="membership_unique_user_per_project"),
            models.CheckConstraint(condition=Q(role__in=[role.value for role in Role]), name="membership_role_known"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} in {self.project_id} as {self.role}"


class AuditAction(models.TextChoices):
    """What an audit entry records. `object_type` of each: the word before the dot, but "user" for members."""

    WORKFLOW_CREATED = "workflow.created", "workflow created"
    WORKFLOW_SAVED = "workflow.saved", "workflow saved"
    WORKFLOW_RESTORED = "workflow.restored", "workflow version restored"
    WORKFLOW_DELETED = "workflow.deleted", "workflow deleted"
    WORKFLOW_UNDELETED = "workflow.undeleted", "workflow undeleted"
    TOOL_CREATED = "tool.created", "tool created"
    TOOL_CHANGED = "tool.changed", "tool changed"
    TOOL_DELETED = "tool.deleted", "tool deleted"
    TRIGGER_CREATED = "trigger.created", "trigger created"
    TRIGGER_CHANGED = "trigger.changed", "trigger changed"
    TRIGGER_DELETED = "trigger.deleted", "trigger deleted"
    PROJECT_CREATED = "project.created", "project created"
    PROJECT_RENAMED = "project.renamed", "project renamed"
    PROJECT_DELETED = "project.deleted", "project deleted"
    MEMBER_ADDED = "member.added", "member added"
    MEMBER_ROLE_CHANGED = "member.role_changed", "member's role changed"
    MEMBER_REMOVED = "member.removed", "member removed"
    APPROVAL_DECIDED = "approval.decided", "approval decided"
    APPROVAL_EXPIRED = "approval.expired", "approval expired"


class AuditEntry(models.Model):
    """One configuration change: who made it, in which project, to what, and what changed (never a secret's
    value). Append-only: written once, in the transaction of the change it records (`projects.audit`)."""

    created_at = models.DateTimeField(auto_now_add=True)
    # No database constraint and nothing done on delete: deleting a user or a project never touches the log,
    # which refuses UPDATE and DELETE. `actor_name` keeps who it was after the user is gone or renamed.
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        null=True,
        blank=True,
        related_name="+",
    )
    actor_name = models.CharField(max_length=150, blank=True, default="")
    project = models.ForeignKey(
        Project,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,  # led by the (project, created_at) index
        null=True,
        blank=True,
        related_name="+",
    )
    action = models.CharField(max_length=40, choices=AuditAction.choices)
    object_type = models.CharField(max_length=40)
    object_id = models.BigIntegerField(null=True, blank=True)
    object_repr = models.CharField(max_length=300, blank=True, default="")
    summary = models.TextField()
    changes = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "audit entries"
        indexes = [
            models.Index(fields=["project", "-created_at"], name="audit_project_newest"),
            models.Index(fields=["object_type", "object_id"], name="audit_object"),
        ]

    def __str__(self) -> str:
        return self.summary
