"""Calling a node's handler and classifying what went wrong, the same way wherever a node executes."""

from __future__ import annotations

import logging
import traceback as tb
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from celery.exceptions import SoftTimeLimitExceeded

from nodes import get_node_type
from nodes.base import NodeContext, NodeError, NodeResult, TransientNodeError
from tools.services import tool_call_start

if TYPE_CHECKING:
    from runs.services import NodeClaim

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    result: NodeResult | None = None
    error: str = ""
    traceback: str = ""
    transient: bool = False
    tool_calls: tuple[dict[str, Any], ...] = ()  # made before a failure; recorded with it


def run_handler(
    claim: NodeClaim,
    *,
    time_limit: float | None = None,
    emit: Callable[[str, dict[str, Any]], None] | None = None,
) -> Outcome:
    """Execute the claimed node's handler. Errors are classified, never raised: a NodeError is permanent, a
    TransientNodeError or a timeout may be retried, anything else is a bug in the handler and keeps its
    traceback."""
    context = NodeContext(
        run_id=claim.run_id,
        owner_id=claim.owner_id,
        handles=claim.handles,
        node=claim.node,
        input=claim.input,
        nodes=claim.nodes,
        branches=claim.branches,
        attempt=claim.attempt,
        record_call=tool_call_start,
    )
    if emit is not None:
        context.emit = emit
    try:
        return Outcome(result=get_node_type(claim.node.type).execute(context))
    except NodeError as exc:
        return Outcome(error=str(exc), tool_calls=tuple(exc.tool_calls))
    except TransientNodeError as exc:
        return Outcome(error=str(exc), traceback=tb.format_exc(), transient=True, tool_calls=tuple(exc.tool_calls))
    except SoftTimeLimitExceeded:
        limit = claim.node.data.get("timeout_seconds") or time_limit
        return Outcome(error=f"timed out after {limit} s", transient=True)
    except Exception as exc:
        logger.exception("node %s of run %s raised", claim.node.id, claim.run_id)
        return Outcome(error=f"{type(exc).__name__}: {exc}", traceback=tb.format_exc())
