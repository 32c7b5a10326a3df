"""Advancing a run once a node finished: resolve its edges, queue what is ready, and settle the run's
status (still running, waiting, succeeded or failed); ending a run closes its open work."""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.utils import timezone

from flownova import metrics
from runs.engine import core
from runs.events import NodeSkipped, RunFailed, RunSucceeded, RunWaiting
from runs.ledger import ledger_append
from runs.models import (
    ACTIVE_RUN_STATUSES,
    LedgerStatus,
    NodeRun,
    NodeStatus,
    Run,
    RunStatus,
)
from runs.services import continuation
from runs.services.base import BEGIN_FIELDS, CLOSED_NODE_STATUSES, OPEN_NODE_STATUSES, has_merges, run_graph
from runs.services.dispatch import enqueue_after_commit, report_to_parent, send
from runs.signals import run_closing
from runs.writes import Transition
from workflows.graph import Graph

logger = logging.getLogger(__name__)

# --- advancing -------------------------------------------------------------------------------------------------


def pending_rows(tx: Transition) -> dict[str, NodeRun]:
    """The run's nodes reached by some of their branches, locked, by node id (none in a graph without merges)."""
    if not has_merges(run_graph(tx.run.pk)):
        return {}
    pending = NodeRun.objects.select_for_update().filter(run=tx.run, status=NodeStatus.PENDING)
    return {row.node_id: row for row in pending}


def advance(
    tx: Transition,
    node_id: str,
    *,
    handle: str | None,
    output: dict[str, Any],
    pending: dict[str, NodeRun] | None = None,
) -> list[NodeRun]:
    """Resolve the finished node's outgoing edges; returns the node rows it wrote (created or changed, queued
    among them). `pending` is what `pending_rows` returned, if the caller read it already."""
    run = tx.run
    graph = run_graph(run.pk)
    rows = pending_rows(tx) if pending is None else pending
    step = core.advance(graph, node_id, handle=handle, known_arrivals={k: v.arrivals for k, v in rows.items()})
    now = timezone.now()

    def row_of(target: str) -> NodeRun:
        return rows.get(target) or NodeRun(run=run, node_id=target, node_type=graph.node(target).type)

    changed = []
    for skipped in step.skipped:
        changed.append(_set_state(row_of(skipped), NodeStatus.SKIPPED, step.arrivals.get(skipped, {}), finished=now))
        tx.emit(NodeSkipped(node_id=skipped))
    for target, arrivals in step.arrivals.items():
        if target not in step.skipped and target not in step.ready:
            changed.append(_set_state(row_of(target), NodeStatus.PENDING, arrivals))
    queued = []
    if step.ready:
        outputs = _source_outputs(run, graph, step, finished=(node_id, output))
        for target in step.ready:
            arrivals = step.arrivals[target]
            row = _set_state(row_of(target), NodeStatus.QUEUED, arrivals if len(graph.incoming(target)) > 1 else {})
            row.input = core.merge_inputs(core.fired_sources(graph, target, arrivals), outputs)
            row.queued_at = now
            queued.append(row)
    continued = continuation.take(tx, queued)  # before the rows are written: it marks those it takes
    node_runs_save(tx, [*changed, *queued])
    track_writes(tx, [*changed, *queued])
    taken = {id(row) for row in continued}
    enqueue_after_commit(run, graph, [row for row in queued if id(row) not in taken])
    return [*changed, *queued]


def track_writes(tx: Transition, rows: list[NodeRun]) -> None:
    """Apply the transition's own node writes to what it read with its locks (the pending rows, the statuses
    of unfinished nodes), for a transition that executes several nodes one after another."""
    if tx.pending_rows is not None:
        for row in rows:
            if row.status == NodeStatus.PENDING:
                tx.pending_rows[row.node_id] = row
            else:
                tx.pending_rows.pop(row.node_id, None)
    if tx.unfinished is not None:
        for row in rows:
            if row.status in CLOSED_NODE_STATUSES:
                tx.unfinished.pop(row.node_id, None)
            else:
                tx.unfinished[row.node_id] = row.status


def _set_state(row: NodeRun, status: str, arrivals: dict[str, str], *, finished: Any = None) -> NodeRun:
    row.status = status
    row.arrivals = arrivals
    row.finished_at = finished or row.finished_at
    return row


# What advance changes on a node row it had already created (a merge point reached by some branches).
ADVANCE_FIELDS = ("status", "arrivals", "input", "queued_at", "finished_at", "task_id")


def node_runs_save(tx: Transition, rows: list[NodeRun]) -> None:
    """Insert the new rows and update the others (their ADVANCE_FIELDS) with the transition's other writes,
    in one statement however many branches a fork starts. New rows get their ids when it has run."""
    for row in rows:
        if row.pk is not None:
            tx.save(row, *ADVANCE_FIELDS)
    tx.insert([row for row in rows if row.pk is None], match="node_id")


def _source_outputs(
    run: Run, graph: Graph, step: core.Advance, *, finished: tuple[str, dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    needed = {source for target in step.ready for source in core.fired_sources(graph, target, step.arrivals[target])}
    needed.discard(finished[0])
    outputs = {finished[0]: finished[1]}
    if needed:
        rows = NodeRun.objects.filter(run=run, node_id__in=needed).values_list("node_id", "output")
        outputs.update({node_id: output or {} for node_id, output in rows})
    return outputs


def unfinished_after(tx: Transition, written: list[NodeRun]) -> set[str] | None:
    """The statuses of the run's unfinished nodes once the transition's node writes (`written`: every node row
    it changed) are applied to what was read with the lock; None when nothing was read with the lock.

    This spares a branch arrival (and the end of a run whose graph has merge points) a query while the run's
    lock is held: every other arrival at the same join queues behind that lock, so the query cost a fork's join
    a round trip per branch."""
    if tx.unfinished is None:
        return None
    statuses = {**tx.unfinished, **{row.node_id: row.status for row in written}}
    return {status for status in statuses.values() if status not in CLOSED_NODE_STATUSES}


def settle(tx: Transition, statuses: set[str] | None = None) -> None:
    """Bring the run's status in line with its nodes: still running, waiting for a person, or finished.
    `statuses` are those of the run's unfinished nodes, if the caller knows them; else they are read."""
    run = tx.run
    if statuses is None:
        open_nodes = NodeRun.objects.filter(run=run).exclude(status__in=CLOSED_NODE_STATUSES)
        statuses = set(open_nodes.order_by().values_list("status", flat=True).distinct())
    if statuses & {NodeStatus.QUEUED, NodeStatus.RUNNING}:
        if run.status != RunStatus.RUNNING:
            run.status = RunStatus.RUNNING
            tx.save_run("status")
        return
    if NodeStatus.WAITING in statuses:
        if not _waits_for_a_person(run):
            # Waiting for child runs only: the run is still at work.
            if run.status != RunStatus.RUNNING:
                run.status = RunStatus.RUNNING
                tx.save_run("status")
            return
        if run.status != RunStatus.WAITING:
            run.status = RunStatus.WAITING
            tx.save_run("status")
            tx.emit(RunWaiting())
        return
    if NodeStatus.PENDING in statuses:
        # Cannot happen in a valid DAG (every edge gets resolved); fail loudly rather than hang.
        pending = list(NodeRun.objects.filter(run=run, status=NodeStatus.PENDING).values_list("node_id", flat=True))
        run_fail(tx, f"internal error: nodes {pending} wait for branches that can no longer arrive")
        return
    if run.output is None:
        run_fail(tx, "the run stopped without reaching an end node")
        return
    run.status = RunStatus.SUCCEEDED
    run.finished_at = timezone.now()
    tx.save_run("status", "finished_at")
    tx.emit(RunSucceeded(output=run.output))
    run_ended(run, RunStatus.SUCCEEDED)
    report_to_parent(run)


def _waits_for_a_person(run: Run) -> bool:
    """Whether some waiting node of the run waits for something else than a child run of its own."""
    waiting = set(NodeRun.objects.filter(run=run, status=NodeStatus.WAITING).values_list("node_id", flat=True))
    with_child = Run.objects.filter(parent=run, parent_node_id__in=waiting).values_list("parent_node_id", flat=True)
    return bool(waiting - set(with_child))


def run_fail(tx: Transition, error: str) -> None:
    run = tx.run
    run.status = RunStatus.FAILED
    run.error = error
    run.finished_at = timezone.now()
    tx.save_run("status", "error", "finished_at")
    close_open_work(tx)
    tx.emit(RunFailed(error=error))
    run_ended(run, RunStatus.FAILED)


def run_ended(run: Run, status: str) -> None:
    """Count and log a run that ended, once its transaction commits (a rolled-back ending never happened)."""
    run_id = run.pk

    def observe() -> None:
        metrics.RUNS_FINISHED.labels(status).inc()
        logger.info("run %s", status, extra={"run_id": run_id})

    metrics.observe_after_commit(observe)


def close_open_work(tx: Transition) -> None:
    """Every node of the run that has not finished ends: nodes not started yet will not start, and a node
    still executing is cancelled (its result, if it ever comes, is ignored) with a ledger entry that says so;
    pending approvals can no longer be decided; child runs are cancelled (after commit, each in its own
    transition) and a parent learns that this child ended."""
    run = tx.run
    now = timezone.now()
    running = NodeRun.objects.select_for_update().filter(run=run, status=NodeStatus.RUNNING)
    for node_run in running.only(*BEGIN_FIELDS):
        node_run.status = NodeStatus.CANCELLED
        node_run.finished_at = now
        ledger_append(
            tx=tx,
            node_run=node_run,
            node_fields=["status", "finished_at"],
            status=LedgerStatus.CANCELLED,
            input=node_run.input,
            error=f"the run ended ({run.status}) while this node was executing; its result is ignored",
            started_at=node_run.started_at,
            finished_at=now,
        )
    for node_run in NodeRun.objects.select_for_update().filter(run=run, status__in=OPEN_NODE_STATUSES).only("id"):
        node_run.status = NodeStatus.CANCELLED
        tx.save(node_run, "status")
    run_closing.send(sender=Run, tx=tx)
    children = list(Run.objects.filter(parent=run, status__in=ACTIVE_RUN_STATUSES).values_list("pk", flat=True))
    if children:
        from runs.tasks import cancel_run

        def cancel_children() -> None:
            for child in children:
                send(cancel_run, child)

        transaction.on_commit(cancel_children)
    report_to_parent(run)
