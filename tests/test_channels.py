"""The Channels layer and the WebSocket event streams, through the real Redis layer and the real ASGI app."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User
from django.test import Client
from rest_framework.authtoken.models import Token

from flownova.asgi import application
from runs.events import Event, NodeCompleted, NodeStarted, RunStarted, RunSucceeded
from runs.models import Run
from runs.writes import run_transition
from tests.factories import make_run, make_workflow

pytestmark = pytest.mark.django_db(transaction=True)


def test_group_message_round_trips_through_the_redis_layer() -> None:
    layer = get_channel_layer()
    assert layer is not None and type(layer).__name__ == "RedisChannelLayer"

    async def round_trip() -> dict[str, Any]:
        channel = await layer.new_channel()
        await layer.group_add("round-trip", channel)
        await layer.group_send("round-trip", {"type": "hello", "text": "über"})
        message = await asyncio.wait_for(layer.receive(channel), timeout=5)
        await layer.group_discard("round-trip", channel)
        return message

    assert async_to_sync(round_trip)() == {"type": "hello", "text": "über"}


def connect(
    path: str, *, token: str | None = None, origin: str | None = None, cookie: str | None = None
) -> WebsocketCommunicator:
    headers = []
    if token:
        headers.append((b"authorization", f"Token {token}".encode()))
    if origin:
        headers.append((b"origin", origin.encode()))
    if cookie:
        headers.append((b"cookie", cookie.encode()))
    return WebsocketCommunicator(application, path, headers=headers)


# An event of each type these tests send, with made-up data: what matters here is how events travel.
SAMPLE_EVENTS: dict[str, Callable[[str], Event]] = {
    "run_started": lambda node_id: RunStarted(workflow_id=None, version=1, trigger={"type": "api"}),
    "node_started": lambda node_id: NodeStarted(node_id=node_id, attempt=1),
    "node_completed": lambda node_id: NodeCompleted(
        node_id=node_id, handle=None, result={}, duration_ms=1, ledger_seq=1
    ),
    "run_succeeded": lambda node_id: RunSucceeded(output={}),
}


def emit(run: Run, type: str, node_id: str = "") -> None:
    with run_transition(run.pk) as tx:
        tx.emit(SAMPLE_EVENTS[type](node_id))


def test_owner_receives_live_events_in_order(alice: User) -> None:
    run = make_run(make_workflow(alice))
    token = Token.objects.create(user=alice).key

    async def scenario() -> list[dict[str, Any]]:
        communicator = connect(f"/ws/runs/{run.pk}/", token=token)
        connected, _ = await communicator.connect()
        assert connected
        from channels.db import database_sync_to_async

        await database_sync_to_async(emit)(run, "run_started")
        await database_sync_to_async(emit)(run, "node_started", "start")
        received = [await communicator.receive_json_from(timeout=5) for _ in range(2)]
        await communicator.disconnect()
        return received

    received = async_to_sync(scenario)()
    assert [(m["type"], m["seq"], m["node_id"]) for m in received] == [
        ("run_started", 1, None),
        ("node_started", 2, "start"),
    ]
    assert received[0]["run_id"] == run.pk
    assert set(received[0]) == {"type", "run_id", "seq", "ts", "node_id", "data"}


def test_late_client_first_receives_what_it_missed_then_live_events(alice: User) -> None:
    run = make_run(make_workflow(alice))
    token = Token.objects.create(user=alice).key
    for node in ("a", "b", "c"):
        emit(run, "node_completed", node)

    async def scenario(path: str, then_emit: bool) -> list[int]:
        communicator = connect(path, token=token)
        assert (await communicator.connect())[0]
        if then_emit:
            from channels.db import database_sync_to_async

            await database_sync_to_async(emit)(run, "run_succeeded")
        seqs = []
        while not await communicator.receive_nothing(timeout=0.3):
            seqs.append((await communicator.receive_json_from())["seq"])
        await communicator.disconnect()
        return seqs

    assert async_to_sync(scenario)(f"/ws/runs/{run.pk}/", True) == [1, 2, 3, 4]
    # Reconnecting after seq 2: only what came later, each event once.
    assert async_to_sync(scenario)(f"/ws/runs/{run.pk}/?after=2", False) == [3, 4]


def test_token_in_query_string_authenticates(alice: User) -> None:
    run = make_run(make_workflow(alice))
    token = Token.objects.create(user=alice).key

    async def scenario() -> bool:
        communicator = connect(f"/ws/runs/{run.pk}/?token={token}")
        connected, _ = await communicator.connect()
        await communicator.disconnect()
        return connected

    assert async_to_sync(scenario)() is True


@pytest.mark.parametrize("stream", ["run", "workflow"])
def test_outsider_and_anonymous_are_refused(alice: User, mallory: User, stream: str) -> None:
    workflow = make_workflow(alice)
    run = make_run(workflow)
    path = f"/ws/runs/{run.pk}/" if stream == "run" else f"/ws/workflows/{workflow.pk}/"
    mallory_token = Token.objects.create(user=mallory).key

    async def attempt(**kwargs: Any) -> tuple[bool, Any]:
        communicator = connect(path, **kwargs)
        connected, code = await communicator.connect()
        await communicator.disconnect()
        return connected, code

    assert async_to_sync(attempt)(token=mallory_token)[0] is False
    assert async_to_sync(attempt)(token="not-a-token")[0] is False
    assert async_to_sync(attempt)(origin="http://localhost")[0] is False  # no session: anonymous


def test_session_cookie_needs_an_origin_of_ours(alice: User, client: Client) -> None:
    workflow = make_workflow(alice)
    client.force_login(alice)
    cookie = f"sessionid={client.cookies['sessionid'].value}"

    async def attempt(origin: str | None) -> bool:
        communicator = connect(f"/ws/workflows/{workflow.pk}/", cookie=cookie, origin=origin)
        connected, _ = await communicator.connect()
        await communicator.disconnect()
        return connected

    assert async_to_sync(attempt)("http://localhost:8000") is True
    # A page on another site cannot ride on alice's cookie.
    assert async_to_sync(attempt)("https://evil.example") is False
    assert async_to_sync(attempt)(None) is False


def test_workflow_stream_forwards_events_of_each_run(alice: User) -> None:
    workflow = make_workflow(alice)
    first, second = make_run(workflow), make_run(workflow)
    token = Token.objects.create(user=alice).key

    async def scenario() -> list[tuple[int, str]]:
        from channels.db import database_sync_to_async

        communicator = connect(f"/ws/workflows/{workflow.pk}/", token=token)
        assert (await communicator.connect())[0]
        await database_sync_to_async(emit)(first, "run_started")
        await database_sync_to_async(emit)(second, "run_started")
        received = [await communicator.receive_json_from(timeout=5) for _ in range(2)]
        await communicator.disconnect()
        return [(m["run_id"], m["type"]) for m in received]

    assert async_to_sync(scenario)() == [(first.pk, "run_started"), (second.pk, "run_started")]


def test_event_of_a_rolled_back_transaction_is_neither_stored_nor_sent(alice: User) -> None:
    run = make_run(make_workflow(alice))
    token = Token.objects.create(user=alice).key

    def emit_then_roll_back() -> None:
        with pytest.raises(RuntimeError), run_transition(run.pk) as tx:
            tx.emit(SAMPLE_EVENTS["run_started"](""))
            raise RuntimeError("boom")

    async def scenario() -> bool:
        from channels.db import database_sync_to_async

        communicator = connect(f"/ws/runs/{run.pk}/", token=token)
        assert (await communicator.connect())[0]
        await database_sync_to_async(emit_then_roll_back)()
        nothing = await communicator.receive_nothing(timeout=0.5)
        await communicator.disconnect()
        return nothing

    assert async_to_sync(scenario)() is True
    assert run.events.count() == 0
