"""Every existing workflow gets its current version kept (the earlier ones are gone). Its author is unknown."""

from typing import Any

from django.apps.registry import Apps
from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor


def _document(workflow: Any, node_model: Any, edge_model: Any) -> dict[str, Any]:
    """`Workflow.document()`, from the historical models (which have none of the model's methods)."""
    nodes = list(node_model.objects.filter(workflow=workflow).order_by("order", "id"))
    by_pk = {node.pk: node.node_id for node in nodes}
    node_docs = []
    for node in nodes:
        doc: dict[str, Any] = {"id": node.node_id, "type": node.type}
        if node.position is not None:
            doc["position"] = node.position
        doc["data"] = node.data
        node_docs.append(doc)
    edge_docs = []
    for edge in edge_model.objects.filter(workflow=workflow).order_by("order", "id"):
        edge_doc: dict[str, Any] = {
            "id": edge.edge_id,
            "source": by_pk[edge.source_id],
            "target": by_pk[edge.target_id],
        }
        if edge.source_handle:
            edge_doc["sourceHandle"] = edge.source_handle
        edge_docs.append(edge_doc)
    return {
        "name": workflow.name,
        "description": workflow.description,
        "graph": {"nodes": node_docs, "edges": edge_docs},
    }


def keep_current_versions(apps: Apps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    workflow_model = apps.get_model("workflows", "Workflow")
    node_model = apps.get_model("workflows", "Node")
    edge_model = apps.get_model("workflows", "Edge")
    version_model = apps.get_model("workflows", "WorkflowVersion")
    kept = set(version_model.objects.values_list("workflow_id", "number"))
    for workflow in workflow_model.objects.order_by("pk").iterator(chunk_size=200):
        if (workflow.pk, workflow.version) in kept:
            continue
        version_model.objects.create(
            workflow=workflow, number=workflow.version, document=_document(workflow, node_model, edge_model)
        )


def forget_versions(apps: Apps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    apps.get_model("workflows", "WorkflowVersion").objects.all().delete()


class Migration(migrations.Migration):
    dependencies = [("workflows", "0002_workflow_versions")]

    operations = [migrations.RunPython(keep_current_versions, forget_versions)]
