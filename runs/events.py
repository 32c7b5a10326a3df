"""The one publisher of run events (contract section 6).

`event_emit` stores the event with the next `seq` of its run and, once the surrounding transaction commits,
sends it to the run's and the workflow's Channels groups. Nothing is sent for a transaction that rolls back,
and a client that connects late reads the stored events first (see `runs.consumers`).
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import connection, transaction
from django.utils import timezone

from runs.models import Run, RunEvent

EVENT_TYPES = frozenset(
    {
        "run_started",
        "node_started",
        "node_completed",
        "node_failed",
        "node_skipped",  # an extension of the contract: a node on a path not taken
        "tool_call",
        "llm_token",
        "approval_needed",
        "approval_decided",
        "run_waiting",
        "run_succeeded",
        "run_failed",
        "run_cancelled",
    }
)

# Channels handler name: a message {"type": "run.event", "event": {...}} calls `run_event` on consumers.
CONSUMER_MESSAGE_TYPE = "run.event"


def run_group(run_id: int) -> str:
    return f"run.{run_id}"


def workflow_group(workflow_id: int) -> str:
    return f"workflow.{workflow_id}"


def event_emit(*, run: Run, type: str, node_id: str = "", data: dict[str, Any] | None = None) -> RunEvent:
    """Store an event and publish it after commit. Call inside the transaction that made the change."""
    if type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {type!r}")
    # One statement takes the next number and holds the row until commit, so seqs are gap-free and ordered
    # even when two workers emit events for the same run at once.
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {Run._meta.db_table} SET last_event_seq = last_event_seq + 1 WHERE id = %s "  # noqa: S608 - table name from the model
            "RETURNING last_event_seq",
            [run.pk],
        )
        row = cursor.fetchone()
    if row is None:
        raise Run.DoesNotExist(f"run {run.pk} does not exist")
    run.last_event_seq = row[0]
    event = RunEvent.objects.create(
        run=run, seq=run.last_event_seq, type=type, node_id=node_id, data=data or {}, ts=timezone.now()
    )
    message = event.as_message()
    workflow_id = run.workflow_id
    transaction.on_commit(lambda: event_publish(message, workflow_id=workflow_id))
    return event


def event_publish(message: dict[str, Any], *, workflow_id: int | None) -> None:
    """Send a stored event to its subscribers now. Called after commit only."""
    layer = get_channel_layer()
    if layer is None:
        return
    payload = {"type": CONSUMER_MESSAGE_TYPE, "event": message}
    send = async_to_sync(layer.group_send)
    send(run_group(int(message["run_id"])), payload)
    if workflow_id is not None:
        send(workflow_group(workflow_id), payload)
