"""The `subworkflow` node on the real stack (PostgreSQL, Redis, the suite's Celery worker): a saved workflow runs
as a child run of the node's run, pinned or current, and its output comes back as `result`."""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.contrib.auth.models import User

from runs.models import NodeRun, Run
from runs.services import run_cancel, run_start
from tests.conftest import WorkerProcess
from tests.engine_helpers import graph_of, ledger, wait_for
from tests.factories import linear_graph, make_workflow
from workflows.models import Workflow
from workflows.services import workflow_soft_delete, workflow_update

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def worker(celery_worker: WorkerProcess) -> WorkerProcess:
    return celery_worker


NUMBER_SCHEMA = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}


def child_graph(tag: str, *, output: dict[str, Any] | None = None) -> dict[str, Any]:
    """start (input: {n: integer}) -> end giving {got, tag}."""
    return graph_of(
        [
            ("start", "start", {"input_schema": NUMBER_SCHEMA}),
            ("end", "end", {"output": output or {"got": "{{input.n}}", "tag": tag}}),
        ],
        [("start", "end")],
    )


def calling(workflow: Workflow, **data: Any) -> dict[str, Any]:
    """start -> call (subworkflow of `workflow`, input {n: input.x}) -> end."""
    return linear_graph(("call", "subworkflow", {"workflow": workflow.pk, "input": {"n": "{{input.x}}"}, **data}))


def run_of(owner: User, workflow: Workflow, run_input: dict[str, Any]) -> Run:
    return wait_for(run_start(workflow=workflow, input=run_input, user=owner))


def test_a_subworkflow_runs_the_saved_workflow_as_a_child_and_adds_its_output(alice: User) -> None:
    child_workflow = make_workflow(alice, name="Doubler", graph=child_graph("v1"))
    parent = make_workflow(alice, name="Parent", graph=calling(child_workflow))
    run = run_of(alice, parent, {"x": 4})
    assert run.status == "succeeded", run.error
    child = Run.objects.get(parent=run)
    assert run.output == {"x": 4, "result": {"got": 4, "tag": "v1"}, "child_run": child.pk}
    assert (child.workflow_id, child.workflow_name, child.workflow_version) == (child_workflow.pk, "Doubler", 1)
    assert (child.parent_node_id, child.trigger, child.input, child.status) == (
        "call",
        {"type": "child"},
        {"n": 4},
        "succeeded",
    )
    assert child.graph == child_workflow.graph_document()
    assert NodeRun.objects.get(run=run, node_id="call").result == {
        "result": {"got": 4, "tag": "v1"},
        "child_run": child.pk,
    }
    assert ledger(run) == [("start", "succeeded"), ("call", "waiting"), ("call", "succeeded"), ("end", "succeeded")]


def test_pinned_runs_the_version_saved_with_the_parent_and_current_the_one_saved_now(alice: User) -> None:
    child_workflow = make_workflow(alice, name="Tagger", graph=child_graph("v1"))
    pinned = make_workflow(alice, name="Pinned", graph=calling(child_workflow, version="pinned"))
    current = make_workflow(alice, name="Current", graph=calling(child_workflow, version="current"))
    assert pinned.graph_document()["nodes"][1]["data"] == {
        "workflow": child_workflow.pk,
        "version": "pinned",
        "input": {"n": "{{input.x}}"},
        "pinned_version": 1,
    }
    workflow_update(workflow=child_workflow, graph=child_graph("v2"))

    old = run_of(alice, pinned, {"x": 1})
    new = run_of(alice, current, {"x": 1})
    assert old.status == new.status == "succeeded", (old.error, new.error)
    assert (old.output or {})["result"] == {"got": 1, "tag": "v1"}
    assert (new.output or {})["result"] == {"got": 1, "tag": "v2"}
    assert Run.objects.get(parent=old).workflow_version == 1
    assert Run.objects.get(parent=new).workflow_version == 2


def test_a_child_that_fails_fails_the_node_and_the_run_with_its_error(alice: User) -> None:
    child_workflow = make_workflow(alice, name="Broken", graph=child_graph("", output={"x": "{{input.missing}}"}))
    parent = make_workflow(alice, graph=calling(child_workflow))
    run = run_of(alice, parent, {"x": 2})
    child = Run.objects.get(parent=run)
    assert (run.status, child.status) == ("failed", "failed")
    assert f'node "call" (subworkflow) failed: workflow {child_workflow.pk} (run {child.pk}) failed' in run.error
    assert "input.missing" in run.error


def test_an_input_the_child_start_node_refuses_fails_the_node_naming_the_errors(alice: User) -> None:
    child_workflow = make_workflow(alice, graph=child_graph("v1"))
    parent = make_workflow(alice, graph=calling(child_workflow))
    run = run_of(alice, parent, {"x": "four"})
    assert run.status == "failed"
    assert f"the input does not fit the start node's input_schema of workflow {child_workflow.pk}" in run.error
    assert "input.n: 'four' is not of type 'integer'" in run.error
    assert not Run.objects.filter(parent=run).exists()


def test_a_workflow_deleted_since_the_save_fails_the_node_naming_it(alice: User) -> None:
    child_workflow = make_workflow(alice, graph=child_graph("v1"))
    parent = make_workflow(alice, graph=calling(child_workflow))
    workflow_soft_delete(workflow=child_workflow)
    run = run_of(alice, parent, {"x": 1})
    assert run.status == "failed"
    assert f"workflow {child_workflow.pk} was deleted, or the run's owner may not run it" in run.error


def test_child_runs_nest_up_to_the_depth_limit_and_no_deeper(alice: User) -> None:
    """FLOWNOVA_SUBWORKFLOW_MAX_DEPTH is 5: a run five parents deep cannot start a sixth level."""
    chain = [make_workflow(alice, name="w0", graph=child_graph("leaf"))]
    chain.append(make_workflow(alice, name="w1", graph=calling(chain[0])))  # {x} -> the leaf's {n}
    for level in range(2, 7):
        chain.append(make_workflow(alice, name=f"w{level}", graph=calling(chain[-1], input={"x": "{{input.x}}"})))

    deepest_allowed = run_of(alice, chain[5], {"x": 3})
    assert deepest_allowed.status == "succeeded", deepest_allowed.error
    result: Any = deepest_allowed.output
    for _ in range(5):
        result = result["result"]
    assert result == {"got": 3, "tag": "leaf"}

    too_deep = run_of(alice, chain[6], {"x": 3})
    assert too_deep.status == "failed"
    assert "FLOWNOVA_SUBWORKFLOW_MAX_DEPTH = 5" in too_deep.error
    assert "is already 5 child run(s) deep" in too_deep.error
    assert Run.objects.filter(workflow=chain[0]).count() == 1  # the leaf ran for the allowed chain only


def test_cancelling_the_parent_cancels_its_child_run(alice: User) -> None:
    waits = graph_of(
        [("start", "start", {}), ("ask", "user_approval", {}), ("ok", "end", {}), ("no", "end", {})],
        [("start", "ask"), ("ask", "ok", "approved"), ("ask", "no", "rejected")],
    )
    child_workflow = make_workflow(alice, name="Waits", graph=waits)
    parent = make_workflow(alice, graph=linear_graph(("call", "subworkflow", {"workflow": child_workflow.pk})))
    run = run_start(workflow=parent, input={}, user=alice)
    deadline = time.monotonic() + 30
    while not Run.objects.filter(parent=run).exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    child = wait_for(Run.objects.get(parent=run), "waiting")
    assert wait_for(run, "running").status == "running"  # waiting for its child, not for a person
    run_cancel(run=run, user=alice)
    assert wait_for(child, "cancelled").status == "cancelled"
    run.refresh_from_db()
    assert run.status == "cancelled"
    assert NodeRun.objects.get(run=run, node_id="call").status == "cancelled"
