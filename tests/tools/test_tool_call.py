"""tool_call: argument validation before anything leaves, parameter placement for every method, parsing,
recording, and secrets kept out of everything but the request itself."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.contrib.auth.models import User
from pytest_django import Settings

from tests.tools.servers import LocalServer, Reply
from tools.calling import ToolCallError, tool_call, tool_test_call
from tools.models import Tool
from tools.recording import RECORD_KEYS, tool_call_record
from tools.services import tool_create

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("allow_loopback")]

SECRET = "Bearer sk-live-51HxYzVerySecretValue"
API_KEY = "key-9f8e7d6c5b4a"


def make_tool(
    owner: User,
    server: LocalServer,
    *,
    method: str = "GET",
    path: str = "/items",
    properties: dict[str, Any] | None = None,
    required: list[str] | None = None,
    **extra: Any,
) -> Tool:
    parameters = {"type": "object", "properties": properties or {}, "required": required or []}
    return tool_create(
        owner=owner,
        name=extra.pop("name", "items"),
        description="Items",
        method=method,
        url=f"{server.url}{path}",
        parameters=parameters,
        **extra,
    )


ITEM_PROPERTIES = {
    "item_id": {"type": "string"},
    "limit": {"type": "integer"},
    "tags": {"type": "array", "items": {"type": "string"}},
    "name": {"type": "string"},
}


@pytest.mark.parametrize(
    ("method", "default_place"),
    [("GET", "query"), ("DELETE", "query"), ("POST", "body"), ("PUT", "body"), ("PATCH", "body")],
)
def test_arguments_go_to_the_path_and_the_query_or_body_the_method_implies(
    alice: User, server: LocalServer, method: str, default_place: str
) -> None:
    tool = make_tool(alice, server, method=method, path="/items/{item_id}", properties=ITEM_PROPERTIES)
    call = tool_call(tool=tool, arguments={"item_id": "a/b c", "limit": 5, "tags": ["x", "y"], "name": "n"})
    assert call["ok"] and call["status_code"] == 200, call["error"]
    received = server.received[0]
    assert received.method == method
    assert received.path == "/items/a%2Fb%20c"  # encoded, the slash included
    assert call["url"] == f"{server.url}/items/a%2Fb%20c"
    if default_place == "query":
        assert received.query == [("limit", "5"), ("tags", "x"), ("tags", "y"), ("name", "n")]
        assert received.body == b""
    else:
        assert received.query == []
        assert received.json() == {"limit": 5, "tags": ["x", "y"], "name": "n"}
        assert received.headers["content-type"] == "application/json"


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE"])
def test_x_in_places_each_parameter_where_it_says(alice: User, server: LocalServer, method: str) -> None:
    properties = {
        "id": {"type": "integer", "x-in": "path"},
        "q": {"type": "string", "x-in": "query"},
        "payload": {"type": "object", "x-in": "body"},
        "X-Trace": {"type": "string", "x-in": "header"},
        "flag": {"type": "boolean", "x-in": "query"},
    }
    properties["X_Trace"] = properties.pop("X-Trace")  # parameter names are identifiers
    tool = make_tool(alice, server, method=method, path="/things/{id}?fixed=1", properties=properties)
    call = tool_call(
        tool=tool, arguments={"id": 42, "q": "hello world", "payload": {"k": [1]}, "X_Trace": "t-1", "flag": True}
    )
    assert call["ok"], call["error"]
    received = server.received[0]
    assert received.path == "/things/42"
    assert received.query == [("fixed", "1"), ("q", "hello world"), ("flag", "true")]
    assert received.json() == {"payload": {"k": [1]}}
    assert received.headers["x_trace"] == "t-1"


def test_invalid_arguments_list_every_violation_and_send_nothing(
    alice: User, server: LocalServer, connects: list[tuple[str, int]]
) -> None:
    tool = make_tool(
        alice,
        server,
        properties={
            "city": {"type": "string"},
            "days": {"type": "integer", "minimum": 1},
            "units": {"enum": ["c", "f"]},
        },
        required=["city"],
    )
    call = tool_call(tool=tool, arguments={"days": 0, "units": "k"})
    assert not call["ok"] and call["error_kind"] == "arguments"
    error = call["error"]
    assert error.startswith("invalid arguments for tool 'items': ")
    assert "'city' is a required property" in error
    assert "days: 0 is less than the minimum of 1" in error
    assert "units: 'k' is not one of ['c', 'f']" in error
    assert server.received == [] and connects == []
    assert call["status_code"] is None and call["duration_ms"] is not None


def test_arguments_that_are_not_an_object_are_refused(alice: User, server: LocalServer) -> None:
    call = tool_call(tool=make_tool(alice, server), arguments=["a"])
    assert call["error"].endswith("arguments must be a JSON object, not list")
    assert server.received == []


def test_a_header_argument_cannot_inject_lines(alice: User, server: LocalServer) -> None:
    tool = make_tool(alice, server, properties={"trace": {"type": "string", "x-in": "header"}})
    call = tool_call(tool=tool, arguments={"trace": "a\r\nX-Evil: 1"})
    assert "must not contain line breaks" in call["error"]
    assert server.received == []


def test_a_json_answer_is_parsed_and_text_is_kept_as_text(alice: User, make_server: Callable[..., LocalServer]) -> None:
    json_server = make_server(lambda request, count: Reply(body={"temp": 21.5}))
    text_server = make_server(lambda request, count: Reply(body="just text"))
    assert tool_call(tool=make_tool(alice, json_server, name="j"), arguments={})["result"] == {"temp": 21.5}
    assert tool_call(tool=make_tool(alice, text_server, name="t"), arguments={})["result"] == "just text"


def test_http_errors_are_reported_with_the_answer(alice: User, make_server: Callable[..., LocalServer]) -> None:
    server = make_server(lambda request, count: Reply(404, body={"detail": "no such item"}))
    call = tool_call(tool=make_tool(alice, server), arguments={})
    assert (call["ok"], call["status_code"], call["error_kind"], call["transient"]) == (False, 404, "http", False)
    assert call["error"] == "tool 'items': HTTP 404 Not Found"
    assert call["result"] == {"detail": "no such item"}


def test_a_server_still_unavailable_after_retries_is_a_transient_error(
    alice: User, make_server: Callable[..., LocalServer]
) -> None:
    server = make_server(lambda request, count: Reply(503, body="down"))
    call = tool_call(tool=make_tool(alice, server), arguments={})
    assert (call["status_code"], call["transient"]) == (503, True)
    assert len(server.received) == 3


def test_the_recorded_answer_is_truncated(
    alice: User, make_server: Callable[..., LocalServer], settings: Settings
) -> None:
    settings.FLOWNOVA_TOOL_RESPONSE_RECORD_CHARS = 100
    server = make_server(lambda request, count: Reply(body="z" * 1000))
    call = tool_call(tool=make_tool(alice, server), arguments={})
    assert call["response"] == "z" * 100 + "... [truncated: 1000 characters in all]"
    assert call["result"] == "z" * 1000


def test_a_refused_address_is_an_error_of_the_call(alice: User, server: LocalServer, settings: Settings) -> None:
    settings.FLOWNOVA_EGRESS_ALLOWLIST = []
    call = tool_call(tool=make_tool(alice, server), arguments={})
    assert call["error_kind"] == "refused" and not call["transient"]
    assert "127.0.0.1 is a loopback address" in call["error"]
    assert server.received == []


def test_the_record_has_exactly_the_engine_keys(alice: User, server: LocalServer) -> None:
    call = tool_call(tool=make_tool(alice, server), arguments={})
    record = tool_call_record(call)
    assert tuple(record) == RECORD_KEYS
    assert record["tool"] == "items" and record["method"] == "GET" and record["status_code"] == 200
    json.dumps(record)  # it goes into the ledger as JSON


def test_a_post_made_for_a_run_carries_its_idempotency_key(alice: User, server: LocalServer) -> None:
    tool = make_tool(alice, server, method="POST")
    tool_call(tool=tool, arguments={}, run_id=12, node_id="charge")
    tool_call(tool=tool, arguments={}, run_id=12, node_id="charge")
    keys = [r.headers.get("idempotency-key") for r in server.received]
    assert keys[0] and keys[0] == keys[1]


# --- secrets ------------------------------------------------------------------------------------------------------


@pytest.fixture
def secret_tool(alice: User, server: LocalServer) -> Tool:
    """A tool whose secrets the echo server sends straight back."""
    return make_tool(
        alice,
        server,
        properties={"q": {"type": "string"}},
        headers={"X-Plain": "visible"},
        secret_headers={"Authorization": SECRET, "X-Api-Key": API_KEY},
    )


def assert_no_secret(value: object) -> None:
    text = json.dumps(value, default=str)
    for secret in (SECRET, API_KEY, "sk-live-51HxYzVerySecretValue"):
        assert secret not in text


def test_secret_headers_are_sent_and_redacted_from_everything_returned(
    secret_tool: Tool, server: LocalServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    call = tool_call(tool=secret_tool, arguments={"q": "x"})
    received = server.received[0].headers
    assert received["authorization"] == SECRET and received["x-api-key"] == API_KEY
    assert received["x-plain"] == "visible"
    assert call["ok"]
    assert call["result"]["headers"]["authorization"] == "[redacted]"
    assert call["result"]["headers"]["x-api-key"] == "[redacted]"
    assert_no_secret(call)
    assert_no_secret(caplog.text)


def test_a_secret_straddling_the_truncation_point_does_not_leak_a_prefix(
    alice: User, make_server: Callable[..., LocalServer], settings: Settings
) -> None:
    settings.FLOWNOVA_TOOL_RESPONSE_RECORD_CHARS = 20
    server = make_server(lambda request, count: Reply(body="0123456789" + API_KEY * 3))
    tool = make_tool(alice, server, secret_headers={"X-Api-Key": API_KEY})
    call = tool_call(tool=tool, arguments={})
    assert API_KEY[:8] not in call["response"]


def test_secrets_never_reach_errors_or_logs(
    alice: User, make_server: Callable[..., LocalServer], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server = make_server(lambda request, count: Reply(500, body=f"boom: I got {request.headers.get('x-api-key')}"))
    tool = make_tool(alice, server, secret_headers={"X-Api-Key": API_KEY})
    call = tool_call(tool=tool, arguments={})
    assert call["error"] == "tool 'items': HTTP 500 Internal Server Error"
    assert call["response"] == "boom: I got [redacted]"
    assert_no_secret(call)
    assert_no_secret(caplog.text)


def test_the_test_call_records_a_toolcall_without_a_run_and_without_secrets(secret_tool: Tool) -> None:
    tool_test_call(tool=secret_tool, arguments={"q": "x"})
    row = secret_tool.calls.get()
    assert row.run_id is None and row.status_code == 200 and row.tool_name == "items"
    assert row.arguments == {"q": "x"}
    assert_no_secret([row.url, row.response, row.error, row.arguments])
    assert "[redacted]" in row.response


def test_undecryptable_secrets_fail_the_call_before_any_request(
    secret_tool: Tool, server: LocalServer, settings: Settings
) -> None:
    settings.FLOWNOVA_SECRET_KEYS = [Fernet.generate_key().decode()]
    call = tool_call(tool=secret_tool, arguments={})
    assert call["error_kind"] == "secrets"
    assert "tool 'items' cannot be decrypted" in call["error"]
    assert server.received == []


def test_a_disabled_tool_is_not_called(alice: User, server: LocalServer) -> None:
    tool = make_tool(alice, server, is_active=False)
    with pytest.raises(ToolCallError, match="tool 'items' is disabled"):
        tool_call(tool=tool, arguments={})
    assert server.received == []
