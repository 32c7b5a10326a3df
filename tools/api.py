"""REST API for tools (docs/CONTRACT.md, REST API): `/api/tools/` and `/api/tools/{id}/`, plus `POST .../{id}/test/`.

Secret headers are write-only: `secret_headers` is accepted on create and update (sent: replaces the whole set,
`{}` removes them; omitted: kept) and never returned; `secret_header_names` shows which exist (null when the
stored secrets cannot be decrypted with the configured keys). The owner is the requesting user: a body naming
`owner` (or any unknown or read-only field) is refused with 400, like everywhere in the API. A tool belongs to
a project (`project` on create; default: your personal one): its members see it, editors change it, admins
delete it, and only that project's runs can call it.

Secret headers are bound to the origin (scheme, host, port) they were entered for: an update that moves `url` to
another origin without sending `secret_headers` removes them, and its answer says so (`secret_headers_cleared`,
and a sentence in `notice`). A tool that saved workflows still use cannot be deleted: 409 naming them.
"""

from __future__ import annotations

from typing import Any, TypeVar

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from flownova.api_base import StrictFieldsMixin
from flownova.users import signed_in_user
from projects.api_permissions import (
    ProjectField,
    ProjectFilterSerializer,
    ProjectRole,
    filtered_by_project,
    project_unchanged,
)
from projects.permissions import Action, creating_in
from tools.calling import ToolCallError, tool_argument_errors, tool_test_call
from tools.definitions import ToolDefinitionError, tool_validate_definition
from tools.models import Tool
from tools.services import (
    ToolInUseError,
    ToolUpdate,
    tool_create,
    tool_delete,
    tool_secret_header_names,
    tool_update,
)

DEFINITION_FIELDS = ("name", "description", "method", "url", "headers", "parameters", "timeout_seconds", "is_active")

_Row = TypeVar("_Row")  # what a queryset yields: DRF's filter_queryset keeps it


class ToolSerializer(StrictFieldsMixin, serializers.ModelSerializer[Tool]):
    project = ProjectField()
    secret_headers = serializers.DictField(
        child=serializers.CharField(allow_blank=True, trim_whitespace=False),
        write_only=True,
        required=False,
        help_text="Header name -> value, stored encrypted and never returned. Replaces all; {} removes them.",
    )
    secret_header_names = serializers.SerializerMethodField(
        help_text="Names of the secret headers; null when they cannot be decrypted with the configured keys."
    )
    headers = serializers.JSONField(required=False)
    parameters = serializers.JSONField(required=False)

    class Meta:
        model = Tool
        fields = [
            "id",
            "name",
            "description",
            "method",
            "project",
            "url",
            "headers",
            "parameters",
            "secret_headers",
            "secret_header_names",
            "timeout_seconds",
            "is_active",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "created_at", "updated_at"]
        extra_kwargs = {"description": {"required": False, "allow_blank": True}}
        # A name already taken in the project is the service's 400, naming it; DRF's own check of the
        # (project, name) constraint would make `project` required.
        validators: list[Any] = []

    def get_secret_header_names(self, tool: Tool) -> list[str] | None:
        return tool_secret_header_names(tool=tool)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        instance: Tool | None = self.instance
        merged = {field: getattr(instance, field) for field in DEFINITION_FIELDS} if instance else {}
        merged.update({key: value for key, value in attrs.items() if key in DEFINITION_FIELDS})
        errors = tool_validate_definition(
            name=merged.get("name"),
            method=merged.get("method", "GET"),
            url=merged.get("url"),
            parameters=merged.get("parameters", {"type": "object", "properties": {}}),
            headers=merged.get("headers", {}),
            secret_headers=attrs.get("secret_headers"),
            timeout_seconds=merged.get("timeout_seconds"),
        )
        if errors:
            raise serializers.ValidationError(errors)
        return attrs

    def create(self, validated_data: dict[str, Any]) -> Tool:
        secret_headers = validated_data.pop("secret_headers", None)
        user = self.context["request"].user
        validated_data["project"] = creating_in(user, validated_data.get("project"))
        try:
            return tool_create(owner=user, secret_headers=secret_headers, **validated_data)
        except ToolDefinitionError as exc:
            raise serializers.ValidationError(exc.errors) from None

    def update(self, instance: Tool, validated_data: dict[str, Any]) -> Tool:
        secret_headers = validated_data.pop("secret_headers", None)
        project_unchanged(instance, validated_data)
        try:
            self.outcome = tool_update(
                tool=instance,
                fields=validated_data,
                secret_headers=secret_headers,
                by=signed_in_user(self.context["request"]),
            )
        except ToolDefinitionError as exc:
            raise serializers.ValidationError(exc.errors) from None
        return self.outcome.tool


class ToolUpdateResultSerializer(ToolSerializer):
    """A tool as an update answers it (documentation only)."""

    secret_headers_cleared = serializers.BooleanField(
        help_text="True when the URL moved to another origin and the secret headers were removed with it."
    )
    notice = serializers.CharField(required=False, help_text="Only when secret headers were removed: what and why.")

    class Meta(ToolSerializer.Meta):
        fields = [*ToolSerializer.Meta.fields, "secret_headers_cleared", "notice"]


class ToolInUseSerializer(serializers.Serializer[Any]):
    """409 on delete (documentation only)."""

    detail = serializers.CharField()
    workflows = serializers.ListField(child=serializers.DictField(), help_text="[{id, name}] of the workflows.")


class ToolTestSerializer(StrictFieldsMixin, serializers.Serializer[Any]):
    arguments = serializers.JSONField(required=False, default=dict)

    def validate_arguments(self, value: Any) -> Any:
        if not isinstance(value, dict):
            raise serializers.ValidationError("must be a JSON object")
        return value


class ToolTestResultSerializer(serializers.Serializer[Any]):
    """The outcome of a test call (documentation only)."""

    ok = serializers.BooleanField(help_text="True when the tool answered 2xx.")
    status_code = serializers.IntegerField(allow_null=True)
    duration_ms = serializers.IntegerField(allow_null=True)
    result = serializers.JSONField(allow_null=True, help_text="The parsed JSON answer, else its text.")
    response = serializers.CharField(allow_blank=True, help_text="The answer as recorded (truncated).")
    error = serializers.CharField(allow_blank=True)
    url = serializers.CharField(help_text="The URL called.")


@extend_schema_view(
    list=extend_schema(description="The tools of your projects (staff: all).", parameters=[ProjectFilterSerializer]),
    update=extend_schema(responses={200: ToolUpdateResultSerializer}),
    partial_update=extend_schema(responses={200: ToolUpdateResultSerializer}),
    destroy=extend_schema(
        responses={
            204: None,
            409: OpenApiResponse(ToolInUseSerializer, description="Saved workflows use the tool; it is kept."),
        }
    ),
)
class ToolViewSet(viewsets.ModelViewSet[Tool]):
    serializer_class = ToolSerializer
    permission_classes = [IsAuthenticated, ProjectRole]
    project_actions = {
        "update": Action.EDIT,
        "partial_update": Action.EDIT,
        "test": Action.EDIT,
        "destroy": Action.MANAGE,
    }

    def get_queryset(self) -> QuerySet[Tool]:
        if getattr(self, "swagger_fake_view", False):  # drf-spectacular reading the view: no user
            return Tool.objects.none()
        return Tool.objects.visible_to(self.request.user).select_related("owner")

    def filter_queryset(self, queryset: QuerySet[Tool, _Row]) -> QuerySet[Tool, _Row]:
        if self.action == "list":
            return filtered_by_project(queryset, self.request)
        return queryset

    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """The tool as saved, plus `secret_headers_cleared` (and `notice` when it is true): a `url` that moved to
        another origin removes the secret headers unless the same request sends `secret_headers`."""
        response = super().update(request, *args, **kwargs)
        outcome: ToolUpdate | None = getattr(self, "_outcome", None)
        response.data["secret_headers_cleared"] = bool(outcome and outcome.secret_headers_cleared)
        if outcome and outcome.notice:
            response.data["notice"] = outcome.notice
        return response

    def perform_update(self, serializer: ToolSerializer) -> None:  # type: ignore[override]
        serializer.save()
        self._outcome = serializer.outcome

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Delete the tool: 409 naming the workflows (`workflows`: [{id, name}]) when saved ones still use it."""
        try:
            tool_delete(tool=self.get_object(), by=signed_in_user(request))
        except ToolInUseError as exc:
            workflows = [{"id": pk, "name": name} for pk, name in exc.workflows]
            return Response({"detail": str(exc), "workflows": workflows}, status=status.HTTP_409_CONFLICT)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=ToolTestSerializer, responses={200: ToolTestResultSerializer})
    @action(detail=True, methods=["post"], serializer_class=ToolTestSerializer)
    def test(self, request: Request, pk: str | None = None) -> Response:
        """Call the tool with `arguments` now (recorded as a ToolCall without a run). Arguments that break the
        tool's schema: 400 listing each, and no request. Otherwise 200 with the outcome, whatever the tool
        answered: `ok`, `status_code`, `result`, `response` (truncated), `error`, `duration_ms`."""
        tool = self.get_object()
        body = ToolTestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        arguments = body.validated_data["arguments"]
        errors = tool_argument_errors(tool=tool, arguments=arguments)
        if errors:
            raise serializers.ValidationError({"arguments": errors})
        try:
            call = tool_test_call(tool=tool, arguments=arguments)
        except ToolCallError as exc:
            raise serializers.ValidationError({"detail": str(exc)}) from None
        keys = ("ok", "status_code", "duration_ms", "result", "response", "error", "url")
        return Response({key: call[key] for key in keys})
