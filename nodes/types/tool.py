"""`tool`: calls one of the registered HTTP tools of the run's project and routes on `success`, or fails (taking its
error path, the `error` edge every node that can fail may have).

Data: `tool` (the tool's name, looked up among the tools of the user who started the run), `arguments` (an
object whose values may be templates, rendered against the node's input), and the common `retries` /
`timeout_seconds` (`timeout_seconds` also bounds the read timeout of the call).

What happens, precisely:

- 2xx: output fields `result` (the parsed JSON body, else the text) and `status_code`; handle `success`.
- Any other failure of the call (an HTTP error status, arguments that break the tool's schema, an address the
  egress guard refuses, a response over the size cap, a TLS or transport failure) fails the node with that
  message, keeping `result` (the error response's parsed body, or null) and `status_code` (or null) as the
  failure's fields: on the node's error path its output has them beside `error` ({node, type, message}), like
  any node's that fails (runs/services/outcome.py, `node_failed`).
- Transient failures (timeouts, connection failures, 429, 502, 503, 504 still failing after the egress module's
  own retries) first use the node's `retries`: the node raises TransientNodeError and the engine tries it again
  with backoff; the error path (or the run's failure) comes only after the last attempt. Every attempt of a
  call sends the same Idempotency-Key on POST and PATCH, so a server that honours the header applies it once.
- Problems of the workflow itself (an unknown or disabled tool name, a template naming a missing path) fail
  the node too, with no `result` or `status_code`.

The call goes through the context's `tools`, which record it as started right before its request goes out; it is
returned in NodeResult.tool_calls (the engine completes that row with the answer when it records
the node, and keeps the call in the ledger) and announced as a `tool_call` event as soon as it is made. A header
value with a control character (from the arguments) is never sent: the call fails, not transiently, naming the
header. An answer holding NUL characters is stored with U+FFFD in their place (the record's `note` says so).
Secret header values never appear in the output, the record or the error: the tools app redacts them.
"""

from __future__ import annotations

from typing import Any

from nodes import register
from nodes.base import (
    NodeContext,
    NodeError,
    NodeResult,
    NodeType,
    ToolRefused,
    TransientNodeError,
    data_schema,
    template_check,
)
from nodes.spec import NodeSpec

EVENT_KEYS = ("tool", "arguments", "status_code", "result", "error", "duration_ms")
SUCCESS = "success"


def execute(ctx: NodeContext) -> NodeResult:
    name = ctx.data["tool"]
    tool = ctx.tools.find([name], include_disabled=True).get(name)
    if tool is None:
        raise NodeError(f"no tool named {name!r} is registered for the user who started this run")
    if not tool.is_active:
        raise NodeError(f"tool {name!r} is disabled")
    arguments = ctx.render(ctx.data.get("arguments", {}))
    timeouts = [value for value in (ctx.data.get("timeout_seconds"), tool.timeout_seconds) if value]
    try:
        call = ctx.tools.call(tool, arguments, timeout=min(timeouts) if timeouts else None)
    except ToolRefused as exc:  # disabled since it was looked up
        raise NodeError(str(exc)) from exc
    record = ctx.tools.record(call)
    # Sent for every attempt, also one that then fails the node; the same fields as an agent's tool_call events.
    ctx.emit("tool_call", {key: call[key] for key in EVENT_KEYS})
    if call["ok"]:
        return NodeResult(
            fields={"result": call["result"], "status_code": call["status_code"]},
            handle=SUCCESS,
            tool_calls=[record],
        )
    failure = TransientNodeError if call["transient"] else NodeError
    raise failure(
        call["error"], tool_calls=[record], fields={"result": call["result"], "status_code": call["status_code"]}
    )


def check(data: dict[str, Any]) -> list[tuple[str | None, str]]:
    return template_check("arguments")(data)


TOOL = register(
    NodeType(
        spec=NodeSpec(
            type="tool",
            data_schema=data_schema(
                {
                    "tool": {"type": "string", "pattern": r"^[A-Za-z_][A-Za-z0-9_]{0,63}$", "x-widget": "tool"},
                    "arguments": {"type": "object", "title": "Arguments (object; values may be templates)"},
                },
                required=["tool"],
            ),
            handles=frozenset({SUCCESS}),
            required_handles=True,
            check=check,
        ),
        execute=execute,
        io_bound=True,
        title="Tool call",
        description="Calls one of your HTTP tools; routes on success, or on error when it fails.",
        icon="⚙",
        colour="#1098ad",
        group="Tools",
        order=90,
        summary="{{tool}}",
        output_fields=("result", "status_code", "error"),
        side_effects=True,
        tool_fields={"tool": "one"},
    )
)
