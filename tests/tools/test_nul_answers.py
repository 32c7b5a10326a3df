"""Answers PostgreSQL cannot store as they are (NUL characters, unpaired surrogates) are stored with U+FFFD in
their place, and the call record says so."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from django.conf import settings
from django.contrib.auth.models import User

from runs.models import LedgerEntry, NodeRun, RunEvent
from tests.conftest import WorkerProcess
from tests.engine_helpers import graph_of, start, wait_for
from tests.tools.servers import LocalServer, Received, Reply
from tools.calling import tool_call, tool_test_call
from tools.models import ToolCall
from tools.services import tool_create

NOTE = "NUL characters were replaced with U+FFFD"

ANSWERS = {
    "json": Reply(
        body=b'{"name": "a\\u0000b", "list": ["\\u0000"], "k\\u0000": 1}', headers={"Content-Type": "application/json"}
    ),
    "text": Reply(body=b"raw\x00nul", headers={"Content-Type": "text/plain"}),
    "surrogate": Reply(body=b'{"name": "x\\ud800y"}', headers={"Content-Type": "application/json"}),
}


def respond(request: Received, count: int) -> Reply:
    return ANSWERS[request.path.rsplit("/", 1)[-1]]


@pytest.fixture
def answers(alice: User, make_server: Callable[..., LocalServer], allow_loopback: None) -> LocalServer:
    server = make_server(respond)
    tool_create(
        owner=alice,
        name="answer",
        url=f"{server.url}/a/{{kind}}",
        parameters={"type": "object", "properties": {"kind": {"type": "string"}}, "required": ["kind"]},
    )
    return server


@pytest.mark.django_db
def test_nul_characters_in_a_json_answer_are_replaced_and_noted(alice: User, answers: LocalServer) -> None:
    call = tool_call(tool=alice.tools.get(), arguments={"kind": "json"})
    assert call["ok"], call["error"]
    assert call["result"] == {"name": "a\ufffdb", "list": ["\ufffd"], "k\ufffd": 1}
    assert "\x00" not in call["response"] and call["note"] == NOTE


@pytest.mark.django_db
def test_a_raw_nul_byte_in_a_text_answer_is_replaced_and_noted(alice: User, answers: LocalServer) -> None:
    call = tool_call(tool=alice.tools.get(), arguments={"kind": "text"})
    assert call["result"] == "raw\ufffdnul" and call["response"] == "raw\ufffdnul" and call["note"] == NOTE


@pytest.mark.django_db
def test_an_unpaired_surrogate_is_replaced_and_noted(alice: User, answers: LocalServer) -> None:
    call = tool_call(tool=alice.tools.get(), arguments={"kind": "surrogate"})
    assert call["result"] == {"name": "x\ufffdy"} and "surrogate" in call["note"]


@pytest.mark.django_db
def test_a_test_call_of_such_an_answer_is_recorded(alice: User, answers: LocalServer) -> None:
    tool_test_call(tool=alice.tools.get(), arguments={"kind": "text"})
    row = ToolCall.objects.get()
    assert row.response == "raw\ufffdnul" and row.note == NOTE


# --- on the real stack ------------------------------------------------------------------------------------------


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif("127.0.0.1" not in settings.FLOWNOVA_EGRESS_ALLOWLIST, reason="the worker must reach 127.0.0.1")
@pytest.mark.parametrize("kind", ["json", "text"])
def test_a_tool_node_whose_answer_holds_nul_succeeds_and_is_stored(
    celery_worker: WorkerProcess, alice: User, answers: LocalServer, kind: str
) -> None:
    graph = graph_of(
        [
            ("start", "start", {}),
            ("call", "tool", {"tool": "answer", "arguments": {"kind": kind}, "retries": 0}),
            ("ok", "end", {"output": {"result": "{{nodes.call.result}}"}}),
            ("failed", "end", {"output": {"error": "{{nodes.call.error.message}}"}}),
        ],
        [("start", "call"), ("call", "ok", "success"), ("call", "failed", "error")],
    )
    run = wait_for(start(alice, graph))
    assert run.status == "succeeded", run.error
    expected = {"name": "a\ufffdb", "list": ["\ufffd"], "k\ufffd": 1} if kind == "json" else "raw\ufffdnul"
    assert run.output == {"result": expected}
    result = NodeRun.objects.get(run=run, node_id="call").result
    assert result is not None and result["result"] == expected
    entry = LedgerEntry.objects.get(run=run, node_id="call")
    assert entry.status == "succeeded" and entry.tool_calls[0]["note"] == NOTE
    row = ToolCall.objects.get(run=run)
    assert row.status_code == 200 and row.note == NOTE and "\x00" not in row.response
    assert RunEvent.objects.get(run=run, type="tool_call").data["result"] == expected
    json.dumps(list(LedgerEntry.objects.filter(run=run).values("output", "tool_calls")))  # the ledger reads back
