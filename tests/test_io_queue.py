"""Nodes that wait on the network run on the I/O queue, on the I/O worker's threads: the real workers, the real
routing, the scripted LLM server and a local HTTP server on loopback."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from django.contrib.auth.models import User
from django.test import override_settings

from runs.models import LedgerEntry, NodeRun, Run
from runs.services.dispatch import node_queue
from tests.conftest import (
    IO_WORKER_POOL_SIZE,
    IO_WORKER_THREADS,
    ROOT,
    IOWorker,
    WorkerProcess,
    service_env,
    start_worker,
    stop_process,
)
from tests.engine_helpers import graph_of, start, wait_for
from tests.llm_server import Answer, ScriptedLLM
from tests.test_outages import PrivateRedis
from tests.tools.servers import LocalServer, Received, Reply
from tools.services import tool_create

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def worker(celery_worker: WorkerProcess) -> WorkerProcess:
    return celery_worker


@pytest.fixture
def server() -> Iterator[LocalServer]:
    local = LocalServer(lambda request, count: Reply(body={"ok": True}))
    yield local
    local.close()


def agent_flow(**data: object) -> dict[str, Any]:
    return graph_of(
        [("start", "start", {}), ("agent", "agent", data), ("end", "end", {})],
        [("start", "agent"), ("agent", "end")],
    )


def tool_flow(**data: object) -> dict[str, Any]:
    return graph_of(
        [("start", "start", {}), ("call", "tool", {"tool": "slow", **data}), ("ok", "end", {})],
        [("start", "call"), ("call", "ok", "success")],
    )


def received_by(worker: WorkerProcess, task_id: str) -> int:
    """How many times the worker received the task with this id (each attempt is a delivery)."""
    return worker.log().count(f"runs.execute_node[{task_id}] received")


def task_id_of(run: Run, node_id: str) -> str:
    task_id: str = NodeRun.objects.values_list("task_id", flat=True).get(run=run, node_id=node_id)
    assert task_id
    return task_id


def logged_soon(check: Any, timeout: float = 10) -> bool:
    """Worker logs are written as it goes: wait for a line that may still be on its way."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def test_only_the_types_that_wait_on_the_network_are_io_bound() -> None:
    routed = {kind: node_queue(kind) for kind in ("agent", "tool", "guardrails", "cognitive", "transform", "map")}
    assert routed == {
        "agent": "io",
        "tool": "io",
        "guardrails": "io",
        "cognitive": "io",
        "transform": None,
        "map": None,
    }
    with override_settings(FLOWNOVA_IO_QUEUE=""):
        assert node_queue("agent") is None


def test_an_agent_runs_on_the_io_worker_and_a_transform_on_the_other(
    alice: User, llm_server: ScriptedLLM, celery_worker: WorkerProcess, io_worker: IOWorker
) -> None:
    model = llm_server.model(Answer(content="hi"))
    graph = graph_of(
        [
            ("start", "start", {}),
            ("agent", "agent", {"model": model, "user_prompt": "hello"}),
            ("shape", "transform", {"expression": '{"shaped": input.message}'}),
            ("end", "end", {}),
        ],
        [("start", "agent"), ("agent", "shape"), ("shape", "end")],
    )
    run = wait_for(start(alice, graph))
    assert run.status == "succeeded", run.error
    assert run.output is not None and run.output["shaped"] == "hi"
    agent, shape = task_id_of(run, "agent"), task_id_of(run, "shape")
    assert logged_soon(lambda: received_by(io_worker.current, agent) == 1)
    assert logged_soon(lambda: received_by(celery_worker, shape) == 1)
    assert received_by(celery_worker, agent) == 0
    assert received_by(io_worker.current, shape) == 0


def test_a_retried_tool_node_stays_on_the_io_queue(
    alice: User, celery_worker: WorkerProcess, io_worker: IOWorker
) -> None:
    def respond(request: Received, count: int) -> Reply:
        return Reply(status=503, body={"busy": True}) if count == 1 else Reply(body={"ok": True})

    flaky = LocalServer(respond)
    try:
        # POST: egress does not retry it itself, so the 503 fails the attempt and the node is retried.
        tool_create(owner=alice, name="slow", url=f"{flaky.url}/x", method="POST")
        run = wait_for(start(alice, tool_flow(retries=1)))
    finally:
        flaky.close()
    assert run.status == "succeeded", run.error
    assert len(flaky.received) == 2
    task_id = task_id_of(run, "call")
    assert logged_soon(lambda: received_by(io_worker.current, task_id) == 2)
    assert received_by(celery_worker, task_id) == 0


def test_a_control_flow_run_finishes_while_slow_agent_calls_are_in_flight(alice: User, llm_server: ScriptedLLM) -> None:
    held = threading.Event()
    # More than the other worker's two processes (with one queue, the short run would wait behind them), and more
    # than the I/O worker's pooled database connections: a thread holds none while it waits for its answer.
    in_flight = IO_WORKER_POOL_SIZE + 3
    assert in_flight < IO_WORKER_THREADS
    model = llm_server.model(*[Answer(content="late", hold=held) for _ in range(in_flight)])
    slow = [start(alice, agent_flow(model=model, user_prompt="take your time")) for _ in range(in_flight)]
    try:
        deadline = time.monotonic() + 30
        while len(llm_server.requests(model)) < in_flight:
            assert time.monotonic() < deadline, f"{len(llm_server.requests(model))} of {in_flight} calls arrived"
            time.sleep(0.05)
        short = graph_of(
            [
                ("start", "start", {}),
                ("check", "if_else", {"left": "{{input.n}}", "operator": ">", "right": 1}),
                ("shape", "transform", {"expression": '{"doubled": input.n * 2}'}),
                ("small", "end", {}),
                ("end", "end", {}),
            ],
            [("start", "check"), ("check", "shape", "true"), ("check", "small", "false"), ("shape", "end")],
        )
        run = wait_for(start(alice, short, {"n": 3}))
        assert run.status == "succeeded", run.error
        assert run.output is not None and run.output["doubled"] == 6
        # Every slow call is still waiting for its answer.
        assert NodeRun.objects.filter(run__in=slow, node_id="agent", status="running").count() == in_flight
    finally:
        held.set()
    for slow_run in slow:
        assert wait_for(slow_run).status == "succeeded", slow_run.error


def assert_timed_out(run: Run, node_id: str, took: float) -> None:
    """The run failed on `node_id`'s time limit (1 s), well before the call's own answer or timeout."""
    assert run.status == "failed"
    entry = LedgerEntry.objects.get(run=run, node_id=node_id, status="failed")
    assert entry.error == "timed out after 1 s"
    assert took < 6, f"the node ended {took:.1f} s after the run started"


def test_a_tool_call_slower_than_the_nodes_time_limit_times_out_on_the_io_worker(
    alice: User, io_worker: IOWorker
) -> None:
    slow = LocalServer(lambda request, count: Reply(body={"late": True}, delay=10))
    try:
        tool_create(owner=alice, name="slow", url=f"{slow.url}/x", timeout_seconds=30)
        began = time.monotonic()
        run = wait_for(start(alice, tool_flow(timeout_seconds=1, retries=0)), timeout=20)
        took = time.monotonic() - began
    finally:
        slow.close()
    assert_timed_out(run, "call", took)
    assert io_worker.current.process.poll() is None


def test_an_llm_call_slower_than_the_nodes_time_limit_times_out_on_the_io_worker(
    alice: User, llm_server: ScriptedLLM
) -> None:
    held = threading.Event()
    model = llm_server.model(Answer(content="too late", hold=held))
    try:
        began = time.monotonic()
        run = wait_for(start(alice, agent_flow(model=model, user_prompt="hi", timeout_seconds=1, retries=0)))
        took = time.monotonic() - began
    finally:
        held.set()
    assert_timed_out(run, "agent", took)
    assert len(llm_server.requests(model)) == 1  # the deadline ended the call: no retry of the provider's


def test_with_routing_off_every_node_runs_on_the_default_queue(
    alice: User, llm_server: ScriptedLLM, tmp_path: Path
) -> None:
    """A worker of a private Redis, alone and on the default queue: were the agent routed to the I/O queue, which
    nobody consumes there, the run would never end."""
    private_redis = PrivateRedis(tmp_path)
    private_redis.start()
    env = service_env(FLOWNOVA_TEST_REDIS_URL=private_redis.url, FLOWNOVA_IO_QUEUE="")
    control = Celery("routing-off-probe", broker=private_redis.url, backend=private_redis.url, set_as_current=False)
    worker = start_worker(env, control=control)
    try:
        model = llm_server.model(Answer(content="on the default queue"))
        document = tmp_path / "routing-off.json"
        document.write_text(json.dumps({"name": "routing off", "graph": agent_flow(model=model, user_prompt="hi")}))
        command = [sys.executable, "manage.py", "run_workflow", str(document), "--user", alice.username]
        command += ["--timeout", "60"]
        finished = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, timeout=90)
        assert finished.returncode == 0, finished.stdout.decode() + finished.stderr.decode()
        run = Run.objects.get(workflow__name="routing off")
        assert run.status == "succeeded" and run.output is not None
        assert run.output["message"] == "on the default queue"
        assert logged_soon(lambda: received_by(worker, task_id_of(run, "agent")) == 1)
    finally:
        stop_process(worker.process)
        control.close()
        private_redis.stop()
