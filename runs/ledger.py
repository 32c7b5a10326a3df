"""The one writer of the append-only ledger (docs/CONTRACT.md, Ledger)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.utils import timezone

from flownova import metrics
from runs.models import LedgerEntry, NodeRun
from runs.writes import Transition
from tools.models import Tool, ToolCall
from tools.recording import FINISH_FIELDS, tool_call_row


def ledger_append(
    *,
    tx: Transition,
    node_run: NodeRun,
    status: str,
    input: dict[str, Any] | None,
    output: dict[str, Any] | None = None,
    error: str = "",
    traceback: str = "",
    started_at: datetime | None,
    finished_at: datetime | None,
    tool_calls: list[dict[str, Any]] | None = None,
    llm_usage: dict[str, Any] | None = None,
    reused: bool = False,
    node_fields: Sequence[str] = (),
) -> LedgerEntry:
    """Append one entry for an execution of `node_run`, numbered by the run's ledger counter (which the
    transition holds under the run's row lock). The run's first entry (seq 1) carries the run's trigger. The
    outbound calls it reports are kept as ToolCall rows too.

    `node_fields` names fields of `node_run` (locked by the caller) to save in the same statement: the node's
    state and its ledger entry are written together, in one round trip."""
    duration_ms = None
    if started_at and finished_at:
        duration_ms = max(0, round((finished_at - started_at).total_seconds() * 1000))
    seq = tx.next_ledger_seq()
    entry = LedgerEntry(
        run=tx.run,
        seq=seq,
        node_id=node_run.node_id,
        node_type=node_run.node_type,
        status=status,
        attempt=max(1, node_run.attempts),
        input=input,
        output=output,
        error=error,
        traceback=traceback,
        started_at=started_at,
        finished_at=finished_at,
        duration_ms=duration_ms,
        tool_calls=tool_calls or [],
        llm_usage=llm_usage,
        reused=reused,
        # Loaded with the run's lock (TRANSITION_FIELDS): no query of its own.
        trigger=dict(tx.run.trigger) if seq == 1 else None,
    )
    _write(tx, entry, node_run, node_fields)
    _tool_calls_record(tx, node_run, tool_calls or [])
    node_type = node_run.node_type
    metrics.observe_after_commit(
        lambda: metrics.node_recorded(node_type=node_type, status=status, duration_ms=duration_ms)
    )
    if llm_usage:
        metrics.observe_after_commit(lambda: metrics.llm_used(llm_usage))
    if tool_calls:
        metrics.observe_after_commit(lambda: metrics.tool_called(tool_calls))
    return entry


def _write(tx: Transition, entry: LedgerEntry, node_run: NodeRun, node_fields: Sequence[str]) -> None:
    # Not entry.save() and node_run.save(): the transition sends both with its other writes, in one statement.
    if node_fields:
        tx.save(node_run, *node_fields)
    tx.insert([entry], ids=False)


def _tool_calls_record(tx: Transition, node_run: NodeRun, calls: list[dict[str, Any]]) -> None:
    """Keep each outbound call a node made (returned in NodeResult.tool_calls, the keys of
    tools.services.RECORD_KEYS) as a ToolCall row, written with the node's ledger entry: a call recorded as
    started before its request went out (`call_id`) has that row completed; one never sent gets a row now."""
    if not calls:
        return
    finished = timezone.now()
    fresh = []
    for call in calls:
        row = tool_call_row(call, run_id=tx.run.pk, node_id=node_run.node_id, finished_at=finished)
        if call.get("call_id"):
            row.pk = call["call_id"]
            tx.save(row, *FINISH_FIELDS)
        else:
            fresh.append(row)
    if fresh:
        _unlink_deleted_tools(fresh)
        tx.insert(fresh, ids=False)


def _unlink_deleted_tools(rows: list[ToolCall]) -> None:
    # A tool deleted while the node ran (a run's snapshot may name a tool no saved workflow uses) would fail the
    # foreign key at commit, and with it the node's whole record; the row keeps the tool's name instead.
    ids = {row.tool_id for row in rows if row.tool_id is not None}
    if not ids:
        return
    existing = set(Tool.objects.filter(pk__in=ids).values_list("pk", flat=True))
    for row in rows:
        if row.tool_id not in existing:
            row.tool_id = None
