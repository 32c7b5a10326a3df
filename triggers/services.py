"""Creating and changing triggers, and firing them: a webhook call, a schedule's tick, a queued tick.

Every run a trigger starts belongs to the workflow's owner and records the trigger (`{"type", "id"}`) on the
run and in its ledger. Webhooks count against the trigger's own rate limit instead of the owner's run-start
limit (a busy integration must not lock its owner out of the pages); schedules are bounded by their period.
"""

from __future__ import annotations

import hashlib
import logging
import math
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.cache import cache
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.utils import timezone

from flownova import metrics
from projects.audit import AuditAction, actor_label, audit_record
from runs.errors import RunError
from runs.models import ACTIVE_RUN_STATUSES, Run, RunTrigger
from runs.ratelimit import parse_rate
from runs.services import run_start, workflow_input_errors
from tools.secrets import secrets_decrypt, secrets_encrypt
from triggers.events import TriggerFired, trigger_skipped_publish
from triggers.models import FiringOutcome, IdempotencyKey, Overlap, Trigger, TriggerFiring, TriggerType
from triggers.schedule import ScheduleError, next_tick
from workflows.models import Workflow

if TYPE_CHECKING:
    from django.contrib.auth.models import User

logger = logging.getLogger(__name__)

# 256 bits of randomness in the URL: unguessable, and short enough to paste.
SECRET_BYTES = 32
SECRET_HINT_LENGTH = 6
# How many due schedules one transaction claims.
CLAIM_BATCH = 20


class TriggerInvalid(Exception):
    """A trigger's fields that cannot be saved: `errors` maps each field to what is wrong with it."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{field}: {message}" for field, message in errors.items()))
        self.errors = errors


class TriggerRateLimited(RunError):
    def __init__(self, wait: int) -> None:
        super().__init__(f"too many calls of this webhook just now: try again in {wait} s")
        self.wait = wait


# --- creating and changing -----------------------------------------------------------------------------------


def secret_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _new_secret(trigger: Trigger) -> str:
    secret = secrets.token_urlsafe(SECRET_BYTES)
    trigger.secret_hash = secret_digest(secret)
    trigger.secret_hint = secret[:SECRET_HINT_LENGTH]
    return secret


def trigger_check(trigger: Trigger) -> None:
    """Raise TriggerInvalid naming each field of `trigger` that cannot be saved. A disabled schedule's input is
    not checked against its workflow (it starts nothing; it is checked when enabled again), so a schedule whose
    workflow changed under it can always be stopped."""
    errors: dict[str, str] = {}
    if trigger.rate_limit:
        try:
            count, _ = parse_rate(trigger.rate_limit)
            if count < 1:
                raise ValueError
        except (ValueError, KeyError, IndexError):
            errors["rate_limit"] = (
                f'{trigger.rate_limit!r} is not a rate: write it as "<count>/<period>", as "120/min" '
                '(periods: "s", "min", "h", "d")'
            )
    if trigger.is_schedule:
        try:
            trigger.schedule()
        except ScheduleError as exc:
            errors[exc.field] = exc.message
        if not isinstance(trigger.input, dict):
            errors["input"] = f"must be a JSON object, not {type(trigger.input).__name__}"
        elif trigger.enabled and (problems := workflow_input_errors(trigger.workflow, trigger.input)):
            errors["input"] = "; ".join(problems)
    if errors:
        raise TriggerInvalid(errors)


# What an audit entry of a trigger's change names when it changed (never a secret: those are said in words).
AUDITED_FIELDS = ("name", "enabled", "rate_limit", "cron", "every_seconds", "timezone", "input", "overlap", "catch_up")


def _trigger_label(trigger: Trigger) -> str:
    return trigger.name or f"{trigger.type} trigger {trigger.pk}"


def _trigger_audit(
    trigger: Trigger, action: AuditAction, by: User | None, what: str, note: str = "", **changes: Any
) -> None:
    summary = f"{actor_label(by)} {what} {trigger.type} trigger {_trigger_label(trigger)!r} of workflow "
    summary += f"{trigger.workflow_id}" + (f": {note}" if note else "")
    audit_record(
        actor=by,
        action=action,
        obj=trigger,
        object_repr=_trigger_label(trigger),
        project_id=trigger.workflow.project_id,
        summary=summary,
        changes={"workflow_id": trigger.workflow_id, **changes},
    )


def trigger_create(trigger: Trigger, *, signing_secret: str | None = None, by: User | None = None) -> str | None:
    """Save a new trigger (checked first), made by `by`; returns a webhook's secret, the only time it is given
    out."""
    trigger_check(trigger)
    secret = _new_secret(trigger) if trigger.type == TriggerType.WEBHOOK else None
    if signing_secret:
        trigger.signing_secret_encrypted = secrets_encrypt({"signing_secret": signing_secret})
    _schedule_reset(trigger, timezone.now())
    with transaction.atomic():
        trigger.save()
        extra = {"signing_secret": "set"} if signing_secret else {}
        _trigger_audit(trigger, AuditAction.TRIGGER_CREATED, by, "created", enabled=trigger.enabled, **extra)
    logger.info("trigger %s (%s) created for workflow %s", trigger.pk, trigger.type, trigger.workflow_id)
    return secret


def trigger_update(trigger: Trigger, *, signing_secret: str | None = None, by: User | None = None) -> None:
    """Save changed fields (checked first), changed by `by`. A changed schedule, or one enabled again, is due at
    its next tick from now: ticks that passed while it was off are not caught up. `signing_secret` "" removes
    it."""
    trigger_check(trigger)
    if signing_secret is not None:
        trigger.signing_secret_encrypted = secrets_encrypt({"signing_secret": signing_secret}) if signing_secret else ""
    with transaction.atomic():
        stored = Trigger.objects.select_for_update().get(pk=trigger.pk)
        changed = (stored.cron, stored.every_seconds, stored.timezone, stored.enabled) != (
            trigger.cron,
            trigger.every_seconds,
            trigger.timezone,
            trigger.enabled,
        )
        if changed or stored.next_fire_at is None:
            _schedule_reset(trigger, timezone.now())
        else:
            trigger.next_fire_at = stored.next_fire_at
        trigger.save()
        fields = [field for field in AUDITED_FIELDS if getattr(stored, field) != getattr(trigger, field)]
        if signing_secret is not None and trigger.signing_secret_encrypted != stored.signing_secret_encrypted:
            fields.append("signing_secret")
        if fields:
            if fields == ["enabled"]:
                what = "enabled" if trigger.enabled else "disabled"
            else:
                what = f"changed {', '.join(fields)} of"
            _trigger_audit(trigger, AuditAction.TRIGGER_CHANGED, by, what, fields=fields, enabled=trigger.enabled)


def trigger_rotate(trigger: Trigger, *, by: User | None = None) -> str:
    """A new secret for a webhook, made by `by`: the old URL stops working at once. Returns the new secret."""
    secret = _new_secret(trigger)
    with transaction.atomic():
        trigger.save(update_fields=["secret_hash", "secret_hint", "updated_at"])
        _trigger_audit(trigger, AuditAction.TRIGGER_CHANGED, by, "rotated the secret of", fields=["secret"])
    logger.info("trigger %s: webhook secret rotated", trigger.pk)
    return secret


def trigger_delete(trigger: Trigger, *, by: User | None = None) -> None:
    """Delete a trigger and its history, by `by`; the runs it started stay (they record its id)."""
    trigger_id, workflow_id = trigger.pk, trigger.workflow_id
    with transaction.atomic():
        _trigger_audit(trigger, AuditAction.TRIGGER_DELETED, by, "deleted")
        trigger.delete()
    logger.info("trigger %s of workflow %s deleted", trigger_id, workflow_id)


def signing_secret(trigger: Trigger) -> str:
    if not trigger.signing_secret_encrypted:
        return ""
    return secrets_decrypt(trigger.signing_secret_encrypted, tool_name=f"trigger {trigger.pk}")["signing_secret"]


def _schedule_reset(trigger: Trigger, now: datetime) -> None:
    trigger.next_fire_at = trigger.schedule().after(now) if trigger.is_schedule and trigger.enabled else None


# --- starting runs -------------------------------------------------------------------------------------------


def _start(trigger: Trigger, run_input: Any) -> Run:
    """Start a run of the trigger's workflow for its owner, in the caller's transaction, and tell the
    workflow's watchers (RunInputError and the other RunErrors as `run_start` raises them). The caller records
    the run as the trigger's last (`_last_run_record`)."""
    workflow = trigger.workflow
    return run_start(
        workflow=workflow,
        input=run_input,
        user=workflow.owner,
        trigger={"type": RunTrigger(trigger.type).value, "id": trigger.pk},
        user_rate_limit=False,
        events=[TriggerFired(trigger_id=trigger.pk, trigger_type=trigger.type, workflow_id=workflow.pk)],
    )


def _last_run_record(trigger: Trigger, run: Run) -> None:
    trigger.last_fired_at = timezone.now()
    trigger.last_run = run
    Trigger.objects.filter(pk=trigger.pk).update(last_fired_at=trigger.last_fired_at, last_run=run)


def _record(trigger: Trigger, outcome: str, **fields: Any) -> TriggerFiring:
    firing = TriggerFiring.objects.create(trigger=trigger, fired_at=timezone.now(), outcome=outcome, **fields)
    counter = metrics.TRIGGER_FIRINGS.labels(type=trigger.type, outcome=outcome)
    metrics.observe_after_commit(counter.inc)
    if outcome != FiringOutcome.STARTED:
        data = firing.as_event_data()
        workflow_id = trigger.workflow_id
        transaction.on_commit(lambda: trigger_skipped_publish(workflow_id, data))
    return firing


# --- webhooks ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WebhookAccepted:
    run: Run
    # The Idempotency-Key was used before: this is the first call's run, nothing new started.
    repeated: bool


def webhook_find(secret: str) -> Trigger | None:
    """The enabled webhook of a live workflow that `secret` addresses, or None (whatever the reason)."""
    if not secret or len(secret) > 200:
        return None
    return (
        Trigger.objects.select_related("workflow", "workflow__owner")
        .filter(
            secret_hash=secret_digest(secret),
            type=TriggerType.WEBHOOK,
            enabled=True,
            workflow__deleted_at__isnull=True,
        )
        .first()
    )


def webhook_rate_check(trigger: Trigger) -> None:
    """Count one call against the trigger's rate limit (its own, or FLOWNOVA_WEBHOOK_RATE), or raise
    TriggerRateLimited. A fixed window in the shared cache: one atomic increment per call, whatever the rate."""
    rate = trigger.rate_limit or settings.FLOWNOVA_WEBHOOK_RATE
    if not rate:
        return
    limit, period = parse_rate(rate)
    now = time.time()
    window = int(now // period)
    key = f"webhook_rate_{trigger.pk}_{window}"
    cache.add(key, 0, period + 1)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, period + 1)
        count = 1
    if count > limit:
        raise TriggerRateLimited(max(1, math.ceil((window + 1) * period - now)))


def webhook_fire(trigger: Trigger, payload: Any, *, idempotency_key: str = "") -> WebhookAccepted:
    """Start a run with `payload` as its input (RunInputError lists what does not match the start node's
    schema); with `idempotency_key`, a key used within FLOWNOVA_IDEMPOTENCY_HOURS returns the first run."""
    now = timezone.now()
    with transaction.atomic():
        key_row = None
        if idempotency_key:
            key_row, first = _key_claim(trigger, idempotency_key, now)
            if not first and key_row.run is not None:
                return WebhookAccepted(run=key_row.run, repeated=True)
        run = _start(trigger, payload)
        _record(trigger, FiringOutcome.STARTED, run=run)
        if key_row is not None:
            key_row.run = run
            key_row.save(update_fields=["run"])
    # After the commit, in a statement of its own: inside the transaction, the trigger's row would stay locked
    # until the commit, and concurrent calls of one webhook would wait for each other.
    _last_run_record(trigger, run)
    return WebhookAccepted(run=run, repeated=False)


def _key_claim(trigger: Trigger, key: str, now: datetime) -> tuple[IdempotencyKey, bool]:
    """The key's row, locked, and whether this call is the first with it. A concurrent first call with the same
    key makes this one wait for its commit, then see its run."""
    try:
        with transaction.atomic():
            return IdempotencyKey.objects.create(trigger=trigger, key=key, created_at=now), True
    except IntegrityError:
        row = IdempotencyKey.objects.select_for_update(of=("self",)).select_related("run").get(trigger=trigger, key=key)
    expired = row.created_at < now - timedelta(hours=settings.FLOWNOVA_IDEMPOTENCY_HOURS)
    if expired or row.run is None:  # too old, or its run was purged since: a new first call
        row.created_at = now
        row.run = None
        row.save(update_fields=["created_at", "run"])
        return row, True
    return row, False


# --- schedules -----------------------------------------------------------------------------------------------


def schedules_fire_due(now: datetime | None = None) -> int:
    """Fire every enabled schedule whose tick has come, each once, and start queued ticks whose turn came.
    Safe to call from several schedulers at once: each claims due rows with SKIP LOCKED and moves them on in
    the transaction that starts the run. Returns how many firings were recorded."""
    fired = 0
    while True:
        moment = now or timezone.now()
        with transaction.atomic():
            due = list(
                Trigger.objects.select_for_update(skip_locked=True, of=("self",))
                .select_related("workflow", "workflow__owner", "last_run")
                .filter(type=TriggerType.SCHEDULE, enabled=True, next_fire_at__lte=moment)
                .order_by("next_fire_at")[:CLAIM_BATCH]
            )
            for trigger in due:
                _schedule_fire_isolated(trigger, moment)
        fired += len(due)
        if len(due) < CLAIM_BATCH:
            break
    return fired + _queues_advance()


def schedules_next_due() -> datetime | None:
    """When the soonest enabled schedule is due (a scheduler may sleep until then)."""
    return (
        Trigger.objects.filter(type=TriggerType.SCHEDULE, enabled=True, next_fire_at__isnull=False)
        .order_by("next_fire_at")
        .values_list("next_fire_at", flat=True)
        .first()
    )


def _schedule_fire_isolated(trigger: Trigger, now: datetime) -> None:
    """Fire one schedule in a savepoint: whatever goes wrong with it (a bug, a value PostgreSQL refuses) is
    recorded as a failed firing and the schedule moves on to its next tick, instead of failing the other due
    schedules and coming back every second."""
    due = trigger.next_fire_at
    try:
        with transaction.atomic():
            _schedule_fire(trigger, now)
    except Exception as exc:  # noqa: BLE001 - whatever it is, it is recorded and bounded (_internal_error)
        _schedule_failed(trigger, now, due, _internal_error(exc))


def _internal_error(exc: Exception) -> str:
    """What a firing that raised unexpectedly records as its reason. When PostgreSQL itself is away, nothing
    can be recorded: the error goes on, and the next beat tick tries again."""
    if isinstance(exc, DatabaseError) and not connection.is_usable():
        raise exc
    return f"internal error: {type(exc).__name__}: {exc}"


def _disabled_by_flownova(trigger: Trigger, reason: str) -> None:
    trigger.enabled = False
    _trigger_audit(trigger, AuditAction.TRIGGER_CHANGED, None, "disabled", reason, fields=["enabled"], enabled=False)


def _schedule_failed(trigger: Trigger, now: datetime, due: datetime | None, reason: str) -> None:
    logger.exception("schedule trigger %s failed to fire", trigger.pk)
    try:
        next_due = trigger.schedule().after(now)
    except ScheduleError:
        next_due = None
    Trigger.objects.filter(pk=trigger.pk).update(next_fire_at=next_due, enabled=next_due is not None)
    _record(trigger, FiringOutcome.FAILED, scheduled_for=due, reason=reason)
    if next_due is None:
        _disabled_by_flownova(trigger, "its schedule has no next tick")


def _schedule_fire(trigger: Trigger, now: datetime) -> None:
    assert trigger.next_fire_at is not None
    try:
        schedule = trigger.schedule()
    except ScheduleError as exc:  # changed behind the API's back (the shell, SQL): stop, say why
        trigger.enabled, trigger.next_fire_at = False, None
        trigger.save(update_fields=["enabled", "next_fire_at", "updated_at"])
        _record(trigger, FiringOutcome.FAILED, reason=f"the schedule is not valid ({exc.message}); disabled")
        _disabled_by_flownova(trigger, f"the schedule is not valid ({exc.message})")
        return
    grace = timedelta(seconds=settings.FLOWNOVA_SCHEDULE_GRACE_SECONDS)
    tick = next_tick(schedule, trigger.next_fire_at, now, grace=grace)
    Trigger.objects.filter(pk=trigger.pk).update(next_fire_at=tick.next_due)
    trigger.next_fire_at = tick.next_due
    fields = {"scheduled_for": tick.due, "missed": tick.missed}
    if trigger.workflow.is_deleted:
        Trigger.objects.filter(pk=trigger.pk).update(enabled=False, next_fire_at=None)
        _record(trigger, FiringOutcome.FAILED, reason="the workflow was deleted; disabled", **fields)
        _disabled_by_flownova(trigger, "the workflow was deleted")
        return
    if tick.late and not trigger.catch_up:
        late = round((now - tick.due).total_seconds())
        _record(trigger, FiringOutcome.SKIPPED, reason=f"{late} s late and catch-up is off", **fields)
        return
    _fire_unless_overlapping(trigger, **fields)


def _active(run: Run | None) -> bool:
    return run is not None and run.status in ACTIVE_RUN_STATUSES


def _fire_unless_overlapping(trigger: Trigger, **fields: Any) -> None:
    active = trigger.last_run if _active(trigger.last_run) else None
    if trigger.overlap == Overlap.QUEUE:
        # Ticks queued earlier go first, even when the run they wait for has just ended and the queue has not
        # been advanced yet (`_queues_advance` does that next): a new tick never jumps the queue.
        queued = TriggerFiring.objects.filter(trigger=trigger, outcome=FiringOutcome.QUEUED).count()
        if active is None and not queued:
            _fire_recorded(trigger, **fields)
            return
        waits_for = f"run {active.pk}" if active is not None else "the ticks queued before it"
        if queued < settings.FLOWNOVA_SCHEDULE_QUEUE_MAX:
            _record(trigger, FiringOutcome.QUEUED, reason=f"waits for {waits_for}", **fields)
            return
        reason = f"{queued} ticks already wait for {waits_for} (FLOWNOVA_SCHEDULE_QUEUE_MAX)"
    elif trigger.overlap != Overlap.ALLOW and active is not None:
        reason = f"run {active.pk} from the previous tick is still {active.status}"
    else:
        _fire_recorded(trigger, **fields)
        return
    _record(trigger, FiringOutcome.SKIPPED, reason=reason, **fields)


def _fire_recorded(trigger: Trigger, **fields: Any) -> None:
    try:
        with transaction.atomic():
            run = _start(trigger, trigger.input)
    except RunError as exc:
        _record(trigger, FiringOutcome.FAILED, reason=str(exc), **fields)
        logger.warning("trigger %s could not start a run: %s", trigger.pk, exc)
        return
    _last_run_record(trigger, run)  # its row is locked already: the scheduler claimed it
    _record(trigger, FiringOutcome.STARTED, run=run, **fields)


def _queues_advance() -> int:
    """Start the oldest queued tick of each schedule whose last run has ended."""
    waiting = TriggerFiring.objects.filter(outcome=FiringOutcome.QUEUED).values_list("trigger_id", flat=True).distinct()
    started = 0
    for trigger_id in list(waiting):
        try:
            started += _queue_advance(trigger_id)
        except Exception as exc:  # whatever it is, the tick that waited ends failed rather than failing every second
            reason = _internal_error(exc)
            logger.exception("starting a queued tick of schedule trigger %s failed", trigger_id)
            oldest = (
                TriggerFiring.objects.filter(trigger_id=trigger_id, outcome=FiringOutcome.QUEUED)
                .order_by("fired_at", "id")
                .first()
            )
            if oldest is not None:
                oldest.outcome, oldest.reason = FiringOutcome.FAILED, reason
                oldest.save(update_fields=["outcome", "reason"])
    return started


def _queue_advance(trigger_id: int) -> int:
    with transaction.atomic():
        trigger = (
            Trigger.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("workflow", "workflow__owner", "last_run")
            .filter(pk=trigger_id)
            .first()
        )
        if trigger is None or _active(trigger.last_run):
            return 0
        firing = (
            TriggerFiring.objects.select_for_update()
            .filter(trigger=trigger, outcome=FiringOutcome.QUEUED)
            .order_by("fired_at", "id")
            .first()
        )
        if firing is None:
            return 0
        if not trigger.enabled or trigger.workflow.is_deleted:
            TriggerFiring.objects.filter(trigger=trigger, outcome=FiringOutcome.QUEUED).update(
                outcome=FiringOutcome.SKIPPED, reason="the trigger was disabled while this tick waited"
            )
            return 0
        try:
            with transaction.atomic():
                run = _start(trigger, trigger.input)
        except RunError as exc:
            firing.outcome, firing.reason = FiringOutcome.FAILED, str(exc)
        else:
            _last_run_record(trigger, run)
            firing.outcome, firing.run = FiringOutcome.STARTED, run
            firing.reason = f"{firing.reason}; started when it ended"
        firing.save(update_fields=["outcome", "run", "reason"])
        counter = metrics.TRIGGER_FIRINGS.labels(type=trigger.type, outcome=firing.outcome)
        metrics.observe_after_commit(counter.inc)
        return int(firing.outcome == FiringOutcome.STARTED)


# --- housekeeping --------------------------------------------------------------------------------------------


def triggers_prune(now: datetime | None = None) -> tuple[int, int]:
    """Delete firings older than FLOWNOVA_TRIGGER_HISTORY_DAYS (queued ones stay) and idempotency keys past
    their window. Returns how many of each."""
    now = now or timezone.now()
    firings, _ = (
        TriggerFiring.objects.filter(fired_at__lt=now - timedelta(days=settings.FLOWNOVA_TRIGGER_HISTORY_DAYS))
        .exclude(outcome=FiringOutcome.QUEUED)
        .delete()
    )
    keys, _ = IdempotencyKey.objects.filter(
        created_at__lt=now - timedelta(hours=settings.FLOWNOVA_IDEMPOTENCY_HOURS)
    ).delete()
    return firings, keys


def workflow_triggers(workflow: Workflow) -> list[Trigger]:
    return list(Trigger.objects.filter(workflow=workflow).order_by("id"))
