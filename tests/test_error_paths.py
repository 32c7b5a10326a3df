"""Error paths on the real worker: a node that fails for good takes its `error` edge when it has one. It is
recorded as failed (ledger, node state, a `node_failed` event with `routed`), its output is its input plus
`error` {node, type, message}, and the run goes on; without the edge the run fails as before."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from runs.history import run_trace, runs_compare
from runs.models import LedgerEntry, NodeRun, Run, RunEvent
from runs.services import node_runs_recover, run_resume
from tests.conftest import WorkerProcess
from tests.engine_helpers import graph_of, ledger, start, wait_for
from tests.llm_server import Answer, ScriptedLLM

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

NOT_AN_OBJECT = "42"  # a transform whose value is not an object fails for good, with no retry
HANDLED = {
    "output": {"why": "{{nodes.t.error.message}}", "who": "{{nodes.t.error.node}}", "kind": "{{input.error.type}}"}
}


@pytest.fixture(autouse=True)
def worker(celery_worker: WorkerProcess) -> WorkerProcess:
    return celery_worker


def failing(kind: str, data: dict[str, Any], *, error_edge: bool = True) -> dict[str, Any]:
    """start -> t -> ok; t -error-> fix (a transform reading the error) -> handled."""
    nodes: list[tuple[str, str, dict[str, Any]]] = [("start", "start", {}), ("t", kind, data), ("ok", "end", {})]
    edges: list[tuple[str, ...]] = [("start", "t"), ("t", "ok")]
    if error_edge:
        fix = {"expression": '{"fixed": nodes.t.error.message, "had": $keys(input)}'}
        nodes += [("fix", "transform", fix), ("handled", "end", HANDLED)]
        edges += [("t", "fix", "error"), ("fix", "handled")]
    return graph_of(nodes, edges)


def node_failed_events(run: Run, node_id: str) -> list[dict[str, Any]]:
    rows = RunEvent.objects.filter(run=run, type="node_failed", node_id=node_id).order_by("seq")
    return [row.data for row in rows]


def test_a_failing_transform_takes_its_error_path_is_recorded_failed_and_the_run_goes_on(alice: User) -> None:
    run = wait_for(start(alice, failing("transform", {"expression": NOT_AN_OBJECT}), {"order": 7}))
    assert run.status == "succeeded", run.error
    assert run.output is not None
    message = run.output["why"]
    assert message.startswith('transform "t": ') and "number" in message
    assert run.output["who"] == "t" and run.output["kind"] == "transform"
    assert ledger(run) == [("start", "succeeded"), ("t", "failed"), ("fix", "succeeded"), ("handled", "succeeded")]

    entry = LedgerEntry.objects.get(run=run, node_id="t")
    assert entry.error == message and entry.attempt == 1
    error = {"node": "t", "type": "transform", "message": message}
    assert entry.output == {"order": 7, "error": error}
    node = NodeRun.objects.get(run=run, node_id="t")
    assert (node.status, node.handle, node.error, node.result) == ("failed", "error", message, {"error": error})
    assert NodeRun.objects.get(run=run, node_id="ok").status == "skipped"
    fix = NodeRun.objects.get(run=run, node_id="fix")
    assert fix.input == {"order": 7, "error": error}
    assert fix.result is not None and fix.result["fixed"] == message and sorted(fix.result["had"]) == ["error", "order"]

    (event,) = node_failed_events(run, "t")
    assert event == {
        "error": message,
        "attempt": 1,
        "will_retry": False,
        "retry_in_seconds": None,
        "routed": "error",
    }
    kinds = list(RunEvent.objects.filter(run=run).order_by("seq").values_list("type", "node_id"))
    at = kinds.index(("node_failed", "t"))
    assert ("node_skipped", "ok") in kinds[at:] and kinds[-1] == ("run_succeeded", "")
    # The trace follows the error path; a failure that fails the run has no `routed`.
    assert run_trace(run)["path"] == ["start", "t", "fix", "handled"]


def test_without_an_error_edge_the_failure_fails_the_run_as_before(alice: User) -> None:
    run = wait_for(start(alice, failing("transform", {"expression": NOT_AN_OBJECT}, error_edge=False)))
    assert run.status == "failed"
    assert run.error.startswith('node "t" (transform) failed: transform "t": ')
    assert ledger(run) == [("start", "succeeded"), ("t", "failed")]
    (event,) = node_failed_events(run, "t")
    assert "routed" not in event and event["will_retry"] is False
    node = NodeRun.objects.get(run=run, node_id="t")
    assert node.handle == "" and node.result is None


def test_a_transient_failure_uses_its_retries_before_the_error_path(alice: User) -> None:
    run = wait_for(start(alice, failing("test_flaky", {"fail_times": 9, "retries": 2})))
    assert run.status == "succeeded", run.error
    assert run.output is not None and run.output["why"] == "flaky failure on attempt 3"
    entries = LedgerEntry.objects.filter(run=run, node_id="t").order_by("seq")
    assert [(e.status, e.attempt) for e in entries] == [("retrying", 1), ("retrying", 2), ("failed", 3)]
    events = node_failed_events(run, "t")
    assert [(e["will_retry"], e.get("routed")) for e in events] == [(True, None), (True, None), (False, "error")]


def test_an_agent_whose_provider_keeps_failing_takes_its_error_path_and_a_join_after_it_runs_once(
    alice: User, llm_server: ScriptedLLM
) -> None:
    # The client's own retries (1 + FLOWNOVA_LLM_RETRIES requests) all answered 500: the node fails for good.
    model = llm_server.model(*[Answer(status=500) for _ in range(6)])
    graph = graph_of(
        [
            ("start", "start", {}),
            ("t", "agent", {"model": model, "user_prompt": "Hi", "retries": 1}),
            ("fix", "transform", {"expression": '{"fallback": "sorry: " & nodes.t.error.message}'}),
            ("join", "join", {}),
            ("end", "end", {"output": {"answer": "{{input.fallback}}", "from": "{{input.error.type}}"}}),
        ],
        [("start", "t"), ("t", "join"), ("t", "fix", "error"), ("fix", "join"), ("join", "end")],
    )
    run = wait_for(start(alice, graph), timeout=60)
    assert run.status == "succeeded", run.error
    assert run.output is not None
    assert run.output["answer"].startswith("sorry: ") and "the LLM provider failed 3 times" in run.output["answer"]
    assert run.output["from"] == "agent"
    assert len(llm_server.requests(model)) == 3
    statuses = LedgerEntry.objects.filter(run=run).order_by("seq").values_list("node_id", "status")
    assert [s for s in statuses if s[0] in ("t", "join")] == [("t", "failed"), ("join", "succeeded")]
    join = NodeRun.objects.get(run=run, node_id="join")
    assert join.result is not None and list(join.result["branches"]) == ["fix"]  # the agent's own edge is dead


def test_an_engine_error_recording_a_node_takes_its_error_path(alice: User) -> None:
    run = wait_for(start(alice, failing("test_unstorable", {})), timeout=20)
    assert run.status == "succeeded", run.error
    assert run.output is not None
    assert 'node "t" (test_unstorable) could not be executed: TypeError' in run.output["why"]
    entry = LedgerEntry.objects.get(run=run, node_id="t")
    assert entry.status == "failed" and "TypeError" in entry.traceback
    assert NodeRun.objects.get(run=run, node_id="t").attempts == 1


def test_a_lost_attempt_past_its_retries_takes_the_error_path(alice: User) -> None:
    run = start(alice, failing("test_sleep", {"seconds": 4, "retries": 0, "timeout_seconds": 1}))
    deadline = time.monotonic() + 20
    while not NodeRun.objects.filter(run=run, node_id="t", status="running").exists():
        assert time.monotonic() < deadline, "the node never started"
        time.sleep(0.02)
    # Its worker died long ago and nothing came back: the sweep gives it up.
    NodeRun.objects.filter(run=run, node_id="t").update(started_at=timezone.now() - timedelta(seconds=900))
    assert node_runs_recover(queued_for=600, running_for=60) == 0
    run = wait_for(run, timeout=10)
    assert run.status == "succeeded", run.error
    assert run.output is not None and "given up after 1 attempt(s), 1 of them lost" in run.output["why"]
    assert [status for _, status in ledger(run) if _ == "t"] == ["failed"]
    (event,) = node_failed_events(run, "t")
    assert event["routed"] == "error"


def test_a_resume_after_the_error_path_reuses_the_failure_as_it_was_recorded(alice: User) -> None:
    source = wait_for(start(alice, failing("transform", {"expression": NOT_AN_OBJECT}), {"order": 7}))
    assert source.status == "succeeded", source.error
    resumed = run_resume(source=source, node_id="fix", user=alice)
    assert resumed.reused == ["start", "t"]
    run = wait_for(resumed.run)
    assert run.status == "succeeded", run.error
    assert run.output == source.output
    entry = LedgerEntry.objects.get(run=run, node_id="t")
    assert (entry.status, entry.reused, entry.error) == ("failed", True, source.output and source.output["why"])
    node = NodeRun.objects.get(run=run, node_id="t")
    assert (node.status, node.handle) == ("failed", "error")
    compared = runs_compare(source, run)
    by_node = {row["node_id"]: row for row in compared["nodes"]}
    assert by_node["t"]["status"] == ["failed", "failed"] and by_node["t"]["changed"] is False
    assert by_node["t"]["reused"] == [False, True]


def test_an_error_edge_from_an_if_else_is_a_400_naming_the_edge(client: Client, alice: User) -> None:
    graph = graph_of(
        [
            ("start", "start", {}),
            ("check", "if_else", {"left": "1", "operator": "==", "right": "1"}),
            ("yes", "end", {}),
            ("oops", "end", {}),
        ],
        [("start", "check"), ("check", "yes", "true"), ("check", "oops", "error")],
    )
    client.force_login(alice)
    answer = client.post("/api/workflows/", {"name": "w", "graph": graph}, content_type="application/json")
    assert answer.status_code == 400
    (issue,) = answer.json()["graph"]
    assert issue["edge_id"] == "e2"
    assert issue["message"].startswith('edge "e2": node "check" (if_else) cannot fail, so it has no "error" handle')
