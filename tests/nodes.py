"""Node types for tests, registered through FLOWNOVA_NODE_MODULES like any deployment's own types."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from nodes import register
from nodes.base import NodeContext, NodeError, NodeResult, NodeType, TransientNodeError, data_schema
from nodes.spec import NodeSpec


def sleep(ctx: NodeContext) -> NodeResult:
    """Sleeps `seconds`; first appends `<pid> <attempt>` to `marker` so a test can find (and kill) it."""
    marker = ctx.data.get("marker")
    if marker:
        with Path(marker).open("a") as file:
            file.write(f"{os.getpid()} {ctx.attempt}\n")
    time.sleep(float(ctx.data.get("seconds", 0)))
    return NodeResult(
        fields={f"{ctx.node.id}_slept": ctx.data.get("seconds", 0), f"{ctx.node.id}_attempt": ctx.attempt}
    )


def flaky(ctx: NodeContext) -> NodeResult:
    """Fails transiently on its first `fail_times` attempts."""
    if ctx.attempt <= int(ctx.data.get("fail_times", 1)):
        raise TransientNodeError(f"flaky failure on attempt {ctx.attempt}")
    return NodeResult(fields={"flaky_attempts": ctx.attempt})


def fail(ctx: NodeContext) -> NodeResult:
    raise NodeError(ctx.data.get("message", "told to fail"))


def crash(ctx: NodeContext) -> NodeResult:
    return NodeResult(fields={"ratio": 1 / int(ctx.data.get("divisor", 0))})


register(NodeType(spec=NodeSpec(type="test_sleep", data_schema=data_schema()), execute=sleep))
register(NodeType(spec=NodeSpec(type="test_flaky", data_schema=data_schema()), execute=flaky))
register(NodeType(spec=NodeSpec(type="test_fail", data_schema=data_schema()), execute=fail))
register(NodeType(spec=NodeSpec(type="test_crash", data_schema=data_schema()), execute=crash))


def suicide(ctx: NodeContext) -> NodeResult:
    """Kills the worker process executing it (as an out-of-memory kill or a crashing library would); first
    appends `<pid> <attempt>` to `marker`."""
    marker = ctx.data.get("marker")
    if marker:
        with Path(marker).open("a") as file:
            file.write(f"{os.getpid()} {ctx.attempt}\n")
    os.kill(os.getpid(), signal.SIGKILL)
    raise AssertionError("unreachable")


class Unstorable:
    """A value no JSON column can take."""


def unstorable(ctx: NodeContext) -> NodeResult:
    return NodeResult(fields={"value": Unstorable()})


def emit_bytes(ctx: NodeContext) -> NodeResult:
    """Returns a field of `bytes` times `text` (default "x"); `with_nul` appends a NUL character to `text` (a
    saved graph cannot hold one)."""
    text = str(ctx.data.get("text", "x")) + ("\x00" if ctx.data.get("with_nul") else "")
    return NodeResult(fields={"blob": text * int(ctx.data.get("bytes", 1))})


register(NodeType(spec=NodeSpec(type="test_suicide", data_schema=data_schema()), execute=suicide))
register(NodeType(spec=NodeSpec(type="test_unstorable", data_schema=data_schema()), execute=unstorable))
register(
    NodeType(spec=NodeSpec(type="test_unstorable_instant", data_schema=data_schema()), execute=unstorable, instant=True)
)
register(NodeType(spec=NodeSpec(type="test_bytes", data_schema=data_schema()), execute=emit_bytes))
