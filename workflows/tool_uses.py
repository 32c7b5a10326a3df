"""The workflows whose saved graph names a tool: tools' in-use check (`tools.uses`), registered by
WorkflowsConfig.ready()."""

from __future__ import annotations

from django.db.models import Q

from nodes import node_types
from tools.models import Tool
from workflows.models import Node


def workflows_using_tool(tool: Tool) -> list[tuple[int, str]]:
    """(id, name) of the live workflows of the tool's project with a node that names `tool`, in a data key its type
    declares as naming tools (NodeType.tool_fields: "one" for a name, "many" for a list of names), by id."""
    uses = Q()
    for type_name, node_type in node_types().items():
        for key, kind in node_type.tool_fields.items():
            if kind == "one":
                uses |= Q(type=type_name, **{f"data__{key}": tool.name})
            else:
                uses |= Q(type=type_name, **{f"data__{key}__contains": [tool.name]})
    if not uses:
        return []  # no registered type names tools
    rows = (
        Node.objects.filter(uses, workflow__project_id=tool.project_id, workflow__deleted_at__isnull=True)
        .values_list("workflow_id", "workflow__name")
        .distinct()
        .order_by("workflow_id")
    )
    return list(rows)
