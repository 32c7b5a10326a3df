"""`start`: the run's entry. Its optional `input_schema` (JSON Schema) is checked when a run starts; its optional
`sample_input` is an input that shows what a run takes: the run form starts filled in with it, and it travels
with the graph (exported, imported, versioned), so it is checked against `input_schema` whenever the graph is
saved rather than found wrong when someone runs it."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from nodes import register
from nodes.base import NodeContext, NodeResult, NodeType, data_schema
from nodes.spec import NodeSpec


def check(data: dict[str, Any]) -> list[tuple[str | None, str]]:
    schema = data.get("input_schema")
    if schema is None:
        return []
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        return [("input_schema", f"not a valid JSON Schema: {exc.message}")]
    sample = data.get("sample_input")
    if sample is None:
        return []
    return [
        ("sample_input", f"does not match the input schema: {error.message}{_at(error.absolute_path)}")
        for error in sorted(Draft202012Validator(schema).iter_errors(sample), key=lambda error: str(list(error.path)))
    ]


def _at(path: Iterable[object]) -> str:
    parts = ".".join(str(part) for part in path)
    return f" (at {parts})" if parts else ""


def execute(ctx: NodeContext) -> NodeResult:
    return NodeResult()


START = register(
    NodeType(
        spec=NodeSpec(
            type="start",
            data_schema=data_schema(
                {
                    "input_schema": {"type": ["object", "boolean"], "title": "Input schema (JSON Schema)"},
                    "sample_input": {
                        "type": "object",
                        "title": "Sample input",
                        "description": "Fills in the run form; it must match the input schema.",
                    },
                }
            ),
            check=check,
            can_fail=False,
        ),
        execute=execute,
        title="Start",
        description="Where a run begins; its optional input schema checks the run's input.",
        icon="▶",
        colour="#495057",
        group="Flow",
        order=10,
        instant=True,
        accepts_incoming=False,
    )
)
