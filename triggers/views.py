"""A workflow's triggers on its page: the "Triggers" section, and the forms that add, enable, disable, rotate
and delete webhooks and schedules.

The workflow page loads the section with HTMX; every action answers with the section redrawn, and a request
that is not HTMX (no JavaScript, or the link on the workflow page) gets a page of its own holding the same
section. Scoped like the workflow page: another user's workflow, or a deleted one, is a 404 and staff see
every one. Writes go through triggers.services: their TriggerInvalid errors are shown next to the fields they
name, with a 400, and nothing is saved. A webhook's full URL is in the answer that created it (or rotated its
secret) and never again: only the secret's hash is stored.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Prefetch
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from flownova.jsonbody import JSONInputError, parse_json
from flownova.pages import HtmxHttpRequest, htmx_partial, pretty_json
from flownova.users import signed_in_user
from projects.permissions import Action, require
from triggers.api import webhook_url
from triggers.models import Overlap, Trigger, TriggerFiring, TriggerType
from triggers.schedule import Schedule, ScheduleError, timezone_names, zone
from triggers.services import TriggerInvalid, trigger_create, trigger_delete, trigger_rotate, trigger_update
from triggers.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER
from workflows.models import Workflow

RECENT_FIRINGS = 10
UPCOMING = 5
MAX_EVERY_SECONDS = 366 * 86400  # as the API's bound
# How deep the sample input follows nested schemas: a sample, not a generator.
SAMPLE_DEPTH = 4

SECTION_TEMPLATE = "triggers/_section.html"
PAGE_TEMPLATE = "triggers/page.html"


# --- what the section shows ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LocalTime:
    """A moment as the section shows it: in a timezone, with its UTC offset, and the ISO form for <time>."""

    iso: str
    text: str

    @classmethod
    def of(cls, moment: datetime, timezone_name: str = "UTC") -> LocalTime:
        try:
            local = moment.astimezone(zone(timezone_name))
        except ScheduleError:  # a stored name this machine no longer knows: say it in UTC
            local = moment.astimezone(UTC)
        offset = local.strftime("%z")
        label = "UTC" if timezone_name == "UTC" else f"UTC{offset[:3]}:{offset[3:]}"
        if (
            timezone_name != "UTC"
            and (abbreviation := local.tzname())
            and abbreviation[0] not in "+-"
            and abbreviation != "UTC"
        ):
            label = f"{abbreviation}, {label}"
        return cls(iso=local.isoformat(), text=f"{local:%a %Y-%m-%d %H:%M:%S} ({label})")


@dataclass(frozen=True)
class FiringRow:
    firing: TriggerFiring
    fired: LocalTime
    scheduled: LocalTime | None


@dataclass(frozen=True)
class TriggerRow:
    trigger: Trigger
    label: str
    description: str
    url_hint: str
    overlap_label: str
    input_json: str
    upcoming: list[LocalTime]
    schedule_error: str
    last_fired: LocalTime | None
    firings: list[FiringRow]


def url_hint(request: HttpRequest, trigger: Trigger) -> str:
    """The start of a webhook's URL, to tell it apart (as the API's `url_hint`)."""
    return webhook_url(request, f"{trigger.secret_hint}…").replace("%E2%80%A6", "…")


def trigger_row(request: HttpRequest, trigger: Trigger, now: datetime) -> TriggerRow:
    zone_name = trigger.timezone if trigger.is_schedule else "UTC"
    description, upcoming, error = "Starts a run for each POST to its URL", [], ""
    if trigger.is_schedule:
        try:
            description = trigger.schedule().explain()
            upcoming = [LocalTime.of(moment, zone_name) for moment in trigger.upcoming(now, UPCOMING)]
        except ScheduleError as exc:
            description, error = "Not a valid schedule", f"{exc.field}: {exc.message}"
    firings: list[TriggerFiring] = getattr(trigger, "recent_firings", [])
    return TriggerRow(
        trigger=trigger,
        label=trigger.name or f"{trigger.type} #{trigger.pk}",
        description=description,
        url_hint="" if trigger.is_schedule else url_hint(request, trigger),
        overlap_label=str(Overlap(trigger.overlap).label) if trigger.overlap in Overlap.values else trigger.overlap,
        input_json=pretty_json(trigger.input) if trigger.is_schedule else "",
        upcoming=upcoming,
        schedule_error=error,
        last_fired=LocalTime.of(trigger.last_fired_at, zone_name) if trigger.last_fired_at else None,
        firings=[
            FiringRow(
                firing=firing,
                fired=LocalTime.of(firing.fired_at, zone_name),
                scheduled=LocalTime.of(firing.scheduled_for, zone_name) if firing.scheduled_for else None,
            )
            for firing in firings
        ],
    )


def sample_input(workflow: Workflow) -> dict[str, Any]:
    """An input to show in examples: built from the start node's `input_schema` (an example value for each
    property, from the schema's own examples, default or type), else {}."""
    nodes = workflow.graph_document().get("nodes")
    starts = [node for node in nodes if isinstance(node, dict) and node.get("type") == "start"] if nodes else []
    data = starts[0].get("data") if starts else None
    schema = data.get("input_schema") if isinstance(data, dict) else None
    if not isinstance(schema, dict):
        return {}
    value = _example(schema, 0)
    return value if isinstance(value, dict) else {}


def _example(schema: object, depth: int) -> Any:
    if not isinstance(schema, dict) or depth > SAMPLE_DEPTH:
        return None
    if isinstance(schema.get("examples"), list) and schema["examples"]:
        return schema["examples"][0]
    for key in ("example", "default", "const"):
        if key in schema:
            return schema[key]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((item for item in kind if item != "null"), "null")
    if kind == "object" or (kind is None and isinstance(schema.get("properties"), dict)):
        properties = schema.get("properties")
        if not isinstance(properties, dict):
            return {}
        listed = schema.get("required")
        required = listed if isinstance(listed, list) else []
        names = sorted(properties, key=lambda name: name not in required)  # the required ones first
        return {name: _example(properties[name], depth + 1) for name in names}
    if kind == "array":
        item = _example(schema.get("items"), depth + 1)
        return [] if item is None else [item]
    if kind in ("integer", "number"):
        return _example_number(schema, integer=kind == "integer")
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return _example_text(schema)


def _example_number(schema: dict[str, Any], *, integer: bool) -> int | float:
    low, high = schema.get("minimum"), schema.get("maximum")
    value: int | float = 1
    if isinstance(low, (int, float)) and not isinstance(low, bool):
        value = low
    elif isinstance(high, (int, float)) and not isinstance(high, bool) and high < value:
        value = high
    return int(value) if integer and float(value).is_integer() else value


_FORMAT_EXAMPLES = {
    "email": "someone@example.com",
    "date": "2026-01-31",
    "date-time": "2026-01-31T09:00:00Z",
    "time": "09:00:00",
    "uri": "https://example.com/",
    "url": "https://example.com/",
    "uuid": "00000000-0000-4000-8000-000000000000",
}


def _example_text(schema: dict[str, Any]) -> str:
    text = _FORMAT_EXAMPLES.get(str(schema.get("format")), "example")
    shortest = schema.get("minLength")
    if isinstance(shortest, int) and len(text) < shortest:
        text = text.ljust(shortest, "x")
    return text


@dataclass(frozen=True)
class Revealed:
    """A webhook's full URL in the one answer that may show it, with ways to call it."""

    trigger: Trigger
    url: str
    curl: str
    signed_example: str
    rotated: bool


def revealed(request: HttpRequest, trigger: Trigger, secret: str, *, rotated: bool = False) -> Revealed:
    url = webhook_url(request, secret)
    body = json.dumps(sample_input(trigger.workflow), ensure_ascii=False)
    curl = f"curl -X POST {shlex.quote(url)} -H 'Content-Type: application/json' -d {shlex.quote(body)}"
    signed = ""
    if trigger.has_signing_secret:
        # The signature scheme of triggers.signing: HMAC-SHA256 of "<timestamp>.<body>", hex, after "sha256=".
        signed = "\n".join(
            [
                "SECRET='the signing secret you set'",
                f"body={shlex.quote(body)}",
                "ts=$(date +%s)",
                'sig=$(printf \'%s.%s\' "$ts" "$body" | openssl dgst -sha256 -hmac "$SECRET" | cut -d\' \' -f2)',
                f"curl -X POST {shlex.quote(url)} -H 'Content-Type: application/json' \\",
                f'  -H "{TIMESTAMP_HEADER}: $ts" -H "{SIGNATURE_HEADER}: sha256=$sig" -d "$body"',
            ]
        )
    return Revealed(trigger=trigger, url=url, curl=curl, signed_example=signed, rotated=rotated)


# --- forms ---------------------------------------------------------------------------------------------------


class WebhookForm(forms.Form):
    name = forms.CharField(max_length=200, required=False, help_text="A label of your choice.")
    signing_secret = forms.CharField(
        max_length=500,
        required=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text=f"Optional. Callers must then sign each call ({SIGNATURE_HEADER}, {TIMESTAMP_HEADER}). "
        "Stored encrypted and never shown again.",
    )
    rate_limit = forms.CharField(
        max_length=32,
        required=False,
        help_text='Calls accepted per period, as "120/min" ("s", "min", "h", "d"); empty: the default.',
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("auto_id", "id_webhook_%s")
        super().__init__(*args, **kwargs)


SCHEDULE_KINDS = [("cron", "A cron expression"), ("every", "Every N seconds")]


class ScheduleForm(forms.Form):
    name = forms.CharField(max_length=200, required=False, help_text="A label of your choice.")
    kind = forms.ChoiceField(label="Fires", choices=SCHEDULE_KINDS, initial="cron", widget=forms.RadioSelect)
    cron = forms.CharField(
        label="Cron expression",
        max_length=200,
        required=False,
        help_text="Five fields: minute hour day-of-month month day-of-week, as “*/5 * * * *” or “0 9 * * 1-5”.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false", "class": "code"}),
    )
    every_seconds = forms.IntegerField(
        label="Every (seconds)", min_value=1, max_value=MAX_EVERY_SECONDS, required=False
    )
    timezone = forms.CharField(
        max_length=64,
        initial="UTC",
        help_text="The IANA timezone the cron expression is read in, as “Europe/Paris”.",
        widget=forms.TextInput(attrs={"list": "trigger-timezones", "autocomplete": "off", "spellcheck": "false"}),
    )
    input = forms.CharField(
        label="Input (JSON object)",
        required=False,
        help_text="The input of every run it starts.",
        widget=forms.Textarea(attrs={"rows": 6, "class": "code", "spellcheck": "false"}),
    )
    overlap = forms.ChoiceField(
        label="When the previous run is still active",
        choices=Overlap.choices,
        initial=Overlap.SKIP,
        widget=forms.RadioSelect,
    )
    catch_up = forms.BooleanField(
        label="Catch up",
        required=False,
        initial=True,
        help_text="After the scheduler was down past a tick, fire once on its return (never more than once).",
    )

    def __init__(self, *args: Any, preview_url: str = "", **kwargs: Any) -> None:
        kwargs.setdefault("auto_id", "id_schedule_%s")
        super().__init__(*args, **kwargs)
        # The preview follows what is typed (GET trigger_preview with the fields of #schedule-when).
        preview = {
            "hx-get": preview_url,
            "hx-target": "#schedule-preview",
            "hx-swap": "innerHTML",
            "hx-include": "#schedule-when",
            "hx-sync": "#schedule-when:queue last",
        }
        typing = {**preview, "hx-trigger": "keyup changed delay:300ms, change"}
        self.fields["cron"].widget.attrs.update(typing)
        self.fields["every_seconds"].widget.attrs.update(typing)
        self.fields["timezone"].widget.attrs.update(typing)
        self.fields["kind"].widget.attrs.update({**preview, "hx-trigger": "change"})

    def clean_input(self) -> Any:
        text = self.cleaned_data.get("input") or ""
        try:
            return parse_json(text) if text.strip() else {}
        except JSONInputError as exc:
            raise forms.ValidationError(f"The input is {exc}" if exc.decode_error else str(exc)) from None

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        kind = cleaned.get("kind")
        if kind == "cron" and not cleaned.get("cron", "").strip() and "cron" not in self.errors:
            self.add_error("cron", "Give a cron expression, as “*/5 * * * *”.")
        if kind == "every" and cleaned.get("every_seconds") is None and "every_seconds" not in self.errors:
            self.add_error("every_seconds", "Give the number of seconds between runs.")
        return cleaned

    def trigger_fields(self) -> dict[str, Any]:
        """The Trigger's fields, once valid: the chosen one of cron and every_seconds, the other cleared."""
        data = self.cleaned_data
        every = data["kind"] == "every"
        return {
            "name": data["name"],
            "cron": "" if every else data["cron"].strip(),
            "every_seconds": data["every_seconds"] if every else None,
            "timezone": data["timezone"].strip(),
            "input": data["input"],
            "overlap": data["overlap"],
            "catch_up": data["catch_up"],
        }


def add_service_errors(form: forms.Form, exc: TriggerInvalid) -> None:
    """Each of the service's errors next to its field (or above the form for one the form has not)."""
    for field, message in exc.errors.items():
        form.add_error(field if field in form.fields else None, message)


# --- the section ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Notice:
    level: str  # success, warning or error (the notice-* classes)
    text: str


def _workflow(request: HttpRequest, pk: int) -> Workflow:
    return get_object_or_404(Workflow.objects.alive().visible_to(request.user), pk=pk)


def _trigger(request: HttpRequest, pk: int, trigger_pk: int, action: Action) -> Trigger:
    """The trigger, a 404 outside its workflow's project, and a 403 for a member whose role cannot take
    `action` there."""
    triggers = Trigger.objects.visible_to(request.user).select_related("workflow")
    trigger = get_object_or_404(triggers, pk=trigger_pk, workflow_id=pk)
    require(request.user, action, trigger.workflow.project_id)
    return trigger


def section_context(
    request: HttpRequest,
    workflow: Workflow,
    *,
    webhook_form: WebhookForm | None = None,
    schedule_form: ScheduleForm | None = None,
    notice: Notice | None = None,
    reveal: Revealed | None = None,
) -> dict[str, Any]:
    now = timezone.now()
    recent = Prefetch(
        "firings",
        queryset=TriggerFiring.objects.order_by("-fired_at", "-id")[:RECENT_FIRINGS],
        to_attr="recent_firings",
    )
    triggers = Trigger.objects.filter(workflow=workflow).order_by("id").prefetch_related(recent)
    preview_url = reverse("trigger_preview", args=[workflow.pk])
    if schedule_form is None:
        schedule_form = ScheduleForm(initial={"input": pretty_json(sample_input(workflow))}, preview_url=preview_url)
    return {
        "workflow": workflow,
        "rows": [trigger_row(request, trigger, now) for trigger in triggers],
        "webhook_form": webhook_form or WebhookForm(),
        "schedule_form": schedule_form,
        "open_form": (
            "webhook"
            if webhook_form is not None and webhook_form.errors
            else "schedule"
            if schedule_form.errors
            else ""
        ),
        "preview": _preview_of(schedule_form),
        "timezones": timezone_names(),
        "notice": notice,
        "revealed": reveal,
    }


def _render(request: HtmxHttpRequest, context: dict[str, Any], status: int = 200) -> HttpResponse:
    template = SECTION_TEMPLATE if htmx_partial(request) else PAGE_TEMPLATE
    response = render(request, template, context, status=status)
    if context.get("revealed") is not None:
        add_never_cache_headers(response)  # the one answer holding a webhook's URL: kept by no cache
    return response


def _done(request: HtmxHttpRequest, workflow: Workflow, notice: Notice) -> HttpResponse:
    """A change that reveals nothing: the section with its notice, or without JavaScript a redirect to the
    triggers page (so reloading it posts nothing again)."""
    if htmx_partial(request):
        return _render(request, section_context(request, workflow, notice=notice))
    messages.add_message(request, messages.ERROR if notice.level == "error" else messages.SUCCESS, notice.text)
    return redirect("workflow_triggers", pk=workflow.pk)


@login_required
@require_http_methods(["GET", "POST"])
def workflow_triggers(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """The section (GET), or a new trigger (POST with `type` webhook or schedule, and that form's fields)."""
    workflow = _workflow(request, pk)
    if request.method == "GET":
        return _render(request, section_context(request, workflow))
    require(request.user, Action.EDIT, workflow.project_id)
    kind = request.POST.get("type")
    if kind == TriggerType.WEBHOOK:
        return _add_webhook(request, workflow)
    if kind == TriggerType.SCHEDULE:
        return _add_schedule(request, workflow)
    notice = Notice("error", "Say which trigger to add: type must be “webhook” or “schedule”.")
    return _render(request, section_context(request, workflow, notice=notice), status=400)


def _add_webhook(request: HtmxHttpRequest, workflow: Workflow) -> HttpResponse:
    form = WebhookForm(request.POST)
    if form.is_valid():
        trigger = Trigger(
            workflow=workflow,
            type=TriggerType.WEBHOOK,
            name=form.cleaned_data["name"],
            rate_limit=form.cleaned_data["rate_limit"].strip(),
        )
        try:
            secret = trigger_create(
                trigger, signing_secret=form.cleaned_data["signing_secret"] or None, by=signed_in_user(request)
            )
        except TriggerInvalid as exc:
            add_service_errors(form, exc)
        else:
            assert secret is not None  # a webhook always gets one
            # Rendered, not redirected to, even without JavaScript: the URL must not travel anywhere else.
            context = section_context(request, workflow, reveal=revealed(request, trigger, secret))
            return _render(request, context, status=201)
    context = section_context(request, workflow, webhook_form=form)
    return _render(request, context, status=400)


def _add_schedule(request: HtmxHttpRequest, workflow: Workflow) -> HttpResponse:
    form = ScheduleForm(request.POST, preview_url=reverse("trigger_preview", args=[workflow.pk]))
    if form.is_valid():
        trigger = Trigger(workflow=workflow, type=TriggerType.SCHEDULE, **form.trigger_fields())
        try:
            trigger_create(trigger, by=signed_in_user(request))
        except TriggerInvalid as exc:
            add_service_errors(form, exc)
        else:
            when = trigger.schedule().explain()
            label = f"“{trigger.name}”" if trigger.name else "a schedule"
            notice = Notice("success", f"Added {label}: {when[0].lower()}{when[1:]}.")
            if htmx_partial(request):
                return _render(request, section_context(request, workflow, notice=notice), status=201)
            return _done(request, workflow, notice)
    context = section_context(request, workflow, schedule_form=form)
    return _render(request, context, status=400)


@login_required
@require_POST
def trigger_toggle(request: HtmxHttpRequest, pk: int, trigger_pk: int) -> HttpResponse:
    """Enable (`enabled=true`) or disable (`enabled=false`) a trigger: the state is said, not flipped, so a
    double click does not undo itself."""
    trigger = _trigger(request, pk, trigger_pk, Action.EDIT)
    wanted = request.POST.get("enabled")
    if wanted not in ("true", "false"):
        notice = Notice("error", "enabled: say “true” or “false”.")
        return _render(request, section_context(request, trigger.workflow, notice=notice), status=400)
    label = f"“{trigger.name}”" if trigger.name else f"the {trigger.type}"
    if wanted == "false":
        trigger.enabled = False
        trigger_update(trigger, by=signed_in_user(request))
        return _done(request, trigger.workflow, Notice("success", f"Disabled {label}."))
    trigger.enabled = True
    try:
        trigger_update(trigger, by=signed_in_user(request))
    except TriggerInvalid as exc:
        problems = "; ".join(f"{field}: {message}" for field, message in exc.errors.items())
        notice = Notice("error", f"{label[0].upper()}{label[1:]} can't be enabled: {problems}")
        return _render(request, section_context(request, trigger.workflow, notice=notice), status=400)
    return _done(request, trigger.workflow, Notice("success", f"Enabled {label}."))


@login_required
@require_POST
def trigger_rotate_view(request: HtmxHttpRequest, pk: int, trigger_pk: int) -> HttpResponse:
    """A new secret for a webhook: its new URL is shown once, as on creation; the old one stops at once."""
    trigger = _trigger(request, pk, trigger_pk, Action.EDIT)
    if trigger.type != TriggerType.WEBHOOK:
        notice = Notice("error", "Only a webhook has a URL to rotate.")
        return _render(request, section_context(request, trigger.workflow, notice=notice), status=400)
    secret = trigger_rotate(trigger, by=signed_in_user(request))
    reveal = revealed(request, trigger, secret, rotated=True)
    return _render(request, section_context(request, trigger.workflow, reveal=reveal))


@login_required
@require_http_methods(["GET", "POST"])
def trigger_delete_view(request: HtmxHttpRequest, pk: int, trigger_pk: int) -> HttpResponse:
    """GET: a page asking to confirm (the form's way without JavaScript; with it, hx-confirm asks). POST: the
    trigger and its history are deleted."""
    trigger = _trigger(request, pk, trigger_pk, Action.MANAGE)
    if request.method == "GET":
        return render(request, "triggers/confirm_delete.html", {"trigger": trigger, "workflow": trigger.workflow})
    label = f"“{trigger.name}”" if trigger.name else f"the {trigger.type}"
    trigger_delete(trigger, by=signed_in_user(request))
    return _done(request, trigger.workflow, Notice("success", f"Deleted {label} and its history."))


# --- the schedule preview ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Preview:
    explanation: str = ""
    times: tuple[LocalTime, ...] = ()
    field: str = ""
    error: str = ""
    hint: str = ""


def schedule_preview(kind: str, cron: str, every_seconds: str, timezone_name: str) -> Preview:
    """What a schedule being typed would do: its explanation and next fire times, or the field at fault."""
    timezone_name = timezone_name.strip() or "UTC"
    try:
        if kind == "every":
            if not every_seconds.strip():
                return Preview(hint="Type the number of seconds between runs to see when it would fire.")
            try:
                seconds = int(every_seconds)
            except ValueError:
                return Preview(field="every_seconds", error="must be a whole number of seconds")
            if not 1 <= seconds <= MAX_EVERY_SECONDS:
                return Preview(field="every_seconds", error=f"must be between 1 and {MAX_EVERY_SECONDS}")
            schedule = Schedule(every_seconds=seconds, timezone=timezone_name)
        else:
            if not cron.strip():
                return Preview(hint="Type a cron expression to see when it would fire.")
            if len(cron) > 200:
                return Preview(field="cron", error="at most 200 characters")
            schedule = Schedule(cron=cron.strip(), timezone=timezone_name)
    except ScheduleError as exc:
        return Preview(field=exc.field, error=exc.message)
    times = schedule.upcoming(timezone.now(), UPCOMING)
    return Preview(explanation=schedule.explain(), times=tuple(LocalTime.of(moment, timezone_name) for moment in times))


def _preview_of(form: ScheduleForm) -> Preview:
    if not form.is_bound:
        return schedule_preview("cron", "", "", "UTC")
    data = form.data
    return schedule_preview(
        str(data.get("kind", "cron")),
        str(data.get("cron", "")),
        str(data.get("every_seconds", "")),
        str(data.get("timezone", "")),
    )


@login_required
@require_GET
def trigger_preview(request: HttpRequest, pk: int) -> HttpResponse:
    """`?kind=cron&cron=...&timezone=...` or `?kind=every&every_seconds=...`: the schedule in words and its next
    five fire times, or a 400 naming the field at fault."""
    _workflow(request, pk)
    cron, every_seconds = request.GET.get("cron", ""), request.GET.get("every_seconds", "")
    kind = request.GET.get("kind") or ("every" if every_seconds and not cron else "cron")
    preview = schedule_preview(kind, cron, every_seconds, request.GET.get("timezone", ""))
    return render(request, "triggers/_preview.html", {"preview": preview}, status=400 if preview.error else 200)
