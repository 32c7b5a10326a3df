"""What a node type is: a validation spec, and an `execute` function from a context to a result.

Handlers are plain Python: they read their context, may call out (LLM, HTTP) and return a `NodeResult`. They
never write to the database; the engine's services record what they return.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from nodes import limits, templating
from nodes.spec import Node, NodeSpec

# Options every node type accepts, besides its own.
COMMON_PROPERTIES: dict[str, Any] = {
    "label": {"type": "string", "maxLength": 200},
    "retries": {"type": "integer", "minimum": 0, "maximum": 10},
    "timeout_seconds": {"type": "number", "exclusiveMinimum": 0, "maximum": 86400},
}


def data_schema(properties: Mapping[str, Any] | None = None, required: list[str] | None = None) -> dict[str, Any]:
    """A node's data schema: its own properties plus the common ones. Unknown keys are allowed (the canvas
    may keep its own there) but every known key is checked."""
    schema: dict[str, Any] = {"type": "object", "properties": {**COMMON_PROPERTIES, **(properties or {})}}
    if required:
        schema["required"] = required
    return schema


def template_check(*fields: str) -> Callable[[dict], list[tuple[str | None, str]]]:
    """A NodeSpec.check that reports malformed templates in the given data fields."""

    def check(data: dict) -> list[tuple[str | None, str]]:
        return [(name, message) for name in fields if name in data for message in templating.check_syntax(data[name])]

    return check


class NodeFailure(Exception):
    """A node that failed. `tool_calls` are the calls it made before failing: they are recorded all the same."""

    def __init__(self, message: str, *, tool_calls: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.tool_calls = tool_calls or []


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
    """Returned by a node that runs a workflow of its own (cognitive): the engine starts it as a child run
    and completes the node with the child's output when the child ends."""

    graph: dict[str, Any]
    input: dict[str, Any]


@dataclass
class NodeResult:
    fields: dict[str, Any] = field(default_factory=dict)  # the node's own new fields; output = {**input, **fields}
    handle: str | None = None  # the outgoing handle taken; None means every outgoing edge
    wait: WaitRequest | None = None  # set by nodes that pause the run
    child: ChildRunRequest | None = None  # set by nodes that run a generated workflow
    run_output: dict[str, Any] | None = None  # set by `end`: the run's final output
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    llm_usage: dict[str, Any] | None = None


@dataclass
class NodeContext:
    run_id: int
    node: Node
    input: dict[str, Any]
    # Who started the run: what the node may reach (tools, models) is scoped to this user.
    owner_id: int | None = None
    # The handles on the node's outgoing edges, so a node can tell whether a route exists (tool's `error`).
    handles: frozenset[str] = frozenset()
    # Own new fields of earlier nodes that this node's templates reference, by node id.
    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)
    # For a node with several incoming edges: each arrived branch's output, keyed by the branch's node id.
    branches: dict[str, dict[str, Any]] = field(default_factory=dict)
    attempt: int = 1
    # Sends an event about this node while it executes (llm_token, tool_call); stored and published.
    emit: Callable[[str, dict[str, Any]], None] = field(default=lambda type, data: None)
    # Records an outbound call as started right before its request goes out, so that a worker killed mid-call
    # leaves a trace (tools.services.tool_call_start: `record` of tool_call). None: calls are recorded only with
    # the node's result.
    record_call: Callable[..., int] | None = None

    @property
    def data(self) -> dict[str, Any]:
        return self.node.data

    def render(self, value: Any) -> Any:
        """Render templates in `value`; a bad or missing path fails the node with the template's message."""
        try:
            rendered = templating.render(value, {"input": self.input, "nodes": self.nodes}, node_id=self.node.id)
        except templating.TemplateError as exc:
            raise NodeError(str(exc)) from exc
        if rendered is not value:  # a template was rendered: it may have copied a large value many times
            try:
                limits.check_size(rendered, setting="FLOWNOVA_MAX_RENDERED_BYTES", what="the rendered value")
            except limits.SizeLimitError as exc:
                raise NodeError(str(exc)) from exc
        return rendered


@dataclass(frozen=True)
class NodeType:
    spec: NodeSpec
    execute: Callable[[NodeContext], NodeResult]
    # True for nodes that act on the world (HTTP tools, agents that call tools): resuming a run from before
    # such a node must say so.
    side_effects: bool = False
    # True for control-flow types that are pure and take microseconds: the engine executes them inside the
    # transaction that records them instead of in a second one.
    instant: bool = False

    @property
    def type(self) -> str:
        return self.spec.type
