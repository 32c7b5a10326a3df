"""Schedules fired by real `celery beat` processes (our TriggerScheduler, as CELERY_BEAT_SCHEDULER sets it) on
the test database, with the suite's real worker carrying the runs they start."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.utils import timezone

from runs.models import Run
from tests.api.conftest import approval_graph
from tests.conftest import LOG_DIR, ROOT, service_env, stop_process
from tests.engine_helpers import wait_for
from tests.factories import make_workflow
from tests.triggers.helpers import runs_settled, schedule_create
from triggers.models import Overlap, Trigger, TriggerFiring
from workflows.models import Workflow

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]

# How long each test lets beat fire an every-second schedule.
WINDOW_SECONDS = 5.0


@dataclass
class BeatProcess:
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_beats(*schedule_files: Path, timeout: float = 30.0) -> list[BeatProcess]:
    """A `celery -A flownova beat` process per schedule file, pointed at the test database and Redis, started
    side by side; returns once each logged that it starts ticking."""
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    started: list[BeatProcess] = []
    for schedule_file in schedule_files:
        log_path = LOG_DIR / f"beat-{uuid.uuid4().hex[:8]}.log"
        command = [sys.executable, "-m", "celery", "-A", "flownova", "beat", "--loglevel=INFO"]
        command.append(f"--schedule={schedule_file}")
        with log_path.open("wb") as log:
            process = subprocess.Popen(command, cwd=ROOT, env=service_env(), stdout=log, stderr=subprocess.STDOUT)
        started.append(BeatProcess(process, log_path))
    deadline = time.monotonic() + timeout
    waiting = list(started)
    while waiting:
        for beat in list(waiting):
            if beat.process.poll() is not None:
                stop_beats(started)
                raise RuntimeError(f"celery beat exited with {beat.process.returncode}:\n{beat.log()}")
            if "beat: Starting..." in beat.log():
                waiting.remove(beat)
        if time.monotonic() > deadline:
            stop_beats(started)
            raise RuntimeError(f"celery beat did not start within {timeout}s:\n{waiting[0].log()}")
        time.sleep(0.05)
    return started


def stop_beats(beats: list[BeatProcess]) -> None:
    """Stop them all, side by side (each saves its schedule file on the way out)."""
    for beat in beats:
        if beat.process.poll() is None:
            beat.process.terminate()
    for beat in beats:
        stop_process(beat.process)


@pytest.fixture
def beats(tmp_path: Path) -> Iterator[list[BeatProcess]]:
    """The beat processes a test starts (append to the list); every one is stopped however the test ends, and
    none may have failed to fire."""
    started: list[BeatProcess] = []
    try:
        yield started
    finally:
        stop_beats(started)
    for beat in started:
        assert "firing schedule triggers failed" not in beat.log(), beat.log()


@pytest.fixture(autouse=True)
def runs_settle(transactional_db: None) -> Iterator[None]:
    """After the test, before the database is emptied: wait until the worker is done with its runs."""
    yield
    runs_settled()


def every_second(workflow: Workflow, **fields: Any) -> Trigger:
    """An every-second schedule of `workflow`, due a second from now."""
    return schedule_create(workflow, every_seconds=1, **fields)


def let_fire(trigger: Trigger, seconds: float) -> float:
    """Leave the schedule to the beat processes for `seconds`, then disable it; returns how long it was
    enabled."""
    began = time.monotonic()
    time.sleep(seconds)
    Trigger.objects.filter(pk=trigger.pk).update(enabled=False)
    return time.monotonic() - began


def firings(trigger: Trigger) -> list[TriggerFiring]:
    return list(TriggerFiring.objects.filter(trigger=trigger).order_by("scheduled_for", "id"))


def assert_each_tick_fired_once(rows: list[TriggerFiring]) -> None:
    ticks = [firing.scheduled_for for firing in rows]
    assert len(ticks) == len(set(ticks)), f"a tick fired more than once: {ticks}"


def test_beat_fires_an_every_second_schedule_once_a_second(
    orders: Workflow, beats: list[BeatProcess], tmp_path: Path
) -> None:
    beats.extend(start_beats(tmp_path / "celerybeat-schedule"))
    trigger = every_second(orders, input={"order": 3})

    let_fire(trigger, WINDOW_SECONDS)

    rows = firings(trigger)
    assert_each_tick_fired_once(rows)
    assert {firing.outcome for firing in rows} == {"started"}
    runs = list(Run.objects.filter(workflow=orders))
    assert 3 <= len(runs) <= 7, f"{len(runs)} runs in {WINDOW_SECONDS} s"
    assert {firing.run_id for firing in rows} == {run.pk for run in runs}
    for run in runs:
        assert run.trigger == {"type": "schedule", "id": trigger.pk}
        assert wait_for(run).status == "succeeded" and run.output == {"order": 3}


def test_two_beat_processes_fire_each_tick_once(orders: Workflow, beats: list[BeatProcess], tmp_path: Path) -> None:
    beats.extend(start_beats(tmp_path / "first-schedule", tmp_path / "second-schedule"))
    trigger = every_second(orders, input={"order": 4})

    enabled_for = let_fire(trigger, WINDOW_SECONDS)

    rows = firings(trigger)
    assert_each_tick_fired_once(rows)
    runs = list(Run.objects.filter(workflow=orders))
    assert 3 <= len(runs) <= enabled_for + 1, f"{len(runs)} runs in {enabled_for:.1f} s"
    assert {firing.outcome for firing in rows} == {"started"}
    for run in runs:
        assert wait_for(run).status == "succeeded"


def test_beat_skips_the_ticks_that_come_while_the_last_run_waits(
    alice: User, beats: list[BeatProcess], tmp_path: Path
) -> None:
    shipping = make_workflow(alice, name="Shipping", graph=approval_graph())
    beats.extend(start_beats(tmp_path / "celerybeat-schedule"))
    trigger = every_second(shipping, input={"order": 5}, overlap=Overlap.SKIP)

    let_fire(trigger, WINDOW_SECONDS - 1)

    [run] = Run.objects.filter(workflow=shipping)
    wait_for(run, "waiting")
    first, *rest = firings(trigger)
    assert first.outcome == "started" and first.run == run
    assert len(rest) >= 2
    assert {firing.outcome for firing in rest} == {"skipped"}
    assert all(firing.run is None for firing in rest)
    assert_each_tick_fired_once([first, *rest])


def test_beat_back_after_an_outage_fires_one_catch_up_run_not_a_burst(
    orders: Workflow, beats: list[BeatProcess], tmp_path: Path
) -> None:
    trigger = every_second(orders, input={"order": 6})
    # Beat was away for two minutes past the grace: that many every-second ticks went by unfired.
    outage = timedelta(seconds=settings.FLOWNOVA_SCHEDULE_GRACE_SECONDS + 120)
    missed_since = timezone.now() - outage
    Trigger.objects.filter(pk=trigger.pk).update(next_fire_at=missed_since)
    back = timezone.now()
    began = time.monotonic()

    beats.extend(start_beats(tmp_path / "celerybeat-schedule"))
    enabled_for = let_fire(trigger, 3) + (time.monotonic() - began)

    catch_up, *after = firings(trigger)
    assert catch_up.scheduled_for == missed_since and catch_up.outcome == "started"
    assert catch_up.missed >= outage.total_seconds() - 1
    # Then the schedule goes on from now, a tick a second: no replay of the two minutes and more it missed.
    assert all(firing.scheduled_for is not None and firing.scheduled_for > back for firing in after)
    assert all(firing.outcome == "started" for firing in after)
    assert_each_tick_fired_once([catch_up, *after])
    runs = list(Run.objects.filter(workflow=orders))
    assert len(runs) <= enabled_for + 1, f"{len(runs)} runs in {enabled_for:.1f} s"
    for run in runs:
        assert wait_for(run).status == "succeeded"
