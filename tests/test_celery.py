"""The Celery app: production-safe settings, and a task that really runs on a real worker."""

from __future__ import annotations

import gc

import pytest
from django.conf import settings

from flownova.celery import app, load_llm_client, ping
from tests.conftest import WorkerProcess


def test_celery_defaults_are_production_safe() -> None:
    conf = app.conf
    assert conf.task_serializer == "json"
    assert conf.accept_content == ["json"]
    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 1
    assert conf.task_time_limit and conf.task_soft_time_limit
    assert conf.task_soft_time_limit < conf.task_time_limit
    # A message unacknowledged for longer than this is redelivered: it must outlast the longest task.
    assert conf.broker_transport_options["visibility_timeout"] > conf.task_time_limit
    assert conf.broker_url == settings.REDIS_URL


@pytest.mark.worker
def test_task_runs_on_the_real_worker(celery_worker: WorkerProcess) -> None:
    result = ping.delay("hello")
    answer = result.get(timeout=20)
    assert answer["payload"] == "hello"
    # Executed by a pool process of the worker the suite started, not in this process.
    assert answer["pid"] != __import__("os").getpid()
    assert result.status == "SUCCESS"


@pytest.mark.worker
def test_worker_answers_control_ping(celery_worker: WorkerProcess) -> None:
    replies = app.control.ping(destination=[celery_worker.hostname], timeout=2)
    assert replies == [{celery_worker.hostname: {"ok": "pong"}}]


def test_a_worker_started_without_queues_never_consumes_the_queues_it_sends_to() -> None:
    """The default worker (no -Q) sends I/O nodes to the I/O queue: Celery creates that queue in the app's
    routing table, but a worker consumes the queues it had when it started (its default set is a copy), also
    after a reconnection to the broker."""
    from celery import Celery

    probe = Celery("queues-probe", set_as_current=False)
    queues = probe.amqp.queues
    started_with = set(queues.consume_from)
    queues["io"]  # what sending a task to the I/O queue does to the app's routing table
    assert "io" in queues
    assert set(queues.consume_from) == started_with == {"celery"}


def test_the_worker_sets_its_imports_aside_from_the_garbage_collector_before_the_pool_forks() -> None:
    # A full collection walked every module's objects (about 120 ms for Django's alone), pausing the node.
    gc.unfreeze()
    try:
        load_llm_client()
        assert gc.get_freeze_count() > 50_000
    finally:
        gc.unfreeze()
