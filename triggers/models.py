"""Triggers of a workflow, what each firing did, and the idempotency keys webhooks were called with.

A webhook's secret is never stored: only its SHA-256 (looked up by hash, so finding the trigger compares no
secret in Python) and its first characters, to tell URLs apart. A signing secret is stored encrypted, like a
tool's secret headers. A schedule keeps the next tick it is due for (`next_fire_at`): a scheduler claims due
rows with `FOR UPDATE SKIP LOCKED` and moves them on in the transaction that starts the run, so a tick fires
once however many schedulers run.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.db import models
from django.db.models import Q

from projects.permissions import Action, scoped
from triggers.schedule import Schedule

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User


class TriggerType(models.TextChoices):
    WEBHOOK = "webhook"
    SCHEDULE = "schedule"


class Overlap(models.TextChoices):
    """What a schedule does when its tick comes while the run it started last is still active."""

    SKIP = "skip", "Skip the tick (recorded as skipped)"
    ALLOW = "allow", "Start another run"
    QUEUE = "queue", "Start it when the active run ends"


class TriggerQuerySet(models.QuerySet["Trigger"]):
    def visible_to(self, user: User | AnonymousUser, action: Action = Action.VIEW) -> TriggerQuerySet:
        """The triggers of the live workflows in the projects where `user` may take `action` (a trigger belongs
        to its workflow's project; see `projects.permissions`)."""
        return scoped(self.filter(workflow__deleted_at__isnull=True), user, action, via="workflow__project")


class Trigger(models.Model):
    workflow = models.ForeignKey("workflows.Workflow", on_delete=models.CASCADE, related_name="triggers")
    type = models.CharField(max_length=16, choices=TriggerType.choices)
    name = models.CharField(max_length=200, blank=True, default="", help_text="A label of your choice.")
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    last_fired_at = models.DateTimeField(null=True, blank=True)
    # The run it started last: a schedule whose last run is active skips or queues its tick.
    last_run = models.ForeignKey(
        "runs.Run", on_delete=models.SET_NULL, null=True, blank=True, related_name="+", editable=False
    )

    # Webhooks
    secret_hash = models.CharField(max_length=64, null=True, blank=True, unique=True, editable=False)
    secret_hint = models.CharField(max_length=8, blank=True, default="", editable=False)
    signing_secret_encrypted = models.TextField(blank=True, default="", editable=False)
    rate_limit = models.CharField(
        max_length=32,
        blank=True,
        default="",
        help_text='Calls accepted per period, as "120/min" ("s", "min", "h", "d"); empty: the default.',
    )

    # Schedules
    cron = models.CharField(max_length=200, blank=True, default="", help_text='Five fields, as "*/5 * * * *".')
    every_seconds = models.PositiveIntegerField(null=True, blank=True)
    timezone = models.CharField(max_length=64, default="UTC", help_text="The timezone the cron expression is read in.")
    input = models.JSONField(default=dict, blank=True, help_text="The input of every run it starts.")
    overlap = models.CharField(max_length=8, choices=Overlap.choices, default=Overlap.SKIP)
    catch_up = models.BooleanField(
        default=True,
        help_text="After the scheduler was down past a tick, fire once on its return (never more than once).",
    )
    next_fire_at = models.DateTimeField(null=True, blank=True)

    objects = TriggerQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                name="trigger_webhook_has_secret",
                condition=~Q(type="webhook") | Q(secret_hash__isnull=False),
            ),
            models.CheckConstraint(
                name="trigger_schedule_cron_or_period",
                condition=~Q(type="schedule") | (Q(cron="") ^ Q(every_seconds__isnull=True)),
            ),
        ]
        indexes = [
            # What a scheduler scans every second: the enabled schedules, by when they are due.
            models.Index(
                fields=["next_fire_at"],
                name="trigger_due_idx",
                condition=Q(type="schedule", enabled=True),
            ),
        ]

    def __str__(self) -> str:
        label = self.name or (self.cron or f"every {self.every_seconds} s" if self.is_schedule else "webhook")
        return f"{self.type} {self.pk}: {label}"

    @property
    def is_schedule(self) -> bool:
        return self.type == TriggerType.SCHEDULE

    @property
    def has_signing_secret(self) -> bool:
        return bool(self.signing_secret_encrypted)

    def schedule(self) -> Schedule:
        """The schedule of a schedule trigger (ScheduleError if the stored fields are not a valid one)."""
        return Schedule(cron=self.cron, every_seconds=self.every_seconds, timezone=self.timezone or "UTC")

    def upcoming(self, now: datetime, count: int = 5) -> list[datetime]:
        """The next `count` fire times: from the one it is due for, when enabled."""
        if not self.is_schedule:
            return []
        schedule = self.schedule()
        if self.enabled and self.next_fire_at is not None:
            return [self.next_fire_at, *schedule.upcoming(self.next_fire_at, count - 1)]
        return schedule.upcoming(now, count)


class FiringOutcome(models.TextChoices):
    STARTED = "started"  # a run started
    SKIPPED = "skipped"  # on purpose: the previous run is active, or a late tick a schedule doesn't catch up
    QUEUED = "queued"  # waits for the active run to end (overlap "queue")
    FAILED = "failed"  # the run could not start (its input is not valid any more, the workflow is broken...)


class TriggerFiring(models.Model):
    """One firing of a trigger and what came of it: the trigger's history."""

    trigger = models.ForeignKey(Trigger, on_delete=models.CASCADE, related_name="firings", db_index=False)
    fired_at = models.DateTimeField()
    # Schedules: the tick this firing is for.
    scheduled_for = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=8, choices=FiringOutcome.choices)
    reason = models.TextField(blank=True, default="")
    run = models.ForeignKey("runs.Run", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    # Ticks that passed unfired before this one (the scheduler was down): reported, not replayed.
    missed = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-fired_at", "-id"]
        indexes = [
            models.Index(fields=["trigger", "-fired_at"], name="firing_trigger_recent_idx"),
            models.Index(fields=["trigger", "fired_at"], name="firing_queued_idx", condition=Q(outcome="queued")),
        ]

    def __str__(self) -> str:
        return f"{self.trigger_id} {self.outcome} at {self.fired_at:%Y-%m-%d %H:%M:%S}"

    def as_event_data(self) -> dict[str, Any]:
        return {
            "trigger_id": self.trigger_id,
            "outcome": self.outcome,
            "reason": self.reason,
            "run_id": self.run_id,
            "scheduled_for": self.scheduled_for.isoformat() if self.scheduled_for else None,
            "missed": self.missed,
        }


class IdempotencyKey(models.Model):
    """A webhook call's `Idempotency-Key`: a repeat within the window returns the first call's run."""

    trigger = models.ForeignKey(Trigger, on_delete=models.CASCADE, related_name="+", db_index=False)
    key = models.CharField(max_length=255)
    run = models.ForeignKey("runs.Run", on_delete=models.SET_NULL, null=True, related_name="+")
    created_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["trigger", "key"], name="idempotency_key_unique")]
        indexes = [models.Index(fields=["created_at"], name="idempotency_key_age_idx")]

    def __str__(self) -> str:
        return f"{self.key} -> run {self.run_id}"
