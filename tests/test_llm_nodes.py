"""LLM nodes on the real worker, with the real LiteLLM client talking to the scripted server on loopback."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import User

from runs.models import LedgerEntry, NodeRun, RunEvent
from tests.conftest import ROOT, WorkerProcess, service_env
from tests.engine_helpers import graph_of, start, wait_for
from tests.llm_server import Answer, ScriptedLLM
from tests.tools.servers import LocalServer, Received, Reply

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def worker(celery_worker: WorkerProcess) -> WorkerProcess:
    return celery_worker


def agent_flow(**data: object) -> dict[str, Any]:
    return graph_of(
        [("start", "start", {}), ("agent", "agent", data), ("end", "end", {})],
        [("start", "agent"), ("agent", "end")],
    )


def guard_flow(**data: object) -> dict[str, Any]:
    return graph_of(
        [
            ("start", "start", {}),
            ("guard", "guardrails", data),
            ("ok", "end", {"output": {"route": "pass"}}),
            ("no", "end", {"output": {"route": "fail", "why": "{{input.guardrail_reason}}"}}),
        ],
        [("start", "guard"), ("guard", "ok", "pass"), ("guard", "no", "fail")],
    )


def test_agent_answers_with_templated_prompts_streams_tokens_and_records_usage(
    alice: User, llm_server: ScriptedLLM
) -> None:
    model = llm_server.model(
        Answer(content="Hello Ann, your order 42 ships today.", prompt_tokens=20, completion_tokens=9)
    )
    flow = agent_flow(
        model=model, system_prompt="You are support for {{input.shop}}.", user_prompt="Order {{input.order}} for Ann?"
    )
    run = wait_for(start(alice, flow, {"shop": "Acme", "order": 42}))
    assert run.status == "succeeded", run.error
    assert run.output is not None
    assert run.output["message"] == "Hello Ann, your order 42 ships today."
    assert run.output["tool_calls"] == []
    request = llm_server.requests(model)[0]
    assert request["messages"] == [
        {"role": "system", "content": "You are support for Acme."},
        {"role": "user", "content": "Order 42 for Ann?"},
    ]
    assert request["stream"] is True
    entry = LedgerEntry.objects.get(run=run, node_id="agent")
    assert entry.llm_usage == {
        "model": model,
        "calls": 1,
        "prompt_tokens": 20,
        "completion_tokens": 9,
        "total_tokens": 29,
        "cost_usd": None,
    }
    tokens = RunEvent.objects.filter(run=run, type="llm_token", node_id="agent").order_by("seq")
    assert tokens.count() > 1
    assert "".join(event.data["text"] for event in tokens) == run.output["message"]
    started = RunEvent.objects.get(run=run, type="node_started", node_id="agent").seq
    completed = RunEvent.objects.get(run=run, type="node_completed", node_id="agent").seq
    assert all(started < event.seq < completed for event in tokens)


SCHEMA = {
    "type": "object",
    "properties": {"sentiment": {"enum": ["positive", "negative"]}, "score": {"type": "number"}},
    "required": ["sentiment", "score"],
}


def test_structured_output_is_validated_and_merged(alice: User, llm_server: ScriptedLLM) -> None:
    model = llm_server.model(Answer(content='```json\n{"sentiment": "positive", "score": 0.9}\n```'))
    run = wait_for(
        start(
            alice, agent_flow(model=model, user_prompt="Rate: {{input.text}}", output_schema=SCHEMA), {"text": "great"}
        )
    )
    assert run.status == "succeeded", run.error
    assert run.output is not None
    assert run.output["sentiment"] == "positive" and run.output["score"] == 0.9
    assert "message" not in run.output
    assert llm_server.requests(model)[0]["response_format"] == {"type": "json_object"}


def test_structured_output_gets_one_repair_round(alice: User, llm_server: ScriptedLLM) -> None:
    model = llm_server.model(
        Answer(content='{"sentiment": "meh"}'), Answer(content='{"sentiment": "negative", "score": 0.1}')
    )
    run = wait_for(start(alice, agent_flow(model=model, user_prompt="Rate it", output_schema=SCHEMA)))
    assert run.status == "succeeded", run.error
    assert run.output is not None
    assert run.output["sentiment"] == "negative"
    repair = llm_server.requests(model)[1]["messages"][-1]["content"]
    assert "does not match the required JSON Schema" in repair
    assert "'meh' is not one of ['positive', 'negative']" in repair and "'score' is a required property" in repair
    usage = LedgerEntry.objects.get(run=run, node_id="agent").llm_usage
    assert usage is not None and usage["calls"] == 2


def test_structured_output_fails_clearly_after_the_repair_round(alice: User, llm_server: ScriptedLLM) -> None:
    model = llm_server.model(Answer(content="not json at all"), Answer(content='{"sentiment": "positive"}'))
    run = wait_for(start(alice, agent_flow(model=model, user_prompt="Rate it", output_schema=SCHEMA)))
    assert run.status == "failed"
    assert 'node "agent" (agent) failed' in run.error
    assert (
        "does not match output_schema after one repair" in run.error and "'score' is a required property" in run.error
    )


def test_transient_provider_errors_are_retried(alice: User, llm_server: ScriptedLLM) -> None:
    model = llm_server.model(Answer(status=503), Answer(status=429), Answer(content="third time lucky"))
    run = wait_for(start(alice, agent_flow(model=model, user_prompt="Hi")))
    assert run.status == "succeeded", run.error
    assert run.output is not None
    assert run.output["message"] == "third time lucky"
    assert len(llm_server.requests(model)) == 3


def test_a_provider_that_keeps_failing_fails_the_node_with_the_reason(alice: User, llm_server: ScriptedLLM) -> None:
    # More failures scripted than the worker's FLOWNOVA_LLM_RETRIES=2 may use: any retry layer under ours would
    # take them and show up in the count.
    model = llm_server.model(*[Answer(status=500) for _ in range(9)])
    run = wait_for(start(alice, agent_flow(model=model, user_prompt="Hi", retries=0)))
    assert run.status == "failed"
    assert "the LLM provider failed 3 times" in run.error
    assert len(llm_server.requests(model)) == 3


def test_no_provider_configured_fails_at_once_saying_what_to_set(alice: User) -> None:
    run = wait_for(start(alice, agent_flow(model="anthropic/claude-3-5-haiku-20241022", user_prompt="Hi")))
    assert run.status == "failed"
    assert "no LLM provider is configured" in run.error and "ANTHROPIC_API_KEY" in run.error


@pytest.mark.parametrize(
    ("verdict", "route"),
    [({"result": "pass", "reason": "polite"}, "pass"), ({"result": "fail", "reason": "contains an insult"}, "fail")],
)
def test_guardrails_route_on_the_verdict(
    alice: User, llm_server: ScriptedLLM, verdict: dict[str, str], route: str
) -> None:
    model = llm_server.model(Answer(content=json.dumps(verdict)))
    run = wait_for(start(alice, guard_flow(model=model, policy="No insults."), {"text": "Thanks!"}))
    assert run.status == "succeeded", run.error
    assert run.output is not None
    assert run.output["route"] == route
    guard = NodeRun.objects.get(run=run, node_id="guard")
    assert guard.result == {"guardrail_result": route, "guardrail_reason": verdict["reason"]}
    prompt = llm_server.requests(model)[0]["messages"][1]["content"]
    assert "No insults." in prompt and "Thanks!" in prompt


@pytest.mark.parametrize(
    "answers",
    [
        [Answer(content="Sure, looks fine to me")],  # not JSON
        [Answer(content='{"result": "maybe", "reason": "?"}')],  # not a strict verdict
        [Answer(content='{"result": "pass"}')],  # no reason
        [Answer(status=500), Answer(status=500), Answer(status=500)],  # the provider is down
    ],
)
def test_guardrails_fail_closed(alice: User, llm_server: ScriptedLLM, answers: list[Answer]) -> None:
    model = llm_server.model(*answers)
    run = wait_for(start(alice, guard_flow(model=model, policy="No insults.", subject="{{input.text}}"), {"text": "x"}))
    assert run.status == "succeeded", run.error
    assert run.output is not None
    assert run.output["route"] == "fail"
    assert "failing closed" in run.output["why"]


def test_the_web_process_never_imports_litellm() -> None:
    code = (
        "import sys, django; django.setup(); import flownova.asgi, flownova.urls, nodes, runs.services, "
        "runs.tasks; sys.exit('litellm' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=service_env(), capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr.decode()


def design(graph: dict[str, Any], reasoning: str = "route by amount") -> Answer:
    return Answer(content=json.dumps({"reasoning": reasoning, "graph": graph}))


GOOD_DESIGN = graph_of(
    [
        ("start", "start", {}),
        ("big", "if_else", {"left": "{{input.amount}}", "operator": ">", "right": "100"}),
        ("large", "end", {"output": {"size": "large"}}),
        ("small", "end", {"output": {"size": "small"}}),
    ],
    [("start", "big"), ("big", "large", "true"), ("big", "small", "false")],
)


def cognitive_flow(model: str, **data: object) -> dict[str, Any]:
    node = {"model": model, "instruction": "Classify the order {{input.order_id}} by amount.", **data}
    return graph_of(
        [("start", "start", {}), ("think", "cognitive", node), ("end", "end", {})],
        [("start", "think"), ("think", "end")],
    )


def test_cognitive_node_runs_its_generated_workflow_as_a_child_run(alice: User, llm_server: ScriptedLLM) -> None:
    from runs.models import Run

    model = llm_server.model(design(GOOD_DESIGN))
    run = wait_for(start(alice, cognitive_flow(model), {"order_id": 7, "amount": 250}))
    assert run.status == "succeeded", run.error
    assert run.output is not None
    child = Run.objects.get(parent=run)
    assert child.status == "succeeded" and child.parent_node_id == "think" and child.owner == alice
    assert [e.node_id for e in LedgerEntry.objects.filter(run=child).order_by("seq")] == ["start", "big", "large"]
    assert run.output["size"] == "large"
    cognitive = run.output["cognitive"]
    assert cognitive["reasoning"] == "route by amount"
    assert [node["id"] for node in cognitive["graph"]["nodes"]] == ["start", "big", "large", "small"]
    assert cognitive["output"] == {"size": "large"} and cognitive["run_id"] == child.pk
    statuses = list(
        LedgerEntry.objects.filter(run=run, node_id="think").order_by("seq").values_list("status", flat=True)
    )
    assert statuses == ["waiting", "succeeded"]
    assert RunEvent.objects.filter(run=run, type="child_run_started", data__child_run_id=child.pk).exists()
    # The model was given the data as data, and the instruction rendered.
    user_message = llm_server.requests(model)[0]["messages"][1]["content"]
    assert "Classify the order 7 by amount." in user_message and '"amount": 250' in user_message


def test_a_generated_workflow_may_route_with_a_switch_and_reshape_with_a_transform(
    alice: User, llm_server: ScriptedLLM
) -> None:
    from runs.models import Run

    big = {"id": "big", "operator": ">", "right": "100"}
    graph = graph_of(
        [
            ("start", "start", {}),
            ("size", "switch", {"value": "{{input.amount}}", "cases": [big]}),
            ("label", "transform", {"expression": '{"size": "large", "cents": input.amount * 100}'}),
            ("large", "end", {}),
            ("small", "end", {"output": {"size": "small"}}),
        ],
        [("start", "size"), ("size", "label", "big"), ("size", "small", "default"), ("label", "large")],
    )
    model = llm_server.model(design(graph))
    run = wait_for(start(alice, cognitive_flow(model), {"order_id": 7, "amount": 250}))
    assert run.status == "succeeded", run.error
    assert run.output is not None and run.output["size"] == "large" and run.output["cents"] == 25000
    child = Run.objects.get(parent=run)
    assert [e.node_id for e in LedgerEntry.objects.filter(run=child).order_by("seq")] == [
        "start",
        "size",
        "label",
        "large",
    ]
    system = llm_server.requests(model)[0]["messages"][0]["content"]
    assert "- switch:" in system and "- transform:" in system and 'sourceHandle "error"' in system


def test_cognitive_node_repairs_a_design_once(alice: User, llm_server: ScriptedLLM) -> None:
    cyclic = graph_of(
        [("start", "start", {}), ("a", "fork", {}), ("b", "fork", {}), ("end", "end", {})],
        [("start", "a"), ("a", "b"), ("b", "a"), ("b", "end")],
    )
    model = llm_server.model(design(cyclic), design(GOOD_DESIGN))
    run = wait_for(start(alice, cognitive_flow(model), {"order_id": 1, "amount": 5}))
    assert run.status == "succeeded", run.error
    assert run.output is not None
    assert run.output["size"] == "small"
    repair = llm_server.requests(model)[1]["messages"][-1]["content"]
    assert "cycle" in repair


def wide_design(count: int) -> dict[str, Any]:
    ids = ["start", *[f"n{i}" for i in range(count - 2)], "end"]
    kinds = ["start", *["fork"] * (count - 2), "end"]
    return graph_of(list(zip(ids, kinds, [{}] * count, strict=True)), [(ids[i], ids[i + 1]) for i in range(count - 1)])


@pytest.mark.parametrize(
    ("bad", "problem"),
    [
        (
            graph_of(
                [("start", "start", {}), ("a", "fork", {}), ("end", "end", {})],
                [("start", "a"), ("a", "end"), ("end", "a")],
            ),
            "cycle",
        ),
        (wide_design(25), "the workflow has 25 nodes; at most 10 are allowed"),
        (
            graph_of(
                [
                    ("start", "start", {}),
                    ("pay", "tool", {"tool": "wire_money", "arguments": {}}),
                    ("end", "end", {}),
                    ("err", "end", {}),
                ],
                [("start", "pay"), ("pay", "end", "success"), ("pay", "err", "error")],
            ),
            "tool(s) wire_money are not allowed",
        ),
        (
            graph_of(
                [("start", "start", {}), ("again", "cognitive", {"instruction": "more"}), ("end", "end", {})],
                [("start", "again"), ("again", "end")],
            ),
            "type 'cognitive' is not allowed here",
        ),
        (
            graph_of(
                [("start", "start", {}), ("ok", "user_approval", {}), ("end", "end", {}), ("no", "end", {})],
                [("start", "ok"), ("ok", "end", "approved"), ("ok", "no", "rejected")],
            ),
            "type 'user_approval' is not allowed here",
        ),
    ],
    ids=["cycle", "25-nodes", "forbidden-tool", "nested-cognitive", "approval"],
)
def test_cognitive_node_refuses_a_design_it_may_not_run(
    alice: User, llm_server: ScriptedLLM, bad: dict[str, Any], problem: str
) -> None:
    from runs.models import Run

    model = llm_server.model(design(bad), design(bad))
    run = wait_for(start(alice, cognitive_flow(model, tools=["lookup"]), {"order_id": 3}))
    assert run.status == "failed"
    assert "the generated workflow is not valid after one repair" in run.error and problem in run.error
    assert problem in llm_server.requests(model)[1]["messages"][-1]["content"]
    assert not Run.objects.filter(parent=run).exists()


def test_a_failing_generated_workflow_fails_the_cognitive_node_with_its_error(
    alice: User, llm_server: ScriptedLLM
) -> None:
    broken = graph_of(
        [
            ("start", "start", {}),
            ("check", "if_else", {"left": "{{input.missing}}", "operator": "is_empty"}),
            ("a", "end", {}),
            ("b", "end", {}),
        ],
        [("start", "check"), ("check", "a", "true"), ("check", "b", "false")],
    )
    model = llm_server.model(design(broken))
    run = wait_for(start(alice, cognitive_flow(model), {"order_id": 9}))
    assert run.status == "failed"
    assert 'node "think" (cognitive) failed: the generated workflow (run' in run.error
    assert "input.missing" in run.error


@pytest.fixture
def inventory(alice: User) -> Iterator[LocalServer]:
    """A real HTTP tool on loopback: stock levels by product, and a price list."""
    from tools.services import tool_create

    def respond(request: Received, count: int) -> Reply:
        if "/stock/" in request.path:
            product = request.path.rsplit("/", 1)[-1]
            return Reply(body={"product": product, "stock": {"apple": 3, "pear": 0}.get(product, 0)})
        return Reply(body={"apple": 1.5, "pear": 2.0})

    server = LocalServer(respond)
    tool_create(
        owner=alice,
        name="stock",
        description="Units in stock for a product.",
        url=f"{server.url}/stock/{{product}}",
        parameters={"type": "object", "properties": {"product": {"type": "string"}}, "required": ["product"]},
    )
    tool_create(
        owner=alice,
        name="prices",
        description="The price list.",
        url=f"{server.url}/prices",
        parameters={"type": "object", "properties": {}},
    )
    yield server
    server.close()


def test_agent_calls_tools_over_two_rounds_and_records_every_call(
    alice: User, llm_server: ScriptedLLM, inventory: LocalServer
) -> None:
    model = llm_server.model(
        # Round 1: two tools at once; the second call breaks the schema and must not reach the server.
        Answer(tool_calls=[("stock", {"product": "apple"}), ("stock", {"sku": 7})]),
        # Round 2: the model corrects itself and asks for the prices.
        Answer(tool_calls=[("stock", {"product": "pear"}), ("prices", {})]),
        Answer(content="Apples: 3 in stock at 1.5; pears are sold out."),
    )
    flow = agent_flow(model=model, user_prompt="What can I buy?", tools=["stock", "prices"])
    run = wait_for(start(alice, flow))
    assert run.status == "succeeded", run.error
    assert run.output is not None
    assert run.output["message"] == "Apples: 3 in stock at 1.5; pears are sold out."
    calls = run.output["tool_calls"]
    assert [(c["tool"], c["arguments"]) for c in calls] == [
        ("stock", {"product": "apple"}),
        ("stock", {"sku": 7}),
        ("stock", {"product": "pear"}),
        ("prices", {}),
    ]
    assert calls[0]["result"] == {"product": "apple", "stock": 3} and calls[0]["status_code"] == 200
    assert "invalid arguments" in calls[1]["error"] and "'product' is a required property" in calls[1]["error"]
    assert [r.path for r in inventory.received] == ["/stock/apple", "/stock/pear", "/prices"]
    # The model saw each result (or error) as the tool's answer, matched to its call.
    third = llm_server.requests(model)[2]["messages"]
    tool_messages = [m for m in third if m["role"] == "tool"]
    assert [m["tool_call_id"] for m in tool_messages] == ["call_0", "call_1", "call_0", "call_1"]
    assert "required property" in tool_messages[1]["content"] and '"stock": 0' in tool_messages[2]["content"]
    # Offered with their JSON Schema parameters.
    offered = llm_server.requests(model)[0]["tools"]
    assert offered[0]["function"]["name"] == "stock" and offered[0]["function"]["parameters"]["required"] == ["product"]
    from tools.models import ToolCall

    assert ToolCall.objects.filter(run=run, node_id="agent").count() == 4
    assert len(LedgerEntry.objects.get(run=run, node_id="agent").tool_calls) == 4
    assert RunEvent.objects.filter(run=run, type="tool_call", node_id="agent").count() == 4


def test_agent_with_an_unknown_tool_fails_naming_it(alice: User, llm_server: ScriptedLLM) -> None:
    model = llm_server.model(Answer(content="unused"))
    run = wait_for(start(alice, agent_flow(model=model, user_prompt="Hi", tools=["teleport"])))
    assert run.status == "failed" and "unknown tool(s) teleport" in run.error


def test_streamed_tokens_reach_a_websocket_client(alice: User, llm_server: ScriptedLLM) -> None:
    from asgiref.sync import async_to_sync
    from channels.testing import WebsocketCommunicator
    from rest_framework.authtoken.models import Token

    from flownova.asgi import application

    text = "Streaming works, piece by piece, to the browser."
    model = llm_server.model(Answer(content=text))
    token = Token.objects.create(user=alice).key
    run = start(alice, agent_flow(model=model, user_prompt="Talk"))

    async def listen() -> list[dict[str, Any]]:
        communicator = WebsocketCommunicator(application, f"/ws/runs/{run.pk}/?token={token}")
        assert (await communicator.connect())[0]
        messages: list[dict[str, Any]] = []
        while not messages or messages[-1]["type"] not in ("run_succeeded", "run_failed"):
            messages.append(await communicator.receive_json_from(timeout=20))
        await communicator.disconnect()
        return messages

    messages = async_to_sync(listen)()
    assert messages[-1]["type"] == "run_succeeded"
    assert [m["seq"] for m in messages] == list(range(1, len(messages) + 1))
    tokens = [m for m in messages if m["type"] == "llm_token"]
    assert len(tokens) > 1 and "".join(m["data"]["text"] for m in tokens) == text
    assert {m["node_id"] for m in tokens} == {"agent"}


def test_the_parent_run_stream_carries_its_child_runs_events_linked_to_the_node(
    alice: User, llm_server: ScriptedLLM
) -> None:
    from asgiref.sync import async_to_sync
    from channels.testing import WebsocketCommunicator
    from rest_framework.authtoken.models import Token

    from flownova.asgi import application
    from runs.models import Run

    model = llm_server.model(design(GOOD_DESIGN))
    run = wait_for(start(alice, cognitive_flow(model), {"order_id": 2, "amount": 500}))
    child = Run.objects.get(parent=run)
    token = Token.objects.create(user=alice).key

    async def read_all() -> list[dict[str, Any]]:
        communicator = WebsocketCommunicator(application, f"/ws/runs/{run.pk}/?token={token}")
        assert (await communicator.connect())[0]
        received: list[dict[str, Any]] = []
        while not await communicator.receive_nothing(timeout=0.3):
            received.append(await communicator.receive_json_from())
        await communicator.disconnect()
        return received

    received = async_to_sync(read_all)()
    own = [m for m in received if m["run_id"] == run.pk]
    children = [m for m in received if m["run_id"] == child.pk]
    assert [m["seq"] for m in own] == list(range(1, len(own) + 1))
    assert [m["seq"] for m in children] == list(range(1, len(children) + 1))
    assert {(m["parent_run_id"], m["parent_node_id"]) for m in children} == {(run.pk, "think")}
    assert ("node_completed", "big") in {(m["type"], m["node_id"]) for m in children}


def test_the_cost_of_a_model_litellm_knows_is_recorded(alice: User, llm_server: ScriptedLLM) -> None:
    model = llm_server.named("openai/gpt-4o-mini", Answer(content="priced", prompt_tokens=1000, completion_tokens=500))
    run = wait_for(start(alice, agent_flow(model=model, user_prompt="Hi")))
    assert run.status == "succeeded", run.error
    usage = LedgerEntry.objects.get(run=run, node_id="agent").llm_usage
    assert usage is not None and usage["prompt_tokens"] == 1000 and usage["completion_tokens"] == 500
    assert isinstance(usage["cost_usd"], float) and 0 < usage["cost_usd"] < 0.01
