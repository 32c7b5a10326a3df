"""Run pages: history with status filters (full page and HTMX partial), the run page and its live parts, the
ledger entry details, cancel, child runs. Runs are built as rows here; a real run is in test_approval_pages."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from runs.models import LedgerEntry, NodeRun, Run
from tests.factories import make_run, make_workflow

pytestmark = pytest.mark.django_db

HTMX: dict[str, Any] = {"HTTP_HX_REQUEST": "true"}


def run_with_history(owner: User, **fields: Any) -> Run:
    run = make_run(make_workflow(owner, name="Refunds"), input={"amount": 120}, **fields)
    NodeRun.objects.create(run=run, node_id="start", node_type="start", status="succeeded")
    NodeRun.objects.create(run=run, node_id="ask", node_type="agent", status="running")
    now = timezone.now()
    LedgerEntry.objects.create(
        run=run,
        seq=1,
        node_id="start",
        node_type="start",
        status="succeeded",
        input={"amount": 120},
        output={"amount": 120},
        started_at=now,
        finished_at=now,
        duration_ms=3,
    )
    LedgerEntry.objects.create(
        run=run,
        seq=2,
        node_id="ask",
        node_type="agent",
        status="failed",
        input={"amount": 120},
        error="the model said no",
        tool_calls=[{"tool": "lookup", "arguments": {"id": 7}}],
        llm_usage={"prompt_tokens": 11, "completion_tokens": 5, "cost": None},
        duration_ms=1500,
    )
    return run


def test_run_page_shows_status_io_nodes_ledger_and_connects_live(client: Client, alice: User) -> None:
    run = run_with_history(alice, status="running")
    client.force_login(alice)
    response = client.get(reverse("run_detail", args=[run.pk]))
    assert response.status_code == 200
    page = response.content.decode()
    assert f'data-ws-path="/ws/runs/{run.pk}/"' in page
    assert 'class="badge status-running"' in page and "&quot;amount&quot;: 120" in page
    for part in ('id="run-nodes"', 'id="run-ledger"', 'id="run-summary"', 'id="transcripts"', 'id="ledger-entry"'):
        assert part in page
    assert "<code>ask</code>" in page and "1500 ms" in page and "the model said no" in page
    assert reverse("run_cancel", args=[run.pk]) in page  # active: cancel is offered


def test_run_page_parts_are_served_alone_to_htmx(client: Client, alice: User) -> None:
    run = run_with_history(alice, status="running")
    client.force_login(alice)
    url = reverse("run_detail", args=[run.pk])
    for target in ("run-nodes", "run-ledger", "run-summary", "run-approvals"):
        fragment = client.get(url, HTTP_HX_TARGET=target, **HTMX).content.decode().strip()
        assert fragment.startswith(("<div", "<section")) and f'id="{target}"' in fragment.split(">", 1)[0]
        assert "<html" not in fragment and "site-header" not in fragment


def test_ledger_entry_details(client: Client, alice: User) -> None:
    run = run_with_history(alice)
    client.force_login(alice)
    url = reverse("ledger_entry", args=[run.pk, 2])
    fragment = client.get(url, **HTMX).content.decode()
    assert "<html" not in fragment
    for text in (
        "Input",
        "Tool calls",
        "&quot;lookup&quot;",
        "LLM usage",
        "&quot;prompt_tokens&quot;: 11",
        "the model said no",
    ):
        assert text in fragment, text
    assert "<html" in client.get(url).content.decode()  # without HTMX, a page of its own
    assert client.get(reverse("ledger_entry", args=[run.pk, 99])).status_code == 404


def test_outsider_gets_404_and_staff_see_the_run(client: Client, alice: User, mallory: User, superuser: User) -> None:
    run = run_with_history(alice, status="running")
    client.force_login(mallory)
    assert client.get(reverse("run_detail", args=[run.pk])).status_code == 404
    assert client.get(reverse("ledger_entry", args=[run.pk, 1])).status_code == 404
    assert client.post(reverse("run_cancel", args=[run.pk])).status_code == 404
    assert client.get(reverse("workflow_runs", args=[run.workflow_id])).status_code == 404
    assert run.pk not in [r.pk for r in client.get(reverse("run_list")).context["runs"]]
    run.refresh_from_db()
    assert run.status == "running"
    client.force_login(superuser)
    assert client.get(reverse("run_detail", args=[run.pk])).status_code == 200
    assert run.pk in [r.pk for r in client.get(reverse("run_list")).context["runs"]]


def test_cancel_then_cancel_again_says_it_had_ended(client: Client, alice: User) -> None:
    run = make_run(make_workflow(alice), status="running")
    client.force_login(alice)
    response = client.post(reverse("run_cancel", args=[run.pk]), follow=True)
    run.refresh_from_db()
    assert run.status == "cancelled" and "Run cancelled" in response.content.decode()
    assert reverse("run_cancel", args=[run.pk]) not in response.content.decode()
    again = client.post(reverse("run_cancel", args=[run.pk]), follow=True)
    assert "already ended (cancelled)" in again.content.decode()


def test_history_filters_by_status_and_htmx_gets_only_the_table(client: Client, alice: User, mallory: User) -> None:
    workflow = make_workflow(alice)
    failed, succeeded = make_run(workflow, status="failed"), make_run(workflow, status="succeeded")
    other = make_run(make_workflow(alice, name="Other"), status="failed")
    make_run(make_workflow(mallory), status="failed")
    client.force_login(alice)
    page = client.get(reverse("run_list"))
    assert {r.pk for r in page.context["runs"]} == {failed.pk, succeeded.pk, other.pk}
    assert '<label for="id_status">' in page.content.decode() and 'hx-target="#run-table"' in page.content.decode()

    fragment = client.get(reverse("run_list"), {"status": "failed"}, **HTMX)
    assert {r.pk for r in fragment.context["runs"]} == {failed.pk, other.pk}
    assert fragment.content.decode().startswith('<div id="run-table">') and "<html" not in fragment.content.decode()

    per_workflow = client.get(reverse("workflow_runs", args=[workflow.pk]), {"status": "failed"})
    assert [r.pk for r in per_workflow.context["runs"]] == [failed.pk]
    assert client.get(reverse("run_list"), {"status": "bogus"}).context["status"] == ""


def test_child_runs_are_linked_both_ways(client: Client, alice: User) -> None:
    parent = make_run(make_workflow(alice), status="waiting")
    child = Run.objects.create(
        workflow=None,
        workflow_name="generated",
        graph=parent.graph,
        project_id=parent.project_id,
        owner=alice,
        parent=parent,
        parent_node_id="think",
    )
    client.force_login(alice)
    page = client.get(reverse("run_detail", args=[parent.pk])).content.decode()
    assert f'href="{reverse("run_detail", args=[child.pk])}"' in page and "<code>think</code>" in page
    child_page = client.get(reverse("run_detail", args=[child.pk])).content.decode()
    assert f'href="{reverse("run_detail", args=[parent.pk])}"' in child_page
