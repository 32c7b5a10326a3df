"""Faults end in a recorded, bounded outcome: lost attempts count, engine errors fail the node, cancel ends every
node, oversized or unstorable values are handled. On the real worker, PostgreSQL and Redis."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from runs.models import LedgerEntry, NodeRun, Run
from runs.services import RunInputError, node_runs_recover, run_cancel, run_resume
from tests.conftest import WorkerProcess
from tests.engine_helpers import graph_of, start, wait_for
from tests.test_engine import chain, wait_for_marker

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def worker(celery_worker: WorkerProcess) -> WorkerProcess:
    return celery_worker


def entries(run: Run, node_id: str) -> list[tuple[str, int, str]]:
    rows = LedgerEntry.objects.filter(run=run, node_id=node_id).order_by("seq")
    return list(rows.values_list("status", "attempt", "error"))


# --- attempts that end without a result ----------------------------------------------------------------------


def test_a_node_that_kills_its_worker_every_time_fails_after_its_attempts_are_used_up(
    alice: User, tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    run = start(alice, chain(("poison", "test_suicide", {"marker": str(marker), "retries": 1})))
    run = wait_for(run, timeout=90)
    assert run.status == "failed"
    assert "given up after 2 attempt(s), 2 of them lost" in run.error
    assert "the worker running it stopped" in run.error
    assert [line.split()[1] for line in marker.read_text().splitlines()] == ["1", "2"]  # never a third time
    recorded = entries(run, "poison")
    assert [(status, attempt) for status, attempt, _ in recorded] == [("retrying", 1), ("failed", 2)]
    assert recorded[0][2].startswith("attempt lost: ")
    node = NodeRun.objects.get(run=run, node_id="poison")
    assert (node.status, node.attempts) == ("failed", 2)


def test_a_node_running_past_its_limit_on_its_last_attempt_is_failed_by_the_sweep_not_sent_again(alice: User) -> None:
    run = start(alice, chain(("slow", "test_sleep", {"seconds": 30, "retries": 0, "timeout_seconds": 1})))
    node = wait_for_node(run, "slow", "running")
    # The hard limit killed it (or its worker died) long ago and nothing came back.
    NodeRun.objects.filter(pk=node.pk).update(started_at=timezone.now() - timedelta(seconds=600))
    assert node_runs_recover(queued_for=600, running_for=60) == 0  # nothing dispatched again
    run = wait_for(run, timeout=5)
    assert run.status == "failed"
    assert "given up after 1 attempt(s), 1 of them lost" in run.error
    assert "no result within its time limit" in run.error
    assert [status for status, _, _ in entries(run, "slow")] == ["failed"]


def test_a_lost_attempt_with_attempts_left_is_recorded_and_the_node_runs_again(alice: User) -> None:
    run = start(alice, chain(("slow", "test_sleep", {"seconds": 30, "retries": 1, "timeout_seconds": 1})))
    node = wait_for_node(run, "slow", "running")
    NodeRun.objects.filter(pk=node.pk).update(started_at=timezone.now() - timedelta(seconds=600))
    assert node_runs_recover(queued_for=600, running_for=60) == 1
    assert [(status, attempt) for status, attempt, _ in entries(run, "slow")] == [("retrying", 1)]
    node.refresh_from_db()
    assert node.status in ("queued", "running")
    run_cancel(run=run)


def test_a_lost_attempt_takes_the_nodes_error_edge_when_it_has_one(alice: User) -> None:
    from tests.tools.servers import LocalServer, Reply
    from tools.services import tool_create

    server = LocalServer(lambda request, count: Reply(body={"ok": True}, delay=8))
    tool_create(owner=alice, name="slow", description="d", method="GET", url=server.url)
    graph = graph_of(
        [
            ("start", "start", {}),
            ("call", "tool", {"tool": "slow", "retries": 0}),
            ("ok", "end", {}),
            ("handled", "end", {"output": {"why": "{{input.error.message}}"}}),
        ],
        [("start", "call"), ("call", "ok", "success"), ("call", "handled", "error")],
    )
    run = start(alice, graph)
    node = wait_for_node(run, "call", "running")
    NodeRun.objects.filter(pk=node.pk).update(started_at=timezone.now() - timedelta(seconds=900))
    assert node_runs_recover(queued_for=600, running_for=60) == 0
    run = wait_for(run, timeout=10)
    assert run.status == "succeeded"
    assert run.output is not None and "given up after 1 attempt(s), 1 of them lost" in run.output["why"]
    server.close()


def wait_for_node(run: Run, node_id: str, status: str, timeout: float = 20) -> NodeRun:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        node = NodeRun.objects.filter(run=run, node_id=node_id, status=status).first()
        if node is not None:
            return node
        time.sleep(0.02)
    raise AssertionError(f"node {node_id} never reached {status}")


# --- the engine itself raises ----------------------------------------------------------------------------------


@pytest.mark.parametrize("node_type", ["test_unstorable", "test_unstorable_instant"])
def test_a_result_the_database_cannot_store_fails_the_node_once_instead_of_looping(alice: User, node_type: str) -> None:
    run = wait_for(start(alice, chain(("bad", node_type, {}))), timeout=20)
    assert run.status == "failed"
    assert 'node "bad" (' in run.error and "could not be executed: TypeError" in run.error
    assert [status for status, _, _ in entries(run, "bad")] == ["failed"]
    time.sleep(0.5)  # nothing sends it again
    assert NodeRun.objects.get(run=run, node_id="bad").attempts == 1


# --- cancel ends every node ---------------------------------------------------------------------------------


def test_cancel_ends_a_node_that_is_still_executing_and_ignores_what_it_returns(alice: User, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    run = start(alice, chain(("slow", "test_sleep", {"seconds": 1, "marker": str(marker)}), ("after", "fork", {})))
    wait_for_marker(marker)
    run_cancel(run=run)
    node = NodeRun.objects.get(run=run, node_id="slow")
    assert node.status == "cancelled" and node.finished_at is not None
    (status, _, error), *_ = entries(run, "slow")[-1:]
    assert status == "cancelled" and "while this node was executing" in error
    time.sleep(1.5)  # the handler returns: ignored
    node.refresh_from_db()
    assert node.status == "cancelled"
    assert [status for status, _, _ in entries(run, "slow")] == ["cancelled"]
    assert not NodeRun.objects.filter(run=run, node_id="after").exists()


def test_the_sweep_cancels_nodes_left_active_in_a_run_that_ended(alice: User) -> None:
    run = wait_for(start(alice, chain(("a", "fork", {}))))
    # As a node of a run that ended while its message was in flight could be left (before cancel closed them).
    NodeRun.objects.filter(run=run, node_id="a").update(
        status="running", started_at=timezone.now() - timedelta(seconds=900)
    )
    assert node_runs_recover(queued_for=600, running_for=60) == 0
    assert NodeRun.objects.get(run=run, node_id="a").status == "cancelled"


# --- sizes and values ---------------------------------------------------------------------------------------


def test_a_template_that_amplifies_its_input_fails_the_node_naming_the_cap(alice: User) -> None:
    graph = chain()
    graph["nodes"][-1]["data"] = {"output": {f"copy{i}": "{{input.text}}" for i in range(200)}}
    run = wait_for(start(alice, graph, {"text": "x" * 52_000}))
    assert run.status == "failed"
    assert "the rendered value is 9.9 MiB, over the limit of 1.0 MiB (FLOWNOVA_MAX_RENDERED_BYTES)" in run.error
    assert run.output is None


def test_a_node_output_over_the_cap_fails_the_node_naming_the_cap(alice: User) -> None:
    run = wait_for(start(alice, chain(("big", "test_bytes", {"bytes": 9 * 1024 * 1024, "retries": 0}))))
    assert run.status == "failed"
    assert 'the output of node "big" is 9.0 MiB' in run.error and "(FLOWNOVA_MAX_NODE_OUTPUT_BYTES)" in run.error
    assert [status for status, _, _ in entries(run, "big")] == ["failed"]


def test_a_nul_character_in_a_result_is_stored_as_a_replacement_character(alice: User) -> None:
    run = wait_for(start(alice, chain(("nul", "test_bytes", {"bytes": 2, "text": "a", "with_nul": True}))))
    assert run.status == "succeeded", run.error
    assert run.output is not None and run.output["blob"] == "a\ufffda\ufffd"


# --- resume ---------------------------------------------------------------------------------------------------


def test_resuming_at_a_node_the_recorded_path_skipped_is_refused_with_the_reason(alice: User, client: Client) -> None:
    graph = graph_of(
        [
            ("start", "start", {}),
            ("check", "if_else", {"left": "{{input.n}}", "operator": ">", "right": "1"}),
            ("big", "end", {}),
            ("small", "end", {}),
        ],
        [("start", "check"), ("check", "big", "true"), ("check", "small", "false")],
    )
    run = wait_for(start(alice, graph, {"n": 0}))
    assert run.status == "succeeded"
    with pytest.raises(RunInputError, match=r'node "big" cannot be resumed from: .* would skip it'):
        run_resume(source=run, node_id="big", user=alice)
    assert Run.objects.count() == 1
    client.force_login(alice)
    response = client.post(f"/api/runs/{run.pk}/resume/", {"node_id": "big"}, content_type="application/json")
    assert response.status_code == 400, response.content
    assert "would skip it" in response.json()["detail"]
    page = client.get(f"/runs/{run.pk}/resume/")
    assert 'value="small"' in page.content.decode() and 'value="big"' not in page.content.decode()
    resumed = run_resume(source=run, node_id="small", user=alice).run
    assert wait_for(resumed).status == "succeeded"
