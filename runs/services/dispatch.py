"""Sending node tasks after commit. The database is the truth: a broker that cannot be reached is logged
and the recovery sweep sends again."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.db import transaction

from nodes import get_node_type
from runs.models import (
    NodeRun,
    Run,
)
from runs.services.base import BROKER_ERRORS, run_graph
from workflows.graph import Graph

logger = logging.getLogger(__name__)

# --- dispatch --------------------------------------------------------------------------------------------------


def enqueue_after_commit(run: Run, graph: Graph, node_runs: list[NodeRun]) -> None:
    """Send one task per node once the transaction commits; several at once go out as one Celery group."""
    if not node_runs:
        return
    options = [_options(graph, row.node_id) for row in node_runs]
    run_id = run.pk
    # Ids read at commit: a transition's new rows get theirs when its deferred writes go out.
    transaction.on_commit(
        lambda: _dispatch(run_id, [(row.pk, *option) for row, option in zip(node_runs, options, strict=True)])
    )


def _options(graph: Graph, node_id: str) -> tuple[float | None, str | None]:
    """What a node's task is sent with: its time limit (`timeout_seconds`, if any) and its queue."""
    node = graph.node(node_id)
    return node.data.get("timeout_seconds"), node_queue(node.type)


def node_queue(node_type: str) -> str | None:
    """The queue for a node of `node_type`: FLOWNOVA_IO_QUEUE for a type that waits on the network (its worker
    runs many such nodes at once on threads), None (Celery's default queue) for the rest, and for every type when
    the setting is empty. A retried task keeps the queue it was delivered from (Celery's retry resends it to the
    delivery's exchange and routing key)."""
    queue: str = settings.FLOWNOVA_IO_QUEUE
    if not queue:
        return None
    try:
        io_bound = get_node_type(node_type).io_bound
    except KeyError:  # a type this deployment no longer has: its node fails wherever it is executed
        return None
    return queue if io_bound else None


def _dispatch(run_id: int, jobs: list[tuple[int, float | None, str | None]]) -> None:
    """Send the tasks. Called after commit: the nodes are queued in the database whatever happens here, so a
    broker that cannot be reached (after Celery's own publish retries) is logged, not raised, and the
    recovery sweep sends them once it can (FLOWNOVA_RECOVER_QUEUED_AFTER)."""
    from celery import group

    from runs.tasks import execute_node

    try:
        if len(jobs) == 1:  # the common case, without building a signature first
            node_run_id, timeout, queue = jobs[0]
            execute_node.apply_async((run_id, node_run_id), **_route(queue), **_limits(timeout))
            return
        signatures = [
            execute_node.si(run_id, node_run_id).set(**_route(queue), **_limits(timeout))
            for node_run_id, timeout, queue in jobs
        ]
        group(signatures).apply_async()
    except BROKER_ERRORS as exc:
        logger.error(
            "could not send %d node task(s) of run %s to the broker (%s: %s); the recovery sweep sends them later",
            len(jobs),
            run_id,
            type(exc).__name__,
            exc,
            extra={"run_id": run_id},
        )


def dispatch_ids(run_id: int, node_run_ids: list[int]) -> None:
    """Send tasks for nodes already committed as queued: nodes a process took on to begin itself and could not
    (runs.services.continuation)."""
    if not node_run_ids:
        return
    graph = run_graph(run_id)
    rows = NodeRun.objects.filter(pk__in=node_run_ids).values_list("pk", "node_id")
    _dispatch(run_id, [(pk, *_options(graph, node_id)) for pk, node_id in rows])


def send(task: Any, *args: Any) -> None:
    """Send a bookkeeping task after commit; a broker that cannot be reached is logged, not raised: what was
    committed stands. A lost child report is sent again by the recovery sweep; a child whose cancel was lost
    runs to its end, and its parent, which has ended, ignores its report."""
    try:
        task.delay(*args)
    except BROKER_ERRORS as exc:
        logger.error("could not send %s%s to the broker (%s: %s)", task.name, args, type(exc).__name__, exc)


def _route(queue: str | None) -> dict[str, Any]:
    """Celery's execution options for a node's queue (none: the default queue)."""
    return {"queue": queue} if queue else {}


def _limits(timeout: float | None) -> dict[str, Any]:
    """Celery's execution options for a node's time limits: seconds, fractions allowed (celery-stubs type them
    as int, and leave them out of Signature.set, so the options are typed as Celery's own `options` are)."""
    if not timeout:
        return {}
    # The soft limit raises inside the handler (a clean, recorded timeout); the hard one is the backstop.
    return {"soft_time_limit": float(timeout), "time_limit": float(timeout) + 10}


def report_to_parent(run: Run) -> None:
    """A child run that ended tells its parent, after commit and in another transition (locks are taken
    parent-first everywhere else, so the parent is never locked while a child is)."""
    if run.parent_id is None:
        return
    from runs.tasks import report_child_run

    child_id = run.pk
    transaction.on_commit(lambda: send(report_child_run, child_id))
