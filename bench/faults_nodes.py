"""The node type the fault battery needs besides the test node types (tests/nodes.py): a handler that swallows
its soft time limit. A node module (FLOWNOVA_NODE_MODULES): the battery's worker and its own Django import it,
which registers the type."""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING

from bench.faults_scenarios import IGNORE_SOFT_LIMIT

if TYPE_CHECKING:
    from nodes.base import NodeContext, NodeResult


def ignore_soft_limit(ctx: NodeContext) -> NodeResult:
    """Catches the soft time limit and carries on, as a handler with a broad `except` does: only the hard limit
    (timeout_seconds + 10 s) stops it. Returns after `seconds` (60) if nothing does."""
    from celery.exceptions import SoftTimeLimitExceeded

    from nodes.base import NodeResult

    deadline = time.monotonic() + float(ctx.data.get("seconds", 60))
    while time.monotonic() < deadline:
        with contextlib.suppress(SoftTimeLimitExceeded):
            time.sleep(0.05)
    return NodeResult(fields={"survived": True})


def register_node_types() -> None:
    from nodes import register
    from nodes.base import NodeType, data_schema
    from nodes.spec import NodeSpec

    register(NodeType(spec=NodeSpec(type=IGNORE_SOFT_LIMIT, data_schema=data_schema()), execute=ignore_soft_limit))


register_node_types()
