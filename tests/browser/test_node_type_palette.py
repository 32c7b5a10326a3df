"""A node type registered by one module (tests/node_types/word_count.py) shows in the editor's palette with its
title, and its node gets the form its data schema describes, with no front-end change."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

pytestmark = [pytest.mark.worker, pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_module_registered_type_is_in_the_palette_with_its_form(page: Page) -> None:
    page.goto("/workflows/new/")
    palette = page.get_by_role("complementary", name="Node types")
    item = palette.get_by_role("button", name="Word count")
    expect(item).to_be_visible()
    expect(palette.get_by_role("heading", name="Text", exact=True)).to_be_visible()  # its palette group

    item.click()
    form = page.get_by_role("form", name="Node word_count")
    expect(form).to_contain_text("Word count")
    text = form.get_by_label("Text to count")
    expect(text).to_have_js_property("tagName", "TEXTAREA")
    text.fill("{{input.body}}")
    expect(page.locator('.react-flow__node[data-id="word_count"]')).to_contain_text("{{input.body}}")
