"""`end`: finishes a path. Its optional `output` (an object of templates) selects the run's final output;
without one the run's output is everything the end node received."""

from __future__ import annotations

from nodes import register
from nodes.base import NodeContext, NodeResult, NodeType, data_schema, template_check
from nodes.spec import NodeSpec


def execute(ctx: NodeContext) -> NodeResult:
    template = ctx.data.get("output")
    output = dict(ctx.input) if template is None else ctx.render(template)
    return NodeResult(run_output=output)


END = register(
    NodeType(
        spec=NodeSpec(
            type="end",
            data_schema=data_schema({"output": {"type": "object", "title": "Output (object of templates)"}}),
            allows_outgoing=False,
            check=template_check("output"),
            can_fail=False,
        ),
        execute=execute,
        title="End",
        description="Finishes the run; its optional output selects what the run returns.",
        icon="■",
        colour="#495057",
        group="Flow",
        order=20,
        instant=True,
        ends_run=True,
    )
)
