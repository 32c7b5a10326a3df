"""The records of tool calls: what a call's record holds (`RECORD_KEYS`, carried by NodeResult.tool_calls and
the ledger) and its ToolCall row, written as `started` before the request goes out and completed afterwards."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from django.utils import timezone

from tools.models import ToolCall, ToolCallState

RECORD_KEYS = (
    "tool",
    "tool_id",
    "method",
    "url",
    "arguments",
    "status_code",
    "duration_ms",
    "response",
    "error",
    "note",
    "call_id",
)
# The columns that completing a started ToolCall row writes.
FINISH_FIELDS = ("url", "arguments", "status_code", "duration_ms", "response", "error", "note", "state", "finished_at")

# Records a call as started right before its request goes out (`tool_call_start` is one); returns the row's id.
CallRecorder = Callable[..., int]


def tool_call_record(call: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a `tool_call` result that is recorded (ledger tool_calls, ToolCall rows)."""
    return {key: call.get(key) for key in RECORD_KEYS}


def tool_call_row(
    call: Mapping[str, Any], *, run_id: int | None = None, node_id: str = "", finished_at: datetime | None = None
) -> ToolCall:
    """An unsaved ToolCall row for a call record (`tool_call_record`): `started` without `finished_at`."""
    return ToolCall(
        tool_id=call.get("tool_id"),
        tool_name=str(call.get("tool") or "")[:64],
        run_id=run_id,
        node_id=node_id[:64],
        method=str(call.get("method") or "")[:8],
        url=str(call.get("url") or "")[:2048],
        arguments=call.get("arguments") or {},
        status_code=call.get("status_code"),
        duration_ms=call.get("duration_ms"),
        response=str(call.get("response") or ""),
        error=str(call.get("error") or ""),
        note=str(call.get("note") or "")[:200],
        state=ToolCallState.STARTED if finished_at is None else ToolCallState.FINISHED,
        finished_at=finished_at,
    )


def tool_call_start(*, run_id: int | None, node_id: str, call: Mapping[str, Any]) -> int:
    """Record a call as started, right before its request goes out (a `record` for `tool_call`); returns the
    row's id, which the call's record carries as `call_id` so that its completion updates this row. Outside a
    transaction (where handlers run) the row is committed at once: a process killed mid-call leaves it behind,
    `started` and without an answer."""
    row = tool_call_row(call, run_id=run_id, node_id=node_id)
    row.save(force_insert=True)
    return row.pk


def tool_call_finish(*, call: Mapping[str, Any], finished_at: datetime | None = None) -> None:
    """Record a call's outcome: complete its started row (`call_id`), or write a finished one for a call that was
    never sent. For calls made outside a run; a node's calls are completed with its ledger entry."""
    row = tool_call_row(call, finished_at=finished_at or timezone.now())
    if call.get("call_id"):
        ToolCall.objects.filter(pk=call["call_id"]).update(**{field: getattr(row, field) for field in FINISH_FIELDS})
    else:
        row.save(force_insert=True)
