"""`start`: the run's entry. Its optional `input_schema` (JSON Schema) is checked when a run starts."""

from __future__ import annotations

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
    return []


def execute(ctx: NodeContext) -> NodeResult:
    return NodeResult()


START = register(
    NodeType(
        spec=NodeSpec(
            type="start",
            data_schema=data_schema(
                {"input_schema": {"type": ["object", "boolean"], "title": "Input schema (JSON Schema)"}}
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
