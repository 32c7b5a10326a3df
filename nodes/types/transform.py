"""`transform`: a JSONata expression reshapes the data. It is evaluated over `{"input": <the node's input>,
"nodes": <earlier nodes' own fields, by id>}` (what templates see: those it names as `nodes.<id>`, or every
earlier node when it reads `nodes` as a whole); its value must be a JSON object, whose
keys are the node's own fields and are merged into its output.

Evaluation is deterministic, so a failure is permanent (NodeError, no retry). It is bounded
(FLOWNOVA_TRANSFORM_TIMEOUT_MS, FLOWNOVA_TRANSFORM_MAX_DEPTH) but may take up to its time limit, so the node
is not instant: it runs on a worker, never inside the transaction that holds the run's lock.
"""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings

from nodes import register
from nodes.base import EVERY_NODE, NodeContext, NodeError, NodeResult, NodeType, data_schema, field_schema
from nodes.jsonata_eval import ExpressionError, evaluate_object, syntax_error
from nodes.spec import NodeSpec

MAX_EXPRESSION_LENGTH = 20000


def limits() -> dict[str, int]:
    """The evaluation limits, from the settings (the preview endpoint uses the same)."""
    return {
        "timeout_ms": int(settings.FLOWNOVA_TRANSFORM_TIMEOUT_MS),
        "max_depth": int(settings.FLOWNOVA_TRANSFORM_MAX_DEPTH),
    }


def check(data: dict[str, Any]) -> list[tuple[str | None, str]]:
    expression = data.get("expression")
    if not isinstance(expression, str):
        return []  # the data schema reports it
    error = syntax_error(expression)
    return [] if error is None else [("expression", str(error))]


# `nodes.<id>`, `nodes.`<id>`` or `nodes."<id>"` in an expression: the earlier nodes it reads.
_NODE_PATH = re.compile(r"""\bnodes\s*\.\s*(?:([A-Za-z0-9_]+)\b|`([^`]+)`|"([^"]+)"|'([^']+)')""")
_NODES = re.compile(r"\bnodes\b")


def reads_nodes(data: dict[str, Any]) -> frozenset[str]:
    """The earlier nodes the expression reads, for the engine to load: those it names as `nodes.<id>`; every
    earlier node when it reads `nodes` some other way (`$keys(nodes)`, `nodes.*`, `nodes[...]`)."""
    expression = data.get("expression")
    if not isinstance(expression, str) or not _NODES.search(expression):
        return frozenset()
    named = [next(group for group in match.groups() if group) for match in _NODE_PATH.finditer(expression)]
    if len(named) < len(_NODES.findall(expression)):
        return EVERY_NODE
    return frozenset(named)


def execute(ctx: NodeContext) -> NodeResult:
    scope = {"input": ctx.input, "nodes": ctx.nodes}
    try:
        fields = evaluate_object(ctx.data["expression"], scope, **limits())
    except ExpressionError as exc:
        raise NodeError(f'transform "{ctx.node.id}": {exc}') from exc
    return NodeResult(fields=fields)


TRANSFORM = register(
    NodeType(
        spec=NodeSpec(
            type="transform",
            data_schema=data_schema(
                {
                    "expression": field_schema(
                        {
                            "type": "string",
                            "minLength": 1,
                            "maxLength": MAX_EXPRESSION_LENGTH,
                            "description": 'A JSONata expression over {"input": ..., "nodes": {...}} whose value '
                            "is an object; its keys are added to the output.",
                            # The editor offers a "Try it" button that sends the expression here with sample data.
                            "x-preview": "/api/nodes/transform/preview/",
                        },
                        title="Expression (JSONata)",
                        widget="textarea",
                    )
                },
                required=["expression"],
            ),
            check=check,
        ),
        execute=execute,
        title="Transform",
        description="Reshapes the data with a JSONata expression; the object it yields is added to the output.",
        icon="ƒ",
        colour="#1098ad",
        group="Data",
        order=110,
        summary="{{expression}}",
        reads_nodes=reads_nodes,
        output_fields=(),
    )
)
