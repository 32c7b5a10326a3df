"""The triggers API (docs/CONTRACT.md, Triggers): a workflow's triggers, each trigger, rotating a webhook's
secret, and a trigger's history.

A trigger is visible to whoever sees its workflow (the owner; staff see all); another user's, or one of a
deleted workflow, is a 404. A webhook's full URL is in the answer to its creation and to a rotation only: the
secret is not stored, so no later answer can hold it. A signing secret is write-only.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.urls import reverse
from django.utils import timezone
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import generics, mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.generics import get_object_or_404
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from flownova.api_base import StrictFieldsMixin
from flownova.users import signed_in_user
from projects.api_permissions import ProjectRole
from projects.permissions import Action, require
from triggers.models import Overlap, Trigger, TriggerFiring, TriggerType
from triggers.schedule import ScheduleError
from triggers.services import (
    TriggerInvalid,
    trigger_create,
    trigger_delete,
    trigger_rotate,
    trigger_update,
)
from workflows.models import Workflow

__all__ = ["TriggerViewSet", "WorkflowTriggersView"]

WEBHOOK_FIELDS = ("signing_secret", "rate_limit")
SCHEDULE_FIELDS = ("cron", "every_seconds", "timezone", "input", "overlap", "catch_up")


def webhook_url(request: Any, secret: str) -> str:
    return str(request.build_absolute_uri(reverse("webhook", args=[secret])))


@extend_schema_field({"type": "object", "additionalProperties": True})
class InputField(serializers.JSONField):
    pass


class TriggerSerializer(StrictFieldsMixin, serializers.ModelSerializer[Trigger]):
    """A trigger: the contract's common fields, then a webhook's or a schedule's own."""

    type = serializers.ChoiceField(choices=TriggerType.choices)
    url = serializers.SerializerMethodField(
        help_text="The webhook's URL: given in full once, when it is created or its secret rotated; null after."
    )
    url_hint = serializers.SerializerMethodField(help_text="The start of the webhook's URL, to tell it apart.")
    signing_secret = serializers.CharField(
        write_only=True,
        required=False,
        allow_blank=True,
        max_length=500,
        help_text='Webhooks: verify X-FlowNova-Signature with this secret (write-only; "" removes it).',
    )
    has_signing_secret = serializers.BooleanField(read_only=True)
    input = InputField(required=False, help_text="Schedules: the input of every run.")
    next_fire_times = serializers.SerializerMethodField(help_text="Schedules: the next five fire times (UTC).")
    description = serializers.SerializerMethodField(help_text="Schedules: the schedule in words.")

    class Meta:
        model = Trigger
        fields = [
            "id",
            "type",
            "enabled",
            "created_at",
            "last_fired_at",
            # extensions of the contract, then each type's own
            "workflow",
            "name",
            "updated_at",
            "last_run",
            "url",
            "url_hint",
            "signing_secret",
            "has_signing_secret",
            "rate_limit",
            "cron",
            "every_seconds",
            "timezone",
            "input",
            "overlap",
            "catch_up",
            "next_fire_at",
            "next_fire_times",
            "description",
        ]
        read_only_fields = ["id", "workflow", "created_at", "updated_at", "last_fired_at", "last_run", "next_fire_at"]
        extra_kwargs = {
            "every_seconds": {"min_value": 1, "max_value": 366 * 86400},
            "overlap": {"help_text": 'Schedules: "skip" (default), "allow" or "queue" while a run is active.'},
        }

    def get_url(self, trigger: Trigger) -> str | None:
        secret = self.context.get("secret")
        return webhook_url(self.context["request"], secret) if secret else None

    def get_url_hint(self, trigger: Trigger) -> str | None:
        if trigger.type != TriggerType.WEBHOOK:
            return None
        return webhook_url(self.context["request"], f"{trigger.secret_hint}…").replace("%E2%80%A6", "…")

    def get_next_fire_times(self, trigger: Trigger) -> list[str]:
        try:
            return [moment.isoformat() for moment in trigger.upcoming(timezone.now())]
        except ScheduleError:
            return []

    def get_description(self, trigger: Trigger) -> str:
        if not trigger.is_schedule:
            return "Starts a run for each POST to its URL"
        try:
            return trigger.schedule().explain()
        except ScheduleError as exc:
            return f"Not a valid schedule: {exc.message}"

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        kind = attrs.get("type", self.instance.type if self.instance else None)
        if self.instance is not None and "type" in attrs and attrs["type"] != self.instance.type:
            raise serializers.ValidationError({"type": ["a trigger's type cannot change; create another"]})
        foreign = SCHEDULE_FIELDS if kind == TriggerType.WEBHOOK else WEBHOOK_FIELDS
        wrong = {
            name: [f"only {'schedules' if kind == TriggerType.WEBHOOK else 'webhooks'} have this field"]
            for name in foreign
            if name in attrs
        }
        if wrong:
            raise serializers.ValidationError(wrong)
        if (
            kind == TriggerType.SCHEDULE
            and self.instance is None
            and not attrs.get("cron")
            and not attrs.get("every_seconds")
        ):
            raise serializers.ValidationError(
                {"cron": ['a schedule needs "cron" (as "*/5 * * * *") or "every_seconds"']}
            )
        if "overlap" in attrs and attrs["overlap"] not in Overlap.values:
            raise serializers.ValidationError({"overlap": [f"one of {', '.join(Overlap.values)}"]})
        return attrs

    def save_trigger(self, workflow: Workflow | None = None) -> Trigger:
        """Create or update through the services; TriggerInvalid becomes a 400 naming each field."""
        data = dict(self.validated_data)
        signing = data.pop("signing_secret", None)
        trigger = self.instance or Trigger(workflow=workflow)
        if self.instance is not None:
            # A schedule switched between cron and a period drops the other one.
            if data.get("cron"):
                trigger.every_seconds = None
            elif data.get("every_seconds"):
                trigger.cron = ""
        for name, value in data.items():
            setattr(trigger, name, value)
        try:
            if self.instance is None:
                by = signed_in_user(self.context["request"])
                self.context["secret"] = trigger_create(trigger, signing_secret=signing or None, by=by)
            else:
                trigger_update(trigger, signing_secret=signing, by=signed_in_user(self.context["request"]))
        except TriggerInvalid as exc:
            raise serializers.ValidationError({field: [message] for field, message in exc.errors.items()}) from None
        self.instance = trigger
        return trigger


class FiringSerializer(serializers.ModelSerializer[TriggerFiring]):
    class Meta:
        model = TriggerFiring
        fields = ["id", "fired_at", "scheduled_for", "outcome", "reason", "run", "missed"]
        read_only_fields = fields


def _workflow(request: Request, pk: Any) -> Workflow:
    return get_object_or_404(Workflow.objects.alive().visible_to(request.user), pk=pk)


class WorkflowTriggersView(generics.ListCreateAPIView[Trigger]):
    """`/api/workflows/{id}/triggers/`: the workflow's triggers, and a new one."""

    serializer_class = TriggerSerializer
    pagination_class = None

    def get_queryset(self) -> QuerySet[Trigger]:
        if getattr(self, "swagger_fake_view", False):
            return Trigger.objects.none()
        return Trigger.objects.filter(workflow=_workflow(self.request, self.kwargs["pk"])).order_by("id")

    @extend_schema(
        description='Add a webhook (`{"type": "webhook"}`: the answer\'s `url` is the only time the full URL is '
        'given) or a schedule (`{"type": "schedule", "cron": "*/5 * * * *"}` or `"every_seconds": N`).'
    )
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        workflow = _workflow(request, kwargs["pk"])
        require(request.user, Action.EDIT, workflow.project_id)
        body = TriggerSerializer(data=request.data, context=self.get_serializer_context())
        body.is_valid(raise_exception=True)
        body.save_trigger(workflow)
        return Response(body.data, status=status.HTTP_201_CREATED)


class TriggerViewSet(
    mixins.RetrieveModelMixin,
    mixins.ListModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet[Trigger],
):
    """`/api/triggers/`: every trigger you can see; one trigger: read, change (PATCH), delete, rotate. Changing
    and rotating need the editor role in the workflow's project, deleting the admin role."""

    serializer_class = TriggerSerializer
    permission_classes = [IsAuthenticated, ProjectRole]
    project_actions = {"partial_update": Action.EDIT, "rotate": Action.EDIT, "destroy": Action.MANAGE}

    def project_of(self, trigger: Trigger) -> int:
        return trigger.workflow.project_id

    def get_queryset(self) -> QuerySet[Trigger]:
        if getattr(self, "swagger_fake_view", False):
            return Trigger.objects.none()
        return Trigger.objects.visible_to(self.request.user).select_related("workflow").order_by("id")

    def perform_destroy(self, instance: Trigger) -> None:
        trigger_delete(instance, by=signed_in_user(self.request))

    @extend_schema(request=TriggerSerializer, responses={200: TriggerSerializer})
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        body = TriggerSerializer(
            self.get_object(), data=request.data, partial=True, context=self.get_serializer_context()
        )
        body.is_valid(raise_exception=True)
        body.save_trigger()
        return Response(body.data)

    @extend_schema(
        request=None,
        responses={200: TriggerSerializer},
        description="A new secret for a webhook: the answer's `url` is the new URL; the old one stops at once.",
    )
    @action(detail=True, methods=["post"])
    def rotate(self, request: Request, pk: str | None = None) -> Response:
        trigger = self.get_object()
        if trigger.type != TriggerType.WEBHOOK:
            raise serializers.ValidationError({"type": ["only a webhook has a secret to rotate"]})
        secret = trigger_rotate(trigger, by=signed_in_user(request))
        return Response(TriggerSerializer(trigger, context={**self.get_serializer_context(), "secret": secret}).data)

    @extend_schema(responses={200: FiringSerializer(many=True)}, description="The trigger's firings, newest first.")
    @action(detail=True, methods=["get"], serializer_class=FiringSerializer)
    def firings(self, request: Request, pk: str | None = None) -> Response:
        trigger = self.get_object()
        firings = TriggerFiring.objects.filter(trigger=trigger).order_by("-fired_at", "-id")
        assert self.paginator is not None
        page = self.paginator.paginate_queryset(firings, request, view=self)
        return self.paginator.get_paginated_response(FiringSerializer(page, many=True).data)
