"""Project pages: the list and its "New project" form, a project's page for its members and 404 for mallory, the
member forms (add, change a role, remove, leave, every refusal shown), and the project picker of the new-workflow
and import forms."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from projects.models import Project, Role
from projects.services import member_set, personal_project, project_create
from tests.factories import linear_graph, make_team, make_workflow, member_roles
from tools.services import tool_create
from workflows.models import Workflow

pytestmark = pytest.mark.django_db

HTMX: dict[str, Any] = {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": "project-members"}


@pytest.fixture
def bob(make_user: Callable[..., User]) -> User:
    return make_user("bob")


@pytest.fixture
def carol(make_user: Callable[..., User]) -> User:
    return make_user("carol")


def signed_in(client: Client, user: User) -> Client:
    client.force_login(user)
    return client


def team(alice: User, **members: tuple[User, Role]) -> Project:
    return make_team(alice, name="Payments", **members)


members = member_roles


def test_the_list_shows_the_projects_with_role_and_counts_and_creates_one(
    client: Client, alice: User, bob: User
) -> None:
    project = team(alice, bob=(bob, Role.RUNNER))
    workflow = make_workflow(alice, name="Refunds")
    Workflow.objects.filter(pk=workflow.pk).update(project=project)
    page = signed_in(client, bob).get(reverse("project_list"))
    assert page.status_code == 200
    rows = {row.split("</a>")[0].rsplit(">", 1)[-1]: row for row in page.content.decode().split("<tr>")[2:]}
    assert set(rows) == {"bob (personal)", "Payments"}
    assert (
        "<td>runner</td>" in rows["Payments"] and "<td>2</td>" in rows["Payments"] and "<td>1</td>" in rows["Payments"]
    )
    assert b'href="/projects/"' in page.content and b'aria-current="page"' in page.content
    created = client.post(reverse("project_list"), {"name": " Support "})
    new = Project.objects.get(name="Support")
    assert created.status_code == 302 and created["Location"] == reverse("project_detail", args=[new.pk])
    assert members(new) == {"bob": "admin"}
    refused = client.post(reverse("project_list"), {"name": "   "})
    assert refused.status_code == 400 and b"This field is required." in refused.content


def test_a_projects_page_shows_its_workflows_tools_and_members_and_is_404_for_mallory(
    client: Client, alice: User, bob: User, mallory: User
) -> None:
    project = team(alice, bob=(bob, Role.VIEWER))
    workflow = make_workflow(alice, name="Refunds")
    Workflow.objects.filter(pk=workflow.pk).update(project=project)
    tool_create(owner=alice, project=project, name="ledger_lookup", url="https://api.example.test/ledger")
    page = signed_in(client, bob).get(reverse("project_detail", args=[project.pk]))
    assert page.status_code == 200
    content = page.content.decode()
    assert f'href="{reverse("workflow_detail", args=[workflow.pk])}">Refunds</a>' in content
    assert "ledger_lookup" in content and "Your role: viewer." in content
    assert "<td>alice</td>" in content and "<td>bob</td>" in content
    assert 'id="member-add"' not in content and "Remove" not in content  # a viewer manages nothing
    assert ">Leave</button>" in content
    assert signed_in(Client(), mallory).get(reverse("project_detail", args=[project.pk])).status_code == 404
    assert b"Payments" not in signed_in(Client(), mallory).get(reverse("project_list")).content
    admin_page = signed_in(Client(), alice).get(reverse("project_detail", args=[project.pk])).content.decode()
    assert 'id="member-add"' in admin_page and "Remove<span" in admin_page


def test_an_admin_adds_a_member_changes_the_role_and_removes_them(client: Client, alice: User, bob: User) -> None:
    project = team(alice)
    signed_in(client, alice)
    added = client.post(reverse("project_member_set", args=[project.pk]), {"user": "bob", "role": "viewer"}, **HTMX)
    assert added.status_code == 200 and b"bob is now viewer" in added.content
    assert b'id="project-members"' in added.content and b"<html" not in added.content
    changed = client.post(reverse("project_member_set", args=[project.pk]), {"user": "bob", "role": "editor"})
    assert changed.status_code == 302 and changed["Location"] == reverse("project_detail", args=[project.pk])
    assert members(project) == {"alice": "admin", "bob": "editor"}
    removed = client.post(reverse("project_member_remove", args=[project.pk, "bob"]), **HTMX)
    assert removed.status_code == 200 and b"Removed bob" in removed.content
    assert members(project) == {"alice": "admin"}


def test_the_member_forms_show_each_refusal_inline(client: Client, alice: User, bob: User, carol: User) -> None:
    project = team(alice, bob=(bob, Role.EDITOR))
    signed_in(client, alice)
    url = reverse("project_member_set", args=[project.pk])
    unknown = client.post(url, {"user": "nobody", "role": "viewer"}, **HTMX)
    assert unknown.status_code == 400 and "There is no user named “nobody”." in unknown.content.decode()
    bad_role = client.post(url, {"user": "carol", "role": "owner"}, **HTMX)
    assert bad_role.status_code == 400 and b"role:" in bad_role.content
    last_admin = client.post(url, {"user": "alice", "role": "viewer"}, **HTMX)
    assert last_admin.status_code == 409 and b"alice is the project&#x27;s last admin" in last_admin.content
    personal = personal_project(alice)
    shared = client.post(reverse("project_member_set", args=[personal.pk]), {"user": "bob", "role": "viewer"}, **HTMX)
    assert shared.status_code == 409 and b"a personal project has no other members" in shared.content
    not_admin = signed_in(Client(), bob).post(url, {"user": "carol", "role": "viewer"}, **HTMX)
    assert not_admin.status_code == 403 and b"needs the admin role" in not_admin.content
    refused_removal = signed_in(Client(), bob).post(reverse("project_member_remove", args=[project.pk, "alice"]))
    assert refused_removal.status_code == 403 and b"needs the admin role" in refused_removal.content
    assert members(project) == {"alice": "admin", "bob": "editor"}
    outsider = signed_in(Client(), carol).post(url, {"user": "carol", "role": "admin"}, **HTMX)
    assert outsider.status_code == 404 and members(project) == {"alice": "admin", "bob": "editor"}


def test_a_member_leaves_a_project_and_lands_on_the_list(client: Client, alice: User, bob: User) -> None:
    project = team(alice, bob=(bob, Role.VIEWER))
    left = signed_in(client, bob).post(reverse("project_member_remove", args=[project.pk, "bob"]))
    assert left.status_code == 302 and left["Location"] == reverse("project_list")
    assert members(project) == {"alice": "admin"}


def test_the_new_workflow_form_creates_in_the_chosen_project(client: Client, alice: User, bob: User) -> None:
    project = team(alice, bob=(bob, Role.EDITOR))
    signed_in(client, bob)
    form = client.get(reverse("workflow_create")).content.decode()
    assert f'<option value="{personal_project(bob).pk}" selected>bob (personal)</option>' in form
    assert f'<option value="{project.pk}">Payments</option>' in form
    body = {"name": "Team flow", "description": "", "graph": json.dumps(linear_graph()), "project": project.pk}
    response = client.post(reverse("workflow_create"), body)
    assert response.status_code == 302, response.content.decode()
    created = Workflow.objects.get(name="Team flow")
    assert created.project_id == project.pk and created.owner == bob
    default = client.post(reverse("workflow_create"), {**body, "name": "Mine", "project": ""})
    assert default.status_code == 302
    assert Workflow.objects.get(name="Mine").project_id == personal_project(bob).pk


def test_the_new_workflow_form_refuses_a_project_where_the_user_is_a_viewer(
    client: Client, alice: User, bob: User, mallory: User
) -> None:
    project = team(alice, bob=(bob, Role.VIEWER))
    signed_in(client, bob)
    assert f'value="{project.pk}"' not in client.get(reverse("workflow_create")).content.decode()
    body = {"name": "Sneaky", "description": "", "graph": json.dumps(linear_graph()), "project": project.pk}
    refused = client.post(reverse("workflow_create"), body)
    assert refused.status_code == 400
    assert b"your role in this project is viewer" in refused.content
    outsider = signed_in(Client(), mallory).post(reverse("workflow_create"), body)
    assert outsider.status_code == 400 and b"Select a valid choice" in outsider.content
    assert not Workflow.objects.filter(name="Sneaky").exists()


def test_import_goes_into_the_chosen_project_and_not_one_where_the_user_only_views(
    client: Client, alice: User, bob: User
) -> None:
    editing = team(alice, bob=(bob, Role.EDITOR))
    viewing = project_create(name="Audit", by=alice)
    member_set(project=viewing, user=bob, role=Role.VIEWER, by=alice)
    signed_in(client, bob)
    document = {"name": "Imported", "description": "", "graph": linear_graph()}
    upload = SimpleUploadedFile("flow.json", json.dumps(document).encode())
    response = client.post(reverse("workflow_import"), {"file": upload, "project": editing.pk})
    assert response.status_code == 302
    assert Workflow.objects.get(name="Imported").project_id == editing.pk
    upload = SimpleUploadedFile("flow.json", json.dumps({**document, "name": "Audited"}).encode())
    refused = client.post(reverse("workflow_import"), {"file": upload, "project": viewing.pk})
    assert refused.status_code == 400 and b"Project: your role in this project is viewer" in refused.content
    assert not Workflow.objects.filter(name="Audited").exists()


def test_the_workflow_list_shows_each_project_and_filters_by_one(client: Client, alice: User) -> None:
    project = team(alice)
    shared = make_workflow(alice, name="Shared flow")
    Workflow.objects.filter(pk=shared.pk).update(project=project)
    make_workflow(alice, name="Private flow")
    signed_in(client, alice)
    everything = client.get(reverse("workflow_list")).content.decode()
    assert "Shared flow" in everything and "Private flow" in everything
    assert f'href="{reverse("project_detail", args=[project.pk])}">Payments</a>' in everything
    filtered = client.get(reverse("workflow_list"), {"project": project.pk}).content.decode()
    assert "Shared flow" in filtered and "Private flow" not in filtered
    assert f'<option value="{project.pk}" selected>Payments</option>' in filtered
    unknown = client.get(reverse("workflow_list"), {"project": "nope"}).content.decode()
    assert "Shared flow" in unknown and "Private flow" in unknown
