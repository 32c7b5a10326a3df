"""What a node type is: a validation spec, an `execute` function from a context to a result, and everything the
editor, the engine and the importer need to know about it, declared in one `NodeType`.

Handlers are plain Python: they read their context, may call out (LLM, HTTP) and return a `NodeResult`. They
never write to the database; the engine's services record what they return. What they reach beyond their
input (the tools of the run's project, the LLM client, graph validation) comes through the context, so this package
imports nothing from the apps above it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from nodes import limits, templating
from nodes.spec import Node, NodeSpec

# Further attempts after a transient failure or a lost attempt, for a node that sets no `retries`.
DEFAULT_RETRIES = 2

# How the editor shows a type that declares nothing (the same defaults as frontend/src/flow/catalogue.js).
NEUTRAL_COLOUR = "#868e96"
DEFAULT_GROUP = "Other"
DEFAULT_ORDER = 1000
# Form widgets a data_schema property may ask for with "x-widget", beyond what its JSON Schema implies:
# long template text, a short value that may be a template, a list of the project's tools, one of them, one of the
# saved workflows the user may run (picked from the API's list).
WIDGETS = ("textarea", "template", "tools", "tool", "workflow")
# How a data key names the project's tools (NodeType.tool_fields): one name, or a list of names.
TOOL_FIELD_KINDS = ("one", "many")
_COLOUR = re.compile(r"#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6}|[0-9a-fA-F]{8})")

# Options every node type accepts, besides its own; the form shows them under "Advanced".
COMMON_PROPERTIES: dict[str, Any] = {
    "label": {"type": "string", "maxLength": 200, "title": "Label", "x-advanced": True},
    "retries": {"type": "integer", "minimum": 0, "maximum": 10, "title": "Retries", "x-advanced": True},
    "timeout_seconds": {
        "type": "number",
        "exclusiveMinimum": 0,
        "maximum": 86400,
        "title": "Timeout (seconds)",
        "x-advanced": True,
    },
}


def humanise(name: str) -> str:
    """`user_approval` -> "User approval": the title of a type, or the label of a field, that names none."""
    text = name.replace("_", " ")
    return text[:1].upper() + text[1:]


def field_schema(schema: Mapping[str, Any], *, title: str | None = None, widget: str | None = None) -> dict[str, Any]:
    """A copy of a property's JSON Schema with the form's hints: its label (`title`) and the widget people
    write it with (`x-widget`, one of WIDGETS). JSON Schema validators ignore both."""
    if widget is not None and widget not in WIDGETS:
        raise ValueError(f"x-widget must be one of {', '.join(WIDGETS)}, not {widget!r}")
    hints: dict[str, Any] = {}
    if title is not None:
        hints["title"] = title
    if widget is not None:
        hints["x-widget"] = widget
    return {**schema, **hints}


def data_schema(properties: Mapping[str, Any] | None = None, required: list[str] | None = None) -> dict[str, Any]:
    """A node's data schema: its own properties plus the common ones, each with a `title` (its key, humanised,
    unless it has one). Unknown keys are allowed (the canvas may keep its own there) but every known key is
    checked."""
    merged = {**COMMON_PROPERTIES, **(properties or {})}
    titled = {
        name: {"title": humanise(name), **prop} if isinstance(prop, Mapping) else prop for name, prop in merged.items()
    }
    schema: dict[str, Any] = {"type": "object", "properties": titled}
    if required:
        schema["required"] = required
    return schema


def template_check(*fields: str) -> Callable[[dict[str, Any]], list[tuple[str | None, str]]]:
    """A NodeSpec.check that reports malformed templates in the given data fields."""

    def check(data: dict[str, Any]) -> list[tuple[str | None, str]]:
        return [(name, message) for name in fields if name in data for message in templating.check_syntax(data[name])]

    return check


class NodeFailure(Exception):
    """A node that failed. `tool_calls` are the calls it made before failing: they are recorded all the same.
    `fields` are what the node's output carries besides `error` when the failure takes its error path (a
    tool's `result` and `status_code`)."""

    def __init__(
        self,
        message: str,
        *,
        tool_calls: list[dict[str, Any]] | None = None,
        fields: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.tool_calls = tool_calls or []
        self.fields = fields or {}


class NodeError(NodeFailure):
    """The node failed for good: retrying cannot help (bad configuration, a missing template path...)."""


class TransientNodeError(NodeFailure):
    """The node failed for a reason that may pass (a timeout, a 503): the engine retries it with backoff."""


@dataclass(frozen=True)
class WaitRequest:
    """Returned by a node that pauses the run for a person. `data` is what the person needs to see."""

    message: str
    data: dict[str, Any]
    assignees: list[str] = field(default_factory=list)
    allow_self_approval: bool = True
    editable_fields: list[str] = field(default_factory=list)
    timeout_seconds: float | None = None
    timeout_action: str = ""


@dataclass(frozen=True)
class ChildRunRequest:
    """Returned by a node that runs a workflow as a child run: the engine starts it and completes the node with
    the child's output when the child ends.

    Either `graph`, a workflow of the node's own (cognitive), which runs as the parent's workflow; or
    `workflow_id`, a saved workflow (subworkflow), which the engine loads at `workflow_version` (None: as saved
    now) once it has checked that the run's owner may run it, that it is not too deep a child, and that `input`
    fits its start node's input_schema (else the node fails, saying why).

    With `items` (a saved workflow only), one child run per item, each item its input (`input` is unused), at
    most `concurrency` at a time; the node completes with `results`, the children's outputs in item order, and
    `failed`. A failed item fails the node, cancelling the others, unless `continue_on_error`: its entry is then
    `{"error": ...}`. A type with `NodeType.child_next` (a loop) runs its children one at a time instead, each
    one's next step decided by that hook."""

    graph: dict[str, Any] | None
    input: dict[str, Any]
    workflow_id: int | None = None
    workflow_version: int | None = None
    items: list[dict[str, Any]] | None = None
    concurrency: int = 1
    continue_on_error: bool = False

    def __post_init__(self) -> None:
        if (self.graph is None) == (self.workflow_id is None):
            raise ValueError("a ChildRunRequest names a graph or a saved workflow, one of the two")
        if self.items is not None and self.graph is not None:
            raise ValueError("a ChildRunRequest with items runs a saved workflow")
        if self.concurrency < 1:
            raise ValueError("a ChildRunRequest's concurrency is at least 1")


@dataclass(frozen=True)
class ChildStep:
    """What `NodeType.child_next` decides from: the node's data and input, the output of the child run that just
    succeeded, and which child that was (1 for the first)."""

    data: dict[str, Any]
    input: dict[str, Any]
    output: dict[str, Any] | None
    iteration: int


@dataclass
class NodeResult:
    fields: dict[str, Any] = field(default_factory=dict)  # the node's own new fields; output = {**input, **fields}
    handle: str | None = None  # the outgoing handle taken; None means every outgoing edge
    wait: WaitRequest | None = None  # set by nodes that pause the run
    child: ChildRunRequest | None = None  # set by nodes that run a generated workflow
    run_output: dict[str, Any] | None = None  # set by `end`: the run's final output
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    llm_usage: dict[str, Any] | None = None


# --- What a type's save hook reaches ----------------------------------------------------------------------------


class SavedWorkflow(Protocol):
    """What a save hook reads of a saved workflow."""

    @property
    def pk(self) -> Any: ...

    @property
    def name(self) -> str: ...

    @property
    def version(self) -> int: ...


class SaveContext(Protocol):
    """What `NodeType.on_save` reaches while a graph is saved (workflows/services.py wires it): the saving user's
    view of the saved workflows."""

    # The workflow being saved, and its name as this save leaves it; None for a workflow being created.
    workflow_id: int | None
    workflow_name: str

    def workflow(self, workflow_id: int) -> SavedWorkflow | None:
        """The workflow if it exists, is not deleted and the saving user may see it."""
        ...

    def document(self, workflow_id: int, version: int | None = None) -> dict[str, Any] | None:
        """A workflow's document `{name, description, graph}` at `version` (None: as saved now), whoever owns it;
        None for a deleted workflow or a version it never had."""
        ...


# A save hook: the node's data, completed (`data` itself when nothing changes), and its problems as
# NodeSpec.check gives them: (field or None, message).
SaveHook = Callable[[dict[str, Any], "SaveContext"], tuple[dict[str, Any], list[tuple[str | None, str]]]]


class ToolRefused(Exception):
    """A tool that cannot be called at all (it was disabled): the message names it."""


# --- What a handler reaches through its context -------------------------------------------------------------


class Tool(Protocol):
    """What a handler reads of one of the tools of the run's project."""

    @property
    def pk(self) -> Any: ...

    @property
    def name(self) -> str: ...

    @property
    def description(self) -> str: ...

    @property
    def parameters(self) -> Any: ...  # its arguments' JSON Schema

    @property
    def timeout_seconds(self) -> float | None: ...

    @property
    def is_active(self) -> bool: ...


class NodeTools(Protocol):
    """The tools of the run's project, as one node execution reaches them: looked up in the project, and called with
    the run and node that key their Idempotency-Key and their records (runs/execution.py wires tools/)."""

    def find(self, names: Iterable[str], *, include_disabled: bool = False) -> dict[str, Tool]:
        """The project's tools among `names`, by name; a name of no tool (or of a disabled one) is absent."""
        ...

    def function(self, tool: Tool) -> dict[str, Any]:
        """The tool as a function a model may call: its name, description and JSON Schema parameters."""
        ...

    def call(self, tool: Tool, arguments: Any, *, call_index: int = 0, timeout: float | None = None) -> dict[str, Any]:
        """Call the tool; the answer is a dict (tools/calling.py, `tool_call`) whose `ok`, `error` and
        `transient` say how it went: a failed call never raises. Raises ToolRefused for a disabled tool."""
        ...

    def record(self, call: Mapping[str, Any]) -> dict[str, Any]:
        """What the ledger and the call records keep of a call (NodeResult.tool_calls takes these)."""
        ...


class ChatAnswer(Protocol):
    """One answer of the model (runs/llm.py, ChatResult)."""

    @property
    def content(self) -> str: ...

    @property
    def tool_calls(self) -> list[Any]: ...  # each with `id`, `name` and `arguments` (JSON text)

    @property
    def usage(self) -> dict[str, Any]: ...

    @property
    def raw_message(self) -> dict[str, Any]: ...


class LLM(Protocol):
    """The LLM client (runs/llm.py in the worker): what the LLM node types call."""

    Usage: type
    TokenBatcher: type
    LLMError: type[Exception]

    def resolve_model(self, model: str | None) -> str: ...

    def provider_kwargs(self, model: str) -> dict[str, Any]: ...

    def chat(
        self,
        *,
        model: str,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None = None,
        response_format: dict[str, Any] | None = None,
        temperature: float | None = None,
        on_text: Callable[[str], None] | None = None,
    ) -> ChatAnswer: ...

    def supports_schema(self, model: str) -> bool: ...

    def parse_json_answer(self, text: str) -> Any: ...


# A graph document -> the problems graph validation finds in it (none: it may run), as messages.
GraphValidator = Callable[[Any], list[str]]


class Unavailable:
    """Stands for a service the engine did not put in a context (one built by hand for a handler that needs
    none): any use of it fails the node, naming the service."""

    def __init__(self, service: str) -> None:
        self._service = service

    def _refuse(self) -> NodeError:
        return NodeError(f"this node's context has no {self._service}: it was built without the engine's services")

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # copy and pickle probe for dunders: not a use
            raise AttributeError(name)
        raise self._refuse()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise self._refuse()


@dataclass
class NodeContext:
    run_id: int
    node: Node
    input: dict[str, Any]
    # Who started the run: what the node may reach (tools, models) is scoped to this user.
    owner_id: int | None = None
    # The handles on the node's outgoing edges, so a node can tell whether a route exists.
    handles: frozenset[str] = frozenset()
    # Own new fields of earlier nodes that this node's templates reference, by node id.
    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)
    # For a node with several incoming edges: each arrived branch's output, keyed by the branch's node id.
    branches: dict[str, dict[str, Any]] = field(default_factory=dict)
    attempt: int = 1
    # Sends an event about this node while it executes (llm_token, tool_call); stored and published.
    emit: Callable[[str, dict[str, Any]], None] = field(default=lambda type, data: None)
    # The tools of the run's project, the LLM client and graph validation, as the engine wires them.
    tools: NodeTools = field(default_factory=lambda: Unavailable("tools"))
    llm: LLM = field(default_factory=lambda: Unavailable("LLM client"))
    validate_graph: GraphValidator = field(default_factory=lambda: Unavailable("graph validation"))

    @property
    def data(self) -> dict[str, Any]:
        return self.node.data

    def render(self, value: Any, extra: Mapping[str, Any] | None = None) -> Any:
        """Render templates in `value`; a bad or missing path fails the node with the template's message.
        `extra` adds roots of the type's own beside `input` and `nodes` (a map's `item` and `index`)."""
        context: dict[str, Any] = {"input": self.input, "nodes": self.nodes}
        roots = templating.ROOTS
        if extra:
            context.update(extra)
            roots = (*roots, *extra)
        try:
            rendered = templating.render(value, context, node_id=self.node.id, roots=roots)
        except templating.TemplateError as exc:
            raise NodeError(str(exc)) from exc
        if rendered is not value:  # a template was rendered: it may have copied a large value many times
            try:
                limits.check_size(rendered, setting="FLOWNOVA_MAX_RENDERED_BYTES", what="the rendered value")
            except limits.SizeLimitError as exc:
                raise NodeError(str(exc)) from exc
        return rendered


def merge_child_output(own: dict[str, Any], child_output: dict[str, Any] | None, child_run_id: int) -> dict[str, Any]:
    """A node's fields once its child run succeeded: the child's output, then the node's own fields."""
    return {**(child_output or {}), **own}


# `NodeType.reads_nodes`'s answer for "every earlier node": no node id can be "*".
EVERY_NODE = frozenset({"*"})


@dataclass(frozen=True)
class NodeType:
    """Everything about a node type. Only `spec` and `execute` are required; the rest has neutral defaults."""

    spec: NodeSpec
    execute: Callable[[NodeContext], NodeResult]

    # How the editor shows it (node_catalogue): a title (default: the type name, humanised), one sentence
    # saying what it does, a short Unicode glyph, a CSS hex colour, the palette heading it sits under and its
    # place there, and the one-line summary drawn on a node: a template over the node's own data, such as
    # "{{model}}". Form labels and widgets are in the data schema's properties (see `field_schema`).
    title: str = ""
    description: str = ""
    icon: str = ""
    colour: str = NEUTRAL_COLOUR
    group: str = DEFAULT_GROUP
    order: int = DEFAULT_ORDER
    summary: str = ""
    # The fields the type adds to its output, which later nodes read as {{nodes.<id>.<field>}}.
    output_fields: tuple[str, ...] = ()
    # True for types that call an LLM (their `model` field defaults to FLOWNOVA_DEFAULT_MODEL): the editor shows
    # that default in the field, and the pages warn, before anything runs, when no provider is configured.
    uses_llm: bool = False

    # What the engine must know.
    # True for nodes that act on the world (HTTP tools, agents that call tools): resuming a run from before
    # such a node must say so.
    side_effects: bool = False
    # True for control-flow types that are pure and take microseconds: the engine executes them inside the
    # transaction that records them instead of in a second one.
    instant: bool = False
    # True for a type whose handler spends its time waiting on the network (a model, an HTTP tool), not on the
    # CPU: its tasks go to the I/O queue (FLOWNOVA_IO_QUEUE), whose worker runs many at once on threads, so that
    # slow calls never hold up the short work queued behind them. Such a handler must wait only through the
    # context's services (ctx.llm, ctx.tools), which honour the node's time limit on that worker.
    io_bound: bool = False
    # True for the type whose execution gives the run its output (end).
    ends_run: bool = False
    # False for the type no edge may enter (start).
    accepts_incoming: bool = True
    # Data keys that name the tools of the run's project: {"tool": "one"} (a name) or {"tools": "many"} (a list).
    tool_fields: Mapping[str, str] = field(default_factory=dict)
    # True for a type whose result may carry a ChildRunRequest; when the child run succeeds, the waiting node
    # completes with `child_result(own fields, the child's output, the child run's id)`.
    starts_child_runs: bool = False
    child_result: Callable[[dict[str, Any], dict[str, Any] | None, int], dict[str, Any]] = merge_child_output
    # For a type that runs child runs one after another (a loop): once a child succeeds, the next step, from
    # `ChildStep` (the node's data and input, the child's output, its iteration from 1): a ChildRunRequest
    # (run another child) or a NodeResult (the node completes with its fields and handle). NodeError fails it.
    child_next: Callable[[ChildStep], ChildRunRequest | NodeResult] | None = None
    # The earlier nodes whose own fields the node reads other than through `{{nodes.<id>...}}` templates in its
    # data (which the engine finds itself): a function of the node's data giving their ids, or EVERY_NODE when
    # it cannot tell (a transform's expression reading `nodes` as a whole). They are in `ctx.nodes`.
    reads_nodes: Callable[[dict[str, Any]], frozenset[str]] | None = None
    # Completes and checks a node's data when a graph is saved, once the graph is valid, with what only a save
    # knows (the saving user, the saved workflows): a subworkflow records the version it pins there. Problems
    # refuse the save like validation issues.
    on_save: SaveHook | None = None

    # How the original FlowNova export wrote this type (workflows/importing.py): other names of the type; data
    # keys, output fields and handles named differently there ({their name: ours}); and for a data key of ours
    # whose values it named differently, {their name (snake_case): our value}.
    original_names: tuple[str, ...] = ()
    original_fields: Mapping[str, str] = field(default_factory=dict)
    original_values: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    original_outputs: Mapping[str, str] = field(default_factory=dict)
    original_handles: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.title:
            object.__setattr__(self, "title", humanise(self.type))
        object.__setattr__(self, "output_fields", tuple(self.output_fields))
        object.__setattr__(self, "original_names", tuple(self.original_names))
        problems = self._problems()
        if problems:
            raise ValueError(f"node type {self.type!r}: " + "; ".join(problems))

    def _problems(self) -> list[str]:
        problems = []
        if not _COLOUR.fullmatch(self.colour):
            problems.append(f"colour must be a CSS hex colour such as {NEUTRAL_COLOUR!r}, not {self.colour!r}")
        if isinstance(self.order, bool) or not isinstance(self.order, int):
            problems.append(f"order must be an integer, not {self.order!r}")
        properties = self.spec.data_schema.get("properties", {})
        for key, kind in self.tool_fields.items():
            if kind not in TOOL_FIELD_KINDS:
                problems.append(f"tool_fields[{key!r}] must be one of {', '.join(TOOL_FIELD_KINDS)}, not {kind!r}")
            if key not in properties:
                problems.append(f"tool_fields names {key!r}, which is not a property of its data schema")
        for key, prop in properties.items():
            widget = prop.get("x-widget") if isinstance(prop, Mapping) else None
            if widget is not None and widget not in WIDGETS:
                problems.append(f"property {key!r}: x-widget must be one of {', '.join(WIDGETS)}, not {widget!r}")
        return problems

    @property
    def type(self) -> str:
        return self.spec.type

    @property
    def can_fail(self) -> bool:
        """Whether a node of this type may fail for good, and so have an `error` edge (declared on its spec,
        which graph validation reads)."""
        return self.spec.can_fail
