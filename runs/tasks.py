"""Celery tasks: thin. Each carries ids only, loads, calls a service, and decides retry.

Every task is safe to run twice: `node_begin` refuses a node that already finished or that another task holds,
and `node_complete` / `node_fail` ignore a result from an attempt that is no longer current.
"""

from __future__ import annotations

import logging
import os
import time
import traceback
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, TypeAlias, TypeVar

from celery import shared_task
from celery.exceptions import Retry
from celery.signals import worker_process_shutdown, worker_shutdown
from celery.utils.time import get_exponential_backoff_interval
from django.conf import settings
from django.db import InterfaceError, OperationalError, close_old_connections

from flownova import metrics
from flownova.logcontext import log_context
from runs import services
from runs.execution import run_handler
from runs.writes import publisher

if TYPE_CHECKING:
    from celery import Task

    NodeTask: TypeAlias = Task[[int, int], None]  # execute_node, bound: (run_id, node_run_id)

logger = logging.getLogger(__name__)
T = TypeVar("T")


@shared_task(bind=True, name="runs.execute_node")
def execute_node(self: NodeTask, run_id: int, node_run_id: int) -> None:
    # Continuing: the instant nodes this node's transition queues are begun by this task, after it.
    with log_context(run_id=run_id), services.continuing(run_id, self.request.id or ""):
        _execute_node(self, run_id, node_run_id)


# The database could not be reached. Anything else the engine raises would be raised again on every delivery,
# so it ends the node instead (services.node_crash).
RETRIED = (OperationalError, InterfaceError)


def _execute_node(self: NodeTask, run_id: int, node_run_id: int) -> None:
    try:
        claim = services.node_begin(run_id=run_id, node_run_id=node_run_id, task_id=self.request.id or "")
    except RETRIED as exc:
        # Nothing was claimed (the transaction rolled back): the whole task is tried again later, under the
        # same id. The only retry of this step.
        countdown = get_exponential_backoff_interval(factor=1, retries=self.request.retries, maximum=60)
        raise self.retry(exc=exc, countdown=countdown, max_retries=None) from exc
    except Exception as exc:  # noqa: BLE001 - recorded on the node, with its traceback
        _crashed(run_id, node_run_id, exc, attempt=None)
        return
    if claim is None:
        return  # nothing to do, or an instant node that node_begin already executed
    with log_context(node_id=claim.node.id):
        try:
            _run_claimed(self, claim)
        except RETRIED:
            # The handler ran but its result could not be recorded within the patience of `_recorded`. Running
            # the handler again now would repeat what it did for a database blip; the node stays running and
            # the recovery sweep counts the attempt as lost once it is past its time limit.
            logger.exception("could not record node run %s of run %s: the database is unreachable", node_run_id, run_id)
        except Retry:
            raise
        except Exception as exc:  # noqa: BLE001 - recorded on the node, with its traceback
            _crashed(run_id, node_run_id, exc, attempt=claim.attempt)


def _recorded(record: Callable[[], T]) -> T:
    """Call `record` (a service that records a handler's result), trying again while the database cannot be
    reached, for up to FLOWNOVA_RECORD_PATIENCE_SECONDS: the result is in hand, and recording it late is
    better than executing the node again (a PostgreSQL restart or failover takes seconds). The only retry of
    this step."""
    deadline = time.monotonic() + settings.FLOWNOVA_RECORD_PATIENCE_SECONDS
    tries = 0
    while True:
        try:
            return record()
        except RETRIED:
            if time.monotonic() >= deadline:
                raise
            close_old_connections()  # the broken connection is dropped; the next try opens a new one
            time.sleep(min(5.0, 0.25 * 2**tries))
            tries += 1


def _crashed(run_id: int, node_run_id: int, exc: Exception, *, attempt: int | None) -> None:
    logger.exception("the engine raised while executing node run %s of run %s", node_run_id, run_id)
    services.node_crash(
        run_id=run_id,
        node_run_id=node_run_id,
        error=f"{type(exc).__name__}: {exc}",
        traceback=traceback.format_exc(),
        attempt=attempt,
    )


def _run_claimed(self: NodeTask, claim: services.NodeClaim) -> None:
    outcome = run_handler(
        claim,
        time_limit=self.request.timelimit[1] if self.request.timelimit else None,
        emit=partial(services.node_event, claim.run_id, claim.node.id),
    )
    if outcome.result is not None:
        result = outcome.result
        _recorded(lambda: services.node_complete(claim=claim, result=result))
        return
    delay = _recorded(
        lambda: services.node_fail(
            claim=claim,
            error=outcome.error,
            traceback=outcome.traceback,
            transient=outcome.transient,
            tool_calls=list(outcome.tool_calls),
            fields=dict(outcome.fields),
        )
    )
    if delay is not None:
        # Same task id: node_begin recognises the message as this node's own next attempt.
        self.retry(countdown=delay, max_retries=None, throw=False)


@shared_task(name="runs.report_child_run", autoretry_for=(OperationalError, InterfaceError), retry_backoff=True)
def report_child_run(child_run_id: int) -> None:
    services.child_run_report(child_run_id=child_run_id)


@shared_task(name="runs.cancel_run")
def cancel_run(run_id: int) -> None:
    """Cancel a run (a child of a run that ended); one that already ended is left as it is."""
    from runs.models import Run

    run = Run.objects.filter(pk=run_id).first()
    if run is None:
        return
    try:
        services.run_cancel(run=run)
    except services.RunFinishedError:
        pass


@shared_task(name="runs.recover_stalled", ignore_result=True)
def recover_stalled() -> int:
    """Periodic (Celery beat): dispatch again nodes whose message was lost."""
    return services.node_runs_recover(
        queued_for=settings.FLOWNOVA_RECOVER_QUEUED_AFTER,
        running_for=settings.FLOWNOVA_RECOVER_RUNNING_GRACE,
        continued_for=settings.FLOWNOVA_RECOVER_CONTINUED_AFTER,
    )


@worker_process_shutdown.connect
def flush_events(pid: int | None = None, **kwargs: object) -> None:
    """Send events still queued by this process before it exits (they are stored either way), and stop
    counting its live metrics."""
    publisher.flush(timeout=5)
    metrics.process_exited(pid or os.getpid())


@worker_shutdown.connect
def flush_events_of_threads(**kwargs: object) -> None:
    """The I/O worker runs its tasks on threads of its main process, which worker_process_shutdown (sent by
    prefork pool processes) does not cover: send what they queued before it exits."""
    publisher.flush(timeout=5)
