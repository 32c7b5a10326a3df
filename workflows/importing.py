"""Import and export of workflow documents: the contract's own, and the original FlowNova export.

Pure functions, no Django: the API calls `import_document` and then validates and stores the result like any
other workflow (so a converted graph is checked exactly as one written by hand).

What `import_document` accepts (also in docs/CONTRACT.md, Import formats):

- Our document: ``{"name", "description"?, "graph": {"nodes", "edges"}}``. It is stored as the graph
  validator normalises it (unknown keys on nodes and edges dropped, every edge given an id), so exporting an
  export again gives an equal document.
- The graph's ``nodes`` and ``edges`` at the top level instead of under ``graph``.
- Other top-level keys (an export's ``id``, ``version``, ``exported_at``...) are ignored.
- The original FlowNova export, recognised when a node has ``data.type`` but no ``type`` of its own, or an edge
  has ``source_handle``. Then, for every node (what is particular to a type, each node type declares: its other
  names, fields, values, output fields and handles there, its tool fields, whether it has a model or an output
  schema; nodes/base.py, NodeType):

  - the type is ``data.type`` (a top-level ``type``, the canvas component's name there, is ignored when
    ``data.type`` is given); CamelCase, ``-`` and spaces become snake_case (``ifElse``, ``if-else`` ->
    ``if_else``), and ``if``, ``ifelse``, ``condition`` -> ``if_else``; ``approval``, ``human_approval`` ->
    ``user_approval``; ``guardrail`` -> ``guardrails``;
  - the config is ``data`` without ``type``, merged with ``data.config`` (an object; its keys win);
    ``data.label`` stays as the node's ``label``;
  - for if/else nodes ``lhs``, ``rhs`` and ``condition`` become ``left``, ``right`` and ``operator``, with the
    condition names of CONDITION_NAMES (case, ``-`` and spaces don't matter; our own operators are accepted
    too). An unknown condition is refused with an error naming the node.

  - on LLM nodes (agent, guardrails, cognitive) ``llm_model`` becomes ``model``;
  - on agents, structured output becomes ``output_schema``: ``structured_output_schema`` (a JSON Schema, as an
    object or as JSON text) when ``structured_output`` is on or not given, or ``structured_output`` itself when
    it is the schema. Switched off (``false``), the schema was not used and is dropped;
  - tools are named by the original FlowNova's ids (``tools`` or ``tool_ids`` on agents and cognitive nodes,
    ``tool_id`` or ``tool`` on tool nodes). Each id becomes the name of one of the importing user's tools: the
    id itself when it is such a name, the ``name`` of an entry written as ``{"id", "name"}``, or the name the
    document's top-level ``tools`` list (``[{"id", "name"}, ...]``) gives the id;
  - templates that read the original if/else's fields (``lhs_value``, ``rhs_value``) read ours (``left_value``,
    ``right_value``): ``{{nodes.<if/else id>.lhs_value}}`` anywhere, ``{{input.lhs_value}}`` in the nodes
    after an if/else (before one, ``input`` is the run's input, so such a key is the user's own).

  Whatever can't be converted that way (an ``llm_model`` on a node without a model, a structured output with
  no usable schema, a tool id that names none of the user's tools, a value that contradicts one already
  given) is refused with an error naming the node and the field, rather than imported to behave differently.

  and for every edge: ``source_handle`` becomes ``sourceHandle`` (``target_handle`` is dropped), and on edges
  leaving an approval node the handles ``yes`` / ``no`` become ``approved`` / ``rejected``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeGuard

from nodes import node_types
from nodes.base import NodeType
from nodes.conditions import CONDITION_NAMES
from nodes.templating import rewrite_paths
from workflows.graph import GraphError, Issue

__all__ = [
    "CONDITION_NAMES",
    "DocumentError",
    "convert_seed_graph",
    "import_document",
    "is_seed_graph",
]

# The original FlowNova's fields naming tools by id, besides the field of ours (NodeType.tool_fields): for a list
# of names, also `tool_ids`, read after ours; for one name, `tool_id`, read before ours.
_ORIGINAL_TOOL_IDS = {"many": "tool_ids", "one": "tool_id"}
_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


class DocumentError(ValueError):
    """The document can't be imported. `errors` maps a top-level key (`name`, `description`, `graph`) to its
    problems: messages, or for `graph` the `Issue.as_dict()` of each, naming the node or edge."""

    def __init__(self, errors: dict[str, list[Any]]) -> None:
        super().__init__(errors)
        self.errors = errors


def import_document(doc: object, *, tool_names: Iterable[str] = ()) -> dict[str, Any]:
    """Our document `{name, description, graph}` from `doc` in either format. The graph is converted but not
    validated: the caller validates it as it validates every graph. `tool_names` are the importing user's
    tools, which the original FlowNova export's tool ids must resolve to."""
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
            graph = convert_seed_graph(graph, tool_names=tool_names, seed_tools=doc.get("tools"))
        except GraphError as exc:
            errors["graph"] = [issue.as_dict() for issue in exc.issues]
    if errors:
        raise DocumentError(errors)
    return {"name": name, "description": description, "graph": graph}


def is_seed_graph(graph: object) -> TypeGuard[Mapping[str, Any]]:
    """Whether `graph` is an original FlowNova export's (see the module docstring)."""
    if not isinstance(graph, Mapping):
        return False
    nodes, edges = graph.get("nodes"), graph.get("edges")
    if isinstance(nodes, list) and any(
        isinstance(node, Mapping) and "type" not in node and isinstance(_data(node).get("type"), str) for node in nodes
    ):
        return True
    return isinstance(edges, list) and any(isinstance(edge, Mapping) and "source_handle" in edge for edge in edges)


def convert_seed_graph(
    graph: Mapping[str, Any], *, tool_names: Iterable[str] = (), seed_tools: object = None
) -> dict[str, Any]:
    """An original FlowNova export's graph in our format. Raises GraphError listing every node it can't convert; other
    problems (a missing end, an unknown node type...) are left to graph validation, which names them.
    `tool_names` are the importing user's tools; `seed_tools` the document's own list of `{id, name}`."""
    issues: list[Issue] = []
    tools = _ToolResolver(tool_names, seed_tools)
    raw_nodes = graph.get("nodes")
    raw_edges = graph.get("edges")
    nodes = [_convert_node(raw, issues, tools) for raw in raw_nodes] if isinstance(raw_nodes, list) else raw_nodes
    types = {
        node["id"]: node.get("type")
        for node in (nodes if isinstance(nodes, list) else [])
        if isinstance(node, Mapping) and isinstance(node.get("id"), str)
    }
    edges = [_convert_edge(raw, types) for raw in raw_edges] if isinstance(raw_edges, list) else raw_edges
    if isinstance(nodes, list) and isinstance(edges, list):
        nodes = _rewrite_original_outputs(nodes, edges, types)
    if issues:
        raise GraphError(issues)
    converted: dict[str, Any] = {"nodes": nodes}
    if edges is not None:
        converted["edges"] = edges
    return converted


def _convert_node(raw: object, issues: list[Issue], tools: _ToolResolver) -> object:
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
    declared = _declared(node_type)
    if declared is not None:
        _convert_fields(label, node_id, declared, config, issues)
    refuse = _Refusals(label, node_id, issues)
    _convert_model(node_type, config, refuse)
    _convert_structured_output(node_type, config, refuse)
    _convert_tools(declared, config, refuse, tools)
    node: dict[str, Any] = {"id": node_id, "type": node_type}
    if "position" in raw:
        node["position"] = raw["position"]
    node["data"] = config
    return node


def _convert_fields(
    label: str, node_id: object, node_type: NodeType, config: dict[str, Any], issues: list[Issue]
) -> None:
    """The keys (and the names of values) that the type declares the original FlowNova export wrote differently,
    as ours: an if/else's `lhs`, `rhs` and `condition`. A key of ours given as well wins."""
    for seed_key, our_key in node_type.original_fields.items():
        if seed_key not in config:
            continue
        value = config.pop(seed_key)
        names = node_type.original_values.get(our_key)
        if names is not None:
            ours = names.get(_snake(value)) if isinstance(value, str) else None
            if ours is None:
                known = ", ".join(sorted(name for name in names if name[0].isalpha()))
                issues.append(
                    Issue(
                        f"{label}: unknown {node_type.title.lower()} {seed_key} {_show(value)}; "
                        f"known {seed_key}s: {known}",
                        field=seed_key,
                        **_where(node_id),
                    )
                )
                continue
            value = ours
        config.setdefault(our_key, value)


def _declared(node_type: object) -> NodeType | None:
    return node_types().get(node_type) if isinstance(node_type, str) else None


def _types_with(key: str) -> list[str]:
    """Our node types whose data has `key` (a `model`, an `output_schema`)."""
    return sorted(name for name, node_type in node_types().items() if key in node_type.spec.data_schema["properties"])


class _Refusals:
    """Collects the issues of one node: each names the node and the field at fault."""

    def __init__(self, label: str, node_id: object, issues: list[Issue]) -> None:
        self.label = label
        self.node_id = node_id
        self.issues = issues

    def __call__(self, field: str, message: str) -> None:
        self.issues.append(Issue(f"{self.label}: {field}: {message}", field=field, **_where(self.node_id)))


def _blank(value: object) -> bool:
    """A field of the original FlowNova export left empty, which set nothing there either."""
    return value is None or (isinstance(value, str) and not value.strip())


def _convert_model(node_type: object, config: dict[str, Any], refuse: _Refusals) -> None:
    if "llm_model" not in config:
        return
    model = config.pop("llm_model")
    if _blank(model):
        return
    with_model = _types_with("model")
    if node_type not in with_model:
        refuse("llm_model", f"a {_show(node_type)} node has no model here; only {', '.join(with_model)} do")
    elif not isinstance(model, str):
        refuse("llm_model", f"must be a model name (a string), not {_kind(model)}")
    elif not _blank(config.get("model")) and config["model"] != model.strip():
        refuse("llm_model", f"{_show(model)} contradicts the node's model {_show(config['model'])}")
    else:
        config["model"] = model.strip()


def _convert_structured_output(node_type: object, config: dict[str, Any], refuse: _Refusals) -> None:
    if "structured_output" not in config and "structured_output_schema" not in config:
        return
    switch = config.pop("structured_output", None)
    schema = config.pop("structured_output_schema", None)
    if switch is False or (_blank(switch) and _blank(schema)):
        return  # off in the original FlowNova too: the answer stays text
    field = "structured_output_schema" if not _blank(schema) else "structured_output"
    with_schema = _types_with("output_schema")
    if node_type not in with_schema:
        refuse(
            field, f"a {_show(node_type)} node has no structured output here; only {', '.join(with_schema)} nodes do"
        )
        return
    if _blank(schema) and isinstance(switch, Mapping):
        schema = switch  # the switch is the schema itself
    elif switch not in (None, True) and not isinstance(switch, Mapping):
        refuse("structured_output", f"must be true, false or a JSON Schema object, not {_kind(switch)}")
        return
    if _blank(schema):
        refuse("structured_output", "is on, but there is no structured_output_schema to check the answer against")
        return
    if isinstance(schema, str):
        try:
            schema = json.loads(schema)
        except ValueError as exc:
            refuse(field, f"is not valid JSON ({exc})")
            return
    if not isinstance(schema, Mapping):
        refuse(field, f"must be a JSON Schema object, not {_kind(schema)}")
        return
    if config.get("output_schema") is not None and config["output_schema"] != schema:
        refuse(field, "contradicts the node's output_schema")
        return
    config["output_schema"] = dict(schema)


class _ToolResolver:
    """The original FlowNova export's tool ids -> the names of the importing user's tools."""

    def __init__(self, tool_names: Iterable[str], seed_tools: object) -> None:
        self.names = frozenset(tool_names)
        self.seed_names: dict[str, str] = {}
        for entry in seed_tools if isinstance(seed_tools, list) else []:
            if isinstance(entry, Mapping) and isinstance(entry.get("name"), str) and _is_id(entry.get("id")):
                self.seed_names[str(entry["id"])] = entry["name"]

    def name(self, entry: object) -> str | None:
        """Our tool's name for one entry of the original export (an id, or an object with id and/or name), or None."""
        candidates: list[object] = []
        if isinstance(entry, Mapping):
            candidates = [entry.get("name"), entry.get("id")]
        elif _is_id(entry):
            candidates = [entry]
        for candidate in candidates:
            if isinstance(candidate, str) and candidate in self.names:
                return candidate
            named = self.seed_names.get(str(candidate)) if _is_id(candidate) else None
            if named in self.names:
                return named
        return None

    def describe(self, entry: object) -> str:
        if isinstance(entry, Mapping):
            entry = entry.get("name", entry.get("id"))
        named = self.seed_names.get(str(entry)) if _is_id(entry) else None
        return f"{_show(entry)} (named {_show(named)} in the document)" if named else _show(entry)


def _is_id(value: object) -> bool:
    return isinstance(value, (str, int)) and not isinstance(value, bool)


def _convert_tools(node_type: NodeType | None, config: dict[str, Any], refuse: _Refusals, tools: _ToolResolver) -> None:
    """Tool ids -> names, in the data keys the type declares as naming tools (NodeType.tool_fields)."""
    for key, how in (node_type.tool_fields if node_type is not None else {}).items():
        if how == "many":
            _convert_tool_list(key, config, refuse, tools)
        else:
            _convert_one_tool(key, config, refuse, tools)


def _convert_tool_list(key: str, config: dict[str, Any], refuse: _Refusals, tools: _ToolResolver) -> None:
    for field in (key, _ORIGINAL_TOOL_IDS["many"]):
        if field not in config:
            continue
        entries = config.pop(field)
        if _blank(entries):
            continue
        if not isinstance(entries, list):
            refuse(field, f"must be a list of tool ids, not {_kind(entries)}")
            continue
        names = [tools.name(entry) for entry in entries]
        missing = [tools.describe(entry) for entry, name in zip(entries, names, strict=True) if name is None]
        if missing:
            refuse(field, _unknown_tools(missing))
            continue
        known = config.get(key) or []
        config[key] = list(dict.fromkeys([*known, *(name for name in names if name is not None)]))


def _convert_one_tool(key: str, config: dict[str, Any], refuse: _Refusals, tools: _ToolResolver) -> None:
    id_field = _ORIGINAL_TOOL_IDS["one"]
    resolved: dict[str, str] = {}
    for field in (id_field, key):
        if _blank(config.get(field)):
            continue
        entry = config.pop(field)
        name = tools.name(entry)
        if name is None:
            refuse(field, _unknown_tools([tools.describe(entry)]))
        else:
            resolved[field] = name
    if len(set(resolved.values())) > 1:
        refuse(id_field, f"names the tool {resolved[id_field]!r}, but the node's tool is {resolved[key]!r}")
    elif resolved:
        config[key] = next(iter(resolved.values()))


def _unknown_tools(described: list[str]) -> str:
    which = (
        "is not the id or name of one of your tools" if len(described) == 1 else "are not ids or names of your tools"
    )
    return f"{', '.join(described)} {which}: register the tool first (Tools, or /api/tools/), then import again"


def _rewrite_original_outputs(nodes: list[Any], edges: list[Any], types: dict[str, object]) -> list[Any]:
    """Point templates that read output fields the original FlowNova named differently (an if/else's `lhs_value`,
    as its type declares) at ours (see the module docstring)."""
    renames: dict[str, Mapping[str, str]] = {}  # node id -> the renames of its own output fields
    by_type: dict[str, set[str]] = {}  # type -> its nodes, whose output fields are renamed
    for node_id, type_name in types.items():
        declared = _declared(type_name)
        if declared is not None and declared.original_outputs:
            renames[node_id] = declared.original_outputs
            by_type.setdefault(declared.type, set()).add(node_id)
    if not renames:
        return nodes
    outgoing: dict[str, list[str]] = {}
    for edge in edges:
        if isinstance(edge, Mapping) and isinstance(edge.get("source"), str) and isinstance(edge.get("target"), str):
            outgoing.setdefault(edge["source"], []).append(edge["target"])
    after: dict[str, dict[str, str]] = {}  # node id -> the renames of the fields its input may hold
    for node_ids in by_type.values():
        names = renames[next(iter(node_ids))]  # the same for every node of the type
        for node_id in _reachable(node_ids, outgoing):
            after.setdefault(node_id, {}).update(names)

    def rewrite_for(node_id: object) -> Callable[[str], str]:
        def rewrite(path: str) -> str:
            segments = path.split(".")
            if len(segments) >= 3 and segments[0] == "nodes" and segments[1] in renames:
                index, names = 2, renames[segments[1]]
            elif len(segments) >= 2 and segments[0] == "input" and isinstance(node_id, str) and node_id in after:
                index, names = 1, after[node_id]
            else:
                return path
            segments[index] = names.get(segments[index], segments[index])
            return ".".join(segments)

        return rewrite

    converted = []
    for node in nodes:
        if isinstance(node, dict) and isinstance(node.get("data"), Mapping):
            node = {**node, "data": rewrite_paths(node["data"], rewrite_for(node.get("id")))}
        converted.append(node)
    return converted


def _reachable(sources: set[str], outgoing: Mapping[str, list[str]]) -> set[str]:
    """Every node after one of `sources` (not the sources themselves, unless one follows another)."""
    seen: set[str] = set()
    stack = [target for source in sources for target in outgoing.get(source, [])]
    while stack:
        node_id = stack.pop()
        if node_id not in seen:
            seen.add(node_id)
            stack.extend(outgoing.get(node_id, []))
    return seen


def _convert_edge(raw: object, types: dict[str, object]) -> object:
    if not isinstance(raw, Mapping):
        return raw
    edge = {key: raw[key] for key in ("id", "source", "target") if key in raw}
    handle = raw.get("sourceHandle", raw.get("source_handle"))
    source = raw.get("source")
    declared = _declared(types.get(source)) if isinstance(source, str) else None
    if isinstance(handle, str) and declared is not None and declared.original_handles:
        handle = declared.original_handles.get(handle.lower(), handle)
    if handle is not None:
        edge["sourceHandle"] = handle
    return edge


def _our_type(seed_type: str) -> str:
    """Our type for the original FlowNova's name of it: in snake_case, or another name our type declares."""
    name = _snake(seed_type)
    aliases = {alias: our for our, node_type in node_types().items() for alias in node_type.original_names}
    return aliases.get(name, name)


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
