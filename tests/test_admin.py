"""Every model registered in the admin: its list, its add form (where adding by hand makes sense) and an
object's page load, with the list columns, filters and search in use."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib import admin
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from approvals.models import ApprovalRequest
from projects.services import personal_project
from runs.models import LedgerEntry, NodeRun, RunEvent
from tests.factories import make_run, make_workflow
from tools.models import Tool, ToolCall

pytestmark = pytest.mark.django_db


@pytest.fixture
def one_of_each(alice: User) -> dict[str, Any]:
    workflow = make_workflow(alice)
    run = make_run(workflow)
    tool = Tool.objects.create(
        owner=alice,
        project=personal_project(alice),
        name="weather",
        description="Weather by city",
        url="https://example.test/w",
    )
    objects = {
        "workflow": workflow,
        "node": workflow.nodes.first(),
        "edge": workflow.edges.first(),
        "run": run,
        "noderun": NodeRun.objects.create(run=run, node_id="start", node_type="start", status="succeeded"),
        "ledgerentry": LedgerEntry.objects.create(
            run=run, seq=1, node_id="start", node_type="start", status="succeeded"
        ),
        "runevent": RunEvent.objects.create(run=run, seq=1, type="run_started", ts=run.created_at),
        "tool": tool,
        "toolcall": ToolCall.objects.create(
            tool=tool, tool_name="weather", method="GET", url=tool.url, status_code=200
        ),
        "approvalrequest": ApprovalRequest.objects.create(run=run, node_id="approve", message="OK?"),
    }
    return objects


def registered_models() -> list[str]:
    return sorted(
        str(model._meta.model_name)
        for model in admin.site._registry
        if model._meta.app_label in {"workflows", "runs", "tools", "approvals"}
    )


def test_every_domain_model_is_registered() -> None:
    assert registered_models() == sorted(
        ["workflow", "node", "edge", "run", "noderun", "ledgerentry", "runevent", "tool", "toolcall", "approvalrequest"]
    )


@pytest.mark.parametrize("model_name", registered_models())
def test_admin_pages_load(client: Client, superuser: User, one_of_each: dict[str, Any], model_name: str) -> None:
    obj = one_of_each[model_name]
    app_label = obj._meta.app_label
    client.force_login(superuser)

    changelist = reverse(f"admin:{app_label}_{model_name}_changelist")
    response = client.get(changelist)
    assert response.status_code == 200
    assert response.context["cl"].result_count == type(obj).objects.count() >= 1
    assert client.get(changelist, {"q": "something"}).status_code == 200

    change = client.get(reverse(f"admin:{app_label}_{model_name}_change", args=[obj.pk]))
    assert change.status_code == 200

    add = client.get(reverse(f"admin:{app_label}_{model_name}_add"))
    model_admin = admin.site._registry[type(obj)]
    expected = 200 if model_admin.has_add_permission(change.wsgi_request) else 403
    assert add.status_code == expected


def test_ledger_cannot_be_added_changed_or_deleted_in_the_admin(
    client: Client, superuser: User, one_of_each: dict[str, Any]
) -> None:
    entry = one_of_each["ledgerentry"]
    client.force_login(superuser)
    assert client.get(reverse("admin:runs_ledgerentry_add")).status_code == 403
    assert client.get(reverse("admin:runs_ledgerentry_delete", args=[entry.pk])).status_code == 403
    response = client.post(reverse("admin:runs_ledgerentry_change", args=[entry.pk]), {"status": "failed"})
    assert response.status_code == 403
    entry.refresh_from_db()
    assert entry.status == "succeeded"


def test_outsider_without_staff_flag_is_sent_to_login(client: Client, mallory: User) -> None:
    client.force_login(mallory)
    response = client.get(reverse("admin:workflows_workflow_changelist"))
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_editing_a_workflow_in_the_admin_bumps_its_version(client: Client, superuser: User, alice: User) -> None:
    workflow = make_workflow(alice, name="Before")
    client.force_login(superuser)
    url = reverse("admin:workflows_workflow_change", args=[workflow.pk])
    form = client.get(url).context["adminform"].form
    data = {key: value for key, value in form.initial.items() if value is not None}
    data.update(name="After", owner=alice.pk, description="")
    for prefix in ("nodes", "edges"):  # the inlines' management forms, with no row changed
        data.update({f"{prefix}-TOTAL_FORMS": "0", f"{prefix}-INITIAL_FORMS": "0"})
    response = client.post(url, data)
    assert response.status_code == 302, response.content.decode()[:2000]
    workflow.refresh_from_db()
    assert (workflow.name, workflow.version) == ("After", 2)
    # Saved as any save is: the version's document is kept, with who saved it and where.
    kept = workflow.versions.get(number=2)
    assert (kept.document["name"], kept.author, kept.message) == ("After", superuser, "Changed in the admin")
