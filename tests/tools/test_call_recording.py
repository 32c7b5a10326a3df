"""Every tool call is recorded before its request goes out, and completed when its answer comes back: a call whose
worker dies mid-call stays visible as started, with no answer."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection

from flownova.celery import app
from nodes import get_node_type
from nodes.base import TransientNodeError
from projects.services import personal_project
from runs import services
from runs.execution import node_context
from runs.models import LedgerEntry, NodeRun
from tests.engine_helpers import graph_of, start, wait_for
from tests.factories import make_run, make_workflow
from tests.llm_server import Answer, ScriptedLLM
from tests.tools.servers import LocalServer, Received, Reply
from tools.calling import tool_call, tool_test_call
from tools.models import ToolCall, ToolCallState
from tools.recording import tool_call_start
from tools.services import tool_create
from workflows.graph import Node

if TYPE_CHECKING:
    from tests.conftest import IOWorker, WorkerProcess

TOOL_NODE = get_node_type("tool")
PARAMETERS = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
ROW_FIELDS = ("state", "run_id", "node_id", "tool_name", "method", "url", "arguments", "status_code", "finished_at")


def rows_seen_from_another_connection() -> list[dict[str, Any]]:
    """The ToolCall rows as another connection sees them (committed ones only). Called in the server's thread."""
    try:
        return list(ToolCall.objects.order_by("pk").values(*ROW_FIELDS))
    finally:
        connection.close()


def tool_graph(data: dict[str, Any]) -> dict[str, Any]:
    return graph_of(
        [("start", "start", {}), ("call", "tool", data), ("ok", "end", {}), ("failed", "end", {})],
        [("start", "call"), ("call", "ok", "success"), ("call", "failed", "error")],
    )


@pytest.mark.django_db(transaction=True)
def test_the_row_exists_before_the_request_and_stays_started_when_no_answer_comes(
    alice: User, make_server: Callable[..., LocalServer], allow_loopback: None
) -> None:
    seen: list[list[dict[str, Any]]] = []

    def respond(request: Received, count: int) -> Reply:
        seen.append(rows_seen_from_another_connection())
        return Reply(body={"late": True}, delay=2)  # long after the node's timeout

    server = make_server(respond)
    tool_create(owner=alice, name="weather", url=f"{server.url}/w/{{city}}", parameters=PARAMETERS)
    data = {"tool": "weather", "arguments": {"city": "{{input.city}}"}, "retries": 0, "timeout_seconds": 0.3}
    run = make_run(make_workflow(alice, graph=tool_graph(data)))
    context = node_context(
        run_id=run.pk,
        node=Node("call", "tool", data, None),
        input={"city": "Oslo"},
        owner_id=alice.pk,
        project_id=personal_project(alice).pk,
        handles=frozenset({"success", "error"}),
        record_started=tool_call_start,
    )
    with pytest.raises(TransientNodeError, match="timed out") as failed:
        TOOL_NODE.execute(context)

    (before,) = seen[0]
    assert before["state"] == ToolCallState.STARTED and before["status_code"] is None
    assert (before["run_id"], before["node_id"], before["tool_name"], before["method"]) == (
        run.pk,
        "call",
        "weather",
        "GET",
    )
    assert before["url"] == f"{server.url}/w/Oslo" and before["arguments"] == {"city": "Oslo"}
    # The answer never came: the row stays as it was until the engine records the node's result with it.
    (record,) = failed.value.tool_calls
    row = ToolCall.objects.get()
    assert record["call_id"] == row.pk and row.state == ToolCallState.STARTED and row.finished_at is None


@pytest.mark.django_db
def test_a_call_that_is_never_sent_is_not_recorded_as_started(
    alice: User, server: LocalServer, allow_loopback: None
) -> None:
    tool = tool_create(owner=alice, name="weather", url=f"{server.url}/w/{{city}}", parameters=PARAMETERS)
    call = tool_call(tool=tool, arguments={"city": 5}, record=tool_call_start)
    assert "invalid arguments" in call["error"] and call["call_id"] is None
    assert not ToolCall.objects.exists() and server.received == []


@pytest.mark.django_db
def test_a_call_that_cannot_be_recorded_is_not_sent(alice: User, server: LocalServer, allow_loopback: None) -> None:
    from django.db import OperationalError

    def broken(**kwargs: Any) -> int:
        raise OperationalError("the database went away")

    tool = tool_create(owner=alice, name="weather", url=f"{server.url}/w/{{city}}", parameters=PARAMETERS)
    call = tool_call(tool=tool, arguments={"city": "Oslo"}, record=broken)
    assert call["transient"] and "could not be recorded" in call["error"]
    assert server.received == []


@pytest.mark.django_db(transaction=True)
def test_a_test_call_is_recorded_before_and_completed_after(
    alice: User, make_server: Callable[..., LocalServer], allow_loopback: None
) -> None:
    seen: list[list[dict[str, Any]]] = []

    def respond(request: Received, count: int) -> Reply:
        seen.append(rows_seen_from_another_connection())
        return Reply(body={"ok": 1})

    server = make_server(respond)
    tool = tool_create(owner=alice, name="weather", url=f"{server.url}/w/{{city}}", parameters=PARAMETERS)
    tool_test_call(tool=tool, arguments={"city": "Oslo"})
    assert [(r["state"], r["run_id"], r["status_code"]) for r in seen[0]] == [(ToolCallState.STARTED, None, None)]
    row = ToolCall.objects.get()
    assert row.state == ToolCallState.FINISHED and row.status_code == 200 and row.finished_at is not None


# --- on the real stack ------------------------------------------------------------------------------------------


def pool_pid(worker: WorkerProcess, run_id: int, node_run_id: int, timeout: float = 10) -> int:
    """The pid of the worker's process executing the node (the worker itself, for a pool of threads)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        active = app.control.inspect(destination=[worker.hostname], timeout=1).active() or {}
        for task in active.get(worker.hostname, []):
            if list(task.get("args") or []) == [run_id, node_run_id]:
                return int(task["worker_pid"])
        time.sleep(0.05)
    raise AssertionError("the node's task is not active on the worker")


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif("127.0.0.1" not in settings.FLOWNOVA_EGRESS_ALLOWLIST, reason="the worker must reach 127.0.0.1")
def test_a_call_of_a_killed_worker_stays_recorded_as_started(
    io_worker: IOWorker, alice: User, make_server: Callable[..., LocalServer], allow_loopback: None
) -> None:
    arrived, release = threading.Event(), threading.Event()

    def respond(request: Received, count: int) -> Reply:
        if count == 1:
            arrived.set()
            release.wait(20)  # the worker is killed meanwhile; nobody reads this answer
        return Reply(body={"city": "Oslo", "temp": 21})

    server = make_server(respond)
    tool_create(owner=alice, name="weather", url=f"{server.url}/w/{{city}}", parameters=PARAMETERS)
    run = start(alice, tool_graph({"tool": "weather", "arguments": {"city": "Oslo"}}))
    try:
        assert arrived.wait(20), "the tool was never called"
        (row,) = ToolCall.objects.filter(run=run).values(*ROW_FIELDS)
        assert row["state"] == ToolCallState.STARTED and row["status_code"] is None
        assert (row["node_id"], row["tool_name"], row["arguments"]) == ("call", "weather", {"city": "Oslo"})
        node_run = NodeRun.objects.get(run=run, node_id="call")
        # A tool node runs on the I/O worker's threads: killing the call kills that whole worker.
        os.kill(pool_pid(io_worker.current, run.pk, node_run.pk), signal.SIGKILL)
    finally:
        release.set()
    io_worker.restart()
    # Its unacknowledged message comes back only after the broker's visibility timeout: the recovery sweep finds
    # the node running past its time limit (here, at once) and counts the attempt as lost.
    assert services.node_runs_recover(queued_for=3600, running_for=-(10**6)) == 1
    run = wait_for(run, timeout=60)

    assert run.status == "succeeded", run.error
    assert len(server.received) == 2  # the killed attempt's call, and the next attempt's
    rows = list(ToolCall.objects.filter(run=run).order_by("pk").values(*ROW_FIELDS))
    assert [(r["state"], r["status_code"]) for r in rows] == [
        (ToolCallState.STARTED, None),
        (ToolCallState.FINISHED, 200),
    ]
    assert rows[0]["finished_at"] is None and rows[1]["finished_at"] is not None
    entry = LedgerEntry.objects.get(run=run, node_id="call", status="succeeded")
    finished = ToolCall.objects.get(run=run, state=ToolCallState.FINISHED)
    assert [c["call_id"] for c in entry.tool_calls] == [finished.pk]


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif("127.0.0.1" not in settings.FLOWNOVA_EGRESS_ALLOWLIST, reason="the worker must reach 127.0.0.1")
def test_an_agents_calls_are_each_recorded_once_and_completed(
    celery_worker: WorkerProcess,
    alice: User,
    llm_server: ScriptedLLM,
    make_server: Callable[..., LocalServer],
    allow_loopback: None,
) -> None:
    server = make_server(lambda request, count: Reply(body={"city": "Oslo", "temp": 21}))
    tool_create(
        owner=alice, name="weather", description="Weather", url=f"{server.url}/w/{{city}}", parameters=PARAMETERS
    )
    model = llm_server.model(
        Answer(tool_calls=[("weather", {"city": "Oslo"}), ("weather", {"town": "Oslo"})]),  # the second is refused
        Answer(content="21 degrees."),
    )
    flow = graph_of(
        [
            ("start", "start", {}),
            ("agent", "agent", {"model": model, "user_prompt": "?", "tools": ["weather"]}),
            ("end", "end", {}),
        ],
        [("start", "agent"), ("agent", "end")],
    )
    run = wait_for(start(alice, flow))
    assert run.status == "succeeded", run.error
    rows = list(ToolCall.objects.filter(run=run).order_by("pk").values(*ROW_FIELDS))
    assert [(r["state"], r["status_code"], r["arguments"]) for r in rows] == [
        (ToolCallState.FINISHED, 200, {"city": "Oslo"}),
        (ToolCallState.FINISHED, None, {"town": "Oslo"}),
    ]
    assert len(server.received) == 1
