"""`if_else`: compares two templated values and routes on the `true` or `false` handle."""

from __future__ import annotations

from typing import Any

from nodes import register
from nodes.base import NodeContext, NodeError, NodeResult, NodeType, data_schema, field_schema, template_check
from nodes.conditions import CONDITION_NAMES, OPERATORS, UNARY_OPERATORS, ConditionError, evaluate
from nodes.spec import NodeSpec

SCALAR = {"type": ["string", "number", "boolean", "null"]}


def check(data: dict[str, Any]) -> list[tuple[str | None, str]]:
    problems = template_check("left", "right")(data)
    if data.get("operator") not in UNARY_OPERATORS and "right" not in data:
        problems.append(("right", f"operator {data.get('operator')!r} needs a right-hand value"))
    return problems


def execute(ctx: NodeContext) -> NodeResult:
    operator = ctx.data["operator"]
    left = ctx.render(ctx.data.get("left"))
    right = None if operator in UNARY_OPERATORS else ctx.render(ctx.data.get("right"))
    try:
        condition = evaluate(left, operator, right)
    except ConditionError as exc:
        raise NodeError(str(exc)) from exc
    fields = {"condition": condition, "left_value": left, "right_value": right, "operator": operator}
    return NodeResult(fields=fields, handle="true" if condition else "false")


IF_ELSE = register(
    NodeType(
        spec=NodeSpec(
            type="if_else",
            data_schema=data_schema(
                {
                    "left": field_schema(SCALAR, widget="template"),
                    "operator": {"enum": list(OPERATORS)},
                    "right": field_schema(SCALAR, widget="template"),
                },
                required=["left", "operator"],
            ),
            handles=frozenset({"true", "false"}),
            required_handles=True,
            check=check,
            can_fail=False,
        ),
        execute=execute,
        title="If/else",
        description="Compares two values and routes on true or false.",
        icon="◇",
        colour="#f08c00",
        group="Logic",
        order=50,
        summary="{{left}} {{operator}} {{right}}",
        output_fields=("condition", "left_value", "right_value", "operator"),
        instant=True,
        original_names=("if", "ifelse", "condition"),
        original_fields={"lhs": "left", "rhs": "right", "condition": "operator"},
        original_values={"operator": CONDITION_NAMES},
        original_outputs={"lhs_value": "left_value", "rhs_value": "right_value"},
    )
)
