"""The Celery application. Production-safe defaults live in settings (CELERY_* names)."""

from __future__ import annotations

import functools
import os
import socket
from typing import Any

import kombu
import redis
from celery import Celery
from celery.signals import task_prerun, worker_init
from kombu.transport import redis as kombu_redis

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "flownova.settings")

# The last kombu this guard was checked against; a newer one runs unguarded until tests/test_outages.py shows
# whether it still needs it.
KOMBU_DETACHED_CHANNEL_GUARD_UNTIL = (5, 7)


def guard_detached_redis_channels() -> bool:
    """Make a Redis channel whose connection was already torn down fail with a connection error, which the
    worker expects and recovers from, instead of an AttributeError, which stops its main process.

    When the worker loses Redis, Celery collects the broker connection and then closes it. Collecting stops at
    the first channel whose close fails (the remote-control channel deletes its queue, and Redis is gone),
    which can leave the task channel open with unacknowledged messages, and it detaches the transport from its
    connection. Closing that channel then restores the messages through a new pool, built from the detached
    connection's address: AttributeError("'NoneType' object has no attribute 'hostname'"), an "Unrecoverable
    error", and the worker exits. Redis is down at that point, so the restore could not succeed anyway; the
    messages stay in Redis's unacked set for redelivery, and the recovery sweep re-sends lost node tasks.
    """
    if tuple(kombu.VERSION[:2]) > KOMBU_DETACHED_CHANNEL_GUARD_UNTIL:
        return False
    original = kombu_redis.Channel._connparams
    if getattr(original, "flownova_guard", False):
        return True

    @functools.wraps(original)
    def connparams(self: Any, asynchronous: bool = False) -> dict[str, Any]:
        if self.connection is None or self.connection.client is None:
            raise redis.ConnectionError("the broker connection of this channel was closed")
        return original(self, asynchronous=asynchronous)

    connparams.flownova_guard = True  # type: ignore[attr-defined]
    kombu_redis.Channel._connparams = connparams
    return True


guard_detached_redis_channels()

app = Celery("flownova")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Celery's Django fix-up closes every database connection before and after each task unless
# CELERY_DB_REUSE_MAX is set, so every node execution paid for a new PostgreSQL connection (a third of a
# node's cost). Connections are managed the way Django manages them per request instead: before each task,
# close_old_connections() drops one that is broken or older than CONN_MAX_AGE and keeps the rest.
app.conf.CELERY_DB_REUSE_MAX = 2**62


@task_prerun.connect
def close_old_database_connections(**kwargs: object) -> None:
    from django.db import close_old_connections

    close_old_connections()


@app.task(name="flownova.ping", ignore_result=False, acks_late=False)
def ping(payload: str = "pong") -> dict[str, object]:
    """A task that proves a worker consumes from the broker; used by tests and by operators."""
    return {"payload": payload, "hostname": socket.gethostname(), "pid": os.getpid()}


@worker_init.connect
def load_llm_client(**kwargs: object) -> None:
    """Import LiteLLM (about 3 s) once in the worker's main process, before the pool forks, so no node pays
    for it and the web process never does."""
    import runs.llm  # noqa: F401
