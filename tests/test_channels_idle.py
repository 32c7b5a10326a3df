"""A live view that sits idle stays open: a WebSocket over daphne watching a run that waits for an approval
still receives the decision and the end of the run after half a minute of silence."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from channels_redis.core import RedisChannelLayer  # type: ignore[import-untyped]
from django.contrib.auth.models import User
from rest_framework.authtoken.models import Token

from approvals.models import ApprovalRequest
from approvals.services import approval_decide
from runs.models import RunEvent
from runs.writes import publisher
from tests.conftest import ServerProcess, WorkerProcess, service_env, start_daphne, stop_process
from tests.engine_helpers import graph_of, start, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

IDLE_SECONDS = 30.0

ASK = graph_of(
    [("start", "start", {}), ("ask", "user_approval", {"message": "Ship it?"}), ("yes", "end", {}), ("no", "end", {})],
    [("start", "ask"), ("ask", "yes", "approved"), ("ask", "no", "rejected")],
)


def test_the_layer_reads_longer_than_its_blocking_pop_waits() -> None:
    """channels-redis blocks on BZPOPMIN for `brpop_timeout` seconds in every consumer's receive loop; a
    client read timeout no longer than that fails the idle read (TimeoutError, the consumer dies, 1011)."""
    layer = get_channel_layer()
    assert isinstance(layer, RedisChannelLayer)
    connection = layer.create_pool(0).make_connection()  # not connected: only its settings are read
    assert connection.socket_timeout is not None
    assert connection.socket_timeout >= layer.brpop_timeout + 5
    assert connection.health_check_interval > 0


@pytest.fixture
def server() -> Iterator[ServerProcess]:
    process = start_daphne(service_env())
    yield process
    stop_process(process.process)


async def next_event(ws: aiohttp.ClientWebSocketResponse, timeout: float) -> dict[str, Any]:
    message = await ws.receive(timeout=timeout)
    assert message.type == aiohttp.WSMsgType.TEXT, f"socket ended: {message.type!r} {ws.close_code} {message.extra}"
    return message.json()


@pytest.mark.worker
def test_an_idle_run_socket_stays_open_and_receives_the_decision_and_the_end(
    celery_worker: WorkerProcess, server: ServerProcess, alice: User
) -> None:
    run = wait_for(start(alice, ASK), "waiting")
    approval = ApprovalRequest.objects.get(run=run)
    stored = RunEvent.objects.filter(run=run).count()
    token = Token.objects.create(user=alice).key
    url = f"{server.base_url.replace('http', 'ws', 1)}/ws/runs/{run.pk}/?token={token}"

    def decide() -> None:
        approval_decide(approval_id=approval.pk, user=alice, decision="approved")
        publisher.flush()

    async def scenario() -> list[str]:
        async with aiohttp.ClientSession() as session, session.ws_connect(url, autoping=True) as ws:
            # First the stored events, up to the run waiting for the approval.
            for _ in range(stored):
                await next_event(ws, timeout=10)
            # Nothing happens on the run for half a minute: the socket must neither end nor receive anything.
            idle_until = time.monotonic() + IDLE_SECONDS
            while (left := idle_until - time.monotonic()) > 0:
                try:
                    # Not receive(timeout=...): daphne's pings (every 20 s) would restart that timeout.
                    message = await asyncio.wait_for(ws.receive(), timeout=left)
                except TimeoutError:
                    break
                raise AssertionError(
                    f"after {IDLE_SECONDS - (idle_until - time.monotonic()):.1f}s idle the socket got {message.type!r} "
                    f"(close code {ws.close_code}, {message.data!r})"
                )
            await asyncio.get_running_loop().run_in_executor(None, decide)
            live: list[str] = []
            while not live or live[-1] != "run_succeeded":
                live.append((await next_event(ws, timeout=10))["type"])
            return live

    live = async_to_sync(scenario)()
    assert "approval_decided" in live and live[-1] == "run_succeeded"
    log = server.log_path.read_text(errors="replace")
    assert "Timeout reading from" not in log
