"""The Celery application. Production-safe defaults live in settings (CELERY_* names)."""

from __future__ import annotations

import gc
import os
import socket

from celery import Celery
from celery.signals import task_postrun, task_prerun, worker_init

from flownova import reliances

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "flownova.settings")

# A Redis channel whose transport was detached raises a connection error instead of stopping the worker
# (docs/decisions/0001; the reliance and its version check are in flownova.reliances).
reliances.guard_detached_redis_channels()

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


@task_postrun.connect
def release_pooled_connection(**kwargs: object) -> None:
    """With a pool of connections (the I/O worker's threads), give the task's connection back as soon as the task
    ends, not when its thread runs the next one."""
    from flownova.deadline import release_connection

    release_connection()


@app.task(name="flownova.ping", ignore_result=False, acks_late=False)
def ping(payload: str = "pong") -> dict[str, object]:
    """A task that proves a worker consumes from the broker; used by tests and by operators."""
    return {"payload": payload, "hostname": socket.gethostname(), "pid": os.getpid()}


@worker_init.connect
def load_llm_client(**kwargs: object) -> None:
    """Import LiteLLM (about 3 s) once in the worker's main process, before the pool forks, so no node pays
    for it and the web process never does. Then set aside what the imports made from the garbage collector."""
    import runs.llm  # noqa: F401

    freeze_imported_objects()


def freeze_imported_objects() -> None:
    """Move every object alive now (modules, classes, Django's and LiteLLM's tables: hundreds of thousands) out
    of the garbage collector's reach. A full collection walks them all: about 120 ms here for Django alone, a
    pause of every node in the process each time one runs. In the pool's parent, before it forks, this also
    keeps the collector from writing to the pages the processes share."""
    gc.collect()
    gc.freeze()
