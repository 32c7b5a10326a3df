"""What every part of the engine's services shares: errors, node status groups, the parsed graph of a run."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from functools import lru_cache
from typing import Any

from jsonschema import Draft202012Validator
from kombu.exceptions import OperationalError as KombuOperationalError
from redis.exceptions import ConnectionError as RedisConnectionError

from nodes import node_specs
from runs.models import (
    NodeStatus,
    Run,
)
from workflows.graph import Graph, GraphError, parse_graph
from workflows.models import Workflow

logger = logging.getLogger(__name__)

# What publishing a task raises when the broker cannot be reached.
BROKER_ERRORS = (KombuOperationalError, RedisConnectionError, OSError)
ACTIVE_NODE_STATUSES = (NodeStatus.QUEUED, NodeStatus.RUNNING)
OPEN_NODE_STATUSES = (NodeStatus.PENDING, NodeStatus.QUEUED, NodeStatus.WAITING)
# What node_begin changes on a node; saved with the node's final state when it runs inline.
CLAIM_FIELDS = ["status", "attempts", "started_at", "task_id"]
# What is read of a node when it is locked to begin, and to record its result: never its result or output.
CLAIMED_FIELDS = ("id", "run_id", "node_id", "node_type", "status", "input", "attempts", "task_id")
BEGIN_FIELDS = (*CLAIMED_FIELDS, "handle", "error", "arrivals", "queued_at", "started_at", "finished_at")


# --- the graph a run executes -------------------------------------------------------------------------------

_GRAPHS: OrderedDict[int, Graph] = OrderedDict()
_GRAPH_CACHE_SIZE = 512
# The I/O worker runs nodes on threads: an OrderedDict's reordering and eviction are not atomic.
_GRAPHS_LOCK = threading.Lock()


def run_graph(run_id: int) -> Graph:
    """The parsed snapshot of a run. Snapshots never change, so each process parses one once (two threads may
    both parse one they found missing; either copy serves)."""
    with _GRAPHS_LOCK:
        graph = _GRAPHS.get(run_id)
        if graph is not None:
            _GRAPHS.move_to_end(run_id)
            return graph
    document = Run.objects.values_list("graph", flat=True).get(pk=run_id)
    graph = parse_graph(document, node_specs(), recorded=True)
    remember_graph(run_id, graph)
    return graph


def remember_graph(run_id: int, graph: Graph) -> None:
    """Keep a run's parsed snapshot: the run being created has just parsed it."""
    with _GRAPHS_LOCK:
        _GRAPHS[run_id] = graph
        if len(_GRAPHS) > _GRAPH_CACHE_SIZE:
            _GRAPHS.popitem(last=False)


def input_errors(graph: Graph, run_input: object) -> list[str]:
    if not isinstance(run_input, dict):
        return [f"input must be a JSON object, not {type(run_input).__name__}"]
    schema = graph.node(graph.start_id).data.get("input_schema")
    if schema is None:
        return []
    validator = Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(run_input), key=lambda error: list(error.absolute_path))
    return [
        f"input.{'.'.join(map(str, error.absolute_path))}: {error.message}".replace("input.:", "input:")
        for error in errors
    ]


def run_input(run: Run) -> dict[str, Any]:
    return Run.objects.values_list("input", flat=True).get(pk=run.pk) or {}


@lru_cache(maxsize=1024)
def has_merges(graph: Graph) -> bool:
    """Whether any node has several incoming edges; without one, no node ever waits for branches."""
    return any(len(graph.incoming(node_id)) > 1 for node_id in graph.nodes)


CLOSED_NODE_STATUSES = (NodeStatus.SUCCEEDED, NodeStatus.FAILED, NodeStatus.SKIPPED, NodeStatus.CANCELLED)


def workflow_input_errors(workflow: Workflow, run_input: object) -> list[str]:
    """What would stop a run of `workflow` as saved now from starting with `run_input`: the graph's problems or
    the input's, as `run_start` would report them (for what checks an input before it is used, as a schedule)."""
    try:
        graph = parse_graph(workflow.graph_document(), node_specs())
    except GraphError as exc:
        return [f"the workflow is not valid: {issue.message}" for issue in exc.issues]
    return input_errors(graph, run_input)
