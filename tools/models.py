"""HTTP tools that agents and tool nodes call, and the record of every call.

Secret headers are stored encrypted (`secret_headers_encrypted`, a MultiFernet token written by
`tools.secrets`); nothing else in the product ever sees them in clear.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models

from projects.permissions import Action, scoped

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User

TOOL_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
TOOL_NAME_VALIDATOR = RegexValidator(
    rf"^{TOOL_NAME_RE.pattern}$",
    "A tool name is an identifier: a letter or _ first, then letters, digits or _, at most 64 characters.",
)


def default_parameters() -> dict[str, object]:
    return {"type": "object", "properties": {}, "required": []}


class HttpMethod(models.TextChoices):
    GET = "GET"
    POST = "POST"
    PUT = "PUT"
    PATCH = "PATCH"
    DELETE = "DELETE"


class ToolQuerySet(models.QuerySet["Tool"]):
    def visible_to(self, user: User | AnonymousUser, action: Action = Action.VIEW) -> ToolQuerySet:
        """The tools of the projects in which `user` may take `action` (see `projects.permissions`)."""
        return scoped(self, user, action)


class Tool(models.Model):
    # The project whose runs may call it; tool names are unique within a project.
    project = models.ForeignKey("projects.Project", on_delete=models.PROTECT, related_name="tools")
    # Who created it.
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="tools")
    name = models.CharField(max_length=64, validators=[TOOL_NAME_VALIDATOR])
    description = models.TextField(help_text="Written for the model: what the tool does and when to use it.")
    method = models.CharField(max_length=8, choices=HttpMethod.choices, default=HttpMethod.GET)
    url = models.CharField(max_length=2048, help_text="May hold path parameters: https://api.example.com/items/{id}")
    headers = models.JSONField(default=dict, blank=True, help_text="Plain headers sent with every call.")
    secret_headers_encrypted = models.TextField(blank=True, default="", editable=False)
    parameters = models.JSONField(
        default=default_parameters, blank=True, help_text="JSON Schema of the arguments (an object schema)."
    )
    timeout_seconds = models.FloatField(null=True, blank=True, help_text="Read timeout; empty for the default.")
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ToolQuerySet.as_manager()

    class Meta:
        ordering = ["name", "id"]
        constraints = [models.UniqueConstraint(fields=["project", "name"], name="tool_unique_name_per_project")]

    def __str__(self) -> str:
        return f"{self.name} ({self.method} {self.url})"

    @property
    def has_secret_headers(self) -> bool:
        return bool(self.secret_headers_encrypted)


class ToolCallState(models.TextChoices):
    # Recorded right before the request goes out; a call still in this state after its node finished never got
    # an answer recorded (its worker died mid-call, or the attempt was abandoned).
    STARTED = "started", "started, no answer recorded"
    FINISHED = "finished", "finished"


class ToolCall(models.Model):
    """One outbound call of a tool, by an agent or a tool node (or the admin's test action).

    A call that sends a request is recorded twice: as `started` right before the request leaves (so that a
    worker killed mid-call leaves a trace), then completed (`finished`, with the answer) when the node's result
    is recorded. A call refused before any request (invalid arguments) is recorded once, `finished`."""

    tool = models.ForeignKey(Tool, on_delete=models.SET_NULL, null=True, blank=True, related_name="calls")
    tool_name = models.CharField(max_length=64)
    run = models.ForeignKey(
        "runs.Run", on_delete=models.CASCADE, null=True, blank=True, related_name="tool_call_records"
    )
    node_id = models.CharField(max_length=64, blank=True, default="")
    method = models.CharField(max_length=8)
    url = models.CharField(max_length=2048, help_text="The URL called, without secrets.")
    arguments = models.JSONField(default=dict, blank=True)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    response = models.TextField(blank=True, default="", help_text="The response body, truncated.")
    error = models.TextField(blank=True, default="")
    note = models.CharField(
        max_length=200, blank=True, default="", help_text="What was changed to store the answer, if anything."
    )
    state = models.CharField(max_length=8, choices=ToolCallState.choices, default=ToolCallState.FINISHED)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["tool", "-created_at"], name="toolcall_tool_recent_idx"),
            models.Index(fields=["run", "node_id"], name="toolcall_run_node_idx"),
        ]

    def __str__(self) -> str:
        if self.state == ToolCallState.STARTED:
            return f"{self.tool_name} -> started, no answer recorded"
        return f"{self.tool_name} -> {self.status_code or self.error[:40]}"
