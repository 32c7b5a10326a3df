"""The pure engine core: given the graph and what just happened, decide what happens next.

No Django, no Celery. The services call it while holding the run's row lock and write what it decides.

Every edge is resolved exactly once: `fired` when its source finished and took the edge's handle (or took no
handle, which fires every outgoing edge but its error path), `dead` when its source took another handle or was
itself skipped. A node that failed and routed took the `error` handle: only its error path fires.
A node becomes ready when all its incoming edges are resolved and at least one fired; it is skipped when all
of them are dead, which resolves its own outgoing edges as dead in turn. A node therefore runs at most once
per run, and a node with several incoming edges (a `join`, or any merge point) waits for every branch that can
still arrive: this is what makes a join fire exactly once, and why a fork's branches never run the rest of the
graph twice.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from nodes.spec import ERROR_HANDLE
from workflows.graph import Edge, Graph

FIRED = "fired"
DEAD = "dead"
# A node's recorded status that lets a run go on from it: it succeeded, or it failed and took its error path
# (its recorded handle is then ERROR_HANDLE).
SUCCEEDED = "succeeded"
FAILED = "failed"


@dataclass
class Advance:
    """The consequences of one node finishing."""

    # Nodes whose incoming edges are all resolved, at least one fired: start them, in this order.
    ready: list[str] = field(default_factory=list)
    # Nodes that can no longer run (every incoming edge dead), in the order they were found.
    skipped: list[str] = field(default_factory=list)
    # Arrivals (incoming edge id -> FIRED/DEAD) of every node touched, complete or not. Nodes with one
    # incoming edge are included too; the caller stores what it needs.
    arrivals: dict[str, dict[str, str]] = field(default_factory=dict)


def outgoing_resolution(graph: Graph, node_id: str, handle: str | None) -> tuple[list[Edge], list[Edge]]:
    """Split a finished node's outgoing edges into (fired, dead). `handle=None` fires them all but the error
    path (edges with the `error` handle), which fires only when the node failed and routed (`handle="error"`)."""
    fired: list[Edge] = []
    dead: list[Edge] = []
    for edge in graph.outgoing(node_id):
        takes = edge.source_handle != ERROR_HANDLE if handle is None else edge.source_handle == handle
        (fired if takes else dead).append(edge)
    return fired, dead


def went_on(status: str, handle: str | None) -> bool:
    """Whether a node that ended with `status`, having taken `handle`, let its run go on: it succeeded, or it
    failed and took its error path."""
    return status == SUCCEEDED or (status == FAILED and handle == ERROR_HANDLE)


def advance(
    graph: Graph,
    node_id: str,
    *,
    handle: str | None,
    skipped: bool = False,
    known_arrivals: Mapping[str, Mapping[str, str]] | None = None,
) -> Advance:
    """Resolve the outgoing edges of `node_id`, which finished taking `handle` (or was skipped), and follow
    the consequences: which nodes become ready, which are skipped.

    `known_arrivals` holds what earlier calls decided for nodes still waiting for some of their branches.
    """
    known = known_arrivals or {}
    result = Advance()
    if skipped:
        pending: deque[tuple[Edge, str]] = deque((edge, DEAD) for edge in graph.outgoing(node_id))
    else:
        fired, dead = outgoing_resolution(graph, node_id, handle)
        pending = deque([(edge, FIRED) for edge in fired] + [(edge, DEAD) for edge in dead])
    while pending:
        edge, state = pending.popleft()
        target = edge.target
        arrivals = result.arrivals.setdefault(target, dict(known.get(target, {})))
        if edge.id in arrivals:
            raise ValueError(f'edge "{edge.id}" was already resolved ({arrivals[edge.id]}); a node finished twice')
        arrivals[edge.id] = state
        incoming = graph.incoming(target)
        if len(arrivals) < len(incoming):
            continue
        if FIRED in arrivals.values():
            result.ready.append(target)
        else:
            result.skipped.append(target)
            pending.extend((out, DEAD) for out in graph.outgoing(target))
    return result


def fired_sources(graph: Graph, node_id: str, arrivals: Mapping[str, str]) -> list[str]:
    """The nodes whose edges into `node_id` fired, in the order of its incoming edges, without repeats."""
    sources: list[str] = []
    for edge in graph.incoming(node_id):
        if arrivals.get(edge.id) == FIRED and edge.source not in sources:
            sources.append(edge.source)
    return sources


def merge_inputs(sources: list[str], outputs: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """A node's input: the outputs of the branches that arrived, merged in incoming-edge order (later wins)."""
    merged: dict[str, Any] = {}
    for source in sources:
        merged.update(outputs[source])
    return merged


def output_of(node_input: Mapping[str, Any], fields: Mapping[str, Any]) -> dict[str, Any]:
    """A node's output is its input with its own fields added (docs/CONTRACT.md, Output accumulation)."""
    return {**node_input, **fields}


def template_node_refs(paths: list[str]) -> set[str]:
    """Node ids that `{{nodes.<id>...}}` templates refer to, so only their results need loading."""
    refs = set()
    for path in paths:
        parts = path.split(".")
        if len(parts) >= 2 and parts[0] == "nodes":
            refs.add(parts[1])
    return refs


def skipped_on_replay(graph: Graph, node_id: str, reused: Sequence[tuple[str, str | None]]) -> bool:
    """Whether replaying `reused` (node id and the handle it took, in topological order) skips `node_id`: the
    recorded results choose a path that does not pass through it, so a run resumed there would never reach
    it."""
    known: dict[str, dict[str, str]] = {}
    skipped: set[str] = set()
    for reused_id, handle in reused:
        step = advance(graph, reused_id, handle=handle, known_arrivals=known)
        known.update(step.arrivals)
        skipped.update(step.skipped)
    return node_id in skipped


def feeding(graph: Graph, node_id: str, reexecute: frozenset[str]) -> list[str]:
    """The nodes of `reexecute` with a path to `node_id`, sorted: a run resumed at `node_id` waits for their new
    outputs, so an input given for `node_id` could not be used."""
    return sorted(node for node in reexecute if node != node_id and node_id in graph.downstream(node))


def reusable(
    graph: Graph,
    resume_at: str,
    recorded: Mapping[str, tuple[str, str] | tuple[str, str, str | None]],
    reexecute: frozenset[str] = frozenset(),
) -> list[str]:
    """The nodes a run resumed at `resume_at` reuses from the run it resumes, in topological order: every node
    outside `resume_at`'s descendants (itself included) and not named in `reexecute`, whose recorded
    `(status, node type[, handle])` is a success, or a failure that took its error path (with the handle), of
    the type it has in `graph` (the graph may be a later version)."""
    after = graph.downstream(resume_at)
    found = []
    for node in graph.topological_order():
        if node in after or node in reexecute or node not in recorded:
            continue
        state = recorded[node]
        handle = state[2] if len(state) > 2 else None
        if went_on(state[0], handle) and state[1] == graph.node(node).type:
            found.append(node)
    return found
