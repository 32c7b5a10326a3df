"""Validating a graph document: every problem, each as an Issue naming the node or edge at fault."""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeGuard

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from nodes.jsonkinds import json_kind_phrase
from nodes.spec import ERROR_HANDLE, Node, NodeSpec
from workflows.graph.model import (
    END_TYPE,
    MAX_EDGE_ID_LENGTH,
    MAX_EDGES,
    MAX_HANDLE_LENGTH,
    MAX_NODES,
    START_TYPE,
    Edge,
    Graph,
    GraphError,
    Issue,
    copy_json,
)
from workflows.graph.topology import cycle_through, strongly_connected

_NODE_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
_MAX_SHOWN = 80
_MAX_MESSAGE = 300


def validate_graph(doc: object, specs: Mapping[str, NodeSpec]) -> list[Issue]:
    """Every problem with `doc` as a graph of the node types in `specs`; empty when it is valid."""
    return _check(doc, specs, recorded=False)[0]


def parse_graph(doc: object, specs: Mapping[str, NodeSpec], *, recorded: bool = False) -> Graph:
    """The Graph for `doc`; raises GraphError listing every problem if it isn't valid.

    `recorded` says `doc` is a run's snapshot, valid when its run started: the rules about how a graph should
    be designed (not what executing it needs) are then not checked again, so a rule added since never stops a
    run that is under way, or its replay."""
    issues, graph = _check(doc, specs, recorded=recorded)
    if issues or graph is None:
        raise GraphError(issues or [Issue("the graph is not valid")])
    return graph


def _check(doc: object, specs: Mapping[str, NodeSpec], *, recorded: bool) -> tuple[list[Issue], Graph | None]:
    try:
        return _Validation(specs, recorded=recorded).run(doc)
    except Exception as exc:  # noqa: BLE001 - a bad document must come back as an Issue, never crash the caller
        return [Issue(f"the graph could not be validated ({type(exc).__name__})")], None


class _Validation:
    """One validation pass: reads the document, collecting issues as it goes."""

    def __init__(self, specs: Mapping[str, NodeSpec], *, recorded: bool = False) -> None:
        self.specs = specs
        self.recorded = recorded
        self.issues: list[Issue] = []
        self._validators: dict[int, Draft202012Validator] = {}

    def add(self, message: str, **where: str | None) -> None:
        self.issues.append(Issue(message, **where))

    def run(self, doc: object) -> tuple[list[Issue], Graph | None]:
        raw_nodes, raw_edges = self._read_shape(doc)
        if raw_nodes is None:
            return self.issues, None
        edge_count = len(raw_edges) if raw_edges is not None else 0
        if len(raw_nodes) > MAX_NODES or edge_count > MAX_EDGES:
            self.add(
                f"the graph has {len(raw_nodes)} nodes and {edge_count} edges; "
                f"the limits are {MAX_NODES} nodes and {MAX_EDGES} edges"
            )
            return self.issues, None
        nodes = self._read_nodes(raw_nodes)
        if raw_edges is None:
            # Without edges the structure checks would only echo the edges problem; the nodes are still checked.
            return self.issues, None
        edges = self._read_edges(raw_edges, nodes)
        start_id = self._check_structure(nodes, edges)
        if self.issues or start_id is None:
            return self.issues, None
        return [], Graph(nodes, edges, start_id)

    # The document's shape

    def _read_shape(self, doc: object) -> tuple[Sequence[object] | None, Sequence[object] | None]:
        if not isinstance(doc, Mapping):
            self.add(f'the graph must be an object with "nodes" and "edges" lists, got {json_kind_phrase(doc)}')
            return None, None
        raw_nodes = doc.get("nodes")
        raw_edges = doc.get("edges", [])
        if not isinstance(raw_nodes, (list, tuple)):
            got = json_kind_phrase(raw_nodes) if "nodes" in doc else "nothing"
            self.add(f'the graph\'s "nodes" must be a list, got {got}')
            raw_nodes = None
        if raw_edges is None:
            raw_edges = []
        if not isinstance(raw_edges, (list, tuple)):
            self.add(f'the graph\'s "edges" must be a list, got {json_kind_phrase(raw_edges)}')
            raw_edges = None
        return raw_nodes, raw_edges

    # Nodes

    def _read_nodes(self, raw_nodes: Sequence[object]) -> dict[str, Node]:
        nodes: dict[str, Node] = {}
        positions: dict[str, int] = {}
        for index, raw in enumerate(raw_nodes):
            node = self._read_node(index, raw, positions)
            if node is not None:
                nodes[node.id] = node
                positions[node.id] = index
        return nodes

    def _read_node(self, index: int, raw: object, positions: dict[str, int]) -> Node | None:
        if not isinstance(raw, Mapping):
            self.add(f"nodes[{index}] must be an object, got {json_kind_phrase(raw)}")
            return None
        node_id = raw.get("id")
        if not isinstance(node_id, str):
            got = json_kind_phrase(node_id) if "id" in raw else "nothing"
            self.add(f'nodes[{index}]: "id" must be a string, got {got}')
            return None
        label = f"node {_quote(node_id)}"
        if node_id in positions:
            self.add(
                f"{label} (nodes[{index}]): the id is already used by nodes[{positions[node_id]}]", node_id=node_id
            )
            return None
        if _NODE_ID_RE.fullmatch(node_id) is None:
            self.add(f'{label}: the id must be 1 to 64 letters, digits, "_" or "-"', node_id=node_id)
        node_type = self._read_type(label, node_id, raw)
        data = self._read_data(label, node_id, raw, self.specs.get(node_type) if node_type else None)
        position = self._read_position(label, node_id, raw)
        return Node(node_id, node_type or "", data, position)

    def _read_type(self, label: str, node_id: str, raw: Mapping[object, object]) -> str | None:
        node_type = raw.get("type")
        if isinstance(node_type, str) and node_type in self.specs:
            return node_type
        known = ", ".join(sorted(self.specs))
        if isinstance(node_type, str):
            self.add(f"{label}: unknown type {_quote(node_type)}; known types: {known}", node_id=node_id)
            return node_type
        got = json_kind_phrase(node_type) if "type" in raw else "nothing"
        self.add(f'{label}: "type" must be one of: {known}; got {got}', node_id=node_id)
        return None

    def _read_data(
        self, label: str, node_id: str, raw: Mapping[object, object], spec: NodeSpec | None
    ) -> dict[str, Any]:
        data = raw.get("data")
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            self.add(f'{label}: "data" must be an object, got {json_kind_phrase(data)}', node_id=node_id)
            return {}
        if not _has_string_keys(data):  # only a Python caller can pass one: JSON's keys are strings
            self.add(f'{label}: "data" must be an object whose keys are strings', node_id=node_id)
            return {}
        if spec is not None and self._check_schema(label, node_id, spec, data):
            self._run_check(label, node_id, spec, data)
        return {key: copy_json(item) for key, item in data.items()}

    def _check_schema(self, label: str, node_id: str, spec: NodeSpec, data: Mapping[str, object]) -> bool:
        """Report every schema error in `data`; True when there are none."""
        try:
            errors = sorted(self._validator(spec).iter_errors(data), key=_error_sort_key)
        except Exception as exc:  # noqa: BLE001 - a broken spec schema or unprintable data must not crash validation
            first_line = next(iter(str(exc).splitlines()), type(exc).__name__)
            self.add(f"{label}: data could not be checked: {_clip(first_line, _MAX_MESSAGE)}", node_id=node_id)
            return False
        for error in errors:
            container = _dotted(error.absolute_path)
            prefix = f"data.{container}" if container else "data"
            message = f"{label}: {prefix}: {_clip(error.message, _MAX_MESSAGE)}"
            self.add(message, node_id=node_id, field=_error_field(error, container))
        return not errors

    def _run_check(self, label: str, node_id: str, spec: NodeSpec, data: Mapping[str, object]) -> None:
        if spec.check is None:
            return
        try:
            problems = list(spec.check(dict(data)))
        except Exception as exc:  # noqa: BLE001 - one node type's bug must not hide the other issues
            self.add(f"{label}: data could not be checked ({type(exc).__name__})", node_id=node_id)
            return
        for field, message in problems:
            prefix = f"{label}: data.{field}" if field else label
            self.add(f"{prefix}: {message}", node_id=node_id, field=field or None)

    def _validator(self, spec: NodeSpec) -> Draft202012Validator:
        # Keyed by identity: specs are unhashable (they hold a dict) and live for the whole validation.
        if id(spec) not in self._validators:
            self._validators[id(spec)] = Draft202012Validator(spec.data_schema)
        return self._validators[id(spec)]

    def _read_position(self, label: str, node_id: str, raw: Mapping[object, object]) -> dict[str, object] | None:
        position = raw.get("position")
        if position is None:
            return None
        if isinstance(position, Mapping) and _is_number(position.get("x")) and _is_number(position.get("y")):
            return {"x": position["x"], "y": position["y"]}
        self.add(f'{label}: "position" must be an object with numbers "x" and "y"', node_id=node_id)
        return None

    # Edges

    def _read_edges(self, raw_edges: Sequence[object], nodes: dict[str, Node]) -> list[Edge]:
        edges: list[Edge] = []
        by_id: dict[str, int] = {}
        by_connection: dict[tuple[str, str, str | None], int] = {}
        for index, raw in enumerate(raw_edges):
            edge = self._read_edge(index, raw, nodes)
            if edge is None:
                continue
            connection = (edge.source, edge.target, edge.source_handle)
            label = f"edge {_quote(edge.id)}"
            if connection in by_connection:
                # The same connection twice: report it once, keep one copy for the structure checks.
                first = by_connection[connection]
                self.add(f"{label}: duplicates edges[{first}] (same source, target and sourceHandle)", edge_id=edge.id)
                continue
            by_connection[connection] = index
            if edge.id in by_id:
                self.add(
                    f"{label} (edges[{index}]): the id is already used by edges[{by_id[edge.id]}]", edge_id=edge.id
                )
            by_id.setdefault(edge.id, index)
            self._check_handle(label, edge, nodes)
            edges.append(edge)
        return edges

    def _read_edge(self, index: int, raw: object, nodes: dict[str, Node]) -> Edge | None:
        """The edge if it connects two existing nodes (its other problems are reported but don't drop it)."""
        if not isinstance(raw, Mapping):
            self.add(f"edges[{index}] must be an object, got {json_kind_phrase(raw)}")
            return None
        source, target = raw.get("source"), raw.get("target")
        handle = self._read_handle(index, raw)
        edge_id = self._read_edge_id(index, raw, source, target, handle)
        label = f"edge {_quote(edge_id)}" if edge_id else f"edges[{index}]"
        ends_exist = True
        for end_name, end in (("source", source), ("target", target)):
            if not isinstance(end, str):
                got = json_kind_phrase(end) if end_name in raw else "nothing"
                self.add(f'{label}: "{end_name}" must be a node id, got {got}', edge_id=edge_id)
                ends_exist = False
            elif end not in nodes:
                self.add(f"{label}: {end_name} {_quote(end)} is not a node of this graph", edge_id=edge_id)
                ends_exist = False
        if not ends_exist or edge_id is None:
            return None
        return Edge(edge_id, str(source), str(target), handle)

    def _read_handle(self, index: int, raw: Mapping[object, object]) -> str | None:
        handle = raw.get("sourceHandle")
        if handle is None or handle == "":
            return None
        if isinstance(handle, str) and len(handle) <= MAX_HANDLE_LENGTH:
            return handle
        self.add(f'edges[{index}]: "sourceHandle" must be a string of at most {MAX_HANDLE_LENGTH} characters')
        return None

    def _read_edge_id(
        self, index: int, raw: Mapping[object, object], source: object, target: object, handle: str | None
    ) -> str | None:
        edge_id = raw.get("id")
        if isinstance(edge_id, str) and 0 < len(edge_id) <= MAX_EDGE_ID_LENGTH:
            return edge_id
        if edge_id is not None:
            self.add(f'edges[{index}]: "id" must be a non-empty string of at most {MAX_EDGE_ID_LENGTH} characters')
        if isinstance(source, str) and isinstance(target, str):
            return f"{source}->{target}:{handle}" if handle is not None else f"{source}->{target}"
        return None

    def _check_handle(self, label: str, edge: Edge, nodes: dict[str, Node]) -> None:
        source, target = nodes[edge.source], nodes[edge.target]
        where = {"node_id": source.id, "edge_id": edge.id}
        if edge.source == edge.target:
            self.add(f"{label}: connects node {_quote(edge.source)} to itself", **where)
        if target.type == START_TYPE:
            self.add(
                f"{label}: the start node {_quote(target.id)} can't have incoming edges",
                node_id=target.id,
                edge_id=edge.id,
            )
        spec = self.specs.get(source.type)
        if spec is None:
            return
        node = f"node {_quote(source.id)} ({source.type})"
        # A type may read its handles from the node's data (a switch's cases): an edge from a case that was
        # removed or renamed is reported here like any other unknown handle.
        handles = spec.edge_handles(source.data)
        if _is_terminal(source, spec):
            self.add(f"{label}: {node} can't have outgoing edges", **where)
        elif (
            edge.source_handle == ERROR_HANDLE
            and not spec.can_fail
            and (handles is None or ERROR_HANDLE not in handles)
        ):
            # An error path from a node that cannot fail would never be taken; on a type that takes every edge
            # it would not even be told apart from the others.
            self.add(f'{label}: {node} cannot fail, so it has no "error" handle{_one_of(handles)}', **where)
        elif edge.source_handle is None and spec.required_handles:
            self.add(f'{label}: {node} needs a "sourceHandle"{_one_of(handles)}', **where)
        elif edge.source_handle is not None and handles is not None and edge.source_handle not in handles:
            self.add(f"{label}: {node} has no handle {_quote(edge.source_handle)}{_one_of(handles)}", **where)

    # The graph as a whole

    def _check_structure(self, nodes: dict[str, Node], edges: list[Edge]) -> str | None:
        """Check starts, ends, reachability, cycles and dead ends; return the start id if there is one."""
        outgoing: dict[str, list[str]] = {node_id: [] for node_id in nodes}
        for edge in edges:
            outgoing[edge.source].append(edge.target)
        start_id = self._check_start_and_end(nodes)
        if start_id is not None:
            self._check_reachable(nodes, outgoing, start_id)
        self._check_cycles(nodes, outgoing)
        self._check_dead_ends(nodes, outgoing)
        if not self.issues and start_id is not None and not self.recorded:
            self._check_one_end_per_run(nodes, edges, start_id)
        return start_id

    def _check_start_and_end(self, nodes: dict[str, Node]) -> str | None:
        starts = [node.id for node in nodes.values() if node.type == START_TYPE]
        if not any(node.type == END_TYPE for node in nodes.values()):
            self.add("the graph has no end node; add at least one")
        if len(starts) == 1:
            return starts[0]
        if not starts:
            self.add("the graph has no start node; add exactly one")
        else:
            names = ", ".join(_quote(node_id) for node_id in starts[:10])
            self.add(f"the graph has {len(starts)} start nodes ({names}); it needs exactly one")
        return None

    def _check_reachable(self, nodes: dict[str, Node], outgoing: dict[str, list[str]], start_id: str) -> None:
        reached = {start_id}
        queue = deque([start_id])
        while queue:
            for target in outgoing[queue.popleft()]:
                if target not in reached:
                    reached.add(target)
                    queue.append(target)
        for node_id in nodes:
            if node_id not in reached:
                self.add(f"node {_quote(node_id)} can't be reached from the start node", node_id=node_id)

    def _check_cycles(self, nodes: dict[str, Node], outgoing: dict[str, list[str]]) -> None:
        """One issue per group of nodes that loop back on each other, naming one cycle through them."""
        order = {node_id: index for index, node_id in enumerate(nodes)}
        loops = [sorted(group, key=order.__getitem__) for group in strongly_connected(outgoing) if len(group) > 1]
        for group in sorted(loops, key=lambda group: order[group[0]]):
            cycle = cycle_through(group[0], set(group), outgoing)
            self.add("cycle: " + " -> ".join(_clip(node_id) for node_id in cycle), node_id=group[0])

    def _check_dead_ends(self, nodes: dict[str, Node], outgoing: dict[str, list[str]]) -> None:
        for node in nodes.values():
            spec = self.specs.get(node.type)
            if spec is not None and not outgoing[node.id] and not _is_terminal(node, spec):
                self.add(
                    f"node {_quote(node.id)} has no outgoing edge; connect it or end the path with an end node",
                    node_id=node.id,
                )

    def _check_one_end_per_run(self, nodes: dict[str, Node], edges: list[Edge], start_id: str) -> None:
        """A run's output is what its end node gives; two different end nodes reached in the same run would
        leave it to whichever finished last. So branches that run together (after a fork, or any node whose
        edges fire together) must meet again (a join) before they end, or end at the same end node."""
        clash = _ends_reached_together(nodes, edges, start_id, self.specs)
        if clash is not None:
            first, second = clash
            self.add(
                f"end nodes {_quote(first)} and {_quote(second)} can both be reached in one run, by branches that "
                "run together: the run's output would depend on which finishes last. Join the branches before "
                "one end node, or make the paths exclusive (if/else)",
                node_id=second,
            )


# How many node executions the end-node check may simulate; past it (a graph with very many decisions) the
# check gives up and accepts the graph rather than take seconds to validate it.


_MAX_SIMULATED_STEPS = 20_000


def _ends_reached_together(
    nodes: dict[str, Node], edges: list[Edge], start_id: str, specs: Mapping[str, NodeSpec]
) -> tuple[str, str] | None:
    """Two end nodes that one run can reach, found by following every possible run (each node with handles may
    take any of the handles its edges have; any other node fires all its edges) with the engine's rules: an
    edge is fired or dead, and a node runs once all its incoming edges are resolved and one of them fired."""
    outgoing: dict[str, list[Edge]] = {node_id: [] for node_id in nodes}
    incoming_count = dict.fromkeys(nodes, 0)
    for edge in edges:
        outgoing[edge.source].append(edge)
        incoming_count[edge.target] += 1

    def choices(node_id: str) -> list[str | None]:
        node = nodes[node_id]
        spec = specs.get(node.type)
        if spec is None or spec.handles_for(node.data) is None:
            # Every edge but its error path, or (when it has one and can fail) the error path alone.
            failing = spec is not None and spec.can_fail
            errors = failing and any(edge.source_handle == ERROR_HANDLE for edge in outgoing[node_id])
            return [None, ERROR_HANDLE] if errors else [None]
        return list(dict.fromkeys(edge.source_handle for edge in outgoing[node_id] if edge.source_handle))

    # A state: nodes ready to run, edges resolved per node, nodes one of whose edges fired, end nodes reached.
    stack: list[tuple[tuple[str, ...], dict[str, int], frozenset[str], frozenset[str]]] = [
        ((start_id,), {}, frozenset(), frozenset())
    ]
    steps = 0
    while stack:
        ready, resolved, fired, ends = stack.pop()
        if not ready:
            continue
        node_id, rest = ready[0], ready[1:]
        if nodes[node_id].type == END_TYPE:
            if ends and node_id not in ends:
                return min(ends), node_id
            stack.append((rest, resolved, fired, ends | {node_id}))
            continue
        for handle in choices(node_id):
            steps += 1
            if steps > _MAX_SIMULATED_STEPS:
                return None
            now_resolved, now_fired, now_ready = dict(resolved), set(fired), list(rest)
            pending = deque((edge, _fires(edge, handle)) for edge in outgoing[node_id])
            while pending:
                edge, fires = pending.popleft()
                target = edge.target
                now_resolved[target] = now_resolved.get(target, 0) + 1
                if fires:
                    now_fired.add(target)
                if now_resolved[target] == incoming_count[target]:
                    if target in now_fired:
                        now_ready.append(target)
                    else:  # skipped: its edges are dead too
                        pending.extend((out, False) for out in outgoing[target])
            stack.append((tuple(now_ready), now_resolved, frozenset(now_fired), ends))
    return None


def _fires(edge: Edge, handle: str | None) -> bool:
    """Whether `edge` fires when its source takes `handle`, as the engine decides (runs/engine/core.py): no
    handle fires every edge but the error path."""
    if handle is None:
        return edge.source_handle != ERROR_HANDLE
    return edge.source_handle == handle


def _is_terminal(node: Node, spec: NodeSpec) -> bool:
    # The contract gives `end` no outgoing handles, whatever its spec says.
    return node.type == END_TYPE or not spec.allows_outgoing


def _error_sort_key(error: ValidationError) -> tuple[tuple[int, int, str], ...]:
    # Paths mix list indexes and keys; keep indexes in numeric order and never compare an int with a str.
    return tuple((0, part, "") if isinstance(part, int) else (1, 0, str(part)) for part in error.absolute_path)


def _error_field(error: ValidationError, container: str) -> str | None:
    """The dotted path the error is about; for a missing property, the property itself."""
    if error.validator == "required" and isinstance(error.validator_value, list):
        for name in error.validator_value:
            if isinstance(name, str) and error.message.startswith(repr(name)):
                return f"{container}.{name}" if container else name
    return container or None


def _dotted(path: Iterable[object]) -> str:
    return ".".join(str(part) for part in path)


def _one_of(handles: frozenset[str] | None) -> str:
    return f"; use one of: {', '.join(sorted(handles))}" if handles else ""


def _has_string_keys(value: Mapping[object, object]) -> TypeGuard[Mapping[str, object]]:
    return all(isinstance(key, str) for key in value)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value  # NaN != NaN


def _quote(text: str) -> str:
    return json.dumps(_clip(text), ensure_ascii=False)


def _clip(text: str, limit: int = _MAX_SHOWN) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
