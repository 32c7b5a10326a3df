"""The trigger admin. Saves go through triggers.services, like the API and the pages: the same checks (shown on
the fields they name), a webhook's URL shown once when it is created, and its signing secret write-only and
stored encrypted. Secrets are never shown: a webhook's secret is not stored at all (only its hash and first
characters), and a signing secret appears as "signed: yes/no". Firings are a read-only history; idempotency
keys are an implementation detail and not registered."""

from __future__ import annotations

import copy
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.forms.fields import InvalidJSONInput, JSONString
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone

from flownova.jsonbody import JSONInputError, parse_json
from flownova.users import signed_in_user
from tools.admin import WriteOnlyTextarea
from triggers.api import webhook_url
from triggers.models import Trigger, TriggerFiring, TriggerType
from triggers.schedule import ScheduleError
from triggers.services import TriggerInvalid, trigger_check, trigger_create, trigger_update

WEBHOOK_ONLY = ("rate_limit",)
SCHEDULE_ONLY = ("cron", "every_seconds")
MAX_EVERY_SECONDS = 366 * 86400  # as the API's bound
EDITABLE = ("name", "enabled", "rate_limit", "cron", "every_seconds", "timezone", "input", "overlap", "catch_up")


class StoredJSONField(forms.JSONField):
    """JSON read by flownova.jsonbody.parse_json: what PostgreSQL cannot store (NaN, NUL, 1e400, deep nesting)
    is a message on the field, not an error when saving."""

    def to_python(self, value: Any) -> Any:
        if self.disabled:
            return value
        if value in self.empty_values:
            return None
        if isinstance(value, (list, dict, int, float, JSONString)):
            return value
        try:
            converted = parse_json(value)
        except JSONInputError as exc:
            raise ValidationError(str(exc), code="invalid") from None
        return JSONString(converted) if isinstance(converted, str) else converted

    def bound_data(self, data: Any, initial: Any) -> Any:
        if self.disabled:
            return initial
        if data is None:
            return None
        try:
            return parse_json(data)
        except JSONInputError:
            return InvalidJSONInput(data)


class TriggerAdminForm(forms.ModelForm[Trigger]):
    signing_secret = forms.CharField(
        required=False,
        max_length=500,
        widget=WriteOnlyTextarea(attrs={"rows": 1, "autocomplete": "off", "spellcheck": "false"}),
        help_text="Webhooks. Write-only: callers must then sign each call. Leave blank to keep the current one. "
        "Stored encrypted; never shown again.",
    )
    clear_signing_secret = forms.BooleanField(required=False, help_text="Webhooks: stop requiring a signature.")

    class Meta:
        model = Trigger
        fields = ["workflow", "type", *EDITABLE]
        field_classes = {"input": StoredJSONField}

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if cleaned.get("clear_signing_secret") and cleaned.get("signing_secret"):
            self.add_error("clear_signing_secret", "Either enter a new signing secret or clear it, not both.")
        kind = cleaned.get("type", self.instance.type)
        workflow = cleaned.get("workflow") or (self.instance.workflow if self.instance.workflow_id else None)
        if workflow is not None and workflow.is_deleted:
            self.add_error("workflow" if "workflow" in self.fields else None, "The workflow was deleted.")
        if kind == TriggerType.WEBHOOK:
            for name in SCHEDULE_ONLY:
                if cleaned.get(name):
                    self.add_error(name, "Only schedules have this field: leave it empty for a webhook.")
        elif kind == TriggerType.SCHEDULE:
            for name in WEBHOOK_ONLY:
                if cleaned.get(name):
                    self.add_error(name, "Only webhooks have this field: leave it empty for a schedule.")
            if cleaned.get("signing_secret"):
                self.add_error("signing_secret", "Only webhooks are signed: leave it empty for a schedule.")
            if (cleaned.get("every_seconds") or 0) > MAX_EVERY_SECONDS:
                self.add_error("every_seconds", f"At most {MAX_EVERY_SECONDS} (366 days).")
        if workflow is None or not kind:
            return cleaned
        # The services' own checks, on a copy holding what was entered: each error on the field it names.
        candidate = copy.copy(self.instance)
        candidate.workflow, candidate.type = workflow, kind
        for name in EDITABLE:
            if name in cleaned:
                setattr(candidate, name, cleaned[name])
        if candidate.input is None:
            candidate.input = {}
        try:
            trigger_check(candidate)
        except TriggerInvalid as exc:
            for field, message in exc.errors.items():
                if field not in self.errors:  # a field the form refused already is not in the copy
                    self.add_error(field if field in self.fields else None, message)
        return cleaned

    def clean_input(self) -> Any:
        value = self.cleaned_data.get("input")
        return {} if value is None else value

    def signing_secret_change(self) -> str | None:
        """None keeps the signing secret, "" removes it, anything else replaces it."""
        if self.cleaned_data.get("clear_signing_secret"):
            return ""
        return self.cleaned_data.get("signing_secret") or None


@admin.register(Trigger)
class TriggerAdmin(admin.ModelAdmin[Trigger]):
    form = TriggerAdminForm
    list_display = ("id", "workflow", "type", "name", "enabled", "next_fire_at", "last_fired_at")
    list_display_links = ("id", "name")
    list_filter = ("type", "enabled")
    search_fields = ("workflow__name",)
    list_select_related = ("workflow",)
    raw_id_fields = ("workflow",)
    always_readonly = ("url_hint", "signed", "next_fire_at", "upcoming", "created_at", "updated_at", "last_fired_at")

    def get_readonly_fields(self, request: HttpRequest, obj: Trigger | None = None) -> tuple[str, ...]:
        # A trigger stays with its workflow and its type: create another instead.
        return (*self.always_readonly, "last_run", "workflow", "type") if obj else self.always_readonly

    def get_fieldsets(self, request: HttpRequest, obj: Trigger | None = None) -> Any:
        webhook = ["signing_secret", "clear_signing_secret", "rate_limit"]
        schedule = ["cron", "every_seconds", "timezone", "input", "overlap", "catch_up"]
        if obj is None:
            return [
                (None, {"fields": ["workflow", "type", "name", "enabled"]}),
                ("Webhook", {"fields": webhook}),
                ("Schedule", {"fields": schedule}),
            ]
        fieldsets: list[tuple[str | None, dict[str, Any]]] = [
            (None, {"fields": ["workflow", "type", "name", "enabled"]})
        ]
        if obj.is_schedule:
            fieldsets.append(("Schedule", {"fields": [*schedule, "next_fire_at", "upcoming"]}))
        else:
            fieldsets.append(("Webhook", {"fields": ["url_hint", "signed", *webhook]}))
        fieldsets.append(("History", {"fields": ["created_at", "updated_at", "last_fired_at", "last_run"]}))
        return fieldsets

    @admin.display(description="URL")
    def url_hint(self, obj: Trigger) -> str:
        if obj.type != TriggerType.WEBHOOK or not obj.secret_hint:
            return "—"
        # Only the secret's first characters are kept: enough to tell URLs apart, not to call one.
        return reverse("webhook", args=[f"{obj.secret_hint}…"]).replace("%E2%80%A6", "…")

    @admin.display(description="signed", boolean=True)
    def signed(self, obj: Trigger) -> bool:
        return obj.has_signing_secret

    @admin.display(description="next fire times (UTC)")
    def upcoming(self, obj: Trigger) -> str:
        try:
            times = obj.upcoming(timezone.now())
        except ScheduleError as exc:
            return f"not a valid schedule: {exc.message}"
        return ", ".join(f"{moment:%Y-%m-%d %H:%M:%S}" for moment in times) or "—"

    def save_model(self, request: HttpRequest, obj: Trigger, form: TriggerAdminForm, change: bool) -> None:
        # Through the services, like the API: checked again, the signing secret encrypted on the way in, and
        # a schedule's next tick set.
        signing = form.signing_secret_change()
        try:
            if change:
                trigger_update(obj, signing_secret=signing, by=signed_in_user(request))
                return
            secret = trigger_create(obj, signing_secret=signing or None, by=signed_in_user(request))
        except TriggerInvalid as exc:
            # Checked in the form already; only a change made meanwhile (the workflow's input schema) gets here.
            messages.error(request, f"Not saved: {exc}")
            raise
        if secret is not None:
            messages.success(
                request,
                f"The webhook's URL, shown only this once (only its hash is stored): {webhook_url(request, secret)}",
            )


@admin.register(TriggerFiring)
class TriggerFiringAdmin(admin.ModelAdmin[TriggerFiring]):
    """What each firing did: written by the services only."""

    list_display = ("id", "trigger", "fired_at", "scheduled_for", "outcome", "reason", "run", "missed")
    list_filter = ("outcome", "trigger__type", "fired_at")
    search_fields = ("trigger__workflow__name", "trigger__name", "reason", "=run__id")
    list_select_related = ("trigger",)
    date_hierarchy = "fired_at"
    raw_id_fields = ("trigger", "run")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: TriggerFiring | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: TriggerFiring | None = None) -> bool:
        return False
