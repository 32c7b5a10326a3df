"""Celery tasks: thin. Each carries ids only, loads, calls a service, and decides retry.

Every task is safe to run twice: `node_begin` refuses a node that already finished or that another task holds,
and `node_complete` / `node_fail` ignore a result from an attempt that is no longer current.
"""

from __future__ import annotations

import logging
import traceback as tb

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.db import InterfaceError, OperationalError

from runs import services
from runs.nodes import get_node_type
from runs.nodes.base import NodeContext, NodeError, TransientNodeError

logger = logging.getLogger(__name__)


@shared_task(
    bind=True,
    name="runs.execute_node",
    # A database hiccup around the bookkeeping: try the whole task again; node_begin makes that safe.
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=True,
    retry_backoff_max=60,
    max_retries=None,
)
def execute_node(self, node_run_id: int) -> None:  # type: ignore[no-untyped-def]
    claim = services.node_begin(node_run_id=node_run_id, task_id=self.request.id or "")
    if claim is None:
        return
    context = NodeContext(
        run_id=claim.run_id,
        node=claim.node,
        input=claim.input,
        nodes=claim.nodes,
        branches=claim.branches,
        attempt=claim.attempt,
    )
    try:
        result = get_node_type(claim.node.type).execute(context)
    except NodeError as exc:
        services.node_fail(claim=claim, error=str(exc))
    except TransientNodeError as exc:
        _retry_later(self, claim, str(exc), tb.format_exc())
    except SoftTimeLimitExceeded:
        limit = claim.node.data.get("timeout_seconds") or self.request.timelimit[1]
        _retry_later(self, claim, f"timed out after {limit} s", "")
    except Exception as exc:
        logger.exception("node %s of run %s raised", claim.node.id, claim.run_id)
        services.node_fail(claim=claim, error=f"{type(exc).__name__}: {exc}", traceback=tb.format_exc())
    else:
        services.node_complete(claim=claim, result=result)


def _retry_later(task, claim: services.NodeClaim, error: str, traceback: str) -> None:  # type: ignore[no-untyped-def]
    delay = services.node_fail(claim=claim, error=error, traceback=traceback, transient=True)
    if delay is not None:
        # Same task id: node_begin recognises the message as this node's own next attempt.
        task.retry(countdown=delay, max_retries=None, throw=False)
