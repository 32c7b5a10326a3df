"""A transform in the editor: "Try it" under its expression evaluates it on a sample input through the preview
endpoint and shows the object it yields, or the error with its position, without saving anything."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Page, expect

from tests.browser.test_editor_browser import canvas_node, drag_from_palette
from workflows.models import Workflow

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_try_it_shows_the_result_or_the_error_of_the_expression(page: Page, alice: User) -> None:
    page.goto("/workflows/")
    page.get_by_role("link", name="New workflow", exact=True).click()
    expect(canvas_node(page, "end")).to_be_visible()
    drag_from_palette(page, "transform", 380, 250)
    canvas_node(page, "transform").click()
    form = page.get_by_role("form", name="Node transform")
    expect(form).to_be_visible()

    form.get_by_label(re.compile(r"^Expression \(JSONata\)")).fill('{"total": $sum(input.items.price)}')
    form.get_by_text("Try it", exact=True).first.click()  # opens the panel
    form.get_by_label("Sample input (JSON)").fill('{"items": [{"price": 2}, {"price": 3.5}]}')
    form.get_by_role("button", name="Try it").click()
    expect(form.get_by_role("status")).to_contain_text('"total": 5.5')

    form.get_by_label(re.compile(r"^Expression \(JSONata\)")).fill('{"total": $sum(input.items.price}')
    form.get_by_role("button", name="Try it").click()
    expect(form.get_by_role("alert")).to_contain_text("position")
    assert not Workflow.objects.exists()  # trying saves nothing
