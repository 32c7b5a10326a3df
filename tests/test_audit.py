"""The audit log: one entry per configuration change, written by the services in the change's transaction;
never a secret's value; append-only in PostgreSQL; read by project admins through the API, the page and the
admin."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from approvals.models import ApprovalRequest
from approvals.services import approval_decide, approvals_expire_overdue
from projects.audit import audit_record
from projects.models import AuditEntry, Project, Role
from projects.services import member_remove, member_set, personal_project, project_create
from runs.models import Run
from tests.conftest import WorkerProcess
from tests.engine_helpers import graph_of, start, wait_for
from tests.factories import linear_graph, make_workflow

pytestmark = pytest.mark.django_db

SECRET_VALUE = "s3cret-value"


def api(user: User | None = None) -> APIClient:
    client = APIClient()
    if user is not None:
        token, _ = Token.objects.get_or_create(user=user)
        client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


def entries(**filters: Any) -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(**filters).order_by("id"))


def only(action: str, **filters: Any) -> AuditEntry:
    (entry,) = entries(action=action, **filters)
    return entry


def team(alice: User, **members: Role) -> Project:
    """A team project alice administers, with the given members."""
    project = project_create(name="Shop", by=alice)
    for user, role in members.items():
        member_set(project=project, user=User.objects.get(username=user), role=role, by=alice)
    return project


# --- one entry per change ---------------------------------------------------------------------------------------


def test_workflow_create_save_and_delete_are_recorded_with_actor_project_object_and_summary(alice: User) -> None:
    client = api(alice)
    created = client.post("/api/workflows/", {"name": "Ship", "graph": linear_graph()}, format="json")
    assert created.status_code == 201, created.json()
    workflow_id = created.json()["id"]
    renamed = client.patch(f"/api/workflows/{workflow_id}/", {"name": "Ship all"}, format="json")
    assert renamed.status_code == 200
    assert client.delete(f"/api/workflows/{workflow_id}/").status_code == 204

    project_id = personal_project(alice).pk
    made = only("workflow.created", object_id=workflow_id)
    saved = only("workflow.saved", object_id=workflow_id)
    deleted = only("workflow.deleted", object_id=workflow_id)
    for entry in (made, saved, deleted):
        assert (entry.actor_id, entry.actor_name, entry.project_id) == (alice.pk, "alice", project_id)
        assert entry.object_type == "workflow"
    assert made.summary == "alice created workflow 'Ship'" and made.changes == {"version": 1}
    assert saved.summary == "alice saved workflow 'Ship all' as version 2"
    assert saved.changes == {"version": 2, "fields": ["name"], "name": {"from": "Ship", "to": "Ship all"}}
    assert deleted.summary == "alice deleted workflow 'Ship all'" and deleted.object_repr == "Ship all"


def test_a_tool_entry_names_changed_fields_and_secret_header_names_but_never_a_value(alice: User) -> None:
    client = api(alice)
    body = {
        "name": "weather",
        "method": "GET",
        "url": "https://api.example.test/weather",
        "secret_headers": {"Authorization": SECRET_VALUE, "X-Old": SECRET_VALUE},
    }
    created = client.post("/api/tools/", body, format="json")
    assert created.status_code == 201, created.json()
    tool_id = created.json()["id"]
    change = {"description": "by city", "secret_headers": {"Authorization": "other-s3cret", "X-New": "n3w-s3cret"}}
    assert client.patch(f"/api/tools/{tool_id}/", change, format="json").status_code == 200
    assert client.patch(f"/api/tools/{tool_id}/", {"description": "by city"}, format="json").status_code == 200
    assert client.delete(f"/api/tools/{tool_id}/").status_code == 204

    made = only("tool.created", object_id=tool_id)
    assert made.changes == {"secret_headers": {"added": ["Authorization", "X-Old"]}}
    changed = only("tool.changed", object_id=tool_id)  # the save that changed nothing left no entry
    assert changed.changes == {
        "fields": ["description"],
        "secret_headers": {"added": ["X-New"], "removed": ["X-Old"], "replaced": ["Authorization"]},
    }
    assert changed.summary == "alice changed tool 'weather': description, secret headers"
    assert only("tool.deleted", object_id=tool_id).summary == "alice deleted tool 'weather'"
    recorded = json.dumps(list(AuditEntry.objects.values()), default=str)
    for value in (SECRET_VALUE, "other-s3cret", "n3w-s3cret"):
        assert value not in recorded


def test_trigger_create_disable_rotate_and_delete_are_recorded(alice: User) -> None:
    workflow = make_workflow(alice, name="Orders")
    client = api(alice)
    created = client.post(f"/api/workflows/{workflow.pk}/triggers/", {"type": "webhook", "name": "shop"}, format="json")
    assert created.status_code == 201, created.json()
    trigger_id = created.json()["id"]
    assert client.patch(f"/api/triggers/{trigger_id}/", {"enabled": False}, format="json").status_code == 200
    assert client.post(f"/api/triggers/{trigger_id}/rotate/").status_code == 200
    assert client.delete(f"/api/triggers/{trigger_id}/").status_code == 204

    trail = entries(object_type="trigger", object_id=trigger_id)
    assert [entry.action for entry in trail] == [
        "trigger.created",
        "trigger.changed",
        "trigger.changed",
        "trigger.deleted",
    ]
    assert {entry.project_id for entry in trail} == {workflow.project_id}
    assert {entry.actor_id for entry in trail} == {alice.pk}
    assert [entry.summary for entry in trail] == [
        f"alice created webhook trigger 'shop' of workflow {workflow.pk}",
        f"alice disabled webhook trigger 'shop' of workflow {workflow.pk}",
        f"alice rotated the secret of webhook trigger 'shop' of workflow {workflow.pk}",
        f"alice deleted webhook trigger 'shop' of workflow {workflow.pk}",
    ]
    assert trail[1].changes["fields"] == ["enabled"] and trail[1].changes["enabled"] is False
    secret = created.json()["url"].rstrip("/").rsplit("/", 1)[1]
    assert secret not in json.dumps(list(AuditEntry.objects.values()), default=str)


def test_project_creation_and_membership_changes_record_the_user_and_the_old_and_new_role(
    alice: User, make_user: Callable[..., User]
) -> None:
    bob = make_user("bob")
    project = project_create(name="Shop", by=alice)
    member_set(project=project, user=bob, role=Role.VIEWER, by=alice)
    member_set(project=project, user=bob, role=Role.VIEWER, by=alice)  # no change, no entry
    member_set(project=project, user=bob, role=Role.EDITOR, by=alice)
    member_remove(project=project, user=bob, by=alice)

    created = only("project.created", project_id=project.pk)
    assert (created.actor_id, created.object_type, created.object_id) == (alice.pk, "project", project.pk)
    assert created.summary == "alice created project 'Shop'"
    trail = entries(object_type="user", object_id=bob.pk)
    assert [(entry.action, entry.changes["old_role"], entry.changes["new_role"]) for entry in trail] == [
        ("member.added", None, "viewer"),
        ("member.role_changed", "viewer", "editor"),
        ("member.removed", "editor", None),
    ]
    assert {(entry.actor_id, entry.project_id, entry.changes["user"]) for entry in trail} == {
        (alice.pk, project.pk, "bob")
    }
    assert [entry.summary for entry in trail] == [
        "alice added bob as viewer to project 'Shop'",
        "alice changed bob's role from viewer to editor in project 'Shop'",
        "alice removed bob (editor) from project 'Shop'",
    ]


def approval_graph(**data: Any) -> dict[str, Any]:
    ask = {"message": "Refund?", **data}
    return graph_of(
        [("start", "start", {}), ("ask", "user_approval", ask), ("yes", "end", {}), ("no", "end", {})],
        [("start", "ask"), ("ask", "yes", "approved"), ("ask", "no", "rejected")],
    )


def waiting(alice: User, **data: Any) -> tuple[Run, ApprovalRequest]:
    run = wait_for(start(alice, approval_graph(**data), {}), "waiting")
    return run, ApprovalRequest.objects.get(run=run)


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_decision_records_who_decided_and_the_comment_and_a_deadline_records_no_actor(
    alice: User, celery_worker: WorkerProcess
) -> None:
    run, approval = waiting(alice)
    approval_decide(approval_id=approval.pk, user=alice, decision="rejected", comment="too much")
    decided = only("approval.decided", object_id=approval.pk)
    assert (decided.actor_id, decided.project_id, decided.object_type) == (alice.pk, run.project_id, "approval")
    assert decided.changes == {
        "run_id": run.pk,
        "decision": "rejected",
        "comment": "too much",
        "by_timeout": False,
        "edited_fields": [],
    }
    assert decided.summary == f"alice rejected approval {approval.pk} (node 'ask') of run {run.pk}"

    late, overdue = waiting(alice, deadline_seconds=3600, timeout_action="approve")
    ApprovalRequest.objects.filter(pk=overdue.pk).update(deadline=timezone.now() - timedelta(seconds=1))
    assert approvals_expire_overdue() == 1
    expired = only("approval.decided", object_id=overdue.pk)
    assert (expired.actor_id, expired.actor_name, expired.project_id) == (None, "", late.project_id)
    assert expired.changes["decision"] == "approved" and expired.changes["by_timeout"] is True
    assert "deadline" in expired.summary


@pytest.mark.django_db(transaction=True)  # no test transaction around it
def test_audit_record_refuses_to_write_outside_a_transaction(alice: User) -> None:
    with pytest.raises(RuntimeError, match="inside the transaction"):
        audit_record(actor=alice, action="workflow.saved", object_type="workflow", object_id=1, summary="x")


# --- append-only ------------------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)  # TRUNCATE needs a transaction with no deferred checks pending
def test_postgresql_refuses_to_update_delete_or_truncate_audit_entries(alice: User) -> None:
    make_workflow(alice)
    count = AuditEntry.objects.count()
    assert count >= 1
    for statement in (
        "UPDATE projects_auditentry SET summary = 'nothing happened'",
        "DELETE FROM projects_auditentry",
        "TRUNCATE projects_auditentry",
    ):
        with pytest.raises(IntegrityError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL flownova.audit_purge = 'off'")  # as in production (tests run with it on)
            cursor.execute(statement)
    with pytest.raises(IntegrityError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL flownova.audit_purge = 'on'")  # purging deletes, it never rewrites
        cursor.execute("UPDATE projects_auditentry SET summary = 'nothing happened'")
    assert AuditEntry.objects.count() == count
    assert not AuditEntry.objects.filter(summary="nothing happened").exists()


def test_deleting_a_user_leaves_their_entries_as_they_were(alice: User, make_user: Callable[..., User]) -> None:
    bob = make_user("bob")
    project = project_create(name="Shop", by=bob)
    bob_id = bob.pk
    Project.objects.filter(pk=project.pk).delete()
    bob.delete()
    entry = only("project.created")
    assert (entry.actor_id, entry.actor_name, entry.project_id) == (bob_id, "bob", project.pk)


def test_purge_audit_deletes_only_entries_older_than_the_cutoff(alice: User) -> None:
    with connection.cursor() as cursor:  # an entry written long ago (INSERT is allowed; created_at is set here)
        cursor.execute(
            "INSERT INTO projects_auditentry (created_at, actor_name, action, object_type, object_repr, summary, "
            "changes) VALUES (now() - interval '400 days', 'alice', 'workflow.created', 'workflow', 'old', 'old', "
            "'{}')"
        )
    make_workflow(alice, name="new")
    with connection.cursor() as cursor:
        cursor.execute("SET flownova.audit_purge = 'off'")  # the command must turn it on itself
    try:
        out = StringIO()
        call_command("purge_audit", "--older-than-days", "365", "--dry-run", stdout=out)
        call_command("purge_audit", "--older-than-days", "365", stdout=out)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SET flownova.audit_purge = 'on'")
    assert out.getvalue().splitlines()[0].startswith("would delete 1 audit entry written before")
    assert out.getvalue().splitlines()[1].startswith("deleted 1 audit entry written before")
    assert [entry.object_repr for entry in entries(action="workflow.created")] == ["new"]


# --- who reads it -----------------------------------------------------------------------------------------------


def test_api_an_admin_reads_their_projects_entries_newest_first_with_filters(
    alice: User, make_user: Callable[..., User]
) -> None:
    make_user("bob")
    project = team(alice, bob=Role.VIEWER)
    other = make_workflow(alice, name="Personal")
    client = api(alice)
    listed = client.get("/api/audit/", {"project": project.pk})
    assert listed.status_code == 200, listed.json()
    body = listed.json()
    assert [row["action"] for row in body["results"]] == ["member.added", "project.created"]
    assert body["count"] == 2 and set(body) == {"count", "next", "previous", "results"}
    assert body["results"][0]["changes"]["new_role"] == "viewer"
    mine = client.get("/api/audit/").json()["results"]
    assert {row["object_repr"] for row in mine} >= {"Personal", "Shop", "bob"}
    one = client.get("/api/audit/", {"object": f"workflow:{other.pk}"}).json()["results"]
    assert [(row["action"], row["object_id"]) for row in one] == [("workflow.created", other.pk)]
    by_kind = client.get("/api/audit/", {"action": "member.added"}).json()["results"]
    assert [row["object_repr"] for row in by_kind] == ["bob"]
    assert client.get("/api/audit/", {"actor": alice.pk + 1000}).json()["count"] == 0


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"project": "abc"}, "project"),
        ({"object": "workflow"}, "object"),
        ({"object": "spaceship:1"}, "object"),
        ({"action": "workflow.burned"}, "action"),
        ({"actor": "alice"}, "actor"),
        ({"page_size": "0"}, "page_size"),
    ],
)
def test_api_an_invalid_filter_is_a_400_naming_it(alice: User, query: dict[str, str], field: str) -> None:
    response = api(alice).get("/api/audit/", query)
    assert response.status_code == 400
    assert field in response.json()


def test_api_an_outsider_gets_404_a_member_below_admin_403_and_staff_every_entry(
    alice: User, mallory: User, superuser: User, make_user: Callable[..., User]
) -> None:
    for name in ("bob", "carol"):
        make_user(name)
    project = team(alice, bob=Role.VIEWER, carol=Role.EDITOR)
    make_workflow(alice)
    outsider = api(mallory).get("/api/audit/", {"project": project.pk})
    assert outsider.status_code == 404
    assert api(mallory).get("/api/audit/").json()["count"] == 0  # nothing of alice's, unfiltered either
    for member in ("bob", "carol"):
        refused = api(User.objects.get(username=member)).get("/api/audit/", {"project": project.pk})
        assert refused.status_code == 403
        assert "needs the admin role" in refused.json()["detail"]
    assert api(User.objects.get(username="bob")).get("/api/audit/").json()["count"] == 0
    assert api(superuser).get("/api/audit/").json()["count"] == AuditEntry.objects.count()
    assert api().get("/api/audit/").status_code == 401


def test_the_page_lists_what_an_admin_may_read_and_refuses_others(
    client: Client, alice: User, mallory: User, make_user: Callable[..., User]
) -> None:
    make_user("bob")
    project = team(alice, bob=Role.VIEWER)
    workflow = make_workflow(alice, name="Refunds")
    url = reverse("audit_log")
    assert client.get(url).status_code == 302  # signed out: to the login page
    client.force_login(alice)
    page = client.get(url)
    assert page.status_code == 200
    html = page.content.decode()
    assert "alice created workflow &#x27;Refunds&#x27;" in html and "alice added bob as viewer" in html
    assert 'aria-current="page"' in html and "Audit log" in html
    narrowed = client.get(url, {"object": f"workflow:{workflow.pk}"}).content.decode()
    assert "Refunds" in narrowed and "added bob" not in narrowed
    bad = client.get(url, {"object": "spaceship:1"})
    assert bad.status_code == 400 and "is not an object type" in bad.content.decode()
    client.force_login(mallory)
    assert client.get(url, {"project": project.pk}).status_code == 404
    assert "Refunds" not in client.get(url).content.decode()
    client.force_login(User.objects.get(username="bob"))
    assert client.get(url, {"project": project.pk}).status_code == 403


def test_the_admin_shows_entries_and_allows_no_add_change_or_delete(
    client: Client, alice: User, superuser: User
) -> None:
    make_workflow(alice, name="Refunds")
    entry = only("workflow.created")
    client.force_login(superuser)
    changelist = client.get(reverse("admin:projects_auditentry_changelist"))
    assert changelist.status_code == 200 and "Refunds" in changelist.content.decode()
    assert client.get(reverse("admin:projects_auditentry_change", args=[entry.pk])).status_code == 200
    assert client.get(reverse("admin:projects_auditentry_add")).status_code == 403
    assert client.get(reverse("admin:projects_auditentry_delete", args=[entry.pk])).status_code == 403
    posted = client.post(reverse("admin:projects_auditentry_change", args=[entry.pk]), {"summary": "rewritten"})
    assert posted.status_code == 403
    entry.refresh_from_db()
    assert entry.summary == "alice created workflow 'Refunds'"
