"""Small builders for test data. Workflows go through the service, as in production."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User

from projects.models import Membership, Project, Role
from projects.services import member_set, project_create
from runs.models import Run
from workflows.models import Workflow
from workflows.services import workflow_create


def linear_graph(*middle: tuple[str, str, dict[str, Any]]) -> dict[str, Any]:
    """start -> each (id, type, data) in order -> end."""
    nodes = [{"id": "start", "type": "start", "data": {}}]
    nodes += [{"id": node_id, "type": node_type, "data": data} for node_id, node_type, data in middle]
    nodes.append({"id": "end", "type": "end", "data": {}})
    edges = [
        {"id": f"e{index}", "source": nodes[index]["id"], "target": nodes[index + 1]["id"]}
        for index in range(len(nodes) - 1)
    ]
    return {"nodes": nodes, "edges": edges}


def make_workflow(owner: User, *, name: str = "Example", graph: dict[str, Any] | None = None) -> Workflow:
    return workflow_create(owner=owner, name=name, description="", graph=graph or linear_graph())


def make_run(workflow: Workflow, **fields: Any) -> Run:
    fields.setdefault("owner", workflow.owner)
    fields.setdefault("project_id", workflow.project_id)
    return Run.objects.create(
        workflow=workflow,
        workflow_name=workflow.name,
        workflow_version=workflow.version,
        graph=workflow.graph_document(),
        **fields,
    )


def make_team(admin: User, *, name: str = "Team", **members: tuple[User, Role]) -> Project:
    """A project `admin` created (so they are its admin), with the given members: `bob=(bob, Role.EDITOR)`."""
    project = project_create(name=name, by=admin)
    for user, role in members.values():
        member_set(project=project, user=user, role=role, by=admin)
    return project


def member_roles(project: Project) -> dict[str, str]:
    """{username: role} of the project's members."""
    return dict(Membership.objects.filter(project=project).values_list("user__username", "role"))
