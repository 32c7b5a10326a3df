"""The projects API: a team's projects, their members and roles, and every refusal (a personal project, the last
admin, an unknown user or role, a member whose role is too low, an outsider)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from projects.models import Membership, Project, Role
from projects.services import member_set, personal_project, project_create
from tests.factories import linear_graph, make_run, make_team, make_workflow, member_roles
from tools.services import tool_create
from workflows.services import workflow_create, workflow_soft_delete

pytestmark = pytest.mark.django_db


def api(user: User | None = None) -> APIClient:
    client = APIClient()
    if user is not None:
        token, _ = Token.objects.get_or_create(user=user)
        client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture
def bob(make_user: Callable[..., User]) -> User:
    return make_user("bob")


@pytest.fixture
def carol(make_user: Callable[..., User]) -> User:
    return make_user("carol")


def team(alice: User, **members: tuple[User, Role]) -> Project:
    return make_team(alice, name="Team", **members)


members = member_roles


def test_listing_creates_the_personal_project_on_first_use(alice: User) -> None:
    assert not Project.objects.filter(personal_of=alice).exists()
    body = api(alice).get("/api/projects/").json()
    assert body["count"] == 1
    [project] = body["results"]
    assert project["personal"] is True and project["role"] == "admin" and project["member_count"] == 1
    assert set(project) == {"id", "name", "personal", "role", "created_at", "member_count"}
    assert Project.objects.get(personal_of=alice).pk == project["id"]


def test_alice_creates_a_project_and_is_its_admin(alice: User) -> None:
    client = api(alice)
    created = client.post("/api/projects/", {"name": "  Payments  "}, format="json")
    assert created.status_code == 201, created.json()
    assert created.json()["name"] == "Payments"
    assert created.json()["role"] == "admin" and created.json()["personal"] is False
    assert members(Project.objects.get(pk=created.json()["id"])) == {"alice": "admin"}
    names = [item["name"] for item in client.get("/api/projects/").json()["results"]]
    assert names == ["alice (personal)", "Payments"]


@pytest.mark.parametrize(
    ("body", "field"),
    [({}, "name"), ({"name": "   "}, "name"), ({"name": "x" * 201}, "name"), ({"name": "ok", "owner": 1}, "owner")],
)
def test_a_bad_project_body_is_a_400_naming_the_field(alice: User, body: dict[str, Any], field: str) -> None:
    response = api(alice).post("/api/projects/", body, format="json")
    assert response.status_code == 400 and field in response.json()
    assert not Project.objects.filter(personal_of__isnull=True).exists()


def test_members_see_their_projects_and_mallory_gets_404(alice: User, bob: User, mallory: User) -> None:
    project = team(alice, bob=(bob, Role.VIEWER))
    seen = api(bob).get("/api/projects/").json()["results"]
    assert [(item["name"], item["role"], item["member_count"]) for item in seen][1] == ("Team", "viewer", 2)
    assert api(bob).get(f"/api/projects/{project.pk}/").json()["role"] == "viewer"
    client = api(mallory)
    assert [item["personal"] for item in client.get("/api/projects/").json()["results"]] == [True]
    for method, body in [("get", None), ("patch", {"name": "mine"}), ("delete", None)]:
        assert getattr(client, method)(f"/api/projects/{project.pk}/", body, format="json").status_code == 404
    assert client.get(f"/api/projects/{project.pk}/members/").status_code == 404
    response = client.post(f"/api/projects/{project.pk}/members/", {"user": "mallory", "role": "admin"}, format="json")
    assert response.status_code == 404
    assert client.delete(f"/api/projects/{project.pk}/members/alice/").status_code == 404
    assert members(project) == {"alice": "admin", "bob": "viewer"}
    assert api().get("/api/projects/").status_code == 401


def test_staff_see_every_project_as_admin(alice: User, superuser: User) -> None:
    project = team(alice)
    answer = api(superuser).get(f"/api/projects/{project.pk}/")
    assert answer.status_code == 200 and answer.json()["role"] == "admin"


def test_an_admin_renames_a_project_and_an_editor_may_not(alice: User, bob: User) -> None:
    project = team(alice, bob=(bob, Role.EDITOR))
    refused = api(bob).patch(f"/api/projects/{project.pk}/", {"name": "Bob's"}, format="json")
    assert refused.status_code == 403
    assert "editor" in refused.json()["detail"] and "admin" in refused.json()["detail"]
    renamed = api(alice).patch(f"/api/projects/{project.pk}/", {"name": "Billing"}, format="json")
    assert renamed.status_code == 200 and renamed.json()["name"] == "Billing"
    personal = personal_project(alice)
    assert api(alice).patch(f"/api/projects/{personal.pk}/", {"name": "Mine"}, format="json").status_code == 200
    assert api(alice).patch(f"/api/projects/{project.pk}/", {"name": ""}, format="json").status_code == 400
    assert api(alice).put(f"/api/projects/{project.pk}/", {"name": "x"}, format="json").status_code == 405


def test_deleting_a_project_is_refused_while_it_holds_workflows_or_tools(alice: User, bob: User) -> None:
    project = team(alice, bob=(bob, Role.EDITOR))
    workflow = make_workflow(alice)
    workflow.project = project
    workflow.save()
    tool_create(owner=alice, project=project, name="weather", url="https://api.example.test/weather")
    assert api(bob).delete(f"/api/projects/{project.pk}/").status_code == 403
    refused = api(alice).delete(f"/api/projects/{project.pk}/")
    assert refused.status_code == 409
    assert "1 workflow and 1 tool" in refused.json()["detail"]
    project.tools.all().delete()
    workflow_soft_delete(workflow=workflow)
    assert api(alice).delete(f"/api/projects/{project.pk}/").status_code == 204
    assert not Project.objects.filter(pk=project.pk).exists()
    assert not Membership.objects.filter(project_id=project.pk).exists()


def test_deleting_a_project_is_refused_while_it_keeps_the_history_of_runs(alice: User) -> None:
    project = team(alice)
    workflow = make_workflow(alice)
    workflow.project = project
    workflow.save()
    make_run(workflow)
    workflow_soft_delete(workflow=workflow)
    refused = api(alice).delete(f"/api/projects/{project.pk}/")
    assert refused.status_code == 409 and "1 run" in refused.json()["detail"]
    assert Project.objects.filter(pk=project.pk).exists()


def test_a_personal_project_cannot_be_deleted(alice: User) -> None:
    personal = personal_project(alice)
    refused = api(alice).delete(f"/api/projects/{personal.pk}/")
    assert refused.status_code == 409 and "personal" in refused.json()["detail"]


def test_an_admin_adds_a_member_then_changes_their_role(alice: User, bob: User) -> None:
    project = team(alice)
    url = f"/api/projects/{project.pk}/members/"
    added = api(alice).post(url, {"user": "bob", "role": "viewer"}, format="json")
    assert added.status_code == 201, added.json()
    assert added.json()["user"] == "bob" and added.json()["role"] == "viewer" and added.json()["added_at"]
    changed = api(alice).post(url, {"user": "bob", "role": "editor"}, format="json")
    assert changed.status_code == 200 and changed.json()["role"] == "editor"
    listed = api(bob).get(url).json()
    assert [(item["user"], item["role"]) for item in listed] == [("alice", "admin"), ("bob", "editor")]


def test_adding_an_unknown_user_or_a_bad_role_is_a_400_naming_it(alice: User, bob: User) -> None:
    project = team(alice)
    url = f"/api/projects/{project.pk}/members/"
    unknown = api(alice).post(url, {"user": "nobody", "role": "viewer"}, format="json")
    assert unknown.status_code == 400 and "nobody" in unknown.json()["user"][0]
    bad = api(alice).post(url, {"user": "bob", "role": "owner"}, format="json")
    assert bad.status_code == 400
    assert all(role in bad.json()["role"][0] for role in ("viewer", "runner", "editor", "admin"))
    extra = api(alice).post(url, {"user": "bob", "role": "viewer", "project": 1}, format="json")
    assert extra.status_code == 400 and "project" in extra.json()
    assert members(project) == {"alice": "admin"}


def test_a_member_below_admin_may_not_manage_members(alice: User, bob: User, carol: User) -> None:
    project = team(alice, bob=(bob, Role.EDITOR), carol=(carol, Role.VIEWER))
    url = f"/api/projects/{project.pk}/members/"
    refused = api(bob).post(url, {"user": "carol", "role": "admin"}, format="json")
    assert refused.status_code == 403 and "admin role" in refused.json()["detail"]
    assert api(bob).delete(f"{url}carol/").status_code == 403
    assert api(bob).delete(url, {"user": "carol"}, format="json").status_code == 403
    assert members(project) == {"alice": "admin", "bob": "editor", "carol": "viewer"}


def test_a_personal_project_takes_no_members(alice: User, bob: User) -> None:
    personal = personal_project(alice)
    refused = api(alice).post(f"/api/projects/{personal.pk}/members/", {"user": "bob", "role": "viewer"}, format="json")
    assert refused.status_code == 409 and "personal" in refused.json()["detail"]
    left = api(alice).delete(f"/api/projects/{personal.pk}/members/alice/")
    assert left.status_code == 409 and "personal" in left.json()["detail"]


def test_the_last_admin_can_be_neither_demoted_nor_removed(alice: User, bob: User) -> None:
    project = team(alice, bob=(bob, Role.EDITOR))
    url = f"/api/projects/{project.pk}/members/"
    demoted = api(alice).post(url, {"user": "alice", "role": "editor"}, format="json")
    assert demoted.status_code == 409 and "last admin" in demoted.json()["detail"]
    removed = api(alice).delete(f"{url}alice/")
    assert removed.status_code == 409 and "last admin" in removed.json()["detail"]
    assert members(project) == {"alice": "admin", "bob": "editor"}


def test_an_admin_removes_a_member_and_a_member_may_leave(alice: User, bob: User, carol: User) -> None:
    project = team(alice, bob=(bob, Role.EDITOR), carol=(carol, Role.VIEWER))
    url = f"/api/projects/{project.pk}/members/"
    assert api(alice).delete(f"{url}bob/").status_code == 204
    assert api(carol).delete(url, {"user": "carol"}, format="json").status_code == 204
    assert members(project) == {"alice": "admin"}
    gone = api(alice).delete(f"{url}carol/")
    assert gone.status_code == 404 and "carol" in gone.json()["detail"]
    assert api(carol).get(f"/api/projects/{project.pk}/").status_code == 404
    assert api(alice).delete(url, {}, format="json").status_code == 400


def test_the_lists_filter_by_project_and_name_a_bad_filter(alice: User, bob: User) -> None:
    team = project_create(name="Team", by=alice)
    member_set(project=team, user=bob, role=Role.EDITOR, by=alice)
    own = make_workflow(alice, name="Mine")
    shared = workflow_create(owner=alice, project=team, name="Shared", graph=linear_graph())
    tool_create(owner=alice, name="own_tool", url="http://127.0.0.1:9/")
    tool_create(owner=alice, project=team, name="team_tool", url="http://127.0.0.1:9/")
    make_run(own)
    shared_run = make_run(shared)
    client = api(alice)
    assert {w["name"] for w in client.get("/api/workflows/").json()["results"]} == {"Mine", "Shared"}
    assert [w["name"] for w in client.get(f"/api/workflows/?project={team.pk}").json()["results"]] == ["Shared"]
    assert [t["name"] for t in client.get(f"/api/tools/?project={team.pk}").json()["results"]] == ["team_tool"]
    assert [r["id"] for r in client.get(f"/api/runs/?project={team.pk}").json()["results"]] == [shared_run.pk]
    # bob sees the team's, not alice's own.
    assert [w["name"] for w in api(bob).get("/api/workflows/").json()["results"]] == ["Shared"]
    bad = client.get("/api/workflows/?project=team")
    assert bad.status_code == 400 and "project" in bad.json()
