"""Helpers for the tests of schedules: creating one through the service, and letting the worker finish."""

from __future__ import annotations

import time
from typing import Any

from runs.models import Run, RunStatus
from triggers.models import Trigger, TriggerType
from triggers.services import trigger_create
from workflows.models import Workflow


def schedule_create(workflow: Workflow, **fields: Any) -> Trigger:
    """A schedule of `workflow`, saved through the service (so checked, and due at its first tick from now)."""
    trigger = Trigger(workflow=workflow, type=TriggerType.SCHEDULE, **fields)
    trigger_create(trigger)
    return trigger


def runs_settled(timeout: float = 30.0) -> None:
    """Wait until the worker is done with every run (each one waits for a person or has ended): a test that
    started runs calls this last, so the database is not emptied under a node the worker is recording."""
    deadline = time.monotonic() + timeout
    while Run.objects.filter(status__in=(RunStatus.QUEUED, RunStatus.RUNNING)).exists():
        assert time.monotonic() < deadline, f"runs still queued or running after {timeout} s"
        time.sleep(0.02)
