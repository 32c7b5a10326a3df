"""Cancelling runs, purging old ones, and recovering nodes whose task message or worker was lost."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from runs.errors import RunFinishedError
from runs.events import RunCancelled
from runs.models import (
    FINAL_RUN_STATUSES,
    ChildItem,
    ChildItemStatus,
    NodeRun,
    NodeStatus,
    Run,
    RunStatus,
)
from runs.services.advance import close_open_work, run_ended
from runs.services.base import ACTIVE_NODE_STATUSES, run_graph
from runs.services.continuation import CONTINUED_PREFIX
from runs.services.dispatch import enqueue_after_commit
from runs.services.outcome import LOST_STALLED, attempt_lost
from runs.writes import run_transition
from workflows.graph import GraphError

logger = logging.getLogger(__name__)

# --- cancelling ----------------------------------------------------------------------------------------------


def run_cancel(*, run: Run, user: User | None = None) -> Run:
    """Stop a run: every node that has not finished is cancelled. A handler already executing is not
    interrupted, but what it returns is ignored and nothing after it starts."""
    with run_transition(run.pk) as tx:
        locked = tx.run
        if locked.status in FINAL_RUN_STATUSES:
            raise RunFinishedError(f"run {run.pk} already ended ({locked.status})")
        locked.status = RunStatus.CANCELLED
        locked.finished_at = timezone.now()
        tx.save_run("status", "finished_at")
        close_open_work(tx)
        tx.emit(RunCancelled(by=user.username if user is not None else None))
        run_ended(locked, RunStatus.CANCELLED)
    return locked


# --- retention ------------------------------------------------------------------------------------------------


def runs_purge(*, finished_before: Any, dry_run: bool = False) -> int:
    """Delete top-level runs that ended before `finished_before`, with everything recorded for them (child
    runs, ledger, events, approvals, tool calls). Returns how many top-level runs that was. The ledger refuses
    DELETE unless the transaction says it purges (runs migration 0006): this is the one place that does."""
    old = Run.objects.filter(parent__isnull=True, status__in=FINAL_RUN_STATUSES, finished_at__lt=finished_before)
    if dry_run:
        return old.count()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL flownova.ledger_purge = 'on'")
        ids = list(old.select_for_update(skip_locked=True).values_list("pk", flat=True))
        Run.objects.filter(pk__in=ids).delete()
    return len(ids)


# --- recovery -------------------------------------------------------------------------------------------------


def node_runs_recover(*, queued_for: float, running_for: float, continued_for: float | None = None) -> int:
    """Dispatch again the nodes whose message was lost: queued for longer than `queued_for` seconds (a Redis
    restart drops queued messages), or running for longer than `running_for` seconds past their own time limit
    (the worker died without the message being redelivered). A node a process took on to begin itself
    (runs.services.continuation) has no message at all: it is dispatched once queued for `continued_for`
    seconds (default: `queued_for`). Safe at any time: node_begin lets exactly one message claim a node.
    Returns how many nodes were dispatched again."""
    now = timezone.now()
    continued_for = queued_for if continued_for is None else continued_for
    stale_queued = NodeRun.objects.filter(status=NodeStatus.QUEUED, queued_at__lt=now - timedelta(seconds=queued_for))
    orphans = NodeRun.objects.filter(
        status=NodeStatus.QUEUED,
        task_id__startswith=CONTINUED_PREFIX,
        queued_at__lt=now - timedelta(seconds=continued_for),
    )
    stale_running = NodeRun.objects.filter(status=NodeStatus.RUNNING)
    # Each candidate with the state it was found stale in; it is checked again under the run's lock, since it
    # may have moved on meanwhile (a queued node claimed by a worker is not stale).
    queued = {
        pk: (run_id, started)
        for rows in (stale_queued, orphans)
        for pk, run_id, started in rows.values_list("pk", "run_id", "started_at")[:1000]
    }
    candidates = [(pk, run_id, NodeStatus.QUEUED, started) for pk, (run_id, started) in queued.items()]
    for pk, run_id, started_at, node_id in stale_running.values_list("pk", "run_id", "started_at", "node_id")[:1000]:
        limit = _time_limit(run_id, node_id) + running_for
        if started_at is not None and started_at < now - timedelta(seconds=limit):
            candidates.append((pk, run_id, NodeStatus.RUNNING, started_at))
    recovered = _recover_child_reports()
    for pk, run_id, status, started_at in candidates:
        try:
            recovered += _node_recover(pk, run_id, now, found=(status, started_at))
        except Exception:  # one run's problem must not stop the sweep for every other run
            logger.exception("could not recover node run %s of run %s", pk, run_id, extra={"run_id": run_id})
    return recovered


def _node_recover(pk: int, run_id: int, now: Any, *, found: tuple[str, Any]) -> int:
    """Dispatch one stale node again, or end it: returns 1 if it was dispatched again. `found` is the status
    and start time it was found stale with: a node that has changed since (a worker claimed it, or a later
    attempt started) is left alone."""
    with run_transition(run_id) as tx:
        node_run = NodeRun.objects.select_for_update().get(pk=pk)
        if node_run.status not in ACTIVE_NODE_STATUSES:
            return 0
        if tx.run.status in FINAL_RUN_STATUSES:  # left behind by a run that ended: it will never run
            close_open_work(tx)
            return 0
        if (node_run.status, node_run.started_at) != found:
            return 0
        logger.warning(
            "recovering node %s of run %s (%s since %s)",
            node_run.node_id,
            run_id,
            node_run.status,
            node_run.started_at or node_run.queued_at,
        )
        if node_run.status == NodeStatus.RUNNING and attempt_lost(tx, node_run, reason=LOST_STALLED):
            return 0  # that was its last attempt: it failed (or took its error edge)
        node_run.status = NodeStatus.QUEUED
        node_run.task_id = ""  # the lost message's id no longer owns the node
        node_run.queued_at = now
        tx.save(node_run, "status", "task_id", "queued_at")
        enqueue_after_commit(tx.run, run_graph(tx.run.pk), [node_run])
        return 1


def _recover_child_reports() -> int:
    """Parents still waiting for a child run that has ended (its report was lost): report again."""
    from runs.tasks import report_child_run

    # A node's only child (cognitive, subworkflow): the node still waits for it.
    ended = Run.objects.filter(parent__isnull=False, status__in=FINAL_RUN_STATUSES, child_item__isnull=True)
    waiting = NodeRun.objects.filter(status=NodeStatus.WAITING)
    lost = list(
        ended.filter(parent__node_runs__in=waiting, parent__node_runs__node_id=F("parent_node_id"))
        .values_list("pk", flat=True)
        .distinct()[:1000]
    )
    # One of several (a map's item, a loop's iteration): its item is still running, its node still waits.
    items = ChildItem.objects.filter(
        status=ChildItemStatus.RUNNING, child_run__status__in=FINAL_RUN_STATUSES, node_run__status=NodeStatus.WAITING
    )
    lost += [pk for pk in items.values_list("child_run_id", flat=True)[:1000] if pk is not None]
    for child_id in lost:
        report_child_run.delay(child_id)
    return len(lost)


def _time_limit(run_id: int, node_id: str) -> float:
    try:
        graph = run_graph(run_id)
    except GraphError:  # a snapshot this deployment can no longer read (a node type removed): the default
        return float(settings.FLOWNOVA_TASK_TIME_LIMIT)
    timeout = graph.node(node_id).data.get("timeout_seconds") if node_id in graph.nodes else None
    return float(timeout) + 10 if timeout else float(settings.FLOWNOVA_TASK_TIME_LIMIT)
