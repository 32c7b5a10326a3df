"""`fork`: every outgoing edge starts a branch; the engine dispatches them together as a Celery group."""

from __future__ import annotations

from nodes import register
from nodes.base import NodeContext, NodeResult, NodeType, data_schema
from nodes.spec import NodeSpec


def execute(ctx: NodeContext) -> NodeResult:
    return NodeResult()


FORK = register(
    NodeType(
        spec=NodeSpec(type="fork", data_schema=data_schema(), can_fail=False),
        execute=execute,
        title="Fork",
        description="Starts every outgoing edge as a branch running in parallel.",
        icon="⋔",
        colour="#f08c00",
        group="Flow",
        order=30,
        instant=True,
    )
)
