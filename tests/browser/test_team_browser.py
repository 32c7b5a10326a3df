"""The team features in a real browser, against daphne and the real worker: a workflow's versions (saved with a
message from the editor, listed on its page, compared on the diff canvas, restored), and projects (created, a
member added through the htmx form, a workflow drawn in the project, and what a viewer is shown of it).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Locator, Page, expect

from projects.models import Membership, Project, Role
from projects.services import member_set, project_create
from tests.engine_helpers import graph_of
from workflows.models import Workflow
from workflows.services import workflow_create, workflow_update

pytestmark = [pytest.mark.worker, pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def placed(graph: dict[str, Any]) -> dict[str, Any]:
    """The graph with its nodes laid out left to right, as the editor saves them: a node the editor has to place
    itself would be "changed" (its position) in the next version's diff."""
    for index, node in enumerate(graph["nodes"]):
        node["position"] = {"x": 240 * index, "y": 0}
    return graph


def three_steps() -> dict[str, Any]:
    """start -> ask -> check -> end: two approvals, so one can change and the other be renamed (removed + added)."""
    return placed(
        graph_of(
            [
                ("start", "start", {}),
                ("ask", "user_approval", {"message": "Ship it?"}),
                ("check", "user_approval", {"message": "Checked twice?"}),
                ("end", "end", {}),
            ],
            [("start", "ask"), ("ask", "check", "approved"), ("check", "end", "approved")],
        )
    )


def canvas_node(page: Page, node_id: str) -> Locator:
    return page.locator(f'.react-flow__node[data-id="{node_id}"]')


def graph_shape(graph: dict[str, Any]) -> tuple[dict[str, Any], set[tuple[str, str | None, str]]]:
    """A graph's nodes (id: type and data) and edges, without positions or edge ids."""
    nodes = {node["id"]: (node["type"], node.get("data") or {}) for node in graph["nodes"]}
    edges = {(edge["source"], edge.get("sourceHandle"), edge["target"]) for edge in graph["edges"]}
    return nodes, edges


def api_get(page: Page, path: str) -> dict[str, Any]:
    """GET through the page's own session, as the signed-in user."""
    response = page.request.get(path)
    assert response.status == 200, f"GET {path}: {response.status} {response.text()}"
    body: dict[str, Any] = response.json()
    return body


# The ids of the canvas's nodes that are not wholly inside it.
NODES_OUTSIDE = """(canvas) => {
    const frame = canvas.getBoundingClientRect();
    return [...canvas.querySelectorAll(".react-flow__node")]
        .filter((node) => {
            const box = node.getBoundingClientRect();
            return box.left < frame.left || box.right > frame.right || box.top < frame.top || box.bottom > frame.bottom;
        })
        .map((node) => node.dataset.id);
}"""


def assert_all_in_view(canvas: Locator) -> None:
    """Every node of a read-only canvas lies inside it: its first fit framed the whole graph (given the moment
    the fit takes after the nodes are measured)."""
    expect(canvas.locator(".react-flow__node").first).to_be_visible()
    deadline = time.monotonic() + 2
    while (outside := canvas.evaluate(NODES_OUTSIDE)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert outside == [], f"nodes cut off at the canvas's edge: {outside}"


def versions_row(page: Page, number: int) -> Locator:
    return page.locator(f'#versions-table tr[data-version="{number}"]')


def test_save_with_messages_list_versions_and_see_the_diff_coloured(page: Page, alice: User) -> None:
    workflow = workflow_create(owner=alice, name="Shipping", graph=three_steps())
    page.goto(f"/workflows/{workflow.pk}/edit/")
    expect(canvas_node(page, "ask")).to_be_visible()

    # First save: the approval "ask" says something else.
    canvas_node(page, "ask").click()
    page.get_by_role("form", name="Node ask").get_by_label("Message").fill("Ship order {{input.order}}?")
    page.get_by_placeholder("What changed (optional)").fill("Name the order in the approval")
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".fn-save-status")).to_have_text("Saved: version 2.")
    # The message went with that save only: the field is empty for the next one.
    expect(page.get_by_placeholder("What changed (optional)")).to_have_value("")

    # Second save: "check" is renamed "confirm", so the diff sees one node removed and one added.
    canvas_node(page, "check").click()
    node_id = page.get_by_role("form", name="Node check").get_by_label("Id", exact=True)
    node_id.fill("confirm")
    node_id.press("Enter")
    expect(canvas_node(page, "confirm")).to_be_visible()
    page.get_by_placeholder("What changed (optional)").fill("Call the second check confirm")
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".fn-save-status")).to_have_text("Saved: version 3.")

    # The workflow's page lists the three versions, newest first, with the messages.
    page.get_by_role("link", name="Run…").click()
    expect(page).to_have_url(re.compile(rf"/workflows/{workflow.pk}/$"))
    rows = page.locator("#versions-table tbody tr")
    expect(rows).to_have_count(3)
    expect(rows.locator("th")).to_have_text([re.compile(r"^3\s+current$"), "2", "1"])
    expect(versions_row(page, 3).locator("td").nth(2)).to_have_text("Call the second check confirm")
    expect(versions_row(page, 2).locator("td").nth(2)).to_have_text("Name the order in the approval")
    expect(versions_row(page, 1).locator("td").nth(0)).to_have_text("alice")

    # Version 1 against the current one: one node changed, one removed, one added.
    versions_row(page, 1).get_by_role("link", name="Compare with current").click()
    expect(page).to_have_url(re.compile(rf"/workflows/{workflow.pk}/versions/diff/\?a=1&b=3$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Shipping: version 1 → version 3")
    legend = page.get_by_role("list", name="Legend")
    expect(legend.locator("li")).to_have_text(
        ["added in version 3", "removed (drawn from version 1)", "changed"], use_inner_text=True
    )
    for mark in ("added", "removed", "changed"):
        expect(legend.locator(f".diff-swatch.diff-{mark}")).to_be_visible()

    canvas = page.locator("#version-diff-canvas")
    expected = {"confirm": "added", "check": "removed", "ask": "changed"}
    for node, mark in expected.items():
        drawn = canvas.locator(f'.react-flow__node[data-id="{node}"] .fn-node')
        expect(drawn).to_be_visible()
        expect(drawn).to_have_attribute("data-diff", mark)
        expect(drawn).to_have_class(re.compile(rf"\bfn-diff-{mark}\b"))
        expect(drawn.locator(".fn-node-diff")).to_have_text(mark)
    for unchanged in ("start", "end"):
        drawn = canvas.locator(f'.react-flow__node[data-id="{unchanged}"] .fn-node')
        expect(drawn).to_be_visible()
        expect(drawn).not_to_have_attribute("data-diff", re.compile(".+"))
        expect(drawn).not_to_have_class(re.compile(r"\bfn-diff-"))
    # The colours as drawn: the added node's border green, the removed one's red and dashed, the changed amber.
    styles = {
        node: canvas.locator(f'.react-flow__node[data-id="{node}"] .fn-node').evaluate(
            "(el) => { const s = getComputedStyle(el); return [s.borderTopColor, s.borderTopStyle]; }"
        )
        for node in expected
    }
    assert styles == {
        "confirm": ["rgb(43, 138, 62)", "solid"],
        "check": ["rgb(201, 42, 42)", "dashed"],
        "ask": ["rgb(230, 119, 0)", "solid"],
    }
    assert_all_in_view(canvas)
    # The renaming kept the edges' ids and moved their ends: both edges of the renamed node are changed ones.
    expect(canvas.locator(".react-flow__edge")).to_have_count(3)
    expect(canvas.locator(".react-flow__edge.fn-edge-diff-changed")).to_have_count(2)
    expect(canvas.locator(".react-flow__edge.fn-edge-diff-added")).to_have_count(0)
    expect(canvas.locator(".react-flow__edge.fn-edge-diff-removed")).to_have_count(0)
    # And the list of changes beside the canvas says the same.
    changes = page.locator("#version-diff-changes")
    expect(changes.locator('[data-diff="added"][data-id="confirm"]')).to_be_visible()
    expect(changes.locator('[data-diff="removed"][data-id="check"]')).to_be_visible()


def test_restore_an_older_version_from_the_versions_section(page: Page, alice: User) -> None:
    workflow = workflow_create(owner=alice, name="Shipping", graph=three_steps())
    first_graph = workflow.graph_document()
    shorter = graph_of(
        [("start", "start", {}), ("ask", "user_approval", {"message": "Ship it now?"}), ("end", "end", {})],
        [("start", "ask"), ("ask", "end", "approved")],
    )
    workflow_update(workflow=workflow, graph=shorter, by=alice, message="Drop the second check")
    page.goto(f"/workflows/{workflow.pk}/")
    expect(versions_row(page, 2).locator("td").nth(2)).to_have_text("Drop the second check")

    dialogs: list[str] = []

    def accept(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.accept()

    page.once("dialog", accept)
    versions_row(page, 1).get_by_role("button", name="Restore version 1").click()
    expect(page.get_by_text("Restored version 1 as version 3.")).to_be_visible()
    assert dialogs == ["Restore version 1? It is saved as a new version; nothing is lost."]
    expect(page).to_have_url(re.compile(rf"/workflows/{workflow.pk}/$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Shipping v3")
    expect(versions_row(page, 3).locator("th")).to_have_text(re.compile(r"^3\s+current$"))
    # The read-only canvas draws version 1's graph again.
    expect(page.locator('[data-flow-graph] .react-flow__node[data-id="check"]')).to_be_visible()
    assert_all_in_view(page.locator("[data-flow-graph]"))

    body = api_get(page, f"/api/workflows/{workflow.pk}/")
    assert body["version"] == 3
    assert graph_shape(body["graph"]) == graph_shape(first_graph)
    versions = api_get(page, f"/api/workflows/{workflow.pk}/versions/")
    numbers = [version["number"] for version in versions["results"]]
    assert sorted(numbers) == [1, 2, 3]


def test_create_a_project_add_a_member_and_draw_a_workflow_in_it(
    page: Page, alice: User, make_user: Callable[..., User]
) -> None:
    bob = make_user("bob")
    page.goto("/projects/")
    page.get_by_label("Name").fill("Support desk")
    page.get_by_role("button", name="Create the project").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Support desk")
    project = Project.objects.get(name="Support desk")
    expect(page).to_have_url(re.compile(rf"/projects/{project.pk}/$"))

    # Add bob as a viewer through the members form; htmx redraws the members section in place.
    page.evaluate("window.__notReloaded = true")
    add = page.locator("#member-add")
    add.get_by_label("Add a member").fill("bob")
    add.get_by_label("as").select_option("viewer")
    add.get_by_role("button", name="Add").click()
    members = page.locator("#member-table tbody tr")
    expect(members).to_have_count(2)
    bob_row = members.filter(has_text="bob")
    expect(bob_row.get_by_label("Role of bob")).to_have_value("viewer")
    assert page.evaluate("window.__notReloaded === true")
    assert Membership.objects.get(project=project, user=bob).role == Role.VIEWER

    # "New workflow here" opens the editor for this project; its starter graph and a name are enough.
    page.get_by_role("link", name="New workflow here").click()
    expect(page).to_have_url(re.compile(rf"/workflows/new/\?project={project.pk}$"))
    expect(canvas_node(page, "end")).to_be_visible()
    page.get_by_label("Name").fill("Triage tickets")
    page.get_by_role("button", name="Create").click()
    expect(page).to_have_url(re.compile(r"/workflows/\d+/edit/$"))
    workflow = Workflow.objects.get(name="Triage tickets")
    body = api_get(page, f"/api/workflows/{workflow.pk}/")
    assert body["project"] == project.pk

    # The project's page lists it.
    page.goto(f"/projects/{project.pk}/")
    expect(page.locator("#project-workflows")).to_contain_text("Triage tickets")


def test_a_viewer_sees_the_workflow_without_controls_that_would_be_refused(
    open_page: Callable[..., Page], alice: User, make_user: Callable[..., User]
) -> None:
    bob = make_user("bob")
    project = project_create(name="Support desk", by=alice)
    member_set(project=project, user=bob, role=Role.VIEWER, by=alice)
    workflow = workflow_create(owner=alice, name="Triage tickets", graph=three_steps(), project=project)
    workflow_update(workflow=workflow, description="Two versions, so version 1 could be restored", by=alice)

    page = open_page(bob)
    page.goto(f"/workflows/{workflow.pk}/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Triage tickets v2")
    # The page has loaded its htmx sections before anything is said to be absent.
    expect(versions_row(page, 1)).to_be_visible()
    expect(page.locator('[data-flow-graph] .react-flow__node[data-id="ask"]')).to_be_visible()

    expect(page.locator(f'a[href="/workflows/{workflow.pk}/edit/"]')).to_have_count(0)
    expect(page.locator(f'a[href="/workflows/{workflow.pk}/delete/"]')).to_have_count(0)
    expect(page.locator("#workflow-versions").get_by_role("button", name=re.compile("^Restore"))).to_have_count(0)
    expect(page.locator("#run-form-json")).to_have_count(0)
    expect(page.locator("#run-form-fields")).to_have_count(0)
    expect(page.get_by_role("button", name="Run", exact=True)).to_have_count(0)
