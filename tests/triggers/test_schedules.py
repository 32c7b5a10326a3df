"""Schedules firing, one call of the scheduler's service at a time: `schedules_fire_due(now=...)` at chosen
moments, against the real database, with the real worker carrying the runs it starts."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone
from pytest_django import Settings

from approvals.models import ApprovalRequest
from approvals.services import approval_decide
from runs.events import CONSUMER_MESSAGE_TYPE, workflow_group
from runs.models import Run, RunEvent
from runs.services import run_cancel
from tests.api.conftest import approval_graph
from tests.engine_helpers import wait_for
from tests.factories import make_workflow
from tests.test_metrics import samples
from tests.triggers.conftest import order_graph
from tests.triggers.helpers import runs_settled, schedule_create
from triggers.models import IdempotencyKey, Overlap, Trigger, TriggerFiring
from triggers.services import schedules_fire_due, triggers_prune
from workflows.models import Workflow
from workflows.services import workflow_soft_delete, workflow_update

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]

MINUTE = timedelta(minutes=1)


def schedule(workflow: Workflow, **fields: Any) -> Trigger:
    """An every-minute schedule of `workflow` (input {"order": 7}, unless `fields` say otherwise)."""
    return schedule_create(workflow, **{"every_seconds": 60, "input": {"order": 7}, **fields})


def due_at(trigger: Trigger, moment: datetime) -> None:
    """Make the schedule due for the tick at `moment`, as if it had been waiting for it."""
    Trigger.objects.filter(pk=trigger.pk).update(next_fire_at=moment)
    trigger.refresh_from_db()


def firings(trigger: Trigger) -> list[TriggerFiring]:
    return list(TriggerFiring.objects.filter(trigger=trigger).order_by("id"))


def runs_of(workflow: Workflow) -> list[Run]:
    return list(Run.objects.filter(workflow=workflow).order_by("id"))


@pytest.fixture(autouse=True)
def runs_settle(transactional_db: None) -> Iterator[None]:
    """After the test, before the database is emptied: wait until the worker is done with its runs."""
    yield
    runs_settled()


@pytest.fixture
def approvals(alice: User) -> Workflow:
    """A workflow whose every run waits for alice's approval: an active run for as long as the test likes."""
    return make_workflow(alice, name="Shipping", graph=approval_graph())


def test_a_due_schedule_starts_one_run_with_its_input_and_moves_to_the_next_tick(alice: User, orders: Workflow) -> None:
    trigger = schedule(orders)
    now = timezone.now()
    due = now - timedelta(seconds=1)
    due_at(trigger, due)

    assert schedules_fire_due(now=now) == 1

    [firing] = firings(trigger)
    assert firing.outcome == "started" and firing.scheduled_for == due and firing.missed == 0
    assert firing.run is not None
    run = wait_for(firing.run, "succeeded")
    assert run.trigger == {"type": "schedule", "id": trigger.pk}
    assert run.input == {"order": 7} and run.output == {"order": 7}
    assert run.owner == alice and run.workflow == orders
    assert RunEvent.objects.filter(run=run, type="trigger_fired", data__trigger_id=trigger.pk).exists()
    trigger.refresh_from_db()
    assert trigger.next_fire_at == due + MINUTE
    assert trigger.last_run == run and trigger.last_fired_at is not None and trigger.enabled


def test_a_tick_fires_once_however_often_the_scheduler_looks(orders: Workflow) -> None:
    trigger = schedule(orders)
    now = timezone.now()
    due_at(trigger, now)

    assert schedules_fire_due(now=now) == 1
    assert schedules_fire_due(now=now) == 0
    assert schedules_fire_due(now=now + timedelta(seconds=30)) == 0

    assert [firing.outcome for firing in firings(trigger)] == ["started"]
    assert len(runs_of(orders)) == 1


def test_a_long_outage_fires_one_catch_up_run_and_counts_the_ticks_it_missed(orders: Workflow) -> None:
    trigger = schedule(orders, every_seconds=1)
    now = timezone.now()
    due = now - timedelta(hours=1, milliseconds=500)
    due_at(trigger, due)

    assert schedules_fire_due(now=now) == 1

    [firing] = firings(trigger)
    assert firing.outcome == "started" and firing.scheduled_for == due
    assert firing.missed == 3600  # every second of the hour that followed `due`
    assert len(runs_of(orders)) == 1
    trigger.refresh_from_db()
    assert trigger.next_fire_at == now + timedelta(milliseconds=500)  # the first tick after now
    assert schedules_fire_due(now=now) == 0  # nothing left to replay


def test_a_late_tick_is_skipped_when_catch_up_is_off(orders: Workflow) -> None:
    trigger = schedule(orders, catch_up=False)
    now = timezone.now()
    due_at(trigger, now - timedelta(minutes=10, seconds=30))

    assert schedules_fire_due(now=now) == 1

    [firing] = firings(trigger)
    assert firing.outcome == "skipped" and firing.run is None
    assert firing.reason == "630 s late and catch-up is off"
    assert firing.missed == 10
    assert runs_of(orders) == []
    trigger.refresh_from_db()
    assert trigger.enabled and trigger.next_fire_at is not None and trigger.next_fire_at > now


def test_a_tick_within_the_grace_fires_even_when_catch_up_is_off(orders: Workflow, settings: Settings) -> None:
    trigger = schedule(orders, catch_up=False)
    now = timezone.now()
    due_at(trigger, now - timedelta(seconds=settings.FLOWNOVA_SCHEDULE_GRACE_SECONDS - 1))

    schedules_fire_due(now=now)

    assert [firing.outcome for firing in firings(trigger)] == ["started"]


def receive_notices(channel: str, timeout: float = 5.0) -> list[dict[str, Any]]:
    """The events the channel receives until `timeout` passes without one more."""
    layer = get_channel_layer()
    assert layer is not None

    async def receive() -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        while True:
            try:
                message = await asyncio.wait_for(layer.receive(channel), timeout)
            except TimeoutError:
                return events
            assert message["type"] == CONSUMER_MESSAGE_TYPE
            events += message["events"]
            if any(event["type"] == "trigger_skipped" for event in events):
                return events

    return async_to_sync(receive)()


def watch(workflow: Workflow) -> str:
    """A channel in the workflow's group, as a client of /ws/workflows/<id>/ would have."""
    layer = get_channel_layer()
    assert layer is not None

    async def join() -> str:
        channel = await layer.new_channel()
        await layer.group_add(workflow_group(workflow.pk), channel)
        return channel

    return async_to_sync(join)()


def test_overlap_skip_skips_the_tick_while_the_last_run_is_active_and_tells_the_watchers(
    approvals: Workflow,
) -> None:
    trigger = schedule(approvals, overlap=Overlap.SKIP)
    now = timezone.now()
    due_at(trigger, now)
    schedules_fire_due(now=now)
    [first] = runs_of(approvals)
    wait_for(first, "waiting")
    channel = watch(approvals)

    later = now + MINUTE
    assert schedules_fire_due(now=later) == 1

    assert runs_of(approvals) == [first]
    started, skipped = firings(trigger)
    assert started.outcome == "started" and started.run == first
    assert skipped.outcome == "skipped" and skipped.run is None and skipped.scheduled_for == later
    assert skipped.reason == f"run {first.pk} from the previous tick is still waiting"
    [notice] = [event for event in receive_notices(channel) if event["type"] == "trigger_skipped"]
    assert notice["run_id"] is None and notice["seq"] is None
    assert notice["data"] == {
        "trigger_id": trigger.pk,
        "workflow_id": approvals.pk,
        "outcome": "skipped",
        "reason": skipped.reason,
        "run_id": None,
        "scheduled_for": later.isoformat(),
        "missed": 0,
    }
    trigger.refresh_from_db()
    assert trigger.last_run == first and trigger.next_fire_at == later + MINUTE


def test_overlap_skip_fires_again_once_the_last_run_ended(approvals: Workflow) -> None:
    trigger = schedule(approvals, overlap=Overlap.SKIP)
    now = timezone.now()
    due_at(trigger, now)
    schedules_fire_due(now=now)
    [first] = runs_of(approvals)
    run_cancel(run=wait_for(first, "waiting"))

    schedules_fire_due(now=now + MINUTE)

    assert [firing.outcome for firing in firings(trigger)] == ["started", "started"]
    assert len(runs_of(approvals)) == 2


def test_overlap_allow_starts_another_run_beside_the_active_one(approvals: Workflow) -> None:
    trigger = schedule(approvals, overlap=Overlap.ALLOW)
    now = timezone.now()
    due_at(trigger, now)
    schedules_fire_due(now=now)
    [first] = runs_of(approvals)
    wait_for(first, "waiting")

    schedules_fire_due(now=now + MINUTE)

    first_again, second = runs_of(approvals)
    assert first_again == first
    assert [firing.outcome for firing in firings(trigger)] == ["started", "started"]
    assert second.trigger == {"type": "schedule", "id": trigger.pk}
    wait_for(second, "waiting")
    assert wait_for(first, "waiting").status == "waiting"
    trigger.refresh_from_db()
    assert trigger.last_run == second


def test_overlap_queue_starts_queued_ticks_one_after_another_as_runs_end(
    alice: User, approvals: Workflow, settings: Settings
) -> None:
    settings.FLOWNOVA_SCHEDULE_QUEUE_MAX = 2
    trigger = schedule(approvals, overlap=Overlap.QUEUE)
    now = timezone.now()
    due_at(trigger, now)
    ticks = [now + index * MINUTE for index in range(4)]
    for tick in ticks:
        schedules_fire_due(now=tick)
    [first] = runs_of(approvals)
    wait_for(first, "waiting")

    started, queued_1, queued_2, extra = firings(trigger)
    assert started.outcome == "started" and started.run == first
    assert [queued_1.outcome, queued_2.outcome] == ["queued", "queued"]
    assert queued_1.reason == queued_2.reason == f"waits for run {first.pk}"
    assert [queued_1.scheduled_for, queued_2.scheduled_for] == ticks[1:3]
    assert extra.outcome == "skipped" and extra.scheduled_for == ticks[3]
    assert extra.reason == f"2 ticks already wait for run {first.pk} (FLOWNOVA_SCHEDULE_QUEUE_MAX)"

    last = ticks[-1]  # no new tick is due at this moment: only the queue can start anything
    assert schedules_fire_due(now=last) == 0  # the first run still waits for its approval

    approval = ApprovalRequest.objects.get(run=first)
    approval_decide(approval_id=approval.pk, user=alice, decision="approved")
    wait_for(first, "succeeded")
    assert schedules_fire_due(now=last) == 1

    queued_1.refresh_from_db()
    queued_2.refresh_from_db()
    assert queued_1.outcome == "started" and queued_1.run is not None
    assert queued_1.reason == f"waits for run {first.pk}; started when it ended"
    assert queued_1.run.trigger == {"type": "schedule", "id": trigger.pk}
    assert queued_2.outcome == "queued"  # its turn comes when the run just started ends
    second = wait_for(queued_1.run, "waiting")
    assert schedules_fire_due(now=last) == 0

    run_cancel(run=second)
    assert schedules_fire_due(now=last) == 1

    queued_2.refresh_from_db()
    assert queued_2.outcome == "started" and queued_2.run is not None
    assert len(runs_of(approvals)) == 3
    assert not TriggerFiring.objects.filter(trigger=trigger, outcome="queued").exists()
    trigger.refresh_from_db()
    assert trigger.last_run == queued_2.run


def test_a_new_tick_of_a_queue_schedule_waits_behind_the_ticks_queued_before_it(approvals: Workflow) -> None:
    trigger = schedule(approvals, overlap=Overlap.QUEUE)
    now = timezone.now()
    due_at(trigger, now)
    schedules_fire_due(now=now)
    schedules_fire_due(now=now + MINUTE)
    [first] = runs_of(approvals)
    run_cancel(run=wait_for(first, "waiting"))

    # The run ended, and before anything advanced the queue, the next tick came: the queued tick goes first.
    schedules_fire_due(now=now + 2 * MINUTE)

    _, was_queued, newest = firings(trigger)
    assert was_queued.outcome == "started" and was_queued.scheduled_for == now + MINUTE
    assert newest.outcome == "queued" and newest.scheduled_for == now + 2 * MINUTE
    assert len(runs_of(approvals)) == 2
    assert newest.reason == "waits for the ticks queued before it"


def test_a_schedule_whose_input_no_longer_fits_the_workflow_fails_and_stays_enabled(
    orders: Workflow,
) -> None:
    trigger = schedule(orders)
    graph = order_graph()  # changed since the schedule was saved: every run now needs a customer too
    graph["nodes"][0]["data"]["input_schema"] = {
        "type": "object",
        "properties": {"order": {"type": "integer"}, "customer": {"type": "string"}},
        "required": ["order", "customer"],
    }
    workflow_update(workflow=orders, graph=graph)
    now = timezone.now()
    due_at(trigger, now)

    assert schedules_fire_due(now=now) == 1

    [firing] = firings(trigger)
    assert firing.outcome == "failed" and firing.run is None and firing.scheduled_for == now
    assert "customer" in firing.reason
    assert runs_of(orders) == []
    trigger.refresh_from_db()
    assert trigger.enabled and trigger.next_fire_at == now + MINUTE
    assert trigger.last_run is None


def test_a_schedule_of_a_deleted_workflow_is_disabled(orders: Workflow) -> None:
    trigger = schedule(orders)
    workflow_soft_delete(workflow=orders)
    now = timezone.now()
    due_at(trigger, now)

    assert schedules_fire_due(now=now) == 1

    [firing] = firings(trigger)
    assert firing.outcome == "failed" and firing.reason == "the workflow was deleted; disabled"
    assert runs_of(orders) == []
    trigger.refresh_from_db()
    assert not trigger.enabled and trigger.next_fire_at is None
    assert schedules_fire_due(now=now + MINUTE) == 0


def test_a_disabled_schedule_never_fires(orders: Workflow) -> None:
    trigger = schedule(orders)
    now = timezone.now()
    Trigger.objects.filter(pk=trigger.pk).update(enabled=False, next_fire_at=now)

    assert schedules_fire_due(now=now + MINUTE) == 0
    assert firings(trigger) == []


def test_pruning_drops_old_firings_and_expired_keys_but_keeps_queued_ticks(
    orders: Workflow, settings: Settings
) -> None:
    trigger = schedule(orders)
    now = timezone.now()
    old = now - timedelta(days=settings.FLOWNOVA_TRIGGER_HISTORY_DAYS, seconds=1)
    recent = now - timedelta(days=settings.FLOWNOVA_TRIGGER_HISTORY_DAYS) + timedelta(minutes=1)
    for outcome in ("started", "skipped", "failed"):
        TriggerFiring.objects.create(trigger=trigger, fired_at=old, outcome=outcome)
    kept_queued = TriggerFiring.objects.create(trigger=trigger, fired_at=old, outcome="queued")
    kept_recent = TriggerFiring.objects.create(trigger=trigger, fired_at=recent, outcome="skipped")
    window = timedelta(hours=settings.FLOWNOVA_IDEMPOTENCY_HOURS)
    IdempotencyKey.objects.create(trigger=trigger, key="expired", created_at=now - window - timedelta(seconds=1))
    IdempotencyKey.objects.create(trigger=trigger, key="live", created_at=now - window + timedelta(minutes=1))

    assert triggers_prune(now=now) == (3, 1)

    assert {firing.pk for firing in firings(trigger)} == {kept_queued.pk, kept_recent.pk}
    assert list(IdempotencyKey.objects.filter(trigger=trigger).values_list("key", flat=True)) == ["live"]
    assert triggers_prune(now=now) == (0, 0)


def test_firings_are_counted_by_type_and_outcome_in_the_metrics(
    client: Client, superuser: User, approvals: Workflow
) -> None:
    client.force_login(superuser)
    trigger = schedule(approvals, overlap="skip")
    before = samples(client)
    now = timezone.now()
    due_at(trigger, now)
    schedules_fire_due(now=now)
    wait_for(Run.objects.get(trigger__id=trigger.pk), "waiting")
    due_at(trigger, now + MINUTE)
    schedules_fire_due(now=now + MINUTE)
    after = samples(client)

    def grew(outcome: str) -> float:
        key = ("flownova_trigger_firings_total", (("outcome", outcome), ("type", "schedule")))
        return after.get(key, 0) - before.get(key, 0)

    assert (grew("started"), grew("skipped")) == (1, 1)
