"""`tool`: calls one of the run owner's registered HTTP tools and routes on `success` or `error`.

Data: `tool` (the tool's name, looked up among the tools of the user who started the run), `arguments` (an
object whose values may be templates, rendered against the node's input), and the common `retries` /
`timeout_seconds` (`timeout_seconds` also bounds the read timeout of the call).

What happens, precisely:

- 2xx: output fields `result` (the parsed JSON body, else the text) and `status_code`; handle `success`.
- Any other failure of the call (an HTTP error status, arguments that break the tool's schema, an address the
  egress guard refuses, a response over the size cap, a TLS or transport failure): when the node has an
  outgoing `error` edge, fields `result` (the error response's parsed body, or null), `status_code` (or null)
  and `error` (the message) and handle `error`; without one, the node fails with that message.
- Transient failures (timeouts, connection failures, 429, 502, 503, 504 still failing after the egress module's
  own retries) first use the node's `retries`: the node raises TransientNodeError and the engine tries it again
  with backoff; the `error` edge (or the failure) comes only after the last attempt. Every attempt of a call
  sends the same Idempotency-Key on POST and PATCH, so a server that honours the header applies it once.
- Permanent problems of the workflow itself fail the node whatever its edges: an unknown or disabled tool
  name, a template naming a missing path.

The call is recorded as a started ToolCall row right before its request goes out (through the context's
`record_call`), returned in NodeResult.tool_calls (the engine completes that row with the answer when it records
the node, and keeps the call in the ledger) and announced as a `tool_call` event as soon as it is made. A header
value with a control character (from the arguments) is never sent: the call fails, not transiently, naming the
header. An answer holding NUL characters is stored with U+FFFD in their place (the record's `note` says so).
Secret header values never appear in the output, the record or the error: tools.services redacts them.
"""

from __future__ import annotations

from typing import Any

from nodes import register
from nodes.base import (
    NodeContext,
    NodeError,
    NodeResult,
    NodeType,
    TransientNodeError,
    data_schema,
    template_check,
)
from nodes.spec import NodeSpec

EVENT_KEYS = ("tool", "arguments", "status_code", "result", "error", "duration_ms")
SUCCESS = "success"
ERROR = "error"


def execute(ctx: NodeContext) -> NodeResult:
    # Imported here: the registry (and so this module) is loaded by pure code that has no Django set up.
    from tools.models import Tool
    from tools.services import tool_call, tool_call_record

    name = ctx.data["tool"]
    tool = Tool.objects.filter(owner_id=ctx.owner_id, name=name).first()
    if tool is None:
        raise NodeError(f"no tool named {name!r} is registered for the user who started this run")
    if not tool.is_active:
        raise NodeError(f"tool {name!r} is disabled")
    arguments = ctx.render(ctx.data.get("arguments", {}))
    timeouts = [value for value in (ctx.data.get("timeout_seconds"), tool.timeout_seconds) if value]
    call = tool_call(
        tool=tool,
        arguments=arguments,
        run_id=ctx.run_id,
        node_id=ctx.node.id,
        timeout=min(timeouts) if timeouts else None,
        record=ctx.record_call,
    )
    record = tool_call_record(call)
    # Sent for every attempt, also one that then fails the node; the same fields as an agent's tool_call events.
    ctx.emit("tool_call", {key: call[key] for key in EVENT_KEYS})
    if call["ok"]:
        return NodeResult(
            fields={"result": call["result"], "status_code": call["status_code"]},
            handle=SUCCESS,
            tool_calls=[record],
        )
    if call["transient"] and _attempts_left(ctx):
        raise TransientNodeError(call["error"], tool_calls=[record])
    if ERROR not in ctx.handles:
        raise (TransientNodeError if call["transient"] else NodeError)(call["error"], tool_calls=[record])
    return NodeResult(
        fields={"result": call["result"], "status_code": call["status_code"], "error": call["error"]},
        handle=ERROR,
        tool_calls=[record],
    )


def _attempts_left(ctx: NodeContext) -> bool:
    from runs.services import DEFAULT_RETRIES  # runs.services imports this registry: import late

    return ctx.attempt <= int(ctx.data.get("retries", DEFAULT_RETRIES))


def check(data: dict[str, Any]) -> list[tuple[str | None, str]]:
    return template_check("arguments")(data)


TOOL = register(
    NodeType(
        spec=NodeSpec(
            type="tool",
            data_schema=data_schema(
                {
                    "tool": {"type": "string", "pattern": r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"},
                    "arguments": {"type": "object"},
                },
                required=["tool"],
            ),
            handles=frozenset({SUCCESS, ERROR}),
            required_handles=True,
            check=check,
        ),
        execute=execute,
        side_effects=True,
    )
)
