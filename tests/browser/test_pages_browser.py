"""The pages in a real browser against daphne and the real worker: log in, the workflow list, a run started
from the run form and watched live, and an approval decided from the inbox while the header's count follows.

Every page a test opens is screenshotted to test-artifacts/screenshots/, and any console error or uncaught
exception on it fails the test (see conftest.py).
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Locator, Page, expect

from approvals.models import ApprovalRequest
from runs.models import Run
from runs.services import run_start
from tests.engine_helpers import graph_of, wait_for
from tests.factories import make_workflow

pytestmark = [pytest.mark.worker, pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# A page keeps this flag only as long as it is not reloaded: "changed live" means the flag survived.
MARK_PAGE = "window.__flownovaNotReloaded = true"
NOT_RELOADED = "window.__flownovaNotReloaded === true"


def slow_graph() -> dict[str, Any]:
    """Input `who` (required) and `times`; two nodes that each take a moment, so their states can be seen
    changing; the output names who asked."""
    schema = {
        "type": "object",
        "properties": {"who": {"type": "string", "title": "Who"}, "times": {"type": "integer", "title": "Times"}},
        "required": ["who"],
    }
    return graph_of(
        [
            ("start", "start", {"input_schema": schema}),
            ("first", "test_sleep", {"seconds": 1.0}),
            ("second", "test_sleep", {"seconds": 1.0}),
            ("end", "end", {"output": {"greeting": "hello {{input.who}} x{{input.times}}"}}),
        ],
        [("start", "first"), ("first", "second"), ("second", "end")],
    )


def approval_graph() -> dict[str, Any]:
    return graph_of(
        [
            ("start", "start", {}),
            ("ask", "user_approval", {"message": "Refund {{input.amount}} to {{input.customer}}?"}),
            ("yes", "end", {}),
            ("no", "end", {}),
        ],
        [("start", "ask"), ("ask", "yes", "approved"), ("ask", "no", "rejected")],
    )


def node_state(page: Page, node_id: str) -> Locator:
    return page.locator(f'#run-nodes tr[data-node-id="{node_id}"] .badge')


def test_log_in_and_see_only_my_workflows(page: Page, alice: User, mallory: User) -> None:
    make_workflow(alice, name="Support router")
    make_workflow(alice, name="Invoice triage")
    make_workflow(mallory, name="Mallory's secret")

    page.get_by_role("link", name="Workflows", exact=True).click()
    table = page.locator("#workflow-table")
    expect(table.get_by_role("link", name="Support router")).to_be_visible()
    expect(table.get_by_role("link", name="Invoice triage")).to_be_visible()
    expect(table).not_to_contain_text("Mallory's secret")
    expect(page.locator("#approvals-count")).to_have_text(re.compile(r"pending:\s*0"))

    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r"/login/"))


def test_run_from_the_form_and_watch_the_nodes_finish_live(page: Page, alice: User) -> None:
    workflow = make_workflow(alice, name="Slow greeter", graph=slow_graph())
    page.goto(f"/workflows/{workflow.pk}/")
    form = page.locator("#run-form-fields")
    # Built from the start node's input_schema: one labelled field per property.
    form.get_by_label("Who").fill("Ann")
    form.get_by_label("Times").fill("3")
    form.get_by_role("button", name="Run").click()

    expect(page).to_have_url(re.compile(r"/runs/\d+/$"))
    run = Run.objects.get(workflow=workflow)
    assert run.input == {"who": "Ann", "times": 3}
    expect(page.locator("#live-state")).to_have_text(re.compile("^Live:"))
    page.evaluate(MARK_PAGE)

    # Each node is seen working, then finished, and the ledger grows, all without a reload.
    expect(node_state(page, "first")).to_have_text("running")
    expect(node_state(page, "second")).to_have_text("running")
    expect(node_state(page, "first")).to_have_text("succeeded")
    expect(page.locator("#run-summary .badge").first).to_have_text("succeeded")
    expect(node_state(page, "end")).to_have_text("succeeded")
    ledger = page.locator("#run-ledger tbody tr")
    expect(ledger).to_have_count(4)
    expect(ledger.locator("td:nth-child(2)")).to_have_text(["start", "first", "second", "end"])
    expect(page.locator("#run-output")).to_contain_text("hello Ann x3")
    assert page.evaluate(NOT_RELOADED)

    # A ledger entry's details open in place.
    ledger.nth(1).get_by_role("link", name="Details").click()
    expect(page.locator("#ledger-entry")).to_contain_text("first_slept")
    assert page.evaluate(NOT_RELOADED)


def test_approve_from_the_inbox_while_the_count_follows_live(page: Page, alice: User) -> None:
    workflow = make_workflow(alice, name="Refunds", graph=approval_graph())
    page.goto("/workflows/")
    badge = page.locator("#approvals-count")
    expect(badge).to_have_text(re.compile(r"pending:\s*0"))
    expect(page.locator("#live-state")).to_have_count(0)  # no run page: only the approvals stream is open
    page.evaluate(MARK_PAGE)

    run = run_start(workflow=workflow, input={"amount": 120, "customer": "Ann"}, user=alice)
    wait_for(run, "waiting")
    expect(badge).to_have_text(re.compile(r"pending:\s*1"))
    assert page.evaluate(NOT_RELOADED)

    page.get_by_role("link", name=re.compile("Approvals inbox")).click()
    item = page.locator(f"#approval-{ApprovalRequest.objects.get(run=run).pk}")
    expect(item).to_contain_text("Refund 120 to Ann?")
    item.get_by_label("Comment (optional)").fill("ok by me")
    item.get_by_role("button", name="Approve").click()
    expect(page.locator("#decide-notice")).to_have_text("Approved: the run resumes.")
    expect(badge).to_have_text(re.compile(r"pending:\s*0"))

    page.goto(f"/runs/{run.pk}/")
    expect(page.locator("#run-summary .badge").first).to_have_text("succeeded")
    ledger = page.locator("#run-ledger tbody tr")
    # The approval node has two entries: paused for the decision, then completed with it.
    expect(ledger.locator("td:nth-child(2)")).to_have_text(["start", "ask", "ask", "yes"])
    expect(ledger.locator("td:nth-child(4)")).to_have_text(["succeeded", "waiting", "succeeded", "succeeded"])
    ledger.nth(2).get_by_role("link", name="Details").click()
    entry = page.locator("#ledger-entry")
    expect(entry).to_contain_text('"decision": "approved"')
    expect(entry).to_contain_text('"comment": "ok by me"')
    expect(entry).to_contain_text('"decided_by": "alice"')
