"""Workflows and their graphs, stored as rows (nodes and edges) so that the admin and queries can see them.

The contract's graph document (React Flow's shape) is built from these rows by `Workflow.graph_document()`;
writes go through `workflows.services`, which bumps `version` on every save and keeps each version's document
(`WorkflowVersion`, append-only).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q

from projects.permissions import Action, scoped

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User

# The longest message a save may leave on the version it creates.
VERSION_MESSAGE_MAX = 500

NODE_ID_VALIDATOR = RegexValidator(r"^[A-Za-z0-9_-]{1,64}$", "Node ids are 1-64 characters of A-Z, a-z, 0-9, _ and -.")


class WorkflowQuerySet(models.QuerySet["Workflow"]):
    def alive(self) -> WorkflowQuerySet:
        return self.filter(deleted_at__isnull=True)

    def visible_to(self, user: User | AnonymousUser, action: Action = Action.VIEW) -> WorkflowQuerySet:
        """The workflows of the projects in which `user` may take `action` (see `projects.permissions`)."""
        return scoped(self, user, action)


class Workflow(models.Model):
    project = models.ForeignKey("projects.Project", on_delete=models.PROTECT, related_name="workflows")
    # Who created it; what others may do with it is decided by their role in its project.
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="workflows")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    # Incremented by every save of the workflow or its graph; a run records the version it executes.
    version = models.PositiveIntegerField(default=1, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    deleted_at = models.DateTimeField(
        null=True, blank=True, help_text="Set when soft-deleted; runs keep their history."
    )

    objects = WorkflowQuerySet.as_manager()

    class Meta:
        ordering = ["-updated_at", "-id"]
        indexes = [
            # The workflow list: a project's live workflows, most recently edited first.
            models.Index(
                fields=["project", "-updated_at"],
                name="workflow_project_live_idx",
                condition=Q(deleted_at__isnull=True),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} (v{self.version})"

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None

    def graph_document(self) -> dict[str, list[dict[str, object]]]:
        """The contract's `graph` object, nodes and edges in their saved order."""
        nodes = list(self.nodes.all())
        by_pk = {node.pk: node.node_id for node in nodes}
        return {
            "nodes": [node.as_document() for node in nodes],
            "edges": [edge.as_document(by_pk) for edge in self.edges.all()],
        }

    def document(self) -> dict[str, object]:
        """The whole workflow as the contract's JSON document (what export writes)."""
        return {"name": self.name, "description": self.description, "graph": self.graph_document()}

    def version_document(self, number: int) -> dict[str, Any] | None:
        """The document `{name, description, graph}` the workflow had at version `number`; None when it never
        had that version."""
        document = self.versions.filter(number=number).values_list("document", flat=True).first()
        return document if isinstance(document, dict) else None


class Node(models.Model):
    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="nodes")
    node_id = models.CharField(max_length=64, validators=[NODE_ID_VALIDATOR])
    type = models.CharField(max_length=32)
    data = models.JSONField(default=dict, blank=True)
    position = models.JSONField(null=True, blank=True)
    order = models.PositiveIntegerField(default=0, help_text="Position in the graph document.")

    class Meta:
        ordering = ["order", "id"]
        constraints = [models.UniqueConstraint(fields=["workflow", "node_id"], name="node_unique_id_per_workflow")]

    def __str__(self) -> str:
        return f"{self.node_id} ({self.type})"

    def as_document(self) -> dict[str, object]:
        doc: dict[str, object] = {"id": self.node_id, "type": self.type}
        if self.position is not None:
            doc["position"] = self.position
        doc["data"] = self.data
        return doc


class Edge(models.Model):
    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="edges")
    edge_id = models.CharField(max_length=200)
    source = models.ForeignKey(Node, on_delete=models.CASCADE, related_name="outgoing_edges")
    target = models.ForeignKey(Node, on_delete=models.CASCADE, related_name="incoming_edges")
    source_handle = models.CharField(max_length=64, blank=True, default="")
    order = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["order", "id"]
        constraints = [models.UniqueConstraint(fields=["workflow", "edge_id"], name="edge_unique_id_per_workflow")]

    def __str__(self) -> str:
        handle = f"[{self.source_handle}]" if self.source_handle else ""
        return f"{self.edge_id}: {self.source_id}{handle} -> {self.target_id}"

    def as_document(self, node_ids: dict[int, str]) -> dict[str, object]:
        doc: dict[str, object] = {
            "id": self.edge_id,
            "source": node_ids[self.source_id],
            "target": node_ids[self.target_id],
        }
        if self.source_handle:
            doc["sourceHandle"] = self.source_handle
        return doc


class WorkflowVersion(models.Model):
    """One saved version of a workflow: the document as that save left it. Written by `workflows.services` in the
    transaction of the save, never changed (PostgreSQL refuses UPDATE on the table)."""

    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    # The contract's document: {"name", "description", "graph"}.
    document = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)
    # Who saved it; null when unknown (versions written for workflows saved before versions were kept).
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # What the saving user said of the change ("Restored version 3" for a restore); blank when nothing.
    message = models.CharField(max_length=VERSION_MESSAGE_MAX, blank=True, default="")

    class Meta:
        ordering = ["workflow", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["workflow", "number"], name="workflow_version_unique_number"),
        ]

    def __str__(self) -> str:
        return f"workflow {self.workflow_id} v{self.number}"
