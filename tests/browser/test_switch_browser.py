"""A switch in the editor: its form edits the value and the cases, each case adds a handle on the canvas at once
(drawn from the node's data), a handle can be connected, and the workflow saves with an edge per case."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Locator, Page, expect

from tests.browser.test_editor_browser import canvas_node, connect, drag_from_palette
from workflows.models import Workflow

pytestmark = [pytest.mark.worker, pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def source_handle(page: Page, node_id: str, handle: str) -> Locator:
    return canvas_node(page, node_id).locator(f'.react-flow__handle.source[data-handleid="{handle}"]')


def test_a_case_added_in_the_form_becomes_a_handle_that_connects_and_saves(page: Page, alice: User) -> None:
    page.goto("/workflows/")
    page.get_by_role("link", name="New workflow", exact=True).click()
    expect(canvas_node(page, "end")).to_be_visible()
    page.get_by_label("Name").fill("Support router")
    page.locator(".react-flow__edge").first.click(force=True)
    page.keyboard.press("Delete")
    expect(page.locator(".react-flow__edge")).to_have_count(0)

    drag_from_palette(page, "switch", 380, 250)
    drag_from_palette(page, "end", 700, 420)
    expect(canvas_node(page, "switch")).to_be_visible()
    connect(page, "start", "switch")

    # A new switch has only its default handle; the form adds a case, whose handle appears beside it.
    canvas_node(page, "switch").click()
    form = page.get_by_role("form", name="Node switch")
    expect(form).to_be_visible()
    handles = canvas_node(page, "switch").locator(".react-flow__handle.source")
    expect(handles).to_have_count(1)
    expect(source_handle(page, "switch", "default")).to_have_count(1)
    form.get_by_label(re.compile(r"^Value")).fill("{{input.topic}}")
    form.get_by_role("button", name="Add case").click()
    expect(source_handle(page, "switch", "case_1")).to_have_count(1)

    # Renaming the case renames its handle; a second case comes and goes with its handle.
    form.get_by_label(re.compile(r"^Case \(its handle\)")).fill("refund")
    form.get_by_label("Compared with").fill("refund")
    expect(source_handle(page, "switch", "refund")).to_have_count(1)
    expect(source_handle(page, "switch", "case_1")).to_have_count(0)
    form.get_by_role("button", name="Add case").click()
    expect(handles).to_have_count(3)
    form.get_by_role("button", name="Remove case").nth(1).click()
    expect(handles).to_have_count(2)
    expect(handles.locator(".fn-handle-label")).to_have_text(["refund", "default"])

    connect(page, "switch", "end", "refund")
    connect(page, "switch", "end_2", "default")
    expect(page.locator(".react-flow__edge")).to_have_count(3)
    page.get_by_role("button", name="Create").click()
    expect(page).to_have_url(re.compile(r"/workflows/\d+/edit/$"))

    graph = Workflow.objects.get(name="Support router").graph_document()
    switch = next(node for node in graph["nodes"] if node["id"] == "switch")
    assert switch["data"] == {
        "value": "{{input.topic}}",
        "cases": [{"id": "refund", "operator": "==", "right": "refund"}],
    }
    assert {(e["source"], e.get("sourceHandle"), e["target"]) for e in graph["edges"]} == {
        ("start", None, "switch"),
        ("switch", "refund", "end"),
        ("switch", "default", "end_2"),
    }

    # Removing the connected case leaves its edge on a marked handle, and saving names that edge.
    canvas_node(page, "switch").click()
    form = page.get_by_role("form", name="Node switch")
    form.get_by_role("button", name="Add case").click()
    form.get_by_role("button", name="Remove case").first.click()
    expect(source_handle(page, "switch", "refund")).to_have_class(re.compile("fn-handle-stale"))
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".fn-issues")).to_contain_text('node "switch" (switch) has no handle "refund"')
