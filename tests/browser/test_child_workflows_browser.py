"""Nodes that run a saved workflow, in a real browser: the editor's workflow picker on `subworkflow`, `map` and
`loop` nodes (the user's other workflows only, the chosen one's input as a hint, the pinned version recorded by
the server on save), and a map's progress on the run canvas with its child runs linked from the node panel."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Locator, Page, expect

from runs.models import Run
from runs.services import run_start
from tests.browser.test_editor_browser import canvas_node, connect, drag_from_palette, node_status
from tests.engine_helpers import graph_of, wait_for
from tests.factories import linear_graph, make_workflow
from workflows.models import Workflow
from workflows.services import workflow_update

pytestmark = [pytest.mark.worker, pytest.mark.browser, pytest.mark.django_db(transaction=True)]

BILLING_SCHEMA = {
    "type": "object",
    "properties": {"customer": {"type": "string"}, "amount": {"type": "number"}},
    "required": ["customer"],
}
# In the order the stored schema keeps its properties (PostgreSQL's jsonb: shorter keys first).
BILLING_HINT = "Its input: amount: number, customer*: string (* required)."
ANY_INPUT_HINT = "Its input: any object (its start node has no input_schema)."


def billing_graph() -> dict[str, object]:
    return graph_of([("start", "start", {"input_schema": BILLING_SCHEMA}), ("end", "end", {})], [("start", "end")])


def picker(form: Locator) -> Locator:
    return form.get_by_label(re.compile(r"^Workflow"))


def assert_options(select: Locator, expected: list[str]) -> None:
    """The select's options once the workflows are listed: the placeholder, then `expected`'s others in any
    order (the API lists the latest changed first)."""
    options = select.locator("option")
    expect(options).to_have_count(len(expected))
    texts = options.all_inner_texts()
    assert texts[0] == expected[0] and sorted(texts[1:]) == sorted(expected[1:]), texts


def open_form(page: Page, node_id: str) -> Locator:
    canvas_node(page, node_id).click()
    form = page.get_by_role("form", name=f"Node {node_id}")
    expect(form).to_be_visible()
    return form


def edit_with_a_subworkflow(page: Page, workflow_id: int) -> None:
    """Open the editor of a start -> end workflow and put a subworkflow node between the two."""
    page.goto(f"/workflows/{workflow_id}/edit/")
    expect(canvas_node(page, "end")).to_be_visible()
    page.locator(".react-flow__edge").first.click(force=True)
    page.keyboard.press("Delete")
    expect(page.locator(".react-flow__edge")).to_have_count(0)
    drag_from_palette(page, "subworkflow", 420, 260)
    expect(canvas_node(page, "subworkflow")).to_be_visible()
    connect(page, "start", "subworkflow")
    connect(page, "subworkflow", "end")
    expect(page.locator(".react-flow__edge")).to_have_count(2)


def saved_data(workflow: Workflow, node_id: str) -> object:
    """A node's data as the workflow is saved now."""
    workflow.refresh_from_db()
    return next(node["data"] for node in workflow.graph_document()["nodes"] if node["id"] == node_id)


def test_a_subworkflow_picks_one_of_your_other_workflows_and_saves_its_pinned_version(
    page: Page, alice: User, mallory: User
) -> None:
    billing = make_workflow(alice, name="Billing", graph=billing_graph())
    notify = make_workflow(alice, name="Notify")
    make_workflow(mallory, name="Mallory's own")
    parent = make_workflow(alice, name="Parent")

    edit_with_a_subworkflow(page, parent.pk)

    # The select lists alice's other workflows: not the one being edited, nor anyone else's.
    form = open_form(page, "subworkflow")
    select = picker(form)
    assert_options(select, ["choose a workflow…", f"Billing (#{billing.pk}, v1)", f"Notify (#{notify.pk}, v1)"])
    expect(form.locator(".fn-workflow-input")).to_have_count(0)

    # Choosing one shows what it takes as input, from its start node's input_schema.
    select.select_option(str(notify.pk))
    expect(form.locator(".fn-workflow-input")).to_have_text(ANY_INPUT_HINT)
    select.select_option(str(billing.pk))
    expect(form.locator(".fn-workflow-input")).to_have_text(BILLING_HINT)
    expect(canvas_node(page, "subworkflow")).to_contain_text(f"workflow #{billing.pk}")

    page.get_by_role("button", name="Save").click()
    expect(page.locator(".fn-save-status")).to_have_text("Saved: version 2.")
    # The server recorded the version of Billing saved then.
    assert saved_data(parent, "subworkflow") == {"workflow": billing.pk, "pinned_version": 1}

    # Reopened, the editor shows the pinned version among the advanced fields.
    page.reload()
    form = open_form(page, "subworkflow")
    expect(picker(form)).to_have_value(str(billing.pk))
    expect(form.locator(".fn-workflow-input")).to_have_text(BILLING_HINT)
    form.locator("summary", has_text="Advanced").click()
    expect(form.get_by_label("Pinned version")).to_have_value("1")


def test_saving_again_in_the_same_editor_keeps_the_pinned_version(page: Page, alice: User) -> None:
    billing = make_workflow(alice, name="Billing", graph=billing_graph())
    parent = make_workflow(alice, name="Parent")
    edit_with_a_subworkflow(page, parent.pk)
    picker(open_form(page, "subworkflow")).select_option(str(billing.pk))
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".fn-save-status")).to_have_text("Saved: version 2.")
    assert saved_data(parent, "subworkflow") == {"workflow": billing.pk, "pinned_version": 1}

    # Billing changes; then the parent is edited and saved again without leaving the editor.
    workflow_update(workflow=billing, graph=billing_graph(), by=alice)
    form = open_form(page, "subworkflow")
    form.get_by_label("Id", exact=True).fill("bill")
    form.get_by_label("Id", exact=True).press("Enter")
    expect(canvas_node(page, "bill")).to_be_visible()
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".fn-save-status")).to_have_text("Saved: version 3.")
    assert saved_data(parent, "bill") == {"workflow": billing.pk, "pinned_version": 1}


@pytest.mark.parametrize("kind", ["map", "loop"])
def test_map_and_loop_nodes_pick_their_workflow_the_same_way(page: Page, alice: User, kind: str) -> None:
    billing = make_workflow(alice, name="Billing", graph=billing_graph())
    notify = make_workflow(alice, name="Notify")
    parent = make_workflow(alice, name="Parent")
    page.goto(f"/workflows/{parent.pk}/edit/")
    expect(canvas_node(page, "end")).to_be_visible()
    drag_from_palette(page, kind, 420, 420)
    form = open_form(page, kind)
    select = picker(form)
    assert_options(select, ["choose a workflow…", f"Billing (#{billing.pk}, v1)", f"Notify (#{notify.pk}, v1)"])
    select.select_option(str(billing.pk))
    expect(form.locator(".fn-workflow-input")).to_have_text(BILLING_HINT)
    expect(canvas_node(page, kind)).to_contain_text(f"workflow #{billing.pk}")


def test_a_maps_progress_shows_on_the_run_canvas_and_its_child_runs_are_linked(page: Page, alice: User) -> None:
    child = make_workflow(alice, name="Per item", graph=linear_graph())
    graph = graph_of(
        [
            ("start", "start", {}),
            ("each", "map", {"items": "{{input.items}}", "workflow": child.pk, "concurrency": 5}),
            ("end", "end", {}),
        ],
        [("start", "each"), ("each", "end")],
    )
    parent = make_workflow(alice, name="Fan out", graph=graph)
    assert saved_data(parent, "each") == {
        "items": "{{input.items}}",
        "workflow": child.pk,
        "concurrency": 5,
        "pinned_version": 1,
    }

    # Every badge text the canvas shows, recorded as it changes, from before the run starts.
    page.goto(f"/workflows/{parent.pk}/")
    run = run_start(workflow=parent, input={"items": list(range(20))}, user=alice)
    page.goto(f"/runs/{run.pk}/")
    page.evaluate(
        """() => {
            window.__progress = [];
            const note = () => {
                const badge = document.querySelector('.react-flow__node[data-id="each"] .fn-node-progress');
                const text = badge ? badge.textContent : null;
                if (text && window.__progress[window.__progress.length - 1] !== text) window.__progress.push(text);
            };
            note();
            new MutationObserver(note).observe(
                document.getElementById("run-canvas"), {subtree: true, childList: true, characterData: true},
            );
        }"""
    )
    # The run ends in the worker first (on a busy machine 20 child runs take longer than a locator waits); the
    # canvas shows its final state from the events it received, or replayed if it was late.
    wait_for(run, "succeeded", timeout=90)
    progress = canvas_node(page, "each").locator(".fn-node-progress")
    expect(progress).to_have_text("20/20", timeout=20_000)
    expect(node_status(page, "each")).to_have_attribute("data-status", "succeeded")
    expect(node_status(page, "end")).to_have_attribute("data-status", "succeeded")
    seen = page.evaluate("window.__progress")
    assert seen and seen[-1] == "20/20", seen
    # Only "done/20" badges, never a failure, and never going back.
    assert all(re.fullmatch(r"\d+/20", text) for text in seen), seen
    counts = [int(text.split("/")[0]) for text in seen]
    assert counts == sorted(counts), seen

    # The node panel links the 20 child runs, each of them the saved workflow's pinned version.
    children = Run.objects.filter(parent=run)
    assert children.count() == 20
    assert {(c.workflow_id, c.workflow_version, c.status) for c in children} == {(child.pk, 1, "succeeded")}
    canvas_node(page, "each").click()
    detail = page.locator("#node-detail")
    expect(detail).to_contain_text("Node each")
    links = detail.get_by_role("link", name=re.compile(r"^#\d+$"))
    expect(links).to_have_count(20)
    assert {int(text[1:]) for text in links.all_inner_texts()} == {c.pk for c in children}
    first = min(c.pk for c in children)
    detail.get_by_role("link", name=f"#{first}", exact=True).click()
    expect(page).to_have_url(re.compile(rf"/runs/{first}/$"))
    expect(node_status(page, "end")).to_have_attribute("data-status", "succeeded")

    # Opened after the map ended, the run page still shows where it got to.
    page.goto(f"/runs/{run.pk}/")
    expect(canvas_node(page, "each").locator(".fn-node-progress")).to_have_text("20/20")
