"""The edit fields of an approval's decide form, shared by the inbox and the run page's approvals panel (worked
out here, where the form is drawn, rather than in each view that shows one)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from django import template

from approvals.models import ApprovalRequest
from runs.models import NodeRun

register = template.Library()


@dataclass(frozen=True)
class EditField:
    name: str
    input_id: str
    value_json: str
    error: str


def current_values(approval: ApprovalRequest) -> dict[str, Any]:
    """What each editable field holds now: the shown data when it has the field (no query), else the node's
    input, which is what `approval_decide` diffs an edit against (a `show` template may hide fields)."""
    data = approval.data if isinstance(approval.data, dict) else {}
    if all(name in data for name in approval.editable_fields):
        return data
    node_input = (
        NodeRun.objects.filter(run_id=approval.run_id, node_id=approval.node_id).values_list("input", flat=True).first()
    )
    return {**(node_input or {}), **data}


@register.simple_tag
def approval_edit_fields(approval: ApprovalRequest, target: str, edit_error: dict[str, Any] | None) -> list[EditField]:
    """One field per editable name, holding its current value as JSON; `edit_error` ({approval, field,
    message}) is the refusal of the last post, shown next to its field."""
    if not approval.editable_fields:
        return []
    values = current_values(approval)
    error = edit_error if edit_error and edit_error.get("approval") == approval.pk else {}
    return [
        EditField(
            name=name,
            # By position: a field's name may hold characters an id may not, and the id must stay the same
            # across refreshes for hx-preserve to keep what was typed.
            input_id=f"edit-{approval.pk}-{target}-{index}",
            value_json=json.dumps(values.get(name), ensure_ascii=False),
            error=error.get("message", "") if error.get("field") == name else "",
        )
        for index, name in enumerate(approval.editable_fields)
    ]


@register.filter
def as_json(value: Any) -> str:
    """A value of an edit diff as people typed it (JSON), not as Python prints it."""
    return json.dumps(value, ensure_ascii=False)
