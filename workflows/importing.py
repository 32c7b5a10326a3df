"""Import and export of workflow documents: the contract's own, and the seed system's export format.

Pure functions, no Django: the API calls `import_document` and then validates and stores the result like any
other workflow (so a converted graph is checked exactly as one written by hand).

What `import_document` accepts (and documents in the README):

- Our document: ``{"name", "description"?, "graph": {"nodes", "edges"}}``. It is stored as the graph
  validator normalises it (unknown keys on nodes and edges dropped, every edge given an id), so exporting an
  export again gives an equal document.
- The graph's ``nodes`` and ``edges`` at the top level instead of under ``graph``.
- Other top-level keys (an export's ``id``, ``version``, ``exported_at``...) are ignored.
- The seed system's format, recognised when a node has ``data.type`` but no ``type`` of its own, or an edge
  has ``source_handle``. Then, for every node:

  - the type is ``data.type`` (a top-level ``type``, the canvas component's name there, is ignored when
    ``data.type`` is given); CamelCase, ``-`` and spaces become snake_case (``ifElse``, ``if-else`` ->
    ``if_else``), and ``if``, ``ifelse``, ``condition`` -> ``if_else``; ``approval``, ``human_approval`` ->
    ``user_approval``; ``guardrail`` -> ``guardrails``;
  - the config is ``data`` without ``type``, merged with ``data.config`` (an object; its keys win);
    ``data.label`` stays as the node's ``label``;
  - for if/else nodes ``lhs``, ``rhs`` and ``condition`` become ``left``, ``right`` and ``operator``, with the
    condition names of CONDITION_NAMES (case, ``-`` and spaces don't matter; our own operators are accepted
    too). An unknown condition is refused with an error naming the node.

  and for every edge: ``source_handle`` becomes ``sourceHandle`` (``target_handle`` is dropped), and on edges
  leaving an approval node the handles ``yes`` / ``no`` become ``approved`` / ``rejected``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from workflows.graph import GraphError, Issue

__all__ = [
    "CONDITION_NAMES",
    "DocumentError",
    "convert_seed_graph",
    "import_document",
    "is_seed_graph",
]

# The seed system's if/else condition names (normalised: lower case, snake_case) -> our operators.
CONDITION_NAMES: dict[str, str] = {
    "equals": "==",
    "equal": "==",
    "eq": "==",
    "==": "==",
    "=": "==",
    "not_equals": "!=",
    "not_equal": "!=",
    "neq": "!=",
    "ne": "!=",
    "!=": "!=",
    "greater_than": ">",
    "gt": ">",
    ">": ">",
    "less_than": "<",
    "lt": "<",
    "<": "<",
    "greater_than_or_equal": ">=",
    "greater_than_or_equals": ">=",
    "greater_or_equal": ">=",
    "gte": ">=",
    "ge": ">=",
    ">=": ">=",
    "less_than_or_equal": "<=",
    "less_than_or_equals": "<=",
    "less_or_equal": "<=",
    "lte": "<=",
    "le": "<=",
    "<=": "<=",
    "contains": "contains",
    "not_contains": "not_contains",
    "does_not_contain": "not_contains",
    "is_empty": "is_empty",
    "empty": "is_empty",
    "is_not_empty": "is_not_empty",
    "not_empty": "is_not_empty",
}

_TYPE_ALIASES = {
    "if": "if_else",
    "ifelse": "if_else",
    "condition": "if_else",
    "approval": "user_approval",
    "human_approval": "user_approval",
    "guardrail": "guardrails",
}
_APPROVAL_HANDLES = {"yes": "approved", "no": "rejected"}
_IF_ELSE_KEYS = {"lhs": "left", "rhs": "right"}
_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


class DocumentError(ValueError):
    """The document can't be imported. `errors` maps a top-level key (`name`, `description`, `graph`) to its
    problems: messages, or for `graph` the `Issue.as_dict()` of each, naming the node or edge."""

    def __init__(self, errors: dict[str, list[Any]]) -> None:
        super().__init__(errors)
        self.errors = errors


def import_document(doc: object) -> dict[str, Any]:
    """Our document `{name, description, graph}` from `doc` in either format. The graph is converted but not
    validated: the caller validates it as it validates every graph."""
    if not isinstance(doc, Mapping):
        raise DocumentError({"non_field_errors": [f"a workflow document must be a JSON object, not {_kind(doc)}"]})
    errors: dict[str, list[Any]] = {}
    name = doc.get("name")
    if not isinstance(name, str) or not name.strip():
        errors["name"] = ["a workflow document needs a non-empty string `name`"]
    description = doc.get("description")
    if description is None:
        description = ""
    elif not isinstance(description, str):
        errors["description"] = [f"`description` must be a string, not {_kind(description)}"]
    graph: object
    if "graph" in doc:
        graph = doc["graph"]
    elif "nodes" in doc:
        graph = {"nodes": doc["nodes"], "edges": doc.get("edges", [])}
    else:
        errors["graph"] = [Issue("a workflow document needs a `graph` (or top-level `nodes` and `edges`)").as_dict()]
        graph = None
    if graph is not None and is_seed_graph(graph):
        try:
            graph = convert_seed_graph(graph)
        except GraphError as exc:
            errors["graph"] = [issue.as_dict() for issue in exc.issues]
    if errors:
        raise DocumentError(errors)
    return {"name": name, "description": description, "graph": graph}


def is_seed_graph(graph: object) -> bool:
    """Whether `graph` is in the seed system's format (see the module docstring)."""
    if not isinstance(graph, Mapping):
        return False
    nodes, edges = graph.get("nodes"), graph.get("edges")
    if isinstance(nodes, list) and any(
        isinstance(node, Mapping) and "type" not in node and isinstance(_data(node).get("type"), str) for node in nodes
    ):
        return True
    return isinstance(edges, list) and any(isinstance(edge, Mapping) and "source_handle" in edge for edge in edges)


def convert_seed_graph(graph: Mapping[str, Any]) -> dict[str, Any]:
    """The seed system's graph in our format. Raises GraphError listing every node it can't convert; other
    problems (a missing end, an unknown node type...) are left to graph validation, which names them."""
    issues: list[Issue] = []
    raw_nodes = graph.get("nodes")
    raw_edges = graph.get("edges")
    nodes = [_convert_node(raw, issues) for raw in raw_nodes] if isinstance(raw_nodes, list) else raw_nodes
    types = {
        node["id"]: node.get("type")
        for node in (nodes if isinstance(nodes, list) else [])
        if isinstance(node, Mapping) and isinstance(node.get("id"), str)
    }
    edges = [_convert_edge(raw, types) for raw in raw_edges] if isinstance(raw_edges, list) else raw_edges
    if issues:
        raise GraphError(issues)
    converted: dict[str, Any] = {"nodes": nodes}
    if edges is not None:
        converted["edges"] = edges
    return converted


def _convert_node(raw: object, issues: list[Issue]) -> object:
    if not isinstance(raw, Mapping):
        return raw  # the validator reports it with its index
    data = _data(raw)
    seed_type = data.get("type", raw.get("type"))
    node_type = _our_type(seed_type) if isinstance(seed_type, str) else seed_type
    node_id = raw.get("id")
    label = f"node {_show(node_id)}" if isinstance(node_id, str) else "a node"
    config = {key: value for key, value in data.items() if key not in ("type", "config")}
    extra = data.get("config")
    if isinstance(extra, Mapping):
        config.update(extra)
    elif extra is not None:
        issues.append(Issue(f"{label}: data.config must be an object, not {_kind(extra)}", **_where(node_id)))
    if node_type == "if_else":
        config = _convert_condition(label, node_id, config, issues)
    node: dict[str, Any] = {"id": node_id, "type": node_type}
    if "position" in raw:
        node["position"] = raw["position"]
    node["data"] = config
    return node


def _convert_condition(label: str, node_id: object, config: dict[str, Any], issues: list[Issue]) -> dict[str, Any]:
    for seed_key, our_key in _IF_ELSE_KEYS.items():
        if seed_key in config:
            value = config.pop(seed_key)
            config.setdefault(our_key, value)
    if "condition" not in config:
        return config
    condition = config.pop("condition")
    operator = CONDITION_NAMES.get(_snake(condition)) if isinstance(condition, str) else None
    if operator is None:
        known = ", ".join(sorted(name for name in CONDITION_NAMES if name[0].isalpha()))
        issues.append(
            Issue(
                f"{label}: unknown if/else condition {_show(condition)}; known conditions: {known}",
                field="condition",
                **_where(node_id),
            )
        )
    else:
        config.setdefault("operator", operator)
    return config


def _convert_edge(raw: object, types: dict[str, object]) -> object:
    if not isinstance(raw, Mapping):
        return raw
    edge = {key: raw[key] for key in ("id", "source", "target") if key in raw}
    handle = raw.get("sourceHandle", raw.get("source_handle"))
    source = raw.get("source")
    if isinstance(handle, str) and isinstance(source, str) and types.get(source) == "user_approval":
        handle = _APPROVAL_HANDLES.get(handle.lower(), handle)
    if handle is not None:
        edge["sourceHandle"] = handle
    return edge


def _our_type(seed_type: str) -> str:
    name = _snake(seed_type)
    return _TYPE_ALIASES.get(name, name)


def _snake(name: str) -> str:
    name = _CAMEL_BOUNDARY.sub("_", name.strip())
    return re.sub(r"[\s-]+", "_", name).lower()


def _data(node: Mapping[str, Any]) -> Mapping[str, Any]:
    data = node.get("data")
    return data if isinstance(data, Mapping) else {}


def _where(node_id: object) -> dict[str, str]:
    return {"node_id": node_id} if isinstance(node_id, str) else {}


def _show(value: object, limit: int = 80) -> str:
    """A value quoted as JSON for a message, clipped: it came from the user and may be huge."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _kind(value: object) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number" if isinstance(value, (int, float)) else type(value).__name__
    )
