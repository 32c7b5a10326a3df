"""The React Flow editor and the run canvas in a real browser, against daphne and the real worker.

The editor's whole story: build a workflow by dragging nodes from the palette and connecting handles, save,
see a validation error marked on the node at fault, fix it, run it, watch the canvas turn nodes green live,
approve from the inbox, and see the run succeed with its ledger filled in. Screenshots of the editor and the
run view go to test-artifacts/screenshots/ (git-ignored) besides the fixture's own end-of-test ones.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Locator, Page, expect

from nodes import node_catalogue
from projects.services import personal_project
from runs.models import Run
from runs.services import run_start
from tests.browser.conftest import SCREENSHOTS
from tests.engine_helpers import graph_of, wait_for
from tests.factories import make_workflow
from tests.llm_server import Answer, ScriptedLLM
from tools.models import Tool
from workflows.models import Workflow

pytestmark = [pytest.mark.worker, pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def canvas_node(page: Page, node_id: str) -> Locator:
    return page.locator(f'.react-flow__node[data-id="{node_id}"]')


def node_status(page: Page, node_id: str) -> Locator:
    return canvas_node(page, node_id).locator(".fn-node")


def connect(page: Page, source: str, target: str, handle: str | None = None) -> None:
    """Drag from a source handle to the target node's input handle, as a person does with the mouse."""
    # No handle: the node's unnamed one, not its error path.
    selector = ".react-flow__handle.source" + (f'[data-handleid="{handle}"]' if handle else ":not([data-handleid])")
    start = canvas_node(page, source).locator(selector).bounding_box()
    end = canvas_node(page, target).locator(".react-flow__handle.target").bounding_box()
    assert start and end, f"handles of {source} / {target} not on screen"
    page.mouse.move(start["x"] + start["width"] / 2, start["y"] + start["height"] / 2)
    page.mouse.down()
    page.mouse.move(end["x"] + end["width"] / 2, end["y"] + end["height"] / 2, steps=10)
    page.mouse.up()


def drag_from_palette(page: Page, kind: str, x: int, y: int) -> None:
    page.drag_and_drop(f'.fn-palette-item[data-kind="{kind}"]', ".fn-canvas", target_position={"x": x, "y": y})


# Rewrites the catalogue's script element as soon as the parser has read it, before the canvas bundle (a
# module script, so run after parsing) reads it. Takes the types to add as `extra`.
ADD_TO_CATALOGUE = """
    const observer = new MutationObserver(() => {
        const element = document.getElementById("flow-catalogue");
        if (!element) return;
        let listed;
        try {
            listed = JSON.parse(element.textContent);
        } catch {
            return;  // not all of it parsed yet
        }
        observer.disconnect();
        element.textContent = JSON.stringify([...listed, ...extra]);
    });
    observer.observe(document, {childList: true, subtree: true, characterData: true});
"""


def with_extra_node_types(page: Page, extra: list[dict[str, Any]]) -> None:
    """Append `extra` to the node type catalogue the page's canvases read, as if a deployment had registered
    those types."""
    page.add_init_script("((extra) => {" + ADD_TO_CATALOGUE + "})(" + json.dumps(extra) + ");")


def border_colour(page: Page, node_id: str) -> str:
    """The node's left border colour as drawn, e.g. `rgb(16, 152, 173)`."""
    return canvas_node(page, node_id).locator(".fn-node").evaluate("(node) => getComputedStyle(node).borderLeftColor")


def shot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / f"{name}.png")


def test_build_save_fix_run_approve_and_watch_the_canvas(page: Page, alice: User) -> None:
    page.goto("/workflows/")
    page.get_by_role("link", name="New workflow", exact=True).click()
    expect(canvas_node(page, "end")).to_be_visible()
    page.get_by_label("Name").fill("Drawn by hand")

    # The starter graph is start -> end; take that edge away with the keyboard.
    page.locator(".react-flow__edge").first.click(force=True)
    page.keyboard.press("Delete")
    expect(page.locator(".react-flow__edge")).to_have_count(0)

    drag_from_palette(page, "user_approval", 380, 430)
    drag_from_palette(page, "if_else", 380, 110)
    expect(canvas_node(page, "user_approval")).to_be_visible()
    expect(canvas_node(page, "if_else")).to_be_visible()
    connect(page, "start", "user_approval")
    connect(page, "user_approval", "end", "approved")
    expect(page.locator(".react-flow__edge")).to_have_count(2)
    # The if/else stays unconnected and unconfigured: the server must refuse the graph and say where.
    page.get_by_role("button", name="Create").click()
    expect(page.locator(".fn-save-status")).to_contain_text("Not saved")
    faulty = node_status(page, "if_else")
    expect(faulty).to_have_class(re.compile("fn-has-issues"))
    expect(faulty.locator(".fn-node-issues")).to_contain_text("can't be reached from the start node")
    expect(faulty.locator(".fn-node-issues")).to_contain_text("'operator' is a required property")
    expect(node_status(page, "user_approval")).not_to_have_class(re.compile("fn-has-issues"))
    assert not Workflow.objects.filter(name="Drawn by hand").exists()
    shot(page, "editor-validation-error")

    # Fix it: select the faulty node and delete it with the keyboard; undo brings it back, redo removes it.
    canvas_node(page, "if_else").click()
    expect(page.get_by_role("form", name="Node if_else")).to_be_visible()
    page.keyboard.press("Delete")
    expect(canvas_node(page, "if_else")).to_have_count(0)
    page.get_by_role("button", name="Undo").click()
    expect(canvas_node(page, "if_else")).to_have_count(1)
    page.get_by_role("button", name="Redo").click()
    expect(canvas_node(page, "if_else")).to_have_count(0)

    # Configure the approval in the side panel: the message is a template.
    canvas_node(page, "user_approval").click()
    page.get_by_label("Message").fill("Ship order {{input.order}}?")
    page.get_by_role("button", name="Create").click()
    expect(page).to_have_url(re.compile(r"/workflows/\d+/edit/$"))
    workflow = Workflow.objects.get(name="Drawn by hand")
    graph = workflow.graph_document()
    assert {node["id"]: node["type"] for node in graph["nodes"]} == {
        "start": "start",
        "end": "end",
        "user_approval": "user_approval",
    }
    assert {(e["source"], e.get("sourceHandle"), e["target"]) for e in graph["edges"]} == {
        ("start", None, "user_approval"),
        ("user_approval", "approved", "end"),
    }
    approval = next(node for node in graph["nodes"] if node["id"] == "user_approval")
    assert approval["data"] == {"message": "Ship order {{input.order}}?"}
    expect(page.locator(".fn-save-status")).to_have_text("Version 1.")
    shot(page, "editor")

    # Run it from the workflow page and watch the canvas.
    page.get_by_role("link", name="Run…").click()
    page.get_by_label("Input (JSON object)").fill('{"order": 42}')
    page.locator("#run-form-json").get_by_role("button", name="Run").click()
    expect(page).to_have_url(re.compile(r"/runs/\d+/$"))
    run = Run.objects.get(workflow=workflow)
    expect(node_status(page, "start")).to_have_attribute("data-status", "succeeded")
    expect(node_status(page, "user_approval")).to_have_attribute("data-status", "waiting")
    expect(page.locator(".react-flow__edge.fn-edge-taken")).to_have_count(1)

    # Approve from the inbox in a second tab; the run page's canvas follows live (no reload).
    page.evaluate("window.__notReloaded = true")
    # Live updates change the nodes' data only: React Flow never hides a node to measure it again.
    page.evaluate(
        """() => {
            window.__hiddenNodes = [];
            new MutationObserver((records) => {
                for (const record of records) {
                    const node = record.target;
                    if (node.classList?.contains("react-flow__node") && node.style.visibility === "hidden") {
                        window.__hiddenNodes.push(node.dataset.id);
                    }
                }
            }).observe(
                document.getElementById("run-canvas"),
                {subtree: true, attributes: true, attributeFilter: ["style"]},
            );
        }"""
    )
    inbox = page.context.new_page()
    inbox.goto("/approvals/")
    item = inbox.locator(".approval", has_text="Ship order 42?")
    item.get_by_role("button", name="Approve").click()
    expect(inbox.locator("#decide-notice")).to_have_text("Approved: the run resumes.")
    inbox.close()

    expect(node_status(page, "user_approval")).to_have_attribute("data-status", "succeeded")
    expect(node_status(page, "end")).to_have_attribute("data-status", "succeeded")
    expect(page.locator(".react-flow__edge.fn-edge-taken")).to_have_count(2)
    expect(page.locator("#run-summary .badge").first).to_have_text("succeeded")
    ledger = page.locator("#run-ledger tbody tr")
    expect(ledger.locator("td:nth-child(2)")).to_have_text(["start", "user_approval", "user_approval", "end"])
    assert page.evaluate("window.__notReloaded === true")
    assert page.evaluate("window.__hiddenNodes") == []
    wait_for(run, "succeeded")

    # Clicking a node on the canvas shows its input and output beside it.
    canvas_node(page, "user_approval").click()
    detail = page.locator("#node-detail")
    expect(detail).to_contain_text("Node user_approval")
    expect(detail).to_contain_text('"decision": "approved"')
    expect(detail).to_contain_text('"order": 42')
    shot(page, "run-view")


def test_side_panel_form_tools_hints_auto_layout_and_save(page: Page, alice: User) -> None:
    Tool.objects.create(
        owner=alice,
        project=personal_project(alice),
        name="lookup_order",
        description="Find an order",
        url="http://127.0.0.1:9/",
    )
    schema = {"type": "object", "properties": {"order": {"type": "integer"}}}
    workflow = make_workflow(
        alice,
        name="Agent flow",
        graph=graph_of([("start", "start", {"input_schema": schema}), ("end", "end", {})], [("start", "end")]),
    )
    page.goto(f"/workflows/{workflow.pk}/")
    # The workflow page draws the graph read-only.
    expect(page.locator('[data-flow-graph] .react-flow__node[data-id="start"]')).to_be_visible()
    page.get_by_role("link", name="Edit").click()
    expect(canvas_node(page, "end")).to_be_visible()

    # Nodes are reached with the keyboard too: focus, Enter selects and opens its form.
    canvas_node(page, "end").focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("form", name="Node end")).to_be_visible()
    # Keyboard-friendly palette: pressing an entry adds the node in the middle, selected.
    page.locator('.fn-palette-item[data-kind="agent"]').focus()
    page.keyboard.press("Enter")
    form = page.get_by_role("form", name="Node agent")
    expect(form).to_be_visible()
    form.get_by_label("Model", exact=True).fill("openai/scripted")
    form.get_by_label("User prompt").fill("Where is order ")
    # The template hint offers the run input's fields from the start node's input_schema.
    prompt_field = form.locator(".field", has=page.get_by_label("User prompt"))
    prompt_field.get_by_role("button", name="{{input.order}}").click()
    expect(form.get_by_label("User prompt")).to_have_value("Where is order {{input.order}}")
    form.get_by_label("lookup_order").check()
    # Its label is the property's title in the catalogue, or the humanised key.
    output_schema = form.get_by_label(re.compile(r"^Output schema"))
    output_schema.fill('{"type": "object", "properties": {')
    expect(form.locator(".field-error")).to_contain_text("Not valid JSON yet")
    output_schema.fill('{"type": "object"}')
    expect(form.locator(".field-error")).to_have_count(0)
    form.get_by_label("Id", exact=True).fill("helper")
    form.get_by_label("Id", exact=True).press("Enter")
    expect(canvas_node(page, "helper")).to_be_visible()

    # The new node sits in the middle, over the old edge: reach the edge with the keyboard instead of a click.
    page.locator(".react-flow__edge").first.focus()
    page.keyboard.press("Enter")
    page.keyboard.press("Backspace")
    expect(page.locator(".react-flow__edge")).to_have_count(0)
    expect(canvas_node(page, "helper")).to_be_visible()
    # Three unconnected nodes: auto layout stacks them apart, so no node covers another's handle.
    page.get_by_role("button", name="Auto layout").click()
    page.wait_for_timeout(400)
    connect(page, "start", "helper")
    connect(page, "helper", "end")
    before = canvas_node(page, "helper").bounding_box()
    page.get_by_role("button", name="Auto layout").click()
    page.wait_for_timeout(400)
    assert canvas_node(page, "helper").bounding_box() != before
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".fn-save-status")).to_have_text("Saved: version 2.")

    workflow.refresh_from_db()
    document: dict[str, Any] = workflow.graph_document()  # the JSON as saved: read, not type-checked
    saved = {node["id"]: node for node in document["nodes"]}
    assert saved["helper"]["type"] == "agent"
    assert saved["helper"]["data"] == {
        "model": "openai/scripted",
        "user_prompt": "Where is order {{input.order}}",
        "tools": ["lookup_order"],
        "output_schema": {"type": "object"},
    }
    # Auto layout put start left of the agent, the agent left of end.
    assert saved["start"]["position"]["x"] < saved["helper"]["position"]["x"] < saved["end"]["position"]["x"]


# A type that says everything about itself, and one that says nothing but its name and data schema.
TRIAGE = {
    "type": "ticket_triage",
    "title": "Ticket triage",
    "description": "Sorts a support ticket into a queue.",
    "icon": "✉",
    "colour": "#1098ad",
    "group": "Support desk",
    "order": -100,
    "summary": "{{queue}} via {{model}}",
    "output_fields": ["queue", "confidence"],
    "handles": ["urgent", "normal"],
    "allows_outgoing": True,
    "accepts_incoming": False,
    "data_schema": {
        "type": "object",
        "properties": {
            "label": {"type": "string", "title": "Label", "x-advanced": True},
            "retries": {"type": "integer", "title": "Retries", "x-advanced": True},
            "model": {"type": "string", "title": "Model"},
            "queue": {"enum": ["billing", "tech"], "title": "Queue"},
            "brief": {"type": "string", "title": "What to look for", "x-widget": "textarea"},
            "helpers": {"type": "array", "items": {"type": "string"}, "title": "Helpers", "x-widget": "tools"},
        },
        "required": ["model"],
    },
    "side_effects": False,
}
LOOKUP = {
    "type": "queue_lookup",
    "data_schema": {"type": "object", "properties": {"queue_name": {"type": "string"}, "note": {}}},
}


def test_palette_nodes_and_forms_follow_the_catalogue_for_any_type(page: Page, alice: User) -> None:
    Tool.objects.create(
        owner=alice,
        project=personal_project(alice),
        name="lookup_order",
        description="Find an order",
        url="http://127.0.0.1:9/",
    )
    with_extra_node_types(page, [TRIAGE, LOOKUP])
    page.goto("/workflows/new/")
    expect(canvas_node(page, "end")).to_be_visible()

    # The palette: groups in the order of their lowest `order`, a type without a group under "Other", last.
    palette = page.locator(".fn-palette")
    expect(palette.locator("h3").first).to_have_text("Support desk")
    expect(palette.locator("h3").last).to_have_text("Other")
    other = palette.locator(".fn-palette-group", has=page.locator("h3", has_text="Other"))
    expect(other.locator('.fn-palette-item[data-kind="queue_lookup"]')).to_have_text("Queue lookup")
    triage_item = palette.locator('.fn-palette-item[data-kind="ticket_triage"]')
    expect(triage_item).to_have_text("✉Ticket triage")
    expect(triage_item).to_have_attribute("title", "Sorts a support ticket into a queue.")

    # A node of the full type: its icon, title and colour; no input handle; its named outgoing handles.
    triage_item.click()
    form = page.get_by_role("form", name="Node ticket_triage")
    expect(form.get_by_role("heading")).to_contain_text("Ticket triage")
    node = canvas_node(page, "ticket_triage")
    expect(node.locator(".fn-node-type")).to_have_text("✉Ticket triage")
    expect(node.locator(".react-flow__handle.target")).to_have_count(0)
    expect(node.locator(".react-flow__handle.source")).to_have_count(2)
    expect(node.locator('.react-flow__handle.source[data-handleid="urgent"]')).to_be_visible()
    assert border_colour(page, "ticket_triage") == "rgb(16, 152, 173)"

    # Its form: labels from the titles, widgets from x-widget, the x-advanced keys folded under "Advanced".
    expect(form.get_by_label("What to look for")).to_have_js_property("tagName", "TEXTAREA")
    form.get_by_label("lookup_order").check()
    expect(form.get_by_label("Retries")).to_be_hidden()
    form.get_by_text("Advanced").click()
    expect(form.get_by_label("Retries")).to_be_visible()
    # The summary line follows the configuration as it is typed.
    form.get_by_label("Model").fill("openai/scripted")
    form.get_by_label("Queue").select_option("billing")
    expect(node).to_contain_text("billing via openai/scripted")

    # A node of the bare type: defaults everywhere, and the template hints name what upstream types output.
    page.locator('.fn-palette-item[data-kind="queue_lookup"]').click()
    lookup = canvas_node(page, "queue_lookup")
    expect(lookup.locator(".fn-node-type")).to_have_text("Queue lookup")
    assert border_colour(page, "queue_lookup") == "rgb(134, 142, 150)"
    page.get_by_role("button", name="Auto layout").click()
    page.wait_for_timeout(400)
    connect(page, "ticket_triage", "queue_lookup", "urgent")
    lookup.click()
    form = page.get_by_role("form", name="Node queue_lookup")
    expect(form.get_by_label("Queue name")).to_have_attribute("type", "text")
    note = form.locator(".field", has=page.get_by_label("Note"))
    expect(note.locator(".fn-chip")).to_have_text(
        ["{{input.<field>}}", "{{nodes.ticket_triage.queue}}", "{{nodes.ticket_triage.confidence}}"]
    )
    shot(page, "editor-catalogue")


def test_run_canvas_shows_an_agents_text_as_it_streams(page: Page, alice: User, llm_server: ScriptedLLM) -> None:
    reply = "Your parcel left the depot this morning and arrives tomorrow."
    model = llm_server.model(Answer(content=reply, chunk_delay=0.2))
    # A pause first, so the page is open and live before the model starts answering (for about 3 s).
    graph = graph_of(
        [
            ("start", "start", {}),
            ("pause", "test_sleep", {"seconds": 1.5}),
            ("agent", "agent", {"model": model, "user_prompt": "Where is it?"}),
            ("end", "end", {}),
        ],
        [("start", "pause"), ("pause", "agent"), ("agent", "end")],
    )
    run = run_start(workflow=make_workflow(alice, name="Tracker", graph=graph), input={}, user=alice)
    page.goto(f"/runs/{run.pk}/")
    # While the model is still answering, its text so far shows inside the running node.
    expect(node_status(page, "agent")).to_have_attribute("data-status", "running")
    expect(canvas_node(page, "agent").locator(".fn-node-stream")).to_contain_text("parcel")
    expect(node_status(page, "agent")).to_have_attribute("data-status", "succeeded")
    expect(canvas_node(page, "agent").locator(".fn-node-stream")).to_have_count(0)
    expect(page.locator(f"#transcript-{run.pk}-agent")).to_have_text(reply)
    canvas_node(page, "agent").click()
    expect(page.locator("#node-detail")).to_contain_text('"message": "Your parcel left the depot')
    expect(page.locator("#node-detail")).to_contain_text('"prompt_tokens": 11')


def test_compare_page_colours_the_nodes_whose_output_changed(page: Page, alice: User) -> None:
    graph = graph_of(
        [
            ("start", "start", {}),
            ("check", "if_else", {"left": "{{input.amount}}", "operator": ">", "right": "100"}),
            ("big", "end", {"output": {"size": "big"}}),
            ("small", "end", {"output": {"size": "small"}}),
        ],
        [("start", "check"), ("check", "big", "true"), ("check", "small", "false")],
    )
    workflow = make_workflow(alice, name="Sizer", graph=graph)
    first = run_start(workflow=workflow, input={"amount": 500}, user=alice)
    second = run_start(workflow=workflow, input={"amount": 5}, user=alice)
    wait_for(first, "succeeded")
    wait_for(second, "succeeded")
    page.goto(f"/runs/{first.pk}/")
    page.get_by_label("Compare with").select_option(str(second.pk))
    page.get_by_role("button", name="Compare").click()
    expect(page).to_have_url(re.compile(r"/runs/compare/\?a=\d+&b=\d+"))
    compare = page.locator("#compare-canvas")
    expect(compare.locator('.react-flow__node[data-id="check"] .fn-node')).to_have_class(re.compile("fn-changed"))
    expect(compare.locator('.react-flow__node[data-id="big"] .fn-node')).to_contain_text("succeeded → not reached")
    expect(compare.locator('.react-flow__node[data-id="small"] .fn-node')).to_contain_text("not reached → succeeded")
    # Read-only canvases draw from the catalogue too: the type's icon and title, its summary of the configuration,
    # and no input handle on a type that accepts none.
    check = compare.locator('.react-flow__node[data-id="check"]')
    if_else = next(spec for spec in node_catalogue() if spec["type"] == "if_else")
    expect(check.locator(".fn-node-type")).to_have_text(if_else["icon"] + if_else["title"])
    expect(check).to_contain_text("{{input.amount}} > 100")
    expect(compare.locator('.react-flow__node[data-id="start"] .react-flow__handle.target')).to_have_count(0)
    shot(page, "compare")


def test_a_cognitive_nodes_design_opens_as_a_graph(page: Page, alice: User, llm_server: ScriptedLLM) -> None:
    designed = graph_of(
        [
            ("start", "start", {}),
            ("big", "if_else", {"left": "{{input.amount}}", "operator": ">", "right": "100"}),
            ("large", "end", {"output": {"size": "large"}}),
            ("small", "end", {"output": {"size": "small"}}),
        ],
        [("start", "big"), ("big", "large", "true"), ("big", "small", "false")],
    )
    model = llm_server.model(Answer(content=json.dumps({"reasoning": "route by amount", "graph": designed})))
    graph = graph_of(
        [
            ("start", "start", {}),
            ("think", "cognitive", {"model": model, "instruction": "Size it."}),
            ("end", "end", {}),
        ],
        [("start", "think"), ("think", "end")],
    )
    run = run_start(workflow=make_workflow(alice, name="Thinker", graph=graph), input={"amount": 250}, user=alice)
    wait_for(run, "succeeded")
    page.goto(f"/runs/{run.pk}/")
    canvas_node(page, "think").click()
    detail = page.locator("#node-detail")
    expect(detail).to_contain_text("The workflow it designed")
    drawn = detail.locator("[data-flow-graph]")
    for node_id in ("start", "big", "large", "small"):
        expect(drawn.locator(f'.react-flow__node[data-id="{node_id}"]')).to_be_visible()
    child = Run.objects.get(parent=run)
    detail.get_by_role("link", name=f"#{child.pk}").click()
    expect(page).to_have_url(re.compile(rf"/runs/{child.pk}/$"))
    # The child run's own page draws the designed graph with the path it took.
    expect(node_status(page, "large")).to_have_attribute("data-status", "succeeded")
    expect(node_status(page, "small")).to_have_attribute("data-status", "skipped")
