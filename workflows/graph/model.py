"""A valid workflow graph and what it answers: nodes, edges, successors, order; the validation issues."""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from dataclasses import dataclass, fields
from enum import Enum

from nodes.spec import Node

START_TYPE = "start"
END_TYPE = "end"
MAX_NODES = 500
MAX_EDGES = 2000
MAX_EDGE_ID_LENGTH = 200
MAX_HANDLE_LENGTH = 64


@dataclass(frozen=True)
class Issue:
    """One validation error. `field` is a dotted path inside the node's `data` when the error is about one."""

    message: str
    node_id: str | None = None
    edge_id: str | None = None
    field: str | None = None

    def as_dict(self) -> dict[str, str]:
        return {f.name: value for f in fields(self) if (value := getattr(self, f.name)) is not None}


class GraphError(ValueError):
    """The document is not a valid graph; `issues` lists every reason."""

    def __init__(self, issues: list[Issue]) -> None:
        # The issues themselves are the args, so the error survives pickling with its issues.
        super().__init__(list(issues))
        self.issues: list[Issue] = list(issues)

    def __str__(self) -> str:
        return "; ".join(issue.message for issue in self.issues)


@dataclass(frozen=True)
class Edge:
    id: str
    source: str
    target: str
    source_handle: str | None


class _AnyHandle(Enum):
    ANY = "any"


ANY_HANDLE = _AnyHandle.ANY


class Graph:
    """A valid graph (build it with `parse_graph`). Treat it and the lists it returns as read-only."""

    def __init__(self, nodes: dict[str, Node], edges: list[Edge], start_id: str) -> None:
        self.nodes = nodes
        self.edges = edges
        self.start_id = start_id
        self._outgoing: dict[str, list[Edge]] = {node_id: [] for node_id in nodes}
        self._incoming: dict[str, list[Edge]] = {node_id: [] for node_id in nodes}
        for edge in edges:
            self._outgoing[edge.source].append(edge)
            self._incoming[edge.target].append(edge)
        self._order: list[str] | None = None

    def node(self, node_id: str) -> Node:
        return self.nodes[node_id]

    def outgoing(self, node_id: str) -> list[Edge]:
        return self._outgoing[node_id]

    def incoming(self, node_id: str) -> list[Edge]:
        return self._incoming[node_id]

    def successors(self, node_id: str, handle: str | _AnyHandle | None = ANY_HANDLE) -> list[str]:
        """Targets of the node's outgoing edges, in document order and without repeats.

        By default every edge counts; pass a handle to follow only edges with that `sourceHandle`
        (None: only edges without one).
        """
        targets = (
            edge.target for edge in self._outgoing[node_id] if handle is ANY_HANDLE or edge.source_handle == handle
        )
        return list(dict.fromkeys(targets))

    def downstream(self, node_id: str) -> set[str]:
        """The node and every node reachable from it."""
        seen, stack = {node_id}, [node_id]
        while stack:
            for target in self.successors(stack.pop()):
                if target not in seen:
                    seen.add(target)
                    stack.append(target)
        return seen

    def topological_order(self) -> list[str]:
        """Every node id, each after all its predecessors; ties go to the earlier node in the document."""
        if self._order is None:
            self._order = topological_order(self.nodes, self._outgoing, self._incoming)
        return list(self._order)

    def to_document(self) -> dict[str, list[dict[str, object]]]:
        """The contract's graph object, normalised: only known keys, every edge with its id."""
        return {
            "nodes": [_node_document(node) for node in self.nodes.values()],
            "edges": [_edge_document(edge) for edge in self.edges],
        }


def _node_document(node: Node) -> dict[str, object]:
    document: dict[str, object] = {"id": node.id, "type": node.type}
    if node.position is not None:
        document["position"] = dict(node.position)
    document["data"] = copy_json(node.data)
    return document


def _edge_document(edge: Edge) -> dict[str, object]:
    document: dict[str, object] = {"id": edge.id, "source": edge.source, "target": edge.target}
    if edge.source_handle is not None:
        document["sourceHandle"] = edge.source_handle
    return document


def copy_json(value: object) -> object:
    """Copy the containers of a JSON-like value, so a Graph never shares them with its caller."""
    if isinstance(value, Mapping):
        return {key: copy_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [copy_json(item) for item in value]
    return value


def topological_order(
    nodes: dict[str, Node], outgoing: dict[str, list[Edge]], incoming: dict[str, list[Edge]]
) -> list[str]:
    """Kahn's algorithm; a heap of document positions keeps ties in document order."""
    position = {node_id: index for index, node_id in enumerate(nodes)}
    ids = list(nodes)
    waiting = {node_id: len(incoming[node_id]) for node_id in nodes}
    ready = [position[node_id] for node_id, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        node_id = ids[heapq.heappop(ready)]
        order.append(node_id)
        for edge in outgoing[node_id]:
            waiting[edge.target] -= 1
            if waiting[edge.target] == 0:
                heapq.heappush(ready, position[edge.target])
    if len(order) != len(nodes):
        raise GraphError([Issue("the graph has a cycle, so it has no topological order")])
    return order
