"""Deciding with edits from the approvals inbox in a real browser, against daphne and the real worker."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Page, Route, expect

from approvals.models import ApprovalRequest
from runs.services import run_start
from tests.browser.conftest import PageProblems
from tests.engine_helpers import graph_of, wait_for
from tests.factories import make_run, make_workflow

pytestmark = [pytest.mark.worker, pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def editable_refund() -> dict[str, Any]:
    node = {"message": "Refund {{input.amount}} to {{input.customer}}?", "editable_fields": ["amount"]}
    return graph_of(
        [("start", "start", {}), ("ask", "user_approval", node), ("yes", "end", {}), ("no", "end", {})],
        [("start", "ask"), ("ask", "yes", "approved"), ("ask", "no", "rejected")],
    )


def test_edit_a_field_when_approving_from_the_inbox(page: Page, alice: User, page_problems: PageProblems) -> None:
    # The refused edit below is a 400 by design; Chromium logs every 4xx answer as a console error.
    page_problems.allow(r"Failed to load resource: the server responded with a status of 400")
    workflow = make_workflow(alice, name="Refunds", graph=editable_refund())
    run = wait_for(run_start(workflow=workflow, input={"amount": 120, "customer": "Ann"}, user=alice), "waiting")
    approval = ApprovalRequest.objects.get(run=run)

    page.get_by_role("link", name=re.compile("Approvals inbox")).click()
    item = page.locator(f"#approval-{approval.pk}")
    amount = item.get_by_label("amount")
    expect(amount).to_have_value("120")

    # Not JSON: refused naming the field, next to it, keeping what was typed; the run still waits.
    amount.fill("ninety")
    item.get_by_role("button", name="Approve").click()
    error = item.locator(".field-error")
    expect(error).to_have_text(re.compile(r'^Edit of "amount": not valid JSON'))
    expect(page.locator("#decide-notice")).to_contain_text('Edit of "amount"')
    expect(amount).to_have_value("ninety")
    expect(amount).to_have_accessible_description(re.compile(r'Edit of "amount"'))
    run.refresh_from_db()
    assert run.status == "waiting"
    # A live refresh of the list keeps the refused text and the error beside it.
    with page.expect_response(lambda answer: answer.request.headers.get("hx-target") == "approvals-list"):
        page.evaluate("document.body.dispatchEvent(new Event('fn-approvals-changed'))")
    page.wait_for_timeout(300)  # swapped and settled
    expect(amount).to_have_value("ninety")
    expect(error).to_have_text(re.compile(r'^Edit of "amount": not valid JSON'))

    amount.fill("90")
    item.get_by_label("Comment (optional)").fill("capped at 90")
    item.get_by_role("button", name="Approve").click()
    expect(page.locator("#decide-notice")).to_have_text("Approved with your edits: the run resumes.")
    expect(page.locator("#approvals-list")).to_contain_text("Nothing is waiting for you.")
    decided = page.locator(f"#decided-{approval.pk}")
    expect(decided).to_contain_text("approved")
    expect(decided).to_contain_text("capped at 90")
    expect(decided).to_contain_text("edited amount: 120 → 90")

    decided.get_by_role("link", name=f"Run #{run.pk}").click()
    expect(page.locator("#run-summary .badge").first).to_have_text("succeeded")
    expect(page.locator("#run-output")).to_contain_text('"amount": 90')
    expect(page.locator(f"#approval-{approval.pk}")).to_contain_text("edited amount: 120 → 90")
    output = wait_for(run).output
    assert output is not None and output["approval"]["edits"] == {
        "by": "alice",
        "changes": {"amount": {"from": 120, "to": 90}},
    }


def test_page_through_the_pending_requests_without_a_reload(page: Page, alice: User) -> None:
    workflow = make_workflow(alice, name="Many")
    for number in range(27):
        run = make_run(workflow, status="waiting")
        ApprovalRequest.objects.create(run=run, node_id="ask", message=f"Request number {number}")
    page.goto("/approvals/")
    page.evaluate("window.__notReloaded = true")
    listing = page.locator("#approvals-list")
    expect(listing).to_contain_text("27 pending requests; showing 1 to 25.")
    expect(listing.locator("article.approval")).to_have_count(25)

    # A live refresh of page 1 in flight when Next is pressed, and answered first, must not win over page 2.
    held: list[Route] = []
    inbox = re.compile(r"/approvals/(\?page=2)?$")
    page.route(inbox, lambda route: held.append(route))  # answers wait until let through below

    def wait_held(count: int) -> None:
        for _ in range(100):
            if len(held) >= count:
                return
            page.wait_for_timeout(50)
        raise AssertionError(f"{count} requests expected, {len(held)} seen")

    page.evaluate("document.body.dispatchEvent(new Event('fn-approvals-changed'))")
    wait_held(1)
    page.wait_for_timeout(200)  # every live part has asked by now
    refreshes = list(held)
    listing.get_by_role("link", name="Next").click()
    wait_held(len(refreshes) + 1)
    for route in refreshes:
        route.continue_()
    page.wait_for_timeout(500)  # the refreshes have been answered
    for route in held[len(refreshes) :]:
        route.continue_()
    page.unroute(inbox)
    expect(page).to_have_url(re.compile(r"/approvals/\?page=2$"))
    expect(listing).to_contain_text("showing 26 to 27.")
    expect(listing.locator("article.approval")).to_have_count(2)
    expect(listing).to_contain_text("Request number 0")
    assert page.evaluate("window.__notReloaded === true")

    listing.get_by_role("link", name="Previous").click()
    expect(listing.locator("article.approval")).to_have_count(25)
    expect(listing).to_contain_text("Request number 26")
