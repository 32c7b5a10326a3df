"""The `map` and `loop` node types on the real stack (PostgreSQL, Redis, the suite's Celery worker): a saved
workflow runs as child runs of the node, once per item (some at a time) or again and again until a condition
holds, and the node completes with what they gave."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import pytest
from django.contrib.auth.models import User

from runs.models import ChildItem, LedgerEntry, NodeRun, Run, RunEvent
from runs.services import run_cancel, run_resume, run_start
from tests.conftest import WorkerProcess
from tests.engine_helpers import graph_of, ledger, wait_for
from tests.factories import linear_graph, make_workflow
from workflows.models import Workflow

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def worker(celery_worker: WorkerProcess) -> WorkerProcess:
    return celery_worker


NUMBER_SCHEMA = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}


def echo_graph() -> dict[str, Any]:
    """start (input: {n: integer}) -> end giving {got: n}."""
    return graph_of(
        [("start", "start", {"input_schema": NUMBER_SCHEMA}), ("end", "end", {"output": {"got": "{{input.n}}"}})],
        [("start", "end")],
    )


def deep_graph() -> dict[str, Any]:
    """start -> end giving {v: input.value.deep}: fails when `value` is not an object."""
    return graph_of(
        [("start", "start", {}), ("end", "end", {"output": {"v": "{{input.value.deep}}"}})], [("start", "end")]
    )


def counter_graph() -> dict[str, Any]:
    """start -> add (n + 1; fails with "boom" when n is `boom_at`) -> end giving {n}."""
    expression = '$exists(input.boom_at) and input.n = input.boom_at ? $error("boom") : {"n": input.n + 1}'
    return graph_of(
        [
            ("start", "start", {}),
            ("add", "transform", {"expression": expression}),
            ("end", "end", {}),
        ],
        [("start", "add"), ("add", "end")],
    )


def mapping(workflow: Workflow, **data: Any) -> dict[str, Any]:
    """start -> each (map of `workflow` over input.items, input {n: item}) -> end."""
    node = {"items": "{{input.items}}", "workflow": workflow.pk, "input": {"n": "{{item}}"}, **data}
    return linear_graph(("each", "map", node))


def looping(workflow: Workflow, until: dict[str, Any], **data: Any) -> dict[str, Any]:
    """start -> again (loop of `workflow` from {n: input.n}) -> done | exhausted ends."""
    node = {"workflow": workflow.pk, "input": {"n": "{{input.n}}"}, "until": until, **data}
    return graph_of(
        [("start", "start", {}), ("again", "loop", node), ("done", "end", {}), ("exhausted", "end", {})],
        [("start", "again"), ("again", "done", "done"), ("again", "exhausted", "exhausted")],
    )


def run_of(owner: User, workflow: Workflow, run_input: dict[str, Any], timeout: float = 60.0) -> Run:
    return wait_for(run_start(workflow=workflow, input=run_input, user=owner), timeout=timeout)


def most_at_once(children: list[tuple[datetime, datetime]]) -> int:
    """The most child runs alive at one time, from their creation and end times."""
    moments = sorted([(created, 1) for created, _ in children] + [(ended, -1) for _, ended in children])
    alive = peak = 0
    for _, change in moments:
        alive += change
        peak = max(peak, alive)
    return peak


# --- map ---------------------------------------------------------------------------------------------------------


def test_a_map_over_200_items_keeps_their_order_and_never_runs_more_than_its_concurrency(alice: User) -> None:
    child_workflow = make_workflow(alice, name="Echo", graph=echo_graph())
    parent = make_workflow(alice, name="Mapper", graph=mapping(child_workflow, concurrency=10))
    run = run_start(workflow=parent, input={"items": list(range(200))}, user=alice)
    sampled = 0
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        active = Run.objects.filter(parent=run, status__in=("queued", "running", "waiting")).count()
        sampled = max(sampled, active)
        run.refresh_from_db()
        if run.status in ("succeeded", "failed", "cancelled"):
            break
        time.sleep(0.005)
    assert run.status == "succeeded", run.error
    assert 0 < sampled <= 10
    children = list(Run.objects.filter(parent=run).values_list("created_at", "finished_at"))
    assert len(children) == 200
    assert most_at_once([(created, ended) for created, ended in children if ended is not None]) <= 10
    output: Any = run.output
    assert output["results"] == [{"got": index} for index in range(200)]
    assert output["failed"] == 0
    # One ledger entry when the map starts waiting, one when it ends; the children keep their own.
    assert ledger(run) == [("start", "succeeded"), ("each", "waiting"), ("each", "succeeded"), ("end", "succeeded")]
    progress = list(
        RunEvent.objects.filter(run=run, type="map_progress").order_by("seq").values_list("data", flat=True)
    )
    assert progress[0] == {"done": 0, "total": 200, "failed": 0}
    assert progress[-1] == {"done": 200, "total": 200, "failed": 0}
    assert len(progress) <= 102
    assert RunEvent.objects.filter(run=run, type="child_run_started").count() == 200


def test_a_failed_item_with_on_error_continue_gives_its_error_and_counts_it(alice: User) -> None:
    child_workflow = make_workflow(alice, name="Deep", graph=deep_graph())
    parent = make_workflow(
        alice, graph=mapping(child_workflow, input={"value": "{{item}}"}, on_error="continue", concurrency=1)
    )
    run = run_of(alice, parent, {"items": [{"deep": 1}, "flat", {"deep": 3}]})
    assert run.status == "succeeded", run.error
    output: Any = run.output
    assert output["failed"] == 1
    assert output["results"][0] == {"v": 1} and output["results"][2] == {"v": 3}
    failed_child = Run.objects.get(parent=run, input={"value": "flat"})
    assert output["results"][1] == {
        "error": f"workflow {child_workflow.pk} (run {failed_child.pk}) failed: {failed_child.error}"
    }
    last = RunEvent.objects.filter(run=run, type="map_progress").order_by("seq").last()
    assert last is not None and last.data == {"done": 3, "total": 3, "failed": 1}


def test_a_failed_item_with_on_error_fail_fails_the_node_and_starts_nothing_more(alice: User) -> None:
    child_workflow = make_workflow(alice, name="Deep", graph=deep_graph())
    parent = make_workflow(alice, graph=mapping(child_workflow, input={"value": "{{item}}"}, concurrency=1))
    run = run_of(alice, parent, {"items": [{"deep": 1}, "flat", {"deep": 3}, {"deep": 4}]})
    assert run.status == "failed"
    assert 'node "each" (map) failed: item 1 failed: workflow' in run.error
    assert "input.value.deep" in run.error
    assert Run.objects.filter(parent=run).count() == 2  # items 2 and 3 never started
    statuses = dict(ChildItem.objects.filter(node_run__run=run).values_list("index", "status"))
    assert statuses == {0: "succeeded", 1: "failed", 2: "cancelled", 3: "cancelled"}


def test_a_failed_item_takes_the_maps_error_path_when_it_has_one(alice: User) -> None:
    child_workflow = make_workflow(alice, name="Deep", graph=deep_graph())
    node = {"items": "{{input.items}}", "workflow": child_workflow.pk, "input": {"value": "{{item}}"}}
    graph = graph_of(
        [("start", "start", {}), ("each", "map", node), ("ok", "end", {}), ("oops", "end", {})],
        [("start", "each"), ("each", "ok"), ("each", "oops", "error")],
    )
    run = run_of(alice, make_workflow(alice, graph=graph), {"items": ["flat"]})
    assert run.status == "succeeded", run.error
    output: Any = run.output
    assert output["error"]["node"] == "each" and "item 0 failed" in output["error"]["message"]


def test_too_many_items_or_items_that_are_not_a_list_fail_the_node_saying_so(alice: User) -> None:
    child_workflow = make_workflow(alice, name="Echo", graph=echo_graph())
    parent = make_workflow(alice, graph=mapping(child_workflow))
    too_many = run_of(alice, parent, {"items": list(range(1001))})
    assert too_many.status == "failed"
    assert "items has 1001 entries, more than FLOWNOVA_MAP_MAX_ITEMS allows (1000)" in too_many.error
    not_a_list = run_of(alice, parent, {"items": "abc"})
    assert not_a_list.status == "failed"
    assert "items must be a list, not a string" in not_a_list.error
    an_object = run_of(alice, parent, {"items": {"a": 1}})
    assert "items must be a list, not an object" in an_object.error
    assert not Run.objects.filter(parent__in=[too_many, not_a_list, an_object]).exists()


def test_an_item_the_child_start_node_refuses_fails_the_node_naming_the_item(alice: User) -> None:
    child_workflow = make_workflow(alice, name="Echo", graph=echo_graph())
    run = run_of(alice, make_workflow(alice, graph=mapping(child_workflow)), {"items": [1, "two"]})
    assert run.status == "failed"
    assert "item 1: the input does not fit the start node's input_schema" in run.error
    assert not Run.objects.filter(parent=run).exists()


def test_an_empty_list_completes_at_once_with_no_results(alice: User) -> None:
    child_workflow = make_workflow(alice, name="Echo", graph=echo_graph())
    run = run_of(alice, make_workflow(alice, graph=mapping(child_workflow)), {"items": []})
    assert run.status == "succeeded", run.error
    assert run.output == {"items": [], "results": [], "failed": 0}
    assert not Run.objects.filter(parent=run).exists()


def test_cancelling_the_parent_cancels_the_maps_running_children_and_starts_no_more(alice: User) -> None:
    waits = graph_of(
        [("start", "start", {}), ("ask", "user_approval", {}), ("ok", "end", {}), ("no", "end", {})],
        [("start", "ask"), ("ask", "ok", "approved"), ("ask", "no", "rejected")],
    )
    child_workflow = make_workflow(alice, name="Waits", graph=waits)
    parent = make_workflow(alice, graph=mapping(child_workflow, input={}, concurrency=2))
    run = run_start(workflow=parent, input={"items": [1, 2, 3, 4, 5]}, user=alice)
    deadline = time.monotonic() + 30
    while Run.objects.filter(parent=run, status="waiting").count() < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    children = list(Run.objects.filter(parent=run))
    assert len(children) == 2
    run_cancel(run=run, user=alice)
    for child in children:
        assert wait_for(child, "cancelled").status == "cancelled"
    time.sleep(0.5)  # the children's reports come back to a node that has ended
    assert Run.objects.filter(parent=run).count() == 2
    assert NodeRun.objects.get(run=run, node_id="each").status == "cancelled"


def test_resuming_after_a_map_reuses_its_recorded_results(alice: User) -> None:
    child_workflow = make_workflow(alice, name="Echo", graph=echo_graph())
    graph = graph_of(
        [
            ("start", "start", {}),
            ("each", "map", {"items": "{{input.items}}", "workflow": child_workflow.pk, "input": {"n": "{{item}}"}}),
            ("count", "transform", {"expression": '{"count": $count(input.results)}'}),
            ("end", "end", {}),
        ],
        [("start", "each"), ("each", "count"), ("count", "end")],
    )
    source = run_of(alice, make_workflow(alice, graph=graph), {"items": [5, 6, 7]})
    assert source.status == "succeeded", source.error
    resumed = wait_for(run_resume(source=source, node_id="count", user=alice).run)
    assert resumed.status == "succeeded", resumed.error
    assert resumed.output == source.output
    output: Any = resumed.output
    assert output["results"] == [{"got": 5}, {"got": 6}, {"got": 7}] and output["count"] == 3
    assert not Run.objects.filter(parent=resumed).exists()
    reused = LedgerEntry.objects.get(run=resumed, node_id="each")
    assert reused.reused and reused.status == "succeeded"


# --- loop --------------------------------------------------------------------------------------------------------


def test_a_loop_whose_until_holds_at_iteration_3_routes_on_done(alice: User) -> None:
    counter = make_workflow(alice, name="Counter", graph=counter_graph())
    until = {"left": "{{result.n}}", "operator": ">=", "right": 3}
    run = run_of(alice, make_workflow(alice, graph=looping(counter, until)), {"n": 0})
    assert run.status == "succeeded", run.error
    output: Any = run.output
    assert output["result"] == {"n": 3} and output["iterations"] == 3
    assert NodeRun.objects.get(run=run, node_id="again").handle == "done"
    assert NodeRun.objects.get(run=run, node_id="exhausted").status == "skipped"
    inputs = list(Run.objects.filter(parent=run).order_by("pk").values_list("input", flat=True))
    assert inputs == [{"n": 0}, {"n": 1}, {"n": 2}]  # each iteration's input is the previous one's output
    assert ledger(run) == [
        ("start", "succeeded"),
        ("again", "waiting"),
        ("again", "succeeded"),
        ("done", "succeeded"),
    ]


def test_a_loop_that_reaches_max_iterations_routes_on_exhausted(alice: User) -> None:
    counter = make_workflow(alice, name="Counter", graph=counter_graph())
    until = {"left": "{{result.n}}", "operator": "==", "right": 100}
    run = run_of(alice, make_workflow(alice, graph=looping(counter, until, max_iterations=4)), {"n": 10})
    assert run.status == "succeeded", run.error
    output: Any = run.output
    assert output["result"] == {"n": 14} and output["iterations"] == 4
    assert NodeRun.objects.get(run=run, node_id="again").handle == "exhausted"
    assert Run.objects.filter(parent=run).count() == 4


def test_a_failed_iteration_fails_the_loop(alice: User) -> None:
    counter = make_workflow(alice, name="Counter", graph=counter_graph())
    until = {"left": "{{iteration}}", "operator": ">=", "right": 10}
    graph = looping(counter, until)
    graph["nodes"][1]["data"]["input"] = {"n": "{{input.n}}", "boom_at": 2}
    run = run_of(alice, make_workflow(alice, graph=graph), {"n": 0})
    assert run.status == "failed"
    assert 'node "again" (loop) failed: iteration 3 failed: workflow' in run.error
    assert "boom" in run.error
    assert Run.objects.filter(parent=run).count() == 3
