"""A workflow with a `tool` node on the real stack: the suite's Celery worker calls a live loopback server.

The worker is another process: it reads FLOWNOVA_EGRESS_ALLOWLIST from tests.settings (or its environment),
not from this process's override_settings, so these tests need 127.0.0.1 allow-listed there.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import User

from projects.models import Role
from projects.services import member_set, project_create
from runs.models import LedgerEntry, Run, RunEvent
from runs.services import run_start
from tests.conftest import WorkerProcess
from tests.engine_helpers import graph_of, start, wait_for
from tests.tools.servers import LocalServer, Received, Reply
from tools.models import ToolCall
from tools.services import tool_create
from workflows.services import workflow_create

pytestmark = [
    pytest.mark.worker,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        "127.0.0.1" not in settings.FLOWNOVA_EGRESS_ALLOWLIST,
        reason='needs FLOWNOVA_EGRESS_ALLOWLIST = ["127.0.0.1"] in tests/settings.py (the worker reads it there)',
    ),
]

API_KEY = "key-9f8e7d6c5b4a-worker"


@pytest.fixture(autouse=True)
def worker(celery_worker: WorkerProcess) -> WorkerProcess:
    return celery_worker


@pytest.fixture
def weather(alice: User, make_server: Callable[..., LocalServer], allow_loopback: None) -> LocalServer:
    def respond(request: Received, count: int) -> Reply:
        city = request.path.rsplit("/", 1)[-1]
        if city == "Atlantis":
            return Reply(404, body={"detail": "unknown city", "key_seen": request.headers.get("x-api-key")})
        return Reply(body={"city": city, "temp": 21, "key_seen": request.headers.get("x-api-key")})

    server = make_server(respond)
    tool_create(
        owner=alice,
        name="weather",
        url=f"{server.url}/weather/{{city}}",
        parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        secret_headers={"X-Api-Key": API_KEY},
    )
    return server


def routed_graph(with_error_edge: bool = True) -> dict[str, Any]:
    nodes: list[tuple[str, str, dict[str, Any]]] = [
        ("start", "start", {}),
        ("call", "tool", {"tool": "weather", "arguments": {"city": "{{input.city}}"}, "retries": 0}),
        ("ok", "end", {"output": {"route": "success", "temp": "{{nodes.call.result.temp}}"}}),
    ]
    edges = [("start", "call"), ("call", "ok", "success")]
    if with_error_edge:
        output = {"route": "error", "error": "{{nodes.call.error}}", "status": "{{nodes.call.status_code}}"}
        nodes.append(("failed", "end", {"output": {**output, "detail": "{{nodes.call.result.detail}}"}}))
        edges.append(("call", "failed", "error"))
    return graph_of(nodes, edges)


def everything_recorded(run: Run) -> str:
    rows = [
        list(LedgerEntry.objects.filter(run=run).values()),
        list(RunEvent.objects.filter(run=run).values()),
        list(ToolCall.objects.filter(run=run).values()),
        [run.output, run.error],
    ]
    return json.dumps(rows, default=str)


def test_a_tool_node_routes_success_and_error_and_records_each_call(alice: User, weather: LocalServer) -> None:
    ok_run = start(alice, routed_graph(), {"city": "Oslo"})
    error_run = start(alice, routed_graph(), {"city": "Atlantis"})
    ok_run, error_run = wait_for(ok_run), wait_for(error_run)

    assert ok_run.status == "succeeded", ok_run.error
    assert ok_run.output == {"route": "success", "temp": 21}
    ok_call = ToolCall.objects.get(run=ok_run)
    assert (ok_call.node_id, ok_call.tool_name, ok_call.method, ok_call.status_code) == ("call", "weather", "GET", 200)
    assert ok_call.arguments == {"city": "Oslo"} and ok_call.url.endswith("/weather/Oslo")
    assert ok_call.duration_ms is not None and ok_call.error == ""
    entry = LedgerEntry.objects.get(run=ok_run, node_id="call")
    assert [(c["tool"], c["status_code"], c["arguments"]) for c in entry.tool_calls] == [
        ("weather", 200, {"city": "Oslo"})
    ]
    assert entry.output is not None
    assert entry.output["result"]["temp"] == 21 and entry.output["status_code"] == 200

    assert error_run.status == "succeeded", error_run.error
    # The error path: `error` is {node, type, message}, with the answer's body and status beside it.
    assert error_run.output == {
        "route": "error",
        "error": {"node": "call", "type": "tool", "message": "tool 'weather': HTTP 404 Not Found"},
        "status": 404,
        "detail": "unknown city",
    }
    failed = LedgerEntry.objects.get(run=error_run, node_id="call")
    assert (failed.status, failed.error) == ("failed", "tool 'weather': HTTP 404 Not Found")
    assert failed.output is not None and failed.output["status_code"] == 404
    assert [c["status_code"] for c in failed.tool_calls] == [404]
    error_call = ToolCall.objects.get(run=error_run)
    assert (error_call.status_code, error_call.error) == (404, "tool 'weather': HTTP 404 Not Found")

    event = RunEvent.objects.get(run=ok_run, type="tool_call")
    assert event.node_id == "call"
    assert event.data["tool"] == "weather" and event.data["status_code"] == 200
    # The server received the secret; nothing recorded anywhere holds it.
    assert {r.headers["x-api-key"] for r in weather.received} == {API_KEY}
    for run in (ok_run, error_run):
        recorded = everything_recorded(run)
        assert API_KEY not in recorded and "[redacted]" in recorded


def test_without_an_error_edge_a_failed_call_fails_the_run_naming_the_node(alice: User, weather: LocalServer) -> None:
    run = wait_for(start(alice, routed_graph(with_error_edge=False), {"city": "Atlantis"}))
    assert run.status == "failed"
    assert run.error == "node \"call\" (tool) failed: tool 'weather': HTTP 404 Not Found"
    # The failed attempt's call is recorded like any other.
    assert ToolCall.objects.get(run=run).status_code == 404
    failed = LedgerEntry.objects.get(run=run, node_id="call", status="failed")
    assert [(c["tool"], c["status_code"]) for c in failed.tool_calls] == [("weather", 404)]
    assert API_KEY not in everything_recorded(run)


def test_a_runner_of_a_team_project_runs_its_tools_and_not_their_own(
    alice: User, make_user: Callable[..., User], make_server: Callable[..., LocalServer], allow_loopback: None
) -> None:
    # The tool a node names is looked up in the run's project, whoever starts the run: rita, a runner of the
    # team, has a tool of the same name in her personal project, and it is not the one called.
    team_server = make_server(lambda request, count: Reply(body={"temp": 7, "from": "team"}))
    own_server = make_server(lambda request, count: Reply(body={"temp": 99, "from": "rita"}))
    rita = make_user("rita")
    team = project_create(name="Weather team", by=alice)
    member_set(project=team, user=rita, role=Role.RUNNER, by=alice)
    weather_args = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    tool_create(owner=alice, project=team, name="weather", url=f"{team_server.url}/{{city}}", parameters=weather_args)
    tool_create(owner=rita, name="weather", url=f"{own_server.url}/{{city}}", parameters=weather_args)
    workflow = workflow_create(owner=alice, project=team, name="Team weather", graph=routed_graph())

    run = wait_for(run_start(workflow=workflow, input={"city": "Oslo"}, user=rita))

    assert run.status == "succeeded", run.error
    assert (run.owner, run.project) == (rita, team)
    assert run.output == {"route": "success", "temp": 7}
    assert ToolCall.objects.get(run=run).url == f"{team_server.url}/Oslo"
    assert own_server.received == []
