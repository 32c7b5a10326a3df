"""The workflow page's Triggers section in a real browser: adding a webhook shows its URL once with a working
copy button; adding a schedule, whose preview follows the cron expression as it is typed."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Page, expect

from tests.browser.conftest import PageProblems
from tests.factories import make_workflow
from triggers.models import Trigger
from triggers.services import secret_digest

pytestmark = [pytest.mark.worker, pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ORDER_GRAPH = {
    "nodes": [
        {
            "id": "start",
            "type": "start",
            "data": {
                "input_schema": {
                    "type": "object",
                    "properties": {"order": {"type": "integer"}},
                    "required": ["order"],
                }
            },
        },
        {"id": "end", "type": "end", "data": {}},
    ],
    "edges": [{"id": "e1", "source": "start", "target": "end"}],
}


def test_add_a_webhook_and_copy_its_url(page: Page, alice: User) -> None:
    workflow = make_workflow(alice, name="Orders", graph=ORDER_GRAPH)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.goto(f"/workflows/{workflow.pk}/")
    section = page.locator("#workflow-triggers")
    expect(section).to_contain_text("No triggers yet")  # loaded by htmx after the page

    section.get_by_text("Add a webhook").click()
    section.locator("#webhook-form").get_by_label("Name").fill("shop")
    section.get_by_role("button", name="Add the webhook").click()

    url_box = section.locator("#trigger-url")
    expect(url_box).to_contain_text("/hooks/")
    expect(section).to_contain_text("it will not be shown again")
    url = url_box.inner_text().strip()
    trigger = Trigger.objects.get(workflow=workflow)
    assert trigger.secret_hash == secret_digest(url.rstrip("/").rsplit("/", 1)[1])
    expect(section.locator("#trigger-curl")).to_contain_text(f"curl -X POST {url}")
    expect(section.locator("#trigger-curl")).to_contain_text('{"order": 1}')

    expect(section.get_by_role("button", name="Copy the URL")).to_be_visible()
    copy = section.locator('button[data-copy="trigger-url"]')
    copy.click()
    expect(copy).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == url

    # Listed, and the full URL is not shown again.
    expect(section.locator(f"#trigger-{trigger.pk}")).to_contain_text("shop")
    page.reload()
    expect(section.locator(f"#trigger-{trigger.pk}")).to_contain_text(url[: url.index("/hooks/") + 13])
    expect(section).not_to_contain_text(url)
    expect(section.locator("#trigger-url")).to_have_count(0)


def test_add_a_schedule_with_the_preview_following_the_cron(
    page: Page, alice: User, page_problems: PageProblems
) -> None:
    # A cron expression being typed is not valid at every keystroke: those previews answer 400, which the
    # browser logs. The page shows the error; the log line is expected.
    page_problems.allow(r"status of 400")
    workflow = make_workflow(alice, name="Orders", graph=ORDER_GRAPH)
    page.goto(f"/workflows/{workflow.pk}/")
    section = page.locator("#workflow-triggers")
    section.get_by_text("Add a schedule").click()
    preview = section.locator("#schedule-preview")
    expect(preview).to_contain_text("Type a cron expression")

    cron = section.get_by_label("Cron expression", exact=True)
    cron.press_sequentially("0 9 * * 1-5", delay=20)
    expect(preview).to_contain_text("At 09:00 on Monday through Friday")
    expect(preview.locator("li")).to_have_count(5)

    timezone_field = section.get_by_label("Timezone")
    timezone_field.fill("")
    timezone_field.press_sequentially("Europe/Paris", delay=10)
    expect(preview).to_contain_text("At 09:00 on Monday through Friday (Europe/Paris)")
    expect(preview.locator("li").first).to_contain_text(re.compile(r"09:00:00 \(CES?T, UTC\+0[12]:00\)"))

    cron.fill("")
    cron.press_sequentially("61 * * * *", delay=20)
    expect(preview).to_contain_text("cron: '61 * * * *' is not a valid cron expression")

    # The period instead: the cron field is hidden, the preview follows the seconds.
    section.get_by_label("Every N seconds").check()
    expect(cron).to_be_hidden()
    section.get_by_label("Every (seconds)").press_sequentially("90", delay=20)
    expect(preview).to_contain_text("Every 90 seconds")

    section.get_by_label("A cron expression").check()
    cron.fill("")
    cron.press_sequentially("30 7 * * *", delay=20)
    expect(preview).to_contain_text("At 07:30 every day (Europe/Paris)")
    section.locator("#schedule-form").get_by_label("Name").fill("mornings")
    section.get_by_role("button", name="Add the schedule").click()

    expect(section.locator("#triggers-notice")).to_contain_text("Added “mornings”: at 07:30 every day")
    trigger = Trigger.objects.get(workflow=workflow)
    assert (trigger.cron, trigger.timezone, trigger.input) == ("30 7 * * *", "Europe/Paris", {"order": 1})
    listed = section.locator(f"#trigger-{trigger.pk}")
    expect(listed.locator("ol.fire-times li")).to_have_count(5)

    # Disable it, then delete it (confirmed in the browser's dialog).
    listed.get_by_role("button", name="Disable mornings").click()
    expect(section.locator("#triggers-notice")).to_contain_text("Disabled “mornings”.")
    page.once("dialog", lambda dialog: dialog.accept())
    section.get_by_role("button", name="Delete mornings").click()
    expect(section.locator("#triggers-notice")).to_contain_text("Deleted “mornings”")
    assert not Trigger.objects.filter(pk=trigger.pk).exists()
