"""REST API for tools (contract section 5): `/api/tools/` and `/api/tools/{id}/`, plus `POST .../{id}/test/`.

Secret headers are write-only: `secret_headers` is accepted on create and update (sent: replaces the whole set,
`{}` removes them; omitted: kept) and never returned; `secret_header_names` shows which exist (null when the
stored secrets cannot be decrypted with the configured keys). The owner is the requesting user: a body naming
`owner` (or any unknown or read-only field) is refused with 400, like everywhere in the API.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from flownova.api_base import StrictFieldsMixin
from tools.models import Tool
from tools.services import (
    ToolCallError,
    ToolDefinitionError,
    tool_argument_errors,
    tool_create,
    tool_secret_header_names,
    tool_test_call,
    tool_update,
    tool_validate_definition,
)

DEFINITION_FIELDS = ("name", "description", "method", "url", "headers", "parameters", "timeout_seconds", "is_active")


class ToolSerializer(StrictFieldsMixin, serializers.ModelSerializer):
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
        try:
            return tool_create(owner=self.context["request"].user, secret_headers=secret_headers, **validated_data)
        except ToolDefinitionError as exc:
            raise serializers.ValidationError(exc.errors) from None

    def update(self, instance: Tool, validated_data: dict[str, Any]) -> Tool:
        secret_headers = validated_data.pop("secret_headers", None)
        try:
            return tool_update(tool=instance, fields=validated_data, secret_headers=secret_headers)
        except ToolDefinitionError as exc:
            raise serializers.ValidationError(exc.errors) from None


class ToolTestSerializer(StrictFieldsMixin, serializers.Serializer):
    arguments = serializers.JSONField(required=False, default=dict)

    def validate_arguments(self, value: Any) -> Any:
        if not isinstance(value, dict):
            raise serializers.ValidationError("must be a JSON object")
        return value


class ToolTestResultSerializer(serializers.Serializer):
    """The outcome of a test call (documentation only)."""

    ok = serializers.BooleanField(help_text="True when the tool answered 2xx.")
    status_code = serializers.IntegerField(allow_null=True)
    duration_ms = serializers.IntegerField(allow_null=True)
    result = serializers.JSONField(allow_null=True, help_text="The parsed JSON answer, else its text.")
    response = serializers.CharField(allow_blank=True, help_text="The answer as recorded (truncated).")
    error = serializers.CharField(allow_blank=True)
    url = serializers.CharField(help_text="The URL called.")


class ToolViewSet(viewsets.ModelViewSet):
    serializer_class = ToolSerializer

    def get_queryset(self) -> QuerySet[Tool]:
        if getattr(self, "swagger_fake_view", False):  # drf-spectacular reading the view: no user
            return Tool.objects.none()
        return Tool.objects.visible_to(self.request.user).select_related("owner")

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
