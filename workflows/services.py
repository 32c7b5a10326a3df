"""Writes to workflows. Every save of a workflow or its graph goes through here: the graph is validated first
(an invalid one raises `GraphError` listing every issue, and nothing is written), then completed by the node
types' save hooks (`NodeType.on_save`, with the saving user: a subworkflow pins a version there), `version`
goes up and the new version's document is kept (`WorkflowVersion`), and the change is recorded in the audit log
(`projects.audit`), all in one transaction."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AnonymousUser, User
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from projects.audit import AuditAction, actor_label, audit_record
from projects.models import Project
from projects.permissions import Action
from projects.services import personal_project
from workflows.graph import GraphError, Issue, parse_graph
from workflows.models import Edge, Node, Workflow, WorkflowVersion

__all__ = [
    "GraphError",
    "VersionNotFound",
    "WorkflowSaveContext",
    "graph_normalize",
    "workflow_create",
    "workflow_restore",
    "workflow_soft_delete",
    "workflow_undelete",
    "workflow_update",
]


class WorkflowSaveContext:
    """What node types' save hooks reach (nodes.base.SaveContext): the workflows `user` may see, and any saved
    workflow's documents (to follow the workflows a workflow calls)."""

    def __init__(self, *, user: User | AnonymousUser, workflow_id: int | None = None, workflow_name: str = "") -> None:
        self.user = user
        self.workflow_id = workflow_id
        self.workflow_name = workflow_name

    def workflow(self, workflow_id: int) -> Workflow | None:
        return Workflow.objects.alive().visible_to(self.user, Action.RUN).filter(pk=workflow_id).first()

    def document(self, workflow_id: int, version: int | None = None) -> dict[str, Any] | None:
        workflow = Workflow.objects.alive().filter(pk=workflow_id).only("pk", "version").first()
        if workflow is None:
            return None
        return workflow.version_document(workflow.version if version is None else version)


def graph_normalize(graph: object, *, saving: WorkflowSaveContext | None = None) -> dict[str, Any]:
    """Validate a contract graph document and return it in its stored form; raises GraphError. With `saving`
    (who saves it, and which workflow), the node types' save hooks then complete and check each node's data."""
    from nodes import node_specs  # the registry imports node modules; keep it off this module's import

    document = parse_graph(graph, node_specs()).to_document()
    if saving is not None:
        document = _graph_complete(document, saving)
    return document


def _graph_complete(document: dict[str, Any], saving: WorkflowSaveContext) -> dict[str, Any]:
    """`document` with each node's data as its type's save hook completes it; GraphError with their problems."""
    from nodes import node_types

    types = node_types()
    issues: list[Issue] = []
    nodes = []
    for node in document.get("nodes", []):
        hook = types[node["type"]].on_save if node["type"] in types else None
        if hook is not None:
            data, problems = hook(dict(node.get("data") or {}), saving)
            for field, message in problems:
                prefix = f'node "{node["id"]}": data.{field}' if field else f'node "{node["id"]}"'
                issues.append(Issue(f"{prefix}: {message}", node_id=node["id"], field=field or None))
            node = {**node, "data": data}
        nodes.append(node)
    if issues:
        raise GraphError(issues)
    return {**document, "nodes": nodes}


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


def _version_keep(*, workflow: Workflow, author: User | None, message: str = "") -> None:
    """Keep the document the workflow has now (its nodes and edges as stored) as its current version."""
    WorkflowVersion.objects.create(
        workflow=workflow, number=workflow.version, document=workflow.document(), author=author, message=message
    )


@transaction.atomic
def workflow_create(
    *,
    owner: User,
    name: str,
    description: str = "",
    graph: object,
    project: Project | None = None,
    message: str = "",
) -> Workflow:
    """A new workflow created by `owner` (who saves it: the save hooks see what they may see), at version 1, in
    `project` (default: `owner`'s personal project), `message` (at most VERSION_MESSAGE_MAX characters) kept on
    that version. The caller has checked that `owner` may edit there."""
    document = graph_normalize(graph, saving=WorkflowSaveContext(user=owner, workflow_name=name))
    project = project if project is not None else personal_project(owner)
    workflow = Workflow.objects.create(owner=owner, project=project, name=name, description=description)
    _graph_store(workflow=workflow, graph=document)
    _version_keep(workflow=workflow, author=owner, message=message)
    audit_record(
        actor=owner,
        action=AuditAction.WORKFLOW_CREATED,
        obj=workflow,
        summary=f"{actor_label(owner)} created workflow {name!r}",
        changes={"version": workflow.version, **({"message": message} if message else {})},
    )
    return workflow


@transaction.atomic
def workflow_update(
    *,
    workflow: Workflow,
    name: str | None = None,
    description: str | None = None,
    graph: object = None,
    by: User | None = None,
    message: str = "",
    restoring: int | None = None,
) -> Workflow:
    """Change any of name, description and graph; the version goes up by one whatever changed. `by` is who
    saves it (default: the owner): the save hooks see what they may see, and the new version names them, with
    `message` (at most VERSION_MESSAGE_MAX characters). `restoring`: the number of the version this save
    restores (`workflow_restore`), for the audit log."""
    locked = Workflow.objects.select_for_update().select_related("owner").get(pk=workflow.pk)
    author = by if by is not None else locked.owner
    before = {"name": locked.name, "description": locked.description}
    document = None
    if graph is not None:
        saving = WorkflowSaveContext(user=author, workflow_id=locked.pk, workflow_name=name or locked.name)
        document = graph_normalize(graph, saving=saving)
    if name is not None:
        locked.name = name
    if description is not None:
        locked.description = description
    locked.version = F("version") + 1
    locked.save()
    if document is not None:
        _graph_store(workflow=locked, graph=document)
    locked.refresh_from_db()
    _version_keep(workflow=locked, author=author, message=message)
    changes: dict[str, Any] = {"version": locked.version}
    changed = [field for field, old in before.items() if getattr(locked, field) != old]
    if document is not None:
        changed.append("graph")
    changes["fields"] = changed
    if "name" in changed:
        changes["name"] = {"from": before["name"], "to": locked.name}
    if message:
        changes["message"] = message
    if restoring is not None:
        changes["restored"] = restoring
        action = AuditAction.WORKFLOW_RESTORED
        summary = (
            f"{actor_label(author)} restored version {restoring} of workflow {locked.name!r} "
            f"as version {locked.version}"
        )
    else:
        action = AuditAction.WORKFLOW_SAVED
        summary = f"{actor_label(author)} saved workflow {locked.name!r} as version {locked.version}"
    audit_record(actor=author, action=action, obj=locked, summary=summary, changes=changes)
    return locked


class VersionNotFound(LookupError):
    """The workflow never had the version asked for; the message names it."""


def workflow_restore(*, workflow: Workflow, number: int, by: User, message: str = "") -> Workflow:
    """Save version `number`'s document (name, description, graph) as the workflow's next version, through
    `workflow_update`: the graph is validated and completed by the save hooks as `by` would save it now, so a
    version that names what is gone (a deleted tool or sub-workflow) raises GraphError and nothing is saved.
    VersionNotFound when there is no such version. The caller has checked that `by` may edit the workflow."""
    document = workflow.version_document(number)
    if document is None:
        raise VersionNotFound(f"workflow {workflow.pk} has no version {number}")
    return workflow_update(
        workflow=workflow,
        name=document.get("name", workflow.name),
        description=document.get("description", ""),
        graph=document.get("graph") or {},
        by=by,
        message=message or f"Restored version {number}",
        restoring=number,
    )


@transaction.atomic
def workflow_soft_delete(*, workflow: Workflow, by: User | None = None) -> bool:
    """Mark the workflow deleted (its runs keep their history); `by` is who deletes it. Returns False when it
    was deleted already."""
    deleted = Workflow.objects.filter(pk=workflow.pk, deleted_at__isnull=True).update(deleted_at=timezone.now())
    if deleted:
        audit_record(
            actor=by,
            action=AuditAction.WORKFLOW_DELETED,
            obj=workflow,
            summary=f"{actor_label(by)} deleted workflow {workflow.name!r}",
        )
    return bool(deleted)


@transaction.atomic
def workflow_undelete(*, workflow: Workflow, by: User | None = None) -> bool:
    """Bring a soft-deleted workflow back (the admin's action); False when it was not deleted."""
    undeleted = Workflow.objects.filter(pk=workflow.pk, deleted_at__isnull=False).update(deleted_at=None)
    if undeleted:
        audit_record(
            actor=by,
            action=AuditAction.WORKFLOW_UNDELETED,
            obj=workflow,
            summary=f"{actor_label(by)} undeleted workflow {workflow.name!r}",
        )
    return bool(undeleted)
