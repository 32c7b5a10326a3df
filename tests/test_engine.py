"""The execution engine on the real stack: PostgreSQL, Redis and a Celery worker started by the suite."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User

from approvals.models import ApprovalRequest
from approvals.services import ApprovalAlreadyDecided, approval_decide
from runs.models import LedgerEntry, NodeRun, RunEvent
from runs.services import RunFinishedError, RunInputError, run_cancel
from runs.tasks import execute_node
from tests.conftest import WorkerProcess
from tests.engine_helpers import graph_of, ledger, start, wait_for
from tests.factories import make_workflow
from workflows.services import workflow_update

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def worker(celery_worker: WorkerProcess) -> WorkerProcess:
    return celery_worker


def chain(*middle: tuple[str, str, dict[str, Any]]) -> dict[str, Any]:
    nodes: list[tuple[str, str, dict[str, Any]]] = [("start", "start", {}), *middle, ("end", "end", {})]
    return graph_of(nodes, [(nodes[i][0], nodes[i + 1][0]) for i in range(len(nodes) - 1)])


def test_a_chain_runs_every_node_once_and_records_the_ledger_in_order(alice: User) -> None:
    run = wait_for(start(alice, chain(("a", "fork", {}), ("b", "fork", {})), {"x": 1}))
    assert run.status == "succeeded", run.error
    assert run.output == {"x": 1}
    assert ledger(run) == [("start", "succeeded"), ("a", "succeeded"), ("b", "succeeded"), ("end", "succeeded")]
    entry = LedgerEntry.objects.get(run=run, node_id="a")
    assert entry.input == {"x": 1} and entry.output == {"x": 1}
    assert entry.duration_ms is not None and entry.started_at is not None and entry.finished_at is not None
    assert entry.started_at <= entry.finished_at
    events = list(RunEvent.objects.filter(run=run).order_by("seq").values_list("seq", "type", "node_id"))
    assert [seq for seq, _, _ in events] == list(range(1, len(events) + 1))
    assert events[0][1] == "run_started" and events[-1][1] == "run_succeeded"
    assert [(t, n) for _, t, n in events if t.startswith("node_")] == [
        (t, n) for n in ("start", "a", "b", "end") for t in ("node_started", "node_completed")
    ]
    assert run.started_at and run.finished_at


OPERATOR_CASES = [
    ("==", "70", 70, "true"),
    ("=", "abc", "abc", "true"),
    ("==", "a", "b", "false"),
    ("!=", "a", "b", "true"),
    (">", "100", "9", "true"),
    ("<", 3, "2.5", "false"),
    (">=", 5, 5, "true"),
    ("<=", 6, 5, "false"),
    ("contains", "hello world", "world", "true"),
    ("not_contains", "hello", "x", "true"),
    ("is_empty", "", None, "true"),
    ("is_not_empty", "", None, "false"),
    ("==", "true", True, "true"),
]


@pytest.mark.parametrize(("operator", "left", "right", "taken"), OPERATOR_CASES)
def test_if_else_routes_on_every_operator(alice: User, operator: str, left: object, right: object, taken: str) -> None:
    data = {"left": "{{input.left}}", "operator": operator}
    if right is not None:
        data["right"] = "{{input.right}}"
    graph = graph_of(
        [
            ("start", "start", {}),
            ("check", "if_else", data),
            ("yes", "end", {"output": {"route": "yes"}}),
            ("no", "end", {"output": {"route": "no"}}),
        ],
        [("start", "check"), ("check", "yes", "true"), ("check", "no", "false")],
    )
    run = wait_for(start(alice, graph, {"left": left, "right": right}))
    assert run.status == "succeeded", run.error
    assert run.output == {"route": "yes" if taken == "true" else "no"}
    check = NodeRun.objects.get(run=run, node_id="check")
    assert check.handle == taken
    assert (
        check.result is not None
        and check.result["condition"] is (taken == "true")
        and check.result["operator"] == operator
    )
    skipped = "no" if taken == "true" else "yes"
    assert NodeRun.objects.get(run=run, node_id=skipped).status == "skipped"
    assert not LedgerEntry.objects.filter(run=run, node_id=skipped).exists()


FORK_JOIN = graph_of(
    [
        ("start", "start", {}),
        ("fork", "fork", {}),
        ("a", "fork", {}),
        ("b", "fork", {}),
        ("c", "fork", {}),
        ("join", "join", {}),
        ("end", "end", {}),
    ],
    [
        ("start", "fork"),
        ("fork", "a"),
        ("fork", "b"),
        ("fork", "c"),
        ("a", "join"),
        ("b", "join"),
        ("c", "join"),
        ("join", "end"),
    ],
)


def test_join_fires_exactly_once_when_branches_finish_together_50_times(alice: User) -> None:
    workflow = make_workflow(alice, graph=FORK_JOIN)
    from runs.services import run_start

    runs = [run_start(workflow=workflow, input={"n": i}, user=alice) for i in range(50)]
    for run in runs:
        wait_for(run, timeout=120)
        assert run.status == "succeeded", run.error
        entries = ledger(run)
        assert entries.count(("join", "succeeded")) == 1, entries
        assert entries.count(("end", "succeeded")) == 1, entries
        assert len(entries) == 7
        join = LedgerEntry.objects.get(run=run, node_id="join")
        assert join.output is not None and sorted(join.output["branches"]) == ["a", "b", "c"]
        assert RunEvent.objects.filter(run=run, type="run_succeeded").count() == 1


def approval_graph() -> dict[str, Any]:
    return graph_of(
        [
            ("start", "start", {}),
            ("fork", "fork", {}),
            ("ask", "user_approval", {"message": "Ship order {{input.order}}?"}),
            ("other", "fork", {}),
            ("join", "join", {}),
            ("end", "end", {}),
        ],
        [
            ("start", "fork"),
            ("fork", "ask"),
            ("fork", "other"),
            # Both decisions go on to the join: a rejection ending the run at an end of its own while the other
            # branch reaches the join's end would give the run two ends (refused when the graph is saved).
            ("ask", "join", "approved"),
            ("ask", "join", "rejected"),
            ("other", "join"),
            ("join", "end"),
        ],
    )


def test_a_branch_waits_for_approval_while_the_other_finishes_then_the_run_resumes_once(alice: User) -> None:
    run = wait_for(start(alice, approval_graph(), {"order": 42}), "waiting")
    assert NodeRun.objects.get(run=run, node_id="other").status == "succeeded"
    assert NodeRun.objects.get(run=run, node_id="join").status == "pending"
    request = ApprovalRequest.objects.get(run=run, node_id="ask")
    assert request.message == "Ship order 42?" and request.status == "pending"
    assert RunEvent.objects.filter(run=run, type="approval_needed", data__approval_id=request.pk).exists()

    approval_decide(approval_id=request.pk, user=alice, decision="approved", comment="fine")
    run = wait_for(run)
    assert run.status == "succeeded", run.error
    join = LedgerEntry.objects.get(run=run, node_id="join")
    assert join.input is not None
    assert join.input["approval"]["decision"] == "approved" and join.input["approval"]["decided_by"] == "alice"
    assert ledger(run).count(("end", "succeeded")) == 1
    assert ("ask", "waiting") in ledger(run) and ("ask", "succeeded") in ledger(run)
    with pytest.raises(ApprovalAlreadyDecided):
        approval_decide(approval_id=request.pk, user=alice, decision="rejected")


def test_rejection_routes_on_the_rejected_handle_and_a_later_approval_waits_for_its_own_decision(alice: User) -> None:
    graph = graph_of(
        [
            ("start", "start", {}),
            ("first", "user_approval", {"message": "one"}),
            ("second", "user_approval", {"message": "two"}),
            ("ok", "end", {}),
            ("stop", "end", {}),
            ("stop2", "end", {}),
        ],
        [
            ("start", "first"),
            ("first", "second", "rejected"),
            ("first", "stop", "approved"),
            ("second", "ok", "approved"),
            ("second", "stop2", "rejected"),
        ],
    )
    run = wait_for(start(alice, graph), "waiting")
    approval_decide(
        approval_id=ApprovalRequest.objects.get(run=run, node_id="first").pk, user=alice, decision="rejected"
    )
    # The first decision is in the data, but the second node still asks its own question.
    run = wait_for(run, "waiting")
    second = ApprovalRequest.objects.get(run=run, node_id="second")
    assert second.status == "pending" and "approval" not in second.data
    approval_decide(approval_id=second.pk, user=alice, decision="approved")
    run = wait_for(run)
    assert run.status == "succeeded" and run.output is not None
    assert run.output["approval"]["decision"] == "approved"
    assert NodeRun.objects.get(run=run, node_id="stop").status == "skipped"


def test_a_failing_node_fails_the_run_with_a_message_naming_it(alice: User) -> None:
    run = wait_for(start(alice, chain(("boom", "test_fail", {"message": "no stock"}), ("after", "fork", {}))))
    assert run.status == "failed"
    assert run.error == 'node "boom" (test_fail) failed: no stock'
    assert ledger(run) == [("start", "succeeded"), ("boom", "failed")]
    assert not NodeRun.objects.filter(run=run, node_id="after").exists()
    assert RunEvent.objects.filter(run=run, type="run_failed").count() == 1


def test_a_handler_bug_fails_the_node_with_its_traceback(alice: User) -> None:
    run = wait_for(start(alice, chain(("divide", "test_crash", {"divisor": 0}))))
    assert run.status == "failed" and "ZeroDivisionError" in run.error
    entry = LedgerEntry.objects.get(run=run, node_id="divide")
    assert "Traceback" in entry.traceback and "ZeroDivisionError" in entry.traceback


def test_a_missing_template_path_fails_the_node_naming_the_path(alice: User) -> None:
    graph = chain(("check", "if_else", {"left": "{{input.customer.tier}}", "operator": "==", "right": "gold"}))
    graph["edges"][1]["sourceHandle"] = "true"
    graph["nodes"].append({"id": "other", "type": "end", "data": {}})
    graph["edges"].append({"id": "ef", "source": "check", "target": "other", "sourceHandle": "false"})
    run = wait_for(start(alice, graph, {"customer": {"name": "Ann"}}))
    assert run.status == "failed"
    assert 'node "check"' in run.error and "input.customer.tier" in run.error


def test_a_transient_failure_is_retried_then_succeeds(alice: User) -> None:
    run = wait_for(start(alice, chain(("flaky", "test_flaky", {"fail_times": 2, "retries": 3}))))
    assert run.status == "succeeded", run.error
    assert ledger(run) == [
        ("start", "succeeded"),
        ("flaky", "retrying"),
        ("flaky", "retrying"),
        ("flaky", "succeeded"),
        ("end", "succeeded"),
    ]
    assert run.output is not None and run.output["flaky_attempts"] == 3
    assert list(LedgerEntry.objects.filter(run=run, node_id="flaky").values_list("attempt", flat=True)) == [1, 2, 3]


def test_retries_run_out_and_the_node_fails(alice: User) -> None:
    run = wait_for(start(alice, chain(("flaky", "test_flaky", {"fail_times": 5, "retries": 1}))))
    assert run.status == "failed" and "flaky failure on attempt 2" in run.error
    assert ledger(run)[1:] == [("flaky", "retrying"), ("flaky", "failed")]


def test_a_node_over_its_timeout_fails_with_a_clear_message(alice: User) -> None:
    run = wait_for(start(alice, chain(("slow", "test_sleep", {"seconds": 5, "timeout_seconds": 0.5, "retries": 0}))))
    assert run.status == "failed"
    assert run.error == 'node "slow" (test_sleep) failed: timed out after 0.5 s'


def test_sigkill_of_the_worker_process_mid_node_reruns_the_node_and_its_successor_once(
    alice: User, tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    run = start(alice, chain(("slow", "test_sleep", {"seconds": 1.5, "marker": str(marker)}), ("after", "fork", {})))
    pid = wait_for_marker(marker)
    os.kill(pid, signal.SIGKILL)
    run = wait_for(run, timeout=60)
    assert run.status == "succeeded", run.error
    attempts = [line.split() for line in marker.read_text().splitlines()]
    assert [attempt for _, attempt in attempts] == ["1", "2"]
    assert int(attempts[1][0]) != pid
    assert run.output is not None and run.output["slow_attempt"] == 2
    assert ledger(run) == [
        ("start", "succeeded"),
        ("slow", "retrying"),  # the lost attempt, recorded when its message came back
        ("slow", "succeeded"),
        ("after", "succeeded"),
        ("end", "succeeded"),
    ]


def wait_for_marker(marker: Path, lines: int = 1, timeout: float = 20) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if marker.exists() and len(marker.read_text().splitlines()) >= lines:
            return int(marker.read_text().splitlines()[lines - 1].split()[0])
        time.sleep(0.02)
    raise AssertionError("the node never started")


def test_cancel_ends_the_executing_node_and_stops_new_nodes_from_starting(alice: User, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    run = start(alice, chain(("slow", "test_sleep", {"seconds": 1, "marker": str(marker)}), ("after", "fork", {})))
    wait_for_marker(marker)
    run = run_cancel(run=run, user=alice)
    assert run.status == "cancelled"
    with pytest.raises(RunFinishedError):
        run_cancel(run=run)
    time.sleep(1.5)  # the sleeping node finishes...
    run.refresh_from_db()
    assert run.status == "cancelled"
    assert ("slow", "cancelled") in ledger(run) and ("slow", "succeeded") not in ledger(run)  # ...ignored
    assert not NodeRun.objects.filter(run=run, node_id="after").exists()  # ...and nothing starts after it
    assert RunEvent.objects.filter(run=run, type="run_cancelled").count() == 1


def test_a_run_executes_the_snapshot_it_started_with(alice: User, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    workflow = make_workflow(alice, graph=chain(("slow", "test_sleep", {"seconds": 0.5, "marker": str(marker)})))
    from runs.services import run_start

    run = run_start(workflow=workflow, input={}, user=alice)
    wait_for_marker(marker)
    workflow_update(workflow=workflow, graph=chain(("boom", "test_fail", {})))
    run = wait_for(run)
    assert run.status == "succeeded" and run.workflow_version == 1
    assert [node for node, _ in ledger(run)] == ["start", "slow", "end"]


def test_a_duplicated_task_for_a_finished_node_changes_nothing(alice: User) -> None:
    run = wait_for(start(alice, chain(("a", "fork", {}))))
    before = ledger(run)
    node_run = NodeRun.objects.get(run=run, node_id="a")
    execute_node.apply_async((run.pk, node_run.pk))  # a duplicate with a new id
    execute_node.apply_async((run.pk, node_run.pk), task_id=node_run.task_id)  # a redelivery of the original
    time.sleep(1)
    assert ledger(run) == before
    node_run.refresh_from_db()
    assert (node_run.status, node_run.attempts) == ("succeeded", 1)


def test_invalid_input_is_refused_before_anything_is_stored(alice: User) -> None:
    graph = chain()
    graph["nodes"][0]["data"] = {
        "input_schema": {"type": "object", "required": ["ticket"], "properties": {"ticket": {"type": "object"}}}
    }
    with pytest.raises(RunInputError) as error:
        start(alice, graph, {"ticket": "not an object"})
    assert "input.ticket: 'not an object' is not of type 'object'" in str(error.value)
    with pytest.raises(RunInputError, match="'ticket' is a required property"):
        start(alice, graph, {})
    from runs.models import Run

    assert not Run.objects.exists()


def test_a_lost_message_is_dispatched_again_by_the_recovery_sweep(alice: User, monkeypatch: pytest.MonkeyPatch) -> None:
    from runs import services
    from runs.services import dispatch

    # The start node's message is lost (as when Redis restarts: it keeps nothing on disk).
    monkeypatch.setattr(dispatch, "_dispatch", lambda run_id, jobs: None)
    run = start(alice, chain(("a", "fork", {})))
    monkeypatch.undo()
    time.sleep(0.3)
    run.refresh_from_db()
    assert run.status == "queued"
    assert services.node_runs_recover(queued_for=60, running_for=60) == 0  # not stale yet
    assert services.node_runs_recover(queued_for=0, running_for=60) == 1
    run = wait_for(run)
    assert run.status == "succeeded"
    assert [node for node, _ in ledger(run)] == ["start", "a", "end"]


def test_a_node_left_running_by_a_dead_worker_is_run_again_once(alice: User, monkeypatch: pytest.MonkeyPatch) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from runs import services
    from runs.services import dispatch

    monkeypatch.setattr(dispatch, "_dispatch", lambda run_id, jobs: None)
    run = start(alice, chain(("a", "fork", {})))
    monkeypatch.undo()
    # A worker claimed the start node and died; its message is gone for good.
    claimed = timezone.now() - timedelta(seconds=100)
    NodeRun.objects.filter(run=run, node_id="start").update(
        status="running", attempts=1, task_id="dead-task", started_at=claimed
    )
    # Within the node's time limit (330 s) plus grace, it may still be running somewhere: left alone.
    assert services.node_runs_recover(queued_for=600, running_for=60) == 0
    NodeRun.objects.filter(run=run, node_id="start").update(started_at=claimed - timedelta(seconds=400))
    assert services.node_runs_recover(queued_for=600, running_for=60) == 1
    run = wait_for(run)
    assert run.status == "succeeded"
    node = NodeRun.objects.get(run=run, node_id="start")
    assert node.attempts == 2 and node.task_id != "dead-task"
    recorded = [("start", "retrying"), ("start", "succeeded"), ("a", "succeeded"), ("end", "succeeded")]
    assert ledger(run) == recorded  # the lost attempt counts, and says so
    # A late redelivery of the dead task's message changes nothing.
    execute_node.apply_async((run.pk, node.pk), task_id="dead-task")
    time.sleep(0.5)
    assert ledger(run) == recorded


def test_a_late_websocket_client_receives_every_event_of_a_real_run_in_order(alice: User) -> None:
    from asgiref.sync import async_to_sync
    from channels.testing import WebsocketCommunicator
    from rest_framework.authtoken.models import Token

    from flownova.asgi import application

    run = wait_for(start(alice, FORK_JOIN))
    stored = list(RunEvent.objects.filter(run=run).order_by("seq").values_list("seq", "type"))
    token = Token.objects.create(user=alice).key

    async def read_all() -> list[tuple[int, str]]:
        communicator = WebsocketCommunicator(application, f"/ws/runs/{run.pk}/?token={token}")
        assert (await communicator.connect())[0]
        received = []
        while not await communicator.receive_nothing(timeout=0.3):
            message = await communicator.receive_json_from()
            received.append((message["seq"], message["type"]))
        await communicator.disconnect()
        return received

    received = async_to_sync(read_all)()
    assert received == stored
    assert [seq for seq, _ in received] == list(range(1, len(stored) + 1))
    assert received[-1][1] == "run_succeeded"
