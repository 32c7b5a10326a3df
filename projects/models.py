"""Projects and their members.

Every workflow, tool and run belongs to one project (a trigger, to its workflow's). Each user has a personal
project, created on first use (`projects.services.personal_project`), which only they belong to; a team
project has members, each with one role. What a role allows is decided in `projects.permissions`, nowhere else.
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
