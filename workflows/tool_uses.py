"""The workflows whose saved graph names a tool: tools' in-use check (`tools.uses`), registered by
WorkflowsConfig.ready()."""

from __future__ import annotations

from django.db.models import Q

from tools.models import Tool
from workflows.models import Node

# The data keys that name the owner's tools, by node type: "one" for a tool's name, "many" for a list of names.
TOOL_FIELDS = {"tool": {"tool": "one"}, "agent": {"tools": "many"}, "cognitive": {"tools": "many"}}


def workflows_using_tool(tool: Tool) -> list[tuple[int, str]]:
    """(id, name) of the live workflows of the tool's owner with a node that names `tool`, by id."""
    uses = Q()
    for node_type, fields in TOOL_FIELDS.items():
        for key, kind in fields.items():
            if kind == "one":
                uses |= Q(type=node_type, **{f"data__{key}": tool.name})
            else:
                uses |= Q(type=node_type, **{f"data__{key}__contains": [tool.name]})
    rows = (
        Node.objects.filter(uses, workflow__owner_id=tool.owner_id, workflow__deleted_at__isnull=True)
        .values_list("workflow_id", "workflow__name")
        .distinct()
        .order_by("workflow_id")
    )
    return list(rows)
