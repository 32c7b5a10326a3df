"""Headers a tool's arguments may not set (framing, credentials, proxy and forwarding headers), and header values
that are never sent (control characters)."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from nodes import get_node_type
from nodes.base import NodeError
from projects.services import personal_project
from runs.execution import node_context
from tests.engine_helpers import graph_of
from tests.factories import make_run, make_workflow
from tests.tools.servers import LocalServer
from tools.calling import tool_call
from tools.definitions import tool_validate_definition
from tools.models import Tool
from tools.services import tool_create
from workflows.graph import Node

TOOL_NODE = get_node_type("tool")


def header_parameter(name: str) -> dict[str, Any]:
    return {"type": "object", "properties": {name: {"type": "string", "x-in": "header"}}}


def definition() -> dict[str, Any]:
    return {"name": "t", "method": "GET", "url": "https://api.example.test/", "parameters": header_parameter("trace")}


@pytest.mark.parametrize(
    "name",
    [
        "Host",
        "host",
        "Authorization",
        "Cookie",
        "Connection",
        "Content_Length",  # servers that read headers through CGI names take _ for -
        "Transfer_Encoding",
        "Proxy_Authorization",
        "X_Forwarded_For",
        "X_Forwarded_Host",
        "Forwarded",
        "X_Real_IP",
        "Via",
        "TE",
        "Upgrade",
        "Expect",
        "Idempotency_Key",
        "X_HTTP_Method_Override",
    ],
)
def test_a_header_parameter_with_a_reserved_name_is_refused_naming_it(name: str) -> None:
    errors = tool_validate_definition(**{**definition(), "parameters": header_parameter(name)})
    assert any(f"parameter {name!r}" in message and "reserved" in message for message in errors["parameters"]), errors


def test_ordinary_header_parameters_are_accepted() -> None:
    for name in ("trace", "X_Request_Id", "Accept_Language", "api_version"):
        assert tool_validate_definition(**{**definition(), "parameters": header_parameter(name)}) == {}
    # Parameters that are not headers may have any name.
    parameters = {"type": "object", "properties": {"host": {"type": "string"}, "cookie": {"type": "string"}}}
    assert tool_validate_definition(**{**definition(), "parameters": parameters}) == {}


@pytest.mark.parametrize(
    "name", ["Host", "Content-Length", "Transfer-Encoding", "Connection", "Content_Length", "Proxy-Connection", "TE"]
)
@pytest.mark.parametrize("field", ["headers", "secret_headers"])
def test_plain_and_secret_headers_may_not_set_what_the_http_client_owns(field: str, name: str) -> None:
    errors = tool_validate_definition(**{**definition(), field: {name: "x"}})
    assert any(name in message for message in errors.get(field, [])), errors


def test_plain_headers_may_carry_credentials_the_owner_chose() -> None:
    # The owner sets these, not the arguments; secret headers are the better place, but it is their choice.
    assert tool_validate_definition(**{**definition(), "headers": {"Authorization": "Basic x", "Cookie": "a=b"}}) == {}


@pytest.mark.parametrize("value", ["a\x01b", "caf\u00e9\x7f", "tab\tis fine\x00"])
def test_header_values_with_control_characters_are_refused_at_save(value: str) -> None:
    errors = tool_validate_definition(**{**definition(), "headers": {"X-Trace": value}})
    assert any("X-Trace" in message for message in errors["headers"]), errors


@pytest.mark.django_db
@pytest.mark.urls("tests.tools.urls")
def test_the_api_answers_400_naming_the_reserved_parameter(alice: User) -> None:
    client = APIClient()
    client.force_authenticate(alice)
    body = {"name": "t", "url": "https://api.example.test/", "parameters": header_parameter("Authorization")}
    response = client.post("/api/tools/", body, format="json")
    assert response.status_code == 400
    assert "'Authorization'" in response.json()["parameters"][0]
    assert not Tool.objects.exists()


# --- at call time ---------------------------------------------------------------------------------------------------


@pytest.fixture
def trace_tool(alice: User, server: LocalServer, allow_loopback: None) -> Tool:
    return tool_create(owner=alice, name="trace", url=f"{server.url}/t", parameters=header_parameter("trace"))


@pytest.mark.django_db
@pytest.mark.parametrize("value", ["a\r\nX-Injected: 1", "nul\x00", "bell\x07", "esc\x1b[0m", "del\x7f"])
def test_an_argument_header_value_with_a_control_character_is_not_sent(
    trace_tool: Tool, server: LocalServer, value: str
) -> None:
    call = tool_call(tool=trace_tool, arguments={"trace": value})
    assert not call["ok"] and not call["transient"]
    assert "'trace'" in call["error"] and "control character" in call["error"]
    assert server.received == []


@pytest.mark.django_db
def test_a_tab_and_visible_characters_are_sent(trace_tool: Tool, server: LocalServer) -> None:
    call = tool_call(tool=trace_tool, arguments={"trace": "a\tb c"})
    assert call["ok"], call["error"]
    assert server.received[0].headers["trace"] == "a\tb c"


@pytest.mark.django_db
def test_a_non_ascii_header_value_fails_the_call_clearly(trace_tool: Tool, server: LocalServer) -> None:
    call = tool_call(tool=trace_tool, arguments={"trace": "Zürich"})
    assert not call["ok"] and not call["transient"]
    assert "'trace'" in call["error"] and "ASCII" in call["error"]
    assert server.received == []


@pytest.mark.django_db
def test_a_stored_definition_with_a_reserved_header_parameter_is_refused_at_call_time(
    alice: User, server: LocalServer, allow_loopback: None
) -> None:
    # Saved before the check existed: written straight to the table.
    tool = Tool.objects.create(
        owner=alice,
        project=personal_project(alice),
        name="old",
        url=f"{server.url}/t",
        parameters=header_parameter("Host"),
    )
    call = tool_call(tool=tool, arguments={"Host": "internal.example"})
    assert not call["ok"] and "'Host'" in call["error"] and "reserved" in call["error"]
    assert server.received == []


@pytest.mark.django_db
def test_an_argument_header_never_doubles_a_secret_header(
    alice: User, server: LocalServer, allow_loopback: None
) -> None:
    tool = tool_create(
        owner=alice,
        name="keyed",
        url=f"{server.url}/t",
        parameters=header_parameter("x_key"),
        secret_headers={"X_Key": "the-secret"},
    )
    call = tool_call(tool=tool, arguments={"x_key": "chosen-by-the-model"})
    assert call["ok"], call["error"]
    sent = [(name.lower(), value) for name, value in server.received[0].header_lines]
    assert [value for name, value in sent if name == "x_key"] == ["the-secret"]


@pytest.mark.django_db
def test_a_tool_node_fails_for_good_naming_the_header(alice: User, trace_tool: Tool, server: LocalServer) -> None:
    data = {"tool": "trace", "arguments": {"trace": "{{input.trace}}"}, "retries": 3}
    graph = graph_of(
        [("start", "start", {}), ("call", "tool", data), ("ok", "end", {})],
        [("start", "call"), ("call", "ok", "success")],
    )
    context = node_context(
        run_id=make_run(make_workflow(alice, graph=graph)).pk,
        node=Node("call", "tool", data, None),
        input={"trace": "x\r\nHost: internal"},
        owner_id=alice.pk,
        project_id=personal_project(alice).pk,
        handles=frozenset({"success"}),
    )
    with pytest.raises(NodeError, match=r"'trace'.*control character"):
        TOOL_NODE.execute(context)
    assert server.received == []
