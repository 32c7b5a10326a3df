"""A broker outage is survived: Redis stops under a worker that has tasks in hand and comes back on the same
address; the worker's main process stays up, reconnects and works again.

The Redis here is a private redis-server on a free loopback port, so stopping it disturbs nobody else."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery, current_app
from django.contrib.auth.models import User
from kombu import Connection, Consumer, Exchange, Queue
from kombu import exceptions as kombu_errors
from kombu.common import ignore_errors
from kombu.transport.redis import Channel as RedisChannel

from flownova.celery import app as flownova_app
from runs.models import NodeRun
from tests.conftest import LOG_DIR, ROOT, free_port, service_env, start_worker, stop_process
from tests.engine_helpers import graph_of


class PrivateRedis:
    """A redis-server of this test's own, that it may stop and start again on the same port."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.folder = folder
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> None:
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly"]
        command += ["no", "--dir", str(self.folder)]
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        with (LOG_DIR / f"redis-{self.port}.log").open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        client = redis.Redis.from_url(self.url, socket_timeout=1)
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    client.ping()
                    return
                except redis.ConnectionError:
                    assert time.monotonic() < deadline, f"redis-server did not answer on port {self.port}"
                    time.sleep(0.05)
        finally:
            client.close()

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
            self.process = None


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.stop()


def test_the_worker_retries_the_broker_forever() -> None:
    conf = flownova_app.conf
    assert conf.broker_connection_retry is True
    assert conf.broker_connection_retry_on_startup is True
    assert conf.broker_connection_max_retries is None  # the default (100) gives up after about 45 minutes
    assert conf.broker_transport_options["socket_timeout"] > 1  # longer than the worker's blocking BRPOP


def test_closing_a_task_channel_left_open_by_a_failed_collect_does_not_crash(private_redis: PrivateRedis) -> None:
    """What the worker's consumer does when it loses Redis, step by step (Consumer.on_connection_error_after_
    connected: collect the connection, then close it), with the state it is in under load: a task in hand
    (unacknowledged), a BRPOP waiting for the next one, and the remote-control channel's broadcast queue.
    Closing used to raise AttributeError("'NoneType' object has no attribute 'hostname'") from the task
    channel's restore_unacked, which stopped the worker ("Unrecoverable error")."""
    connection = Connection(private_redis.url)
    tasks = Queue("outage-tasks", Exchange("outage-tasks"), "outage-tasks")
    in_hand: list[object] = []
    channel = connection.default_channel
    assert isinstance(channel, RedisChannel)
    Consumer(channel, [tasks], callbacks=[lambda body, message: in_hand.append(message)], accept=["json"]).consume()
    control = connection.channel()
    broadcast = Queue("outage.pidbox", Exchange("outage.pidbox", type="fanout"), auto_delete=True)
    Consumer(control, [broadcast], callbacks=[lambda body, message: None], no_ack=True, accept=["json"]).consume()
    with connection.Producer() as producer:
        producer.publish({"task": 1}, exchange=tasks.exchange, routing_key="outage-tasks", declare=[tasks])
    deadline = time.monotonic() + 5
    while not in_hand:
        assert time.monotonic() < deadline, "the message was not delivered"
        try:
            connection.drain_events(timeout=0.2)
        except TimeoutError:
            pass
    internals: Any = channel  # the transport's poll state, which kombu's type stubs leave out
    internals._brpop_start()  # the next BRPOP, as the worker's event loop issues while it can take more work
    assert channel.qos._delivered and internals._in_poll

    private_redis.stop()
    try:
        connection.collect(socket_timeout=2)
    except Exception:  # noqa: BLE001 - the consumer ignores any error here too
        pass
    assert not channel.closed  # collect stopped before the task channel: the state that crashed the worker
    ignore_errors(connection, connection.close)  # raised AttributeError before the guard


def answers(control: Celery, hostname: str) -> bool:
    """Whether the worker answers a ping, over a new connection (a pooled one may be from before a restart)."""
    try:
        with control.connection_for_write() as connection:
            return bool(control.control.ping(destination=[hostname], timeout=0.5, connection=connection))
    except (redis.ConnectionError, OSError, kombu_errors.OperationalError):
        return False


def run_workflow(env: dict[str, str], document: Path, user: str) -> subprocess.Popen[bytes]:
    """`manage.py run_workflow`: starts a run on the workers of `env`'s broker and follows it to its end."""
    command = [sys.executable, "manage.py", "run_workflow", str(document), "--user", user, "--timeout", "60"]
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


@pytest.mark.django_db(transaction=True)
def test_the_worker_survives_a_redis_restart_with_tasks_in_hand(
    private_redis: PrivateRedis, alice: User, tmp_path: Path
) -> None:
    env = service_env(FLOWNOVA_TEST_REDIS_URL=private_redis.url)
    # Not the current app: shared tasks (the engine's) would then be sent to this private broker by every later
    # test of the session.
    control = Celery("outage-probe", broker=private_redis.url, backend=private_redis.url, set_as_current=False)
    worker = start_worker(env, control=control)
    busy: subprocess.Popen[bytes] | None = None
    try:
        sleepers = [(f"s{i}", "test_sleep", {"seconds": 2}) for i in range(4)]
        graph = graph_of(
            [("start", "start", {}), ("fork", "fork", {}), *sleepers, ("join", "join", {}), ("end", "end", {})],
            [("start", "fork")]
            + [("fork", s) for s, _, _ in sleepers]
            + [(s, "join") for s, _, _ in sleepers]
            + [("join", "end")],
        )
        document = tmp_path / "busy.json"
        document.write_text(json.dumps({"name": "busy", "graph": graph}))
        busy = run_workflow(env, document, alice.username)
        deadline = time.monotonic() + 20
        while NodeRun.objects.filter(run__workflow__name="busy", status="running").count() < 2:
            assert time.monotonic() < deadline, "the worker did not take the run's nodes"
            time.sleep(0.05)

        private_redis.stop()  # with both pool processes in the middle of a node
        time.sleep(3)
        assert worker.process.poll() is None, worker.log()
        private_redis.start()

        deadline = time.monotonic() + 20
        while not answers(control, worker.hostname):
            assert worker.process.poll() is None, worker.log()
            assert time.monotonic() < deadline, f"the worker did not reconnect:\n{worker.log()}"
        # And it works again: a task sent now is executed and its result stored.
        result = control.send_task("flownova.ping", ("after the outage",))
        assert result.get(timeout=10)["payload"] == "after the outage"
        assert worker.process.poll() is None
        assert "Unrecoverable error" not in worker.log()
    finally:
        if busy is not None:
            stop_process(busy)
        stop_process(worker.process)
        control.close()
    assert current_app.main == flownova_app.main
