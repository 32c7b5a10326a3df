"""Calling a node's handler and classifying what went wrong, the same way wherever a node executes; and the
services a handler reaches through its context (nodes/base.py: NodeTools, LLM, GraphValidator), wired here
from tools/, runs/llm.py and workflows/graph/ so that the nodes package imports none of them."""

from __future__ import annotations

import importlib
import logging
import traceback as tb
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings

from flownova.deadline import node_deadline, release_connection
from nodes import get_node_type, node_specs
from nodes.base import NodeContext, NodeError, NodeResult, ToolRefused, TransientNodeError
from nodes.base import Tool as NodeTool
from tools.calling import ToolCallError, tool_call
from tools.models import Tool
from tools.recording import tool_call_record, tool_call_start
from workflows.graph import validate_graph

if TYPE_CHECKING:
    from runs.services import NodeClaim

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProjectTools:
    """The tools of the run's project for one node execution (nodes.base.NodeTools). `record_started` records each call
    as started right before its request goes out (tools.recording.tool_call_start), so a worker killed mid-call
    leaves a trace; None records calls only with the node's result."""

    project_id: int
    run_id: int | None
    node_id: str
    record_started: Callable[..., int] | None = tool_call_start

    def find(self, names: Iterable[str], *, include_disabled: bool = False) -> dict[str, NodeTool]:
        found = Tool.objects.filter(project_id=self.project_id, name__in=list(names))
        if not include_disabled:
            found = found.filter(is_active=True)
        return {tool.name: tool for tool in found}

    def function(self, tool: NodeTool) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {"name": tool.name, "description": tool.description, "parameters": tool.parameters},
        }

    def call(
        self, tool: NodeTool, arguments: Any, *, call_index: int = 0, timeout: float | None = None
    ) -> dict[str, Any]:
        if not isinstance(tool, Tool):  # handlers call only what `find` gave them
            raise TypeError(f"{tool!r} is not a tool that find() returned")
        try:
            return tool_call(
                tool=tool,
                arguments=arguments,
                run_id=self.run_id,
                node_id=self.node_id,
                call_index=call_index,
                timeout=timeout,
                record=self.record_started,
            )
        except ToolCallError as exc:
            raise ToolRefused(str(exc)) from exc

    def record(self, call: Mapping[str, Any]) -> dict[str, Any]:
        return tool_call_record(call)


class WorkerLLM:
    """runs/llm.py, imported on first use: it imports LiteLLM (seconds), which only the worker loads (at its
    start, flownova/celery.py). Instant nodes execute in whichever process records them, and use no LLM."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(importlib.import_module("runs.llm"), name)


def graph_problems(graph: Any) -> list[str]:
    """What keeps `graph` from being saved or run, as messages (none: it may run)."""
    return [issue.message for issue in validate_graph(graph, node_specs())]


def node_context(
    *,
    run_id: int,
    node: Any,
    input: dict[str, Any],
    owner_id: int | None,
    project_id: int,
    record_started: Callable[..., int] | None = tool_call_start,
    **fields: Any,
) -> NodeContext:
    """A handler's context with the engine's services: the tools of the run's project, the LLM client, graph validation.
    `fields` are NodeContext's other fields (handles, nodes, branches, attempt, emit)."""
    return NodeContext(
        run_id=run_id,
        node=node,
        input=input,
        owner_id=owner_id,
        tools=ProjectTools(project_id=project_id, run_id=run_id, node_id=node.id, record_started=record_started),
        llm=WorkerLLM(),
        validate_graph=graph_problems,
        **fields,
    )


@dataclass(frozen=True)
class Outcome:
    result: NodeResult | None = None
    error: str = ""
    traceback: str = ""
    transient: bool = False
    tool_calls: tuple[dict[str, Any], ...] = ()  # made before a failure; recorded with it
    fields: Mapping[str, Any] = field(default_factory=dict)  # a failure's fields besides `error`, for its error path


def run_handler(
    claim: NodeClaim,
    *,
    time_limit: float | None = None,
    emit: Callable[[str, dict[str, Any]], None] | None = None,
) -> Outcome:
    """Execute the claimed node's handler. Errors are classified, never raised: a NodeError is permanent, a
    TransientNodeError or a timeout may be retried, anything else is a bug in the handler and keeps its
    traceback."""
    context = node_context(
        run_id=claim.run_id,
        owner_id=claim.owner_id,
        project_id=claim.project_id,
        handles=claim.handles,
        node=claim.node,
        input=claim.input,
        nodes=claim.nodes,
        branches=claim.branches,
        attempt=claim.attempt,
    )
    if emit is not None:
        context.emit = emit
    limit = claim.node.data.get("timeout_seconds") or time_limit or settings.FLOWNOVA_TASK_SOFT_TIME_LIMIT
    release_connection()  # the claim's transaction is over: a pooled connection is not held while the handler waits
    try:
        # The LLM and egress clients end their calls by then, on a pool that cannot interrupt the handler too.
        with node_deadline(limit):
            return Outcome(result=get_node_type(claim.node.type).execute(context))
    except NodeError as exc:
        return Outcome(error=str(exc), tool_calls=tuple(exc.tool_calls), fields=exc.fields)
    except TransientNodeError as exc:
        return Outcome(
            error=str(exc),
            traceback=tb.format_exc(),
            transient=True,
            tool_calls=tuple(exc.tool_calls),
            fields=exc.fields,
        )
    except SoftTimeLimitExceeded:  # Celery's soft limit, or the deadline a call honoured (DeadlineExceeded)
        return Outcome(error=f"timed out after {limit} s", transient=True)
    except Exception as exc:
        logger.exception("node %s of run %s raised", claim.node.id, claim.run_id)
        return Outcome(error=f"{type(exc).__name__}: {exc}", traceback=tb.format_exc())
