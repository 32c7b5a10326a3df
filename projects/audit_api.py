"""`GET /api/audit/`: the audit log of configuration changes (docs/CONTRACT.md, Audit)."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response

from flownova.api_base import error_response, query_dict
from projects.audit import AuditAction, AuditEntry, AuditNotFound, audit_entries, audit_object_parse


class AuditFilterSerializer(serializers.Serializer[Any]):
    """The audit log's filters (query parameters)."""

    project = serializers.IntegerField(required=False, min_value=1, help_text="Only this project's entries.")
    object = serializers.CharField(
        required=False, help_text='Only the entries about one object, as "<type>:<id>": "workflow:12", "user:7".'
    )
    action = serializers.ChoiceField(choices=AuditAction.choices, required=False, help_text="Only this kind.")
    actor = serializers.IntegerField(required=False, min_value=1, help_text="Only the changes this user made (id).")

    def validate_object(self, value: str) -> tuple[str, int]:
        try:
            return audit_object_parse(value)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from None


class AuditEntrySerializer(serializers.ModelSerializer[AuditEntry]):
    changes = serializers.JSONField(
        read_only=True, help_text="What changed: field names, version numbers, roles; never a secret's value."
    )

    class Meta:
        model = AuditEntry
        fields = [
            "id",
            "created_at",
            "actor",
            "actor_name",
            "project",
            "action",
            "object_type",
            "object_id",
            "object_repr",
            "summary",
            "changes",
        ]
        read_only_fields = fields


@extend_schema(tags=["audit"])
class AuditListView(generics.ListAPIView[AuditEntry]):
    """The configuration changes in the projects you manage (staff: all), newest first."""

    serializer_class = AuditEntrySerializer

    def get_queryset(self) -> QuerySet[AuditEntry]:
        if getattr(self, "swagger_fake_view", False):
            return AuditEntry.objects.none()
        filters = AuditFilterSerializer(data=query_dict(self.request))
        filters.is_valid(raise_exception=True)
        try:
            return audit_entries(user=self.request.user, **filters.validated_data)
        except AuditNotFound as exc:
            raise NotFound(str(exc)) from None

    @extend_schema(
        parameters=[AuditFilterSerializer],
        responses={
            200: AuditEntrySerializer(many=True),
            403: error_response("You are a member of `project`, but not one of its admins."),
            404: error_response("`project` is not a project you are a member of, or the page is past the end."),
        },
        description="Paginated, newest first. Entries of the projects you are an admin of (staff: every entry); "
        "filter by project, object, action and actor. An invalid filter is a 400 naming it.",
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)
