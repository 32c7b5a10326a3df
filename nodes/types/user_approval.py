"""`user_approval`: pauses the run until a person approves or rejects; routes on `approved` / `rejected`.

The node holds no worker while it waits: it returns a `WaitRequest`, the engine opens an approval request and
the run's status becomes `waiting`. The decision (`approvals.services.approval_decide`) completes the node
with an `approval` object and the chosen handle.
"""

from __future__ import annotations

from typing import Any

from nodes import register
from nodes.base import (
    NodeContext,
    NodeError,
    NodeResult,
    NodeType,
    WaitRequest,
    data_schema,
    field_schema,
    template_check,
)
from nodes.spec import NodeSpec

NAME_LIST = {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 150}, "maxItems": 100}
# A deadline is at most a leap year away: far enough for any human decision, and a date that every layer
# (Python's dates, the database, the broker's ETA) can hold.
MAX_DEADLINE_SECONDS = 366 * 24 * 3600


def execute(ctx: NodeContext) -> NodeResult:
    data = ctx.data
    message = ctx.render(data.get("message", "Approve this step?"))
    # An earlier approval's decision is part of the input but is not this request's business.
    shown = {key: value for key, value in ctx.input.items() if key != "approval"}
    if "show" in data:
        shown = ctx.render(data["show"])
    return NodeResult(
        wait=WaitRequest(
            message=message if isinstance(message, str) else str(message),
            data=shown if isinstance(shown, dict) else {"value": shown},
            assignees=list(data.get("assignees", [])),
            allow_self_approval=bool(data.get("allow_self_approval", True)),
            editable_fields=list(data.get("editable_fields", [])),
            timeout_seconds=deadline_seconds(data.get("deadline_seconds")),
            timeout_action=data.get("timeout_action", ""),
        )
    )


def deadline_seconds(value: Any) -> float | None:
    """The configured deadline, checked again where it is used: the schema bounds it when a graph is saved,
    and whatever reaches the engine must give a date it can compute and store, or the node fails saying so
    (once) instead of failing the engine's transaction at every attempt."""
    if value is None:
        return None
    # NaN and infinities fail the comparison too.
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= MAX_DEADLINE_SECONDS:
        raise NodeError(f"deadline_seconds must be above 0 and at most {MAX_DEADLINE_SECONDS} seconds, not {value!r}")
    return float(value)


USER_APPROVAL = register(
    NodeType(
        spec=NodeSpec(
            type="user_approval",
            data_schema=data_schema(
                {
                    "message": field_schema({"type": "string", "maxLength": 10000}, widget="textarea"),
                    "assignees": NAME_LIST,
                    "show": {"type": ["object", "string"]},
                    "allow_self_approval": {"type": "boolean", "title": "Allow self-approval"},
                    "editable_fields": field_schema(NAME_LIST, title="Fields the approver may edit"),
                    "deadline_seconds": {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_DEADLINE_SECONDS},
                    "timeout_action": {"enum": ["approve", "reject", "fail"]},
                }
            ),
            handles=frozenset({"approved", "rejected"}),
            required_handles=True,
            check=template_check("message", "show"),
            # Its deadline already has its outcome (`timeout_action`): `reject` routes it, `fail` fails the run.
            can_fail=False,
        ),
        execute=execute,
        title="Approval",
        description="Pauses the run until a person approves or rejects.",
        icon="☑",
        colour="#d6336c",
        group="People",
        order=100,
        summary="{{assignees}}",
        output_fields=("approval",),
        instant=True,
        original_names=("approval", "human_approval"),
        original_handles={"yes": "approved", "no": "rejected"},
    )
)
