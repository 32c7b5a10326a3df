"""`join` (mode `all`): runs once, when every incoming branch has arrived or can no longer arrive.

The engine decides that under the run's row lock in PostgreSQL and hands the join the merge of the arrived
branches' outputs (in the order of its incoming edges, later wins on a key conflict). The join adds each
branch's own output under `branches`, keyed by the node the branch arrived from.
"""

from __future__ import annotations

from nodes import register
from nodes.base import NodeContext, NodeResult, NodeType, data_schema
from nodes.spec import NodeSpec


def execute(ctx: NodeContext) -> NodeResult:
    return NodeResult(fields={"branches": ctx.branches})


JOIN = register(
    NodeType(
        spec=NodeSpec(type="join", data_schema=data_schema({"mode": {"enum": ["all"]}}), can_fail=False),
        execute=execute,
        title="Join",
        description="Waits for every incoming branch, then goes on once with their outputs merged.",
        icon="⋈",
        colour="#f08c00",
        group="Flow",
        order=40,
        output_fields=("branches",),
        instant=True,
    )
)
