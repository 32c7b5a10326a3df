"""`switch`: compares one templated value with each case in turn and routes on the first case that matches, or
on `default`. Its handles are its cases' ids plus `default`, read from the node's data (`HandlesFrom`), so the
editor draws one handle per case as cases are added, removed and renamed."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from nodes import register
from nodes.base import NodeContext, NodeError, NodeResult, NodeType, data_schema, field_schema
from nodes.conditions import OPERATORS, UNARY_OPERATORS, ConditionError, evaluate
from nodes.spec import HandlesFrom, NodeSpec
from nodes.templating import check_syntax

DEFAULT = "default"
MAX_CASES = 100
# A case id is a handle: it is drawn on the canvas and names an edge's sourceHandle (at most 64 characters), so
# it takes the characters a node id may have.
CASE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
SCALAR = {"type": ["string", "number", "boolean", "null"]}

CASE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "minLength": 1, "maxLength": 64, "title": "Case (its handle)"},
        "operator": {"enum": list(OPERATORS), "title": "Operator"},
        "right": field_schema(SCALAR, title="Compared with", widget="template"),
    },
    "required": ["id", "operator"],
}


def check(data: dict[str, Any]) -> list[tuple[str | None, str]]:
    """What the schema cannot say: templates well formed, case ids usable as handles and unique, `right` where
    the operator needs one."""
    problems: list[tuple[str | None, str]] = [("value", message) for message in check_syntax(data.get("value"))]
    seen: dict[str, int] = {}
    for index, case in enumerate(data["cases"]):
        where = f"cases.{index}"
        case_id = case["id"]
        if CASE_ID.fullmatch(case_id) is None:
            problems.append((f"{where}.id", f'case id {case_id!r} must be 1 to 64 letters, digits, "_" or "-"'))
        elif case_id == DEFAULT:
            problems.append(
                (f"{where}.id", f'"{DEFAULT}" is the handle taken when no case matches; name the case otherwise')
            )
        elif case_id in seen:
            problems.append((f"{where}.id", f"case id {case_id!r} is already used by cases.{seen[case_id]}"))
        else:
            seen[case_id] = index
        if case["operator"] not in UNARY_OPERATORS and "right" not in case:
            problems.append((f"{where}.right", f"operator {case['operator']!r} needs a value to compare with"))
        problems.extend((f"{where}.right", message) for message in check_syntax(case.get("right")))
    return problems


def execute(ctx: NodeContext) -> NodeResult:
    value = ctx.render(ctx.data.get("value"))
    for index, case in enumerate(ctx.data["cases"]):
        if not isinstance(case, Mapping):  # a recorded snapshot is valid; this only guards a context built by hand
            raise NodeError(f"cases.{index} must be an object")
        operator = case["operator"]
        right = None if operator in UNARY_OPERATORS else ctx.render(case.get("right"))
        try:
            matched = evaluate(value, operator, right)
        except ConditionError as exc:
            raise NodeError(f"case {case['id']!r} (cases.{index}): {exc}") from exc
        if matched:
            return NodeResult(fields={"case": case["id"]}, handle=case["id"])
    return NodeResult(fields={"case": DEFAULT}, handle=DEFAULT)


SWITCH = register(
    NodeType(
        spec=NodeSpec(
            type="switch",
            data_schema=data_schema(
                {
                    "value": field_schema(SCALAR, title="Value", widget="template"),
                    "cases": {
                        "type": "array",
                        "title": "Cases (the first that matches is taken)",
                        "minItems": 1,
                        "maxItems": MAX_CASES,
                        "items": CASE_SCHEMA,
                    },
                },
                required=["value", "cases"],
            ),
            handles_from=HandlesFrom("cases", "id", (DEFAULT,)),
            required_handles=True,
            check=check,
            can_fail=False,
        ),
        execute=execute,
        title="Switch",
        description="Routes on the first case its value matches, or on default.",
        icon="⇉",
        colour="#e8590c",
        group="Logic",
        order=55,
        summary="{{value}}",
        output_fields=("case",),
        instant=True,
    )
)
