"""Writes to workflows. Every save of a workflow or its graph goes through here: the graph is validated first
(an invalid one raises `GraphError` listing every issue, and nothing is written) and `version` goes up."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from workflows.graph import GraphError, parse_graph
from workflows.models import Edge, Node, Workflow

__all__ = ["GraphError", "graph_normalize", "workflow_create", "workflow_soft_delete", "workflow_update"]


def graph_normalize(graph: object) -> dict[str, Any]:
    """Validate a contract graph document and return it in its stored form; raises GraphError."""
    from nodes import node_specs  # the registry imports node modules; keep it off this module's import

    return parse_graph(graph, node_specs()).to_document()


def _graph_store(*, workflow: Workflow, graph: dict[str, Any]) -> None:
    """Replace the workflow's nodes and edges with those of `graph` (a validated contract document)."""
    workflow.edges.all().delete()
    workflow.nodes.all().delete()
    nodes = Node.objects.bulk_create(
        Node(
            workflow=workflow,
            node_id=node["id"],
            type=node["type"],
            data=node.get("data") or {},
            position=node.get("position"),
            order=index,
        )
        for index, node in enumerate(graph.get("nodes", []))
    )
    by_id = {node.node_id: node for node in nodes}
    Edge.objects.bulk_create(
        Edge(
            workflow=workflow,
            edge_id=edge.get("id") or f"e{index}",
            source=by_id[edge["source"]],
            target=by_id[edge["target"]],
            source_handle=edge.get("sourceHandle") or "",
            order=index,
        )
        for index, edge in enumerate(graph.get("edges", []))
    )


@transaction.atomic
def workflow_create(*, owner: User, name: str, description: str = "", graph: object) -> Workflow:
    document = graph_normalize(graph)
    workflow = Workflow.objects.create(owner=owner, name=name, description=description)
    _graph_store(workflow=workflow, graph=document)
    return workflow


@transaction.atomic
def workflow_update(
    *, workflow: Workflow, name: str | None = None, description: str | None = None, graph: object = None
) -> Workflow:
    """Change any of name, description and graph; the version goes up by one whatever changed."""
    document = graph_normalize(graph) if graph is not None else None
    locked = Workflow.objects.select_for_update().get(pk=workflow.pk)
    if name is not None:
        locked.name = name
    if description is not None:
        locked.description = description
    locked.version = F("version") + 1
    locked.save()
    if document is not None:
        _graph_store(workflow=locked, graph=document)
    locked.refresh_from_db()
    return locked


def workflow_soft_delete(*, workflow: Workflow) -> None:
    Workflow.objects.filter(pk=workflow.pk, deleted_at__isnull=True).update(deleted_at=timezone.now())
