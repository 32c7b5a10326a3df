"""How a node's attempt ends: it succeeded, failed (perhaps to be retried), was lost with its worker, or is
given up. A node that fails for good takes its error path (its `error` edge) when its type can fail and it has
one: it is recorded as failed and the run goes on from there."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from nodes import get_node_type, limits
from nodes.base import DEFAULT_RETRIES
from nodes.spec import ERROR_HANDLE
from runs.engine import core
from runs.events import AttemptLost, NodeCompleted, NodeFailed
from runs.ledger import ledger_append
from runs.models import (
    FINAL_RUN_STATUSES,
    LedgerEntry,
    LedgerStatus,
    NodeRun,
    NodeStatus,
)
from runs.services.advance import advance, pending_rows, run_fail, settle, unfinished_after
from runs.services.base import CLAIM_FIELDS, run_graph
from runs.writes import Transition

logger = logging.getLogger(__name__)


def node_succeed(
    tx: Transition,
    node_run: NodeRun,
    *,
    fields: dict[str, Any],
    output: dict[str, Any],
    handle: str | None,
    started_at: Any,
    finished_at: Any,
    tool_calls: list[dict[str, Any]] | None = None,
    llm_usage: dict[str, Any] | None = None,
) -> None:
    node_run.status = NodeStatus.SUCCEEDED
    node_run.result = fields
    node_run.output = output
    node_run.handle = handle or ""
    node_run.error = ""
    node_run.finished_at = finished_at
    entry = ledger_append(
        tx=tx,
        node_run=node_run,
        node_fields=["status", "result", "output", "handle", "error", "finished_at", *CLAIM_FIELDS],
        status=LedgerStatus.SUCCEEDED,
        input=node_run.input,
        output=output,
        started_at=started_at,
        finished_at=finished_at,
        tool_calls=tool_calls,
        llm_usage=llm_usage,
    )
    tx.emit(
        NodeCompleted(
            node_id=node_run.node_id, handle=handle, result=fields, duration_ms=entry.duration_ms, ledger_seq=entry.seq
        )
    )


def node_failed(
    tx: Transition,
    node_run: NodeRun,
    *,
    error: str,
    traceback: str = "",
    started_at: Any,
    retry_in: float | None = None,
    tool_calls: list[dict[str, Any]] | None = None,
    fields: dict[str, Any] | None = None,
) -> None:
    """Record a failed attempt: queued again after `retry_in` seconds when given; else the node has failed for
    good, and it takes its error path when it has one (`routes_error`), with `fields` (what the handler gave
    besides the error) and `error` added to its output, and the run goes on; without one the run fails (unless
    it already ended)."""
    finished = timezone.now()
    retry = retry_in is not None
    routed = None if retry else _error_path_output(tx, node_run, error=error, fields=fields)
    # Read before this node's writes are queued, so that they go out with the rest of the transition's.
    pending = None
    if routed is not None:
        pending = tx.pending_rows if tx.pending_rows is not None else pending_rows(tx)
    node_run.error = error
    node_run.status = NodeStatus.QUEUED if retry else NodeStatus.FAILED
    node_run.finished_at = None if retry else finished
    if retry_in is not None:  # due then: the recovery sweep must not take the wait for a lost message
        node_run.queued_at = finished + timedelta(seconds=retry_in)
    node_fields = ["error", "status", "finished_at", "queued_at", *CLAIM_FIELDS]
    if routed is not None:
        node_run.result, node_run.output = routed
        node_run.handle = ERROR_HANDLE
        node_fields += ["result", "output", "handle"]
    ledger_append(
        tx=tx,
        node_run=node_run,
        node_fields=node_fields,
        status=LedgerStatus.RETRYING if retry else LedgerStatus.FAILED,
        input=node_run.input,
        output=routed[1] if routed is not None else None,
        error=error,
        traceback=traceback,
        started_at=started_at,
        finished_at=finished,
        tool_calls=tool_calls,
    )
    tx.emit(
        NodeFailed(
            node_id=node_run.node_id,
            error=error,
            attempt=node_run.attempts,
            will_retry=retry,
            retry_in_seconds=retry_in,
            routed=ERROR_HANDLE if routed is not None else None,
        )
    )
    logger.warning(
        "node %s (%s) attempt %d failed%s: %s",
        node_run.node_id,
        node_run.node_type,
        node_run.attempts,
        ", will retry" if retry else ", taking its error path" if routed is not None else "",
        error,
        extra={"node_id": node_run.node_id},
    )
    if routed is not None:
        advanced = advance(tx, node_run.node_id, handle=ERROR_HANDLE, output=routed[1], pending=pending)
        if not any(row.status == NodeStatus.QUEUED for row in advanced):
            settle(tx, unfinished_after(tx, [node_run, *advanced]))  # nothing new queued: waiting, or done?
        return
    if not retry and tx.run.status not in FINAL_RUN_STATUSES:
        run_fail(tx, f'node "{node_run.node_id}" ({node_run.node_type}) failed: {error}')


def routes_error(tx: Transition, node_id: str, node_type: str) -> bool:
    """Whether a failure of the node takes its error path: its type can fail and it has an `error` edge."""
    if not get_node_type(node_type).can_fail:
        return False
    return any(edge.source_handle == ERROR_HANDLE for edge in run_graph(tx.run.pk).outgoing(node_id))


def _error_path_output(
    tx: Transition, node_run: NodeRun, *, error: str, fields: dict[str, Any] | None
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The node's own fields and output on its error path, or None when the failure fails the run instead (no
    error path, the run ended already, or an output past its cap, which cannot go on either)."""
    if tx.run.status in FINAL_RUN_STATUSES or not routes_error(tx, node_run.node_id, node_run.node_type):
        return None
    own, _ = limits.storable(
        {**(fields or {}), "error": {"node": node_run.node_id, "type": node_run.node_type, "message": error}}
    )
    output = core.output_of(node_run.input or {}, own)
    try:
        limits.check_size(
            output, setting="FLOWNOVA_MAX_NODE_OUTPUT_BYTES", what=f'the output of node "{node_run.node_id}"'
        )
    except limits.SizeLimitError:
        logger.warning("node %s: its error path's output is over the cap", node_run.node_id)
        return None
    return own, output


# Why an attempt ended without a result. Lost attempts count against the node's attempts like failed ones.
LOST_REDELIVERED = "the worker running it stopped (killed, out of memory, or a crash) and its message came back"
LOST_STALLED = "it gave no result within its time limit plus the recovery grace (the worker died or was killed)"
LOST_PREFIX = "attempt lost: "


def attempt_lost(tx: Transition, node_run: NodeRun, *, reason: str) -> bool:
    """Record that the node's current attempt ended without a result. Returns True when no attempt is left:
    the node has then failed (or taken its `error` edge) and the caller must not start it again; else the
    node may be started again (the caller counts the new attempt)."""
    node = run_graph(tx.run.pk).node(node_run.node_id)
    allowed = int(node.data.get("retries", DEFAULT_RETRIES)) + 1
    now = timezone.now()
    if node_run.attempts < allowed:
        ledger_append(
            tx=tx,
            node_run=node_run,
            status=LedgerStatus.RETRYING,
            input=node_run.input,
            error=f"{LOST_PREFIX}{reason}",
            started_at=node_run.started_at,
            finished_at=now,
        )
        tx.emit(AttemptLost(node_id=node_run.node_id, error=f"{LOST_PREFIX}{reason}", attempt=node_run.attempts))
        logger.warning(
            "node %s attempt %d lost: %s", node_run.node_id, node_run.attempts, reason, extra={"node_id": node.id}
        )
        return False
    lost = (
        1
        + LedgerEntry.objects.filter(
            run_id=tx.run.pk, node_id=node_run.node_id, status=LedgerStatus.RETRYING, error__startswith=LOST_PREFIX
        ).count()
    )
    error = (
        f"the node was given up after {node_run.attempts} attempt(s), {lost} of them lost: the last one ended "
        f"because {reason}"
    )
    node_give_up(tx, node_run, error=error, started_at=node_run.started_at or now)
    return True


def node_give_up(tx: Transition, node_run: NodeRun, *, error: str, started_at: Any, traceback: str = "") -> None:
    """End a node that cannot produce a result (its attempts were lost, or the engine could not execute or
    record it): it fails for good, taking its error path when it has one (`node_failed`)."""
    node_failed(tx, node_run, error=error, traceback=traceback, started_at=started_at)


def retry_delay(attempt: int) -> float:
    """Exponential backoff: base, 2 x base, 4 x base ... capped."""
    base = float(getattr(settings, "FLOWNOVA_RETRY_BACKOFF_SECONDS", 1.0))
    return min(base * 2.0 ** (attempt - 1), float(getattr(settings, "FLOWNOVA_RETRY_BACKOFF_MAX_SECONDS", 300.0)))
