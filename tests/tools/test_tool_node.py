"""The `tool` node's handler and spec, in process (the worker tests run it on the real stack)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from pytest_django import Settings

from nodes import get_node_type, node_specs
from nodes.base import NodeContext, NodeError, TransientNodeError
from projects.services import personal_project
from runs.execution import node_context
from tests.engine_helpers import graph_of
from tests.factories import make_run, make_workflow
from tests.tools.servers import LocalServer, Received, Reply
from tools.recording import RECORD_KEYS
from tools.services import tool_create
from workflows.graph import Node, validate_graph

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("allow_loopback")]

TOOL = get_node_type("tool")


def tool_graph(data: dict[str, Any], handles: tuple[str, ...] = ("success", "error")) -> dict[str, Any]:
    nodes = [("start", "start", {}), ("call", "tool", data)] + [(h, "end", {}) for h in handles]
    return graph_of(nodes, [("start", "call")] + [("call", h, h) for h in handles])


def messages(graph: dict[str, Any]) -> list[str]:
    return [issue.message for issue in validate_graph(graph, node_specs())]


def test_the_node_is_registered_with_side_effects_and_not_instant() -> None:
    assert TOOL.side_effects and not TOOL.instant
    # Its `error` handle is the error path every node that can fail has, not one of its own.
    assert TOOL.spec.handles == frozenset({"success"}) and TOOL.spec.required_handles and TOOL.can_fail
    assert TOOL.spec.edge_handles({}) == frozenset({"success", "error"})


def test_a_valid_tool_node_passes_validation() -> None:
    assert messages(tool_graph({"tool": "weather", "arguments": {"city": "{{input.city}}"}, "retries": 1})) == []
    assert messages(tool_graph({"tool": "weather"}, handles=("success",))) == []  # the error edge is optional


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({}, "'tool' is a required property"),
        ({"tool": "not a name"}, "does not match"),
        ({"tool": "weather", "arguments": ["x"]}, "is not of type 'object'"),
        ({"tool": "weather", "arguments": {"city": "{{input..city}}"}}, "template"),
        ({"tool": "weather", "arguments": {"city": "{{ }}"}}, "template"),
    ],
)
def test_bad_data_is_refused_naming_the_node(data: dict[str, Any], expected: str) -> None:
    found = messages(tool_graph(data))
    assert any(expected in message for message in found), found


def test_edges_need_a_success_or_error_handle() -> None:
    graph = graph_of(
        [("start", "start", {}), ("call", "tool", {"tool": "w"}), ("end", "end", {})],
        [("start", "call"), ("call", "end")],
    )
    assert any('needs a "sourceHandle"' in message for message in messages(graph))
    graph["edges"][1]["sourceHandle"] = "done"
    assert any('has no handle "done"; use one of: error, success' in message for message in messages(graph))


# --- executing -----------------------------------------------------------------------------------------------------


@pytest.fixture
def make_context(alice: User) -> Callable[..., NodeContext]:
    def make(
        data: dict[str, Any],
        *,
        handles: tuple[str, ...] = ("success", "error"),
        run_input: dict[str, Any] | None = None,
        attempt: int = 1,
        owner: User | None = None,
    ) -> NodeContext:
        graph = tool_graph(data, handles)
        run = make_run(make_workflow(alice, graph=graph))
        return node_context(
            run_id=run.pk,
            node=Node("call", "tool", data, None),
            input=run_input or {},
            owner_id=(owner or alice).pk,
            project_id=personal_project(owner or alice).pk,
            handles=frozenset(handles),
            attempt=attempt,
        )

    return make


@pytest.fixture
def weather(alice: User, make_server: Callable[..., LocalServer]) -> LocalServer:
    def respond(request: Received, count: int) -> Reply:
        city = request.path.rsplit("/", 1)[-1]
        if city == "Atlantis":
            return Reply(404, body={"detail": "unknown city"})
        if city == "Busy":
            return Reply(503, body="busy")
        return Reply(body={"city": city, "temp": 21})

    server = make_server(respond)
    tool_create(
        owner=alice,
        name="weather",
        url=f"{server.url}/weather/{{city}}",
        parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        secret_headers={"X-Api-Key": "key-9f8e7d6c5b4a"},
    )
    return server


def test_success_renders_the_arguments_and_routes_success(
    make_context: Callable[..., NodeContext], weather: LocalServer
) -> None:
    ctx = make_context({"tool": "weather", "arguments": {"city": "{{input.city}}"}}, run_input={"city": "Oslo"})
    emitted: list[tuple[str, dict[str, Any]]] = []
    ctx.emit = lambda kind, data: emitted.append((kind, data))
    result = TOOL.execute(ctx)
    assert result.handle == "success"
    assert result.fields == {"result": {"city": "Oslo", "temp": 21}, "status_code": 200}
    (call,) = result.tool_calls
    assert tuple(call) == RECORD_KEYS
    assert call["arguments"] == {"city": "Oslo"} and call["status_code"] == 200
    assert weather.received[0].headers["x-api-key"] == "key-9f8e7d6c5b4a"
    assert "key-9f8e7d6c5b4a" not in str(result)
    assert emitted == [
        (
            "tool_call",
            {k: call[k] for k in ("tool", "arguments", "status_code", "error", "duration_ms")}
            | {"result": result.fields["result"]},
        )
    ]
    assert "key-9f8e7d6c5b4a" not in str(emitted)


# A failed call fails the node, whatever its edges: the engine takes the error path when the node has one
# (tests/test_error_paths.py), with the failure's `result` and `status_code` beside `error`.


@pytest.mark.parametrize("handles", [("success", "error"), ("success",)])
def test_an_http_error_fails_the_node_with_the_answer_for_its_error_path(
    make_context: Callable[..., NodeContext], weather: LocalServer, handles: tuple[str, ...]
) -> None:
    ctx = make_context({"tool": "weather", "arguments": {"city": "Atlantis"}}, handles=handles)
    with pytest.raises(NodeError, match="HTTP 404") as failed:
        TOOL.execute(ctx)
    assert str(failed.value) == "tool 'weather': HTTP 404 Not Found"
    assert failed.value.fields == {"result": {"detail": "unknown city"}, "status_code": 404}
    assert failed.value.tool_calls[0]["error"] == "tool 'weather': HTTP 404 Not Found"


def test_invalid_arguments_fail_the_node_without_a_request(
    make_context: Callable[..., NodeContext], weather: LocalServer
) -> None:
    with pytest.raises(NodeError) as failed:
        TOOL.execute(make_context({"tool": "weather", "arguments": {"city": 5}}))
    assert str(failed.value) == "invalid arguments for tool 'weather': city: 5 is not of type 'string'"
    assert failed.value.fields["status_code"] is None
    assert weather.received == []


def test_a_refused_address_fails_the_node(
    make_context: Callable[..., NodeContext], weather: LocalServer, settings: Settings
) -> None:
    settings.FLOWNOVA_EGRESS_ALLOWLIST = []
    with pytest.raises(NodeError, match="loopback"):
        TOOL.execute(make_context({"tool": "weather", "arguments": {"city": "Oslo"}}))
    assert weather.received == []


def test_a_transient_failure_stays_transient_on_every_attempt_for_the_engine_to_retry(
    make_context: Callable[..., NodeContext], weather: LocalServer
) -> None:
    data = {"tool": "weather", "arguments": {"city": "Busy"}, "retries": 1}
    for attempt in (1, 2):  # the engine decides when the attempts are used up, then takes the error path
        with pytest.raises(TransientNodeError, match="HTTP 503") as failed:
            TOOL.execute(make_context(data, attempt=attempt))
        assert failed.value.fields["status_code"] == 503


def test_an_unknown_tool_fails_the_node_naming_it_even_with_an_error_edge(
    make_context: Callable[..., NodeContext], weather: LocalServer
) -> None:
    with pytest.raises(NodeError, match="no tool named 'nope' is registered"):
        TOOL.execute(make_context({"tool": "nope", "arguments": {}}))


def test_another_users_tool_is_not_found(
    make_context: Callable[..., NodeContext], weather: LocalServer, mallory: User
) -> None:
    with pytest.raises(NodeError, match="no tool named 'weather'"):
        TOOL.execute(make_context({"tool": "weather", "arguments": {"city": "Oslo"}}, owner=mallory))
    assert weather.received == []


def test_a_disabled_tool_fails_the_node(
    make_context: Callable[..., NodeContext], weather: LocalServer, alice: User
) -> None:
    alice.tools.update(is_active=False)
    with pytest.raises(NodeError, match="tool 'weather' is disabled"):
        TOOL.execute(make_context({"tool": "weather", "arguments": {"city": "Oslo"}}))


def test_a_missing_template_path_fails_the_node(make_context: Callable[..., NodeContext], weather: LocalServer) -> None:
    with pytest.raises(NodeError, match=r"input\.city"):
        TOOL.execute(make_context({"tool": "weather", "arguments": {"city": "{{input.city}}"}}))
    assert weather.received == []
