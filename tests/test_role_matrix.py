"""Every route of the API and the pages, asked by each role of a team project, and by someone outside it.

The table below names, for each route and method, the least role that may use it (`projects.permissions`).
Below that role a member gets 403 (or 404 where a rule of its own hides the object, as approvals' assignee
rule does), someone outside the project 404; from that role up the request is served (any answer but 403,
404 and a server error: a 409 for cancelling a finished run is the route at work). A list answers everyone,
and never shows an outsider anything of the project. `test_every_route_is_in_the_table` fails when a route
is added without a line here.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient

from approvals.models import ApprovalRequest
from projects.models import Project, Role
from projects.services import member_set, project_create
from runs.models import LedgerEntry, NodeRun, Run
from tests.api.conftest import approval_graph
from tests.factories import make_run
from tools.models import Tool
from tools.services import tool_create
from triggers.models import Trigger, TriggerType
from triggers.services import trigger_create
from workflows.models import Workflow
from workflows.services import workflow_create

pytestmark = pytest.mark.django_db

PERSONAS = ("outsider", "viewer", "runner", "editor", "admin", "staff")
RANK = {"outsider": 0, "viewer": 1, "runner": 2, "editor": 3, "admin": 4, "staff": 4}
# Names only the team's objects carry, to tell whether a list shows them.
SECRET_NAMES = ("Payroll team", "Quarterly payroll", "payroll_lookup", "Pay the quarter?", "payroll hook")


@dataclass
class World:
    project: Project
    users: dict[str, User]
    workflow: Workflow
    run: Run
    waiting: Run
    approval: ApprovalRequest
    tool: Tool
    trigger: Trigger


@pytest.fixture
def world(make_user: Callable[..., User]) -> World:
    """A team project with one member of each role, its workflow, runs, pending approval, tool and webhook."""
    admin = make_user("ada")
    users = {
        "admin": admin,
        "viewer": make_user("vic"),
        "runner": make_user("rita"),
        "editor": make_user("eddie"),
        "outsider": make_user("mallory"),
        "staff": make_user("stan", staff=True),
        "pat": make_user("pat"),  # a viewer whom the member routes take out (and contents() puts back)
    }
    project = project_create(name="Payroll team", by=admin)
    for persona in ("viewer", "runner", "editor"):
        member_set(project=project, user=users[persona], role=Role(persona), by=admin)
    return contents(project, users)


def contents(project: Project, users: dict[str, User]) -> World:
    """The project's objects, made anew (after a route deleted them)."""
    admin = users["admin"]
    if not project.memberships.filter(user=users["pat"]).exists():
        member_set(project=project, user=users["pat"], role=Role.VIEWER, by=admin)
    workflow = workflow_create(
        owner=admin, project=project, name="Quarterly payroll", graph=approval_graph(message="Pay the quarter?")
    )
    run = make_run(workflow, status="succeeded", input={"order": 1})
    LedgerEntry.objects.create(run=run, seq=1, node_id="start", node_type="start", status="succeeded")
    waiting = make_run(workflow, status="waiting", input={"order": 2})
    NodeRun.objects.create(run=waiting, node_id="ask", node_type="user_approval", status="waiting")
    approval = ApprovalRequest.objects.create(run=waiting, node_id="ask", message="Pay the quarter?")
    tool = Tool.objects.filter(project=project, name="payroll_lookup").first() or tool_create(
        owner=admin, project=project, name="payroll_lookup", description="Finds a payslip", url="http://127.0.0.1:9/"
    )
    trigger = Trigger(workflow=workflow, type=TriggerType.WEBHOOK, name="payroll hook")
    trigger_create(trigger)
    return World(project, users, workflow, run, waiting, approval, tool, trigger)


Path = Callable[[World], str]
Body = Callable[[World], Any]


@dataclass(frozen=True)
class Route:
    name: str  # the URL's name, "api:..." for the API
    method: str
    path: Path
    least: str | None  # the least persona that may use it; None: any signed-in user (no project object)
    body: Body | None = None
    listing: bool = False  # a list: everyone is served, an outsider sees nothing of the project
    hidden_below: bool = False  # below `least`, a member gets 404 (the object's own rule hides it), not 403
    outsider_status: int = 404
    form: bool = False  # a page's form POST (else JSON)
    destroys: bool = False  # once served, the objects are made anew for the next persona


def w(world: World) -> int:
    return world.workflow.pk


ROUTES: list[Route] = [
    # --- API: workflows
    Route("api:workflow-list", "GET", lambda x: "/api/workflows/", None, listing=True),
    Route(
        "api:workflow-list",
        "POST",
        lambda x: "/api/workflows/",
        "editor",
        body=lambda x: {"name": "New", "graph": approval_graph(), "project": x.project.pk},
        outsider_status=400,  # a project you are not a member of is a bad value of `project`
    ),
    Route(
        "api:workflow-import-",
        "POST",
        lambda x: "/api/workflows/import/",
        "editor",
        body=lambda x: {"name": "Imported", "graph": approval_graph(), "project": x.project.pk},
        outsider_status=400,
    ),
    Route(
        "api:workflow-validate-graph",
        "POST",
        lambda x: "/api/workflows/validate/",
        None,
        body=lambda x: {"graph": approval_graph()},
    ),
    Route("api:workflow-detail", "GET", lambda x: f"/api/workflows/{w(x)}/", "viewer"),
    Route("api:workflow-detail", "PATCH", lambda x: f"/api/workflows/{w(x)}/", "editor", body=lambda x: {"name": "R"}),
    Route(
        "api:workflow-detail",
        "PUT",
        lambda x: f"/api/workflows/{w(x)}/",
        "editor",
        body=lambda x: {"name": "R", "graph": approval_graph()},
    ),
    Route("api:workflow-detail", "DELETE", lambda x: f"/api/workflows/{w(x)}/", "admin", destroys=True),
    Route("api:workflow-export", "GET", lambda x: f"/api/workflows/{w(x)}/export/", "viewer"),
    Route(
        "api:workflow-start-run",
        "POST",
        lambda x: f"/api/workflows/{w(x)}/runs/",
        "runner",
        body=lambda x: {"input": {"order": 3}},
    ),
    Route("api:workflow-triggers", "GET", lambda x: f"/api/workflows/{w(x)}/triggers/", "viewer"),
    Route(
        "api:workflow-triggers",
        "POST",
        lambda x: f"/api/workflows/{w(x)}/triggers/",
        "editor",
        body=lambda x: {"type": "schedule", "every_seconds": 3600},
    ),
    # --- API: runs
    Route("api:run-list", "GET", lambda x: "/api/runs/", None, listing=True),
    Route("api:run-detail", "GET", lambda x: f"/api/runs/{x.run.pk}/", "viewer"),
    Route("api:run-ledger", "GET", lambda x: f"/api/runs/{x.run.pk}/ledger/", "viewer"),
    Route("api:run-trace", "GET", lambda x: f"/api/runs/{x.run.pk}/trace/", "viewer"),
    Route("api:run-compare", "GET", lambda x: f"/api/runs/compare/?a={x.run.pk}&b={x.waiting.pk}", "viewer"),
    Route("api:run-cancel", "POST", lambda x: f"/api/runs/{x.run.pk}/cancel/", "runner"),
    Route("api:run-rerun", "POST", lambda x: f"/api/runs/{x.run.pk}/rerun/", "runner", body=lambda x: {}),
    Route(
        "api:run-resume",
        "POST",
        lambda x: f"/api/runs/{x.run.pk}/resume/",
        "runner",
        body=lambda x: {"node_id": "start"},
    ),
    Route("api:usage", "GET", lambda x: "/api/usage/", None, listing=True),
    # --- API: approvals (assignee rule: unassigned requests are the runners' of the run's project)
    Route("api:approval-list", "GET", lambda x: "/api/approvals/", None, listing=True),
    Route("api:approval-detail", "GET", lambda x: f"/api/approvals/{x.approval.pk}/", "runner", hidden_below=True),
    Route(
        "api:approval-decide",
        "POST",
        lambda x: f"/api/approvals/{x.approval.pk}/decide/",
        "runner",
        body=lambda x: {"decision": "approved"},
        hidden_below=True,
    ),
    # --- API: tools
    Route("api:tool-list", "GET", lambda x: "/api/tools/", None, listing=True),
    Route(
        "api:tool-list",
        "POST",
        lambda x: "/api/tools/",
        "editor",
        body=lambda x: {"name": "another", "url": "http://127.0.0.1:9/", "project": x.project.pk},
        outsider_status=400,
    ),
    Route("api:tool-detail", "GET", lambda x: f"/api/tools/{x.tool.pk}/", "viewer"),
    Route(
        "api:tool-detail",
        "PATCH",
        lambda x: f"/api/tools/{x.tool.pk}/",
        "editor",
        body=lambda x: {"description": "Finds a payslip, fast"},
    ),
    Route(
        "api:tool-detail",
        "PUT",
        lambda x: f"/api/tools/{x.tool.pk}/",
        "editor",
        body=lambda x: {"name": "payroll_lookup", "url": "http://127.0.0.1:9/"},
    ),
    Route("api:tool-detail", "DELETE", lambda x: f"/api/tools/{x.tool.pk}/", "admin", destroys=True),
    Route(
        "api:tool-test", "POST", lambda x: f"/api/tools/{x.tool.pk}/test/", "editor", body=lambda x: {"arguments": {}}
    ),
    # --- API: triggers
    Route("api:trigger-list", "GET", lambda x: "/api/triggers/", None, listing=True),
    Route("api:trigger-detail", "GET", lambda x: f"/api/triggers/{x.trigger.pk}/", "viewer"),
    Route(
        "api:trigger-detail",
        "PATCH",
        lambda x: f"/api/triggers/{x.trigger.pk}/",
        "editor",
        body=lambda x: {"name": "renamed hook"},
    ),
    Route("api:trigger-detail", "DELETE", lambda x: f"/api/triggers/{x.trigger.pk}/", "admin", destroys=True),
    Route("api:trigger-firings", "GET", lambda x: f"/api/triggers/{x.trigger.pk}/firings/", "viewer"),
    Route("api:trigger-rotate", "POST", lambda x: f"/api/triggers/{x.trigger.pk}/rotate/", "editor"),
    # --- API: versions
    Route("api:workflow-versions", "GET", lambda x: f"/api/workflows/{w(x)}/versions/", "viewer"),
    Route("api:workflow-version-detail", "GET", lambda x: f"/api/workflows/{w(x)}/versions/1/", "viewer"),
    Route("api:workflow-version-diff", "GET", lambda x: f"/api/workflows/{w(x)}/versions/diff/?a=1&b=1", "viewer"),
    Route(
        "api:workflow-version-restore",
        "POST",
        lambda x: f"/api/workflows/{w(x)}/versions/1/restore/",
        "editor",
        body=lambda x: {},
    ),
    # --- API: projects and members
    Route("api:project-list", "GET", lambda x: "/api/projects/", None, listing=True),
    Route("api:project-list", "POST", lambda x: "/api/projects/", None, body=lambda x: {"name": "Mine"}),
    Route("api:project-detail", "GET", lambda x: f"/api/projects/{x.project.pk}/", "viewer"),
    Route(
        "api:project-detail",
        "PATCH",
        lambda x: f"/api/projects/{x.project.pk}/",
        "admin",
        body=lambda x: {"name": "Payroll team"},
    ),
    # Refused with a 409 while the project holds workflows: the route at work, nothing deleted.
    Route("api:project-detail", "DELETE", lambda x: f"/api/projects/{x.project.pk}/", "admin"),
    Route("api:project-members", "GET", lambda x: f"/api/projects/{x.project.pk}/members/", "viewer"),
    Route(
        "api:project-members",
        "POST",
        lambda x: f"/api/projects/{x.project.pk}/members/",
        "admin",
        body=lambda x: {"user": "pat", "role": "runner"},
    ),
    Route(
        "api:project-members",
        "DELETE",
        lambda x: f"/api/projects/{x.project.pk}/members/",
        "admin",
        body=lambda x: {"user": "pat"},
        destroys=True,
    ),
    Route(
        "api:project-member", "DELETE", lambda x: f"/api/projects/{x.project.pk}/members/pat/", "admin", destroys=True
    ),
    # --- API: the audit log (a project's: its admins')
    Route("api:audit", "GET", lambda x: f"/api/audit/?project={x.project.pk}", "admin"),
    Route("api:audit", "GET", lambda x: "/api/audit/", None, listing=True),
    # --- API: no project object
    Route(
        "api:transform-preview",
        "POST",
        lambda x: "/api/nodes/transform/preview/",
        None,
        body=lambda x: {"expression": "$", "input": {}},
    ),
    # --- pages: workflows
    Route("home", "GET", lambda x: "/", None, listing=True),
    Route("workflow_list", "GET", lambda x: "/workflows/", None, listing=True),
    Route("workflow_new", "GET", lambda x: "/workflows/new/", None),
    Route(
        "workflow_create",
        "POST",
        lambda x: "/workflows/new/json/",
        None,
        body=lambda x: {"name": "Mine", "graph": approval_graph()},
    ),
    Route(
        "workflow_import",
        "POST",
        lambda x: "/workflows/import/",
        None,
        body=lambda x: {"file": _upload({"name": "Mine", "graph": approval_graph()})},
        form=True,
    ),
    Route("workflow_detail", "GET", lambda x: f"/workflows/{w(x)}/", "viewer"),
    Route(
        "workflow_detail",
        "POST",
        lambda x: f"/workflows/{w(x)}/",
        "runner",
        body=lambda x: {"input_mode": "json", "input_json": '{"order": 4}'},
        form=True,
    ),
    Route("workflow_edit", "GET", lambda x: f"/workflows/{w(x)}/edit/", "editor"),
    Route("workflow_duplicate", "POST", lambda x: f"/workflows/{w(x)}/duplicate/", "viewer", form=True),
    Route("workflow_delete", "GET", lambda x: f"/workflows/{w(x)}/delete/", "admin"),
    Route("workflow_delete", "POST", lambda x: f"/workflows/{w(x)}/delete/", "admin", form=True, destroys=True),
    Route("workflow_export", "GET", lambda x: f"/workflows/{w(x)}/export/", "viewer"),
    Route("workflow_runs", "GET", lambda x: f"/workflows/{w(x)}/runs/", "viewer"),
    Route("workflow_versions", "GET", lambda x: f"/workflows/{w(x)}/versions/", "viewer"),
    Route("workflow_version_diff", "GET", lambda x: f"/workflows/{w(x)}/versions/diff/?a=1&b=1", "viewer"),
    Route("workflow_version_restore", "GET", lambda x: f"/workflows/{w(x)}/versions/1/restore/", "editor"),
    Route("workflow_version_restore", "POST", lambda x: f"/workflows/{w(x)}/versions/1/restore/", "editor", form=True),
    # --- pages: projects
    Route("project_list", "GET", lambda x: "/projects/", None, listing=True),
    Route("project_list", "POST", lambda x: "/projects/", None, body=lambda x: {"name": "Mine"}, form=True),
    Route("project_detail", "GET", lambda x: f"/projects/{x.project.pk}/", "viewer"),
    Route(
        "project_member_set",
        "POST",
        lambda x: f"/projects/{x.project.pk}/members/",
        "admin",
        body=lambda x: {"user": "pat", "role": "runner"},
        form=True,
    ),
    Route(
        "project_member_remove",
        "POST",
        lambda x: f"/projects/{x.project.pk}/members/pat/remove/",
        "admin",
        form=True,
        destroys=True,
    ),
    Route("audit_log", "GET", lambda x: f"/audit/?project={x.project.pk}", "admin"),
    Route("audit_log", "GET", lambda x: "/audit/", None, listing=True),
    # --- pages: runs
    Route("run_list", "GET", lambda x: "/runs/", None, listing=True),
    Route("run_detail", "GET", lambda x: f"/runs/{x.run.pk}/", "viewer"),
    Route("ledger_entry", "GET", lambda x: f"/runs/{x.run.pk}/ledger/1/", "viewer"),
    Route("run_states", "GET", lambda x: f"/runs/{x.run.pk}/states/", "viewer"),
    Route("run_node_detail", "GET", lambda x: f"/runs/{x.run.pk}/nodes/start/", "viewer"),
    Route("run_compare", "GET", lambda x: f"/runs/compare/?a={x.run.pk}&b={x.waiting.pk}", "viewer"),
    Route("run_cancel", "POST", lambda x: f"/runs/{x.run.pk}/cancel/", "runner", form=True),
    Route("run_rerun", "POST", lambda x: f"/runs/{x.run.pk}/rerun/", "runner", form=True),
    Route("run_resume", "GET", lambda x: f"/runs/{x.run.pk}/resume/", "runner"),
    Route(
        "run_resume",
        "POST",
        lambda x: f"/runs/{x.run.pk}/resume/",
        "runner",
        body=lambda x: {"node_id": "start"},
        form=True,
    ),
    Route("usage", "GET", lambda x: "/usage/", None, listing=True),
    # --- pages: approvals
    Route("approval_inbox", "GET", lambda x: "/approvals/", None, listing=True),
    Route(
        "approval_decide",
        "POST",
        lambda x: f"/approvals/{x.approval.pk}/decide/",
        "runner",
        body=lambda x: {"decision": "approved"},
        hidden_below=True,
        form=True,
    ),
    # --- pages: triggers
    Route("workflow_triggers", "GET", lambda x: f"/workflows/{w(x)}/triggers/", "viewer"),
    Route(
        "workflow_triggers",
        "POST",
        lambda x: f"/workflows/{w(x)}/triggers/",
        "editor",
        body=lambda x: {"type": "schedule", "kind": "every", "every_seconds": "3600", "overlap": "skip"},
        form=True,
    ),
    Route("trigger_preview", "GET", lambda x: f"/workflows/{w(x)}/triggers/preview/?every_seconds=60", "viewer"),
    Route(
        "trigger_toggle",
        "POST",
        lambda x: f"/workflows/{w(x)}/triggers/{x.trigger.pk}/toggle/",
        "editor",
        body=lambda x: {"enabled": "false"},
        form=True,
    ),
    Route(
        "trigger_rotate", "POST", lambda x: f"/workflows/{w(x)}/triggers/{x.trigger.pk}/rotate/", "editor", form=True
    ),
    Route("trigger_delete", "GET", lambda x: f"/workflows/{w(x)}/triggers/{x.trigger.pk}/delete/", "admin"),
    Route(
        "trigger_delete",
        "POST",
        lambda x: f"/workflows/{w(x)}/triggers/{x.trigger.pk}/delete/",
        "admin",
        form=True,
        destroys=True,
    ),
]

# Routes outside the table, and why: they act on no project's contents.
EXEMPT = {
    "healthz": "liveness, public",
    "readyz": "readiness, public",
    "metrics": "Prometheus, its own token",
    "login": "signing in",
    "logout": "signing out",
    "api:token": "signing in",
    "api:schema": "the OpenAPI document",
    "api:docs": "the API's documentation",
    "api:redoc": "the API's documentation",
    "api:api-root": "the API's index",
    "webhook": "authenticated by its secret, tested in tests/triggers",
}


def _upload(document: dict[str, Any]) -> Any:
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile("workflow.json", json.dumps(document).encode(), content_type="application/json")


def _route_names(patterns: list[URLPattern | URLResolver], namespace: str = "") -> Iterator[str]:
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            if pattern.app_name == "admin":
                continue  # staff only, as a whole: tests/test_admin.py
            inner = f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
            yield from _route_names(pattern.url_patterns, inner)
        elif pattern.name:
            yield f"{namespace}{pattern.name}"


def test_every_route_is_in_the_table() -> None:
    names = set(_route_names(get_resolver().url_patterns))
    covered = {route.name for route in ROUTES} | set(EXEMPT)
    assert names - covered == set(), "routes with no line in the role matrix"
    assert covered - names == set(), "lines in the role matrix naming no route"


def test_the_editor_opens_for_a_project_where_the_user_may_edit(world: World) -> None:
    path = f"/workflows/new/?project={world.project.pk}"
    for persona, status in [("outsider", 404), ("viewer", 403), ("runner", 403), ("editor", 200), ("admin", 200)]:
        client = Client()
        client.force_login(world.users[persona])
        page = client.get(path)
        assert page.status_code == status, persona
        if status == 200:
            text = page.content.decode()
            assert f'data-project-id="{world.project.pk}"' in text and "payroll_lookup" in text


def test_an_editor_creates_a_workflow_in_the_team_project(world: World) -> None:
    api = APIClient()
    api.force_authenticate(world.users["editor"])
    body = {"name": "Bonus", "graph": approval_graph(), "project": world.project.pk, "message": "first draft"}
    created = api.post("/api/workflows/", body, format="json")
    assert created.status_code == 201, created.json()
    assert created.json()["project"] == world.project.pk and created.json()["owner"] == "eddie"
    # Every member sees it; it stays in its project.
    viewer = APIClient()
    viewer.force_authenticate(world.users["viewer"])
    assert viewer.get(f"/api/workflows/{created.json()['id']}/").status_code == 200
    own = api.get("/api/projects/").json()["results"]
    personal = next(project["id"] for project in own if project["personal"])
    moved = api.patch(f"/api/workflows/{created.json()['id']}/", {"project": personal}, format="json")
    assert moved.status_code == 400 and "cannot move" in moved.json()["project"][0]


def _request(route: Route, world: World, persona: str) -> Any:
    user = world.users[persona]
    path = route.path(world)
    body = route.body(world) if route.body else None
    if route.name.startswith("api:"):
        api = APIClient()
        api.force_authenticate(user)
        return getattr(api, route.method.lower())(path, body, format="json")
    client = Client()
    client.force_login(user)
    if route.method == "GET":
        return client.get(path)
    if route.form:
        return client.post(path, body or {})
    return client.post(path, json.dumps(body), content_type="application/json")


def _route_id(route: Route) -> str:
    return f"{route.method} {route.name}"


@pytest.mark.parametrize("route", ROUTES, ids=_route_id)
def test_each_role_gets_what_its_role_allows(route: Route, world: World) -> None:
    for persona in PERSONAS:
        response = _request(route, world, persona)
        status = response.status_code
        where = f"{route.method} {route.path(world)} as {persona}: {status} {response.content[:300]!r}"
        assert status < 500, where
        if route.listing:
            assert status == 200, where
            text = response.content.decode()
            if persona == "outsider":
                assert not any(name in text for name in SECRET_NAMES), where
            continue
        if route.least is None or RANK[persona] >= RANK[route.least]:
            assert status not in (403, 404), where
            if route.destroys:
                world = contents(world.project, world.users)
        elif persona == "outsider":
            assert status == route.outsider_status, where
        else:
            assert status == (404 if route.hidden_below else 403), where


def test_a_member_sees_the_project_in_every_list(world: World) -> None:
    api = APIClient()
    api.force_authenticate(world.users["viewer"])
    assert [item["name"] for item in api.get("/api/workflows/").json()["results"]] == ["Quarterly payroll"]
    assert {item["id"] for item in api.get("/api/runs/").json()["results"]} == {world.run.pk, world.waiting.pk}
    assert [item["name"] for item in api.get("/api/tools/").json()["results"]] == ["payroll_lookup"]
    assert [item["name"] for item in api.get("/api/triggers/").json()["results"]] == ["payroll hook"]
    # Approvals keep their own rule: an unassigned request is for those who may run the workflow.
    assert api.get("/api/approvals/").json()["count"] == 0
    runner = APIClient()
    runner.force_authenticate(world.users["runner"])
    assert [item["id"] for item in runner.get("/api/approvals/").json()["results"]] == [world.approval.pk]


def test_a_403_names_the_role_the_action_needs(world: World) -> None:
    api = APIClient()
    api.force_authenticate(world.users["runner"])
    answer = api.patch(f"/api/workflows/{world.workflow.pk}/", {"name": "R"}, format="json")
    assert answer.status_code == 403
    assert answer.json()["detail"] == (
        "your role in this project is runner; changing workflows, tools and triggers needs the editor role"
    )
    client = Client()
    client.force_login(world.users["viewer"])
    page = client.get(f"/workflows/{world.workflow.pk}/edit/")
    assert page.status_code == 403
    assert "changing workflows, tools and triggers needs the editor role" in page.content.decode()


def test_a_named_assignee_decides_without_being_a_member(world: World, make_user: Callable[..., User]) -> None:
    approver = make_user("olga")
    world.approval.assignee_users.add(approver)
    api = APIClient()
    api.force_authenticate(approver)
    assert api.get(f"/api/approvals/{world.approval.pk}/").status_code == 200
    assert api.get(f"/api/runs/{world.waiting.pk}/").status_code == 404  # the run itself stays the project's
    # ...and a runner of the project is no longer one who decides it.
    runner = APIClient()
    runner.force_authenticate(world.users["runner"])
    assert runner.get(f"/api/approvals/{world.approval.pk}/").status_code == 404


def test_pages_show_each_role_only_the_controls_it_may_use(world: World) -> None:
    workflow, run = world.workflow, world.waiting
    edit_link = f'href="/workflows/{workflow.pk}/edit/"'
    delete_link = f'href="/workflows/{workflow.pk}/delete/"'
    seen: dict[str, dict[str, bool]] = {}
    for persona in ("viewer", "runner", "editor", "admin"):
        client = Client()
        client.force_login(world.users[persona])
        page = client.get(f"/workflows/{workflow.pk}/").content.decode()
        listing = client.get("/workflows/").content.decode()
        run_page = client.get(f"/runs/{run.pk}/").content.decode()
        triggers = client.get(f"/workflows/{workflow.pk}/triggers/").content.decode()
        project_link = f'href="/projects/{world.project.pk}/"'
        assert project_link in page and project_link in run_page  # both pages say whose it is
        seen[persona] = {
            "edit": edit_link in page,
            "run form": 'id="run-form-json"' in page,
            "cancel": f'action="/runs/{run.pk}/cancel/"' in run_page,
            "rerun": f'action="/runs/{run.pk}/rerun/"' in run_page,
            "add trigger": 'id="schedule-form"' in triggers,
            "toggle trigger": f"/triggers/{world.trigger.pk}/toggle/" in triggers,
            "delete trigger": f"/triggers/{world.trigger.pk}/delete/" in triggers,
            "delete workflow": delete_link in listing,
        }
    expected = {
        "viewer": {"run form": False, "cancel": False, "rerun": False, "edit": False},
        "runner": {"run form": True, "cancel": True, "rerun": True, "edit": False, "add trigger": False},
        "editor": {"edit": True, "add trigger": True, "toggle trigger": True, "delete trigger": False},
        "admin": {"edit": True, "delete trigger": True, "delete workflow": True},
    }
    for persona, controls in expected.items():
        for control, shown in controls.items():
            assert seen[persona][control] is shown, (persona, control)
    assert not seen["editor"]["delete workflow"] and not seen["viewer"]["toggle trigger"]
