"""Liveness and readiness.

`/healthz` answers as long as the process serves requests. `/readyz` checks each dependency the product
needs to run a workflow (PostgreSQL, Redis, at least one Celery worker, and one consuming the I/O queue), each
under a short timeout, and answers 503 naming what is down. While the worker `bin/start` launched is still
booting (within FLOWNOVA_READYZ_STARTING_SECONDS of the time it wrote to FLOWNOVA_STARTED_AT_FILE), a worker that
does not answer yet is "starting", not down: the answer is still 503, with the status "starting", so nobody is
told to start a worker that is on its way.

Anyone may ask /readyz (load balancers and orchestrators do, without credentials), but the details of a check
(driver error texts with host names and ports, worker host names, timings) are for operators: the callers
/metrics admits (the FLOWNOVA_METRICS_TOKEN bearer token or a staff login). Everyone else gets the status of
each check, "ok" or "failing", and the HTTP status.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import redis
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from flownova import metrics
from flownova.celery import app as celery_app


def check_database() -> str:
    if connection.settings_dict["OPTIONS"].get("pool"):
        # A connection pool (the web process) says only "no connection within N s" when PostgreSQL is down, and
        # only after its own timeout: ask PostgreSQL directly instead, under readyz's timeout, to name the cause.
        params = connection.get_connection_params()
        params["connect_timeout"] = max(1, math.ceil(settings.FLOWNOVA_READYZ_TIMEOUT))
        with psycopg.connect(**params) as direct:
            direct.execute("SELECT 1")
        return "ok"
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return "ok"


def check_redis() -> str:
    timeout = settings.FLOWNOVA_READYZ_TIMEOUT
    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        client.ping()
    finally:
        client.close()
    return "ok"


class Starting(Exception):
    """A process bin/start launched moments ago has not answered yet: not ready, but not down either."""


def seconds_since_start() -> float | None:
    """Seconds since bin/start launched its processes, or None when it did not, or longer ago than the grace."""
    try:
        started = float(Path(settings.FLOWNOVA_STARTED_AT_FILE).read_text().strip())
    except (OSError, ValueError):
        return None
    elapsed = time.time() - started
    return elapsed if 0 <= elapsed < settings.FLOWNOVA_READYZ_STARTING_SECONDS else None


def check_celery() -> str:
    # limit=1: return on the first answer instead of waiting out the timeout for every worker.
    replies = celery_app.control.ping(timeout=settings.FLOWNOVA_READYZ_TIMEOUT, limit=1)
    if not replies:
        elapsed = seconds_since_start()
        if elapsed is not None:
            raise Starting(f"no Celery worker answered yet; bin/start launched one {elapsed:.0f} s ago")
        raise RuntimeError("no Celery worker answered; start one with `celery -A flownova worker`")
    return f"ok ({next(iter(replies[0]))} answered)"


class _Found(Exception):
    """Stops collecting replies once a worker consuming the queue answered."""


def check_io_queue() -> str:
    """A worker consumes the I/O queue (FLOWNOVA_IO_QUEUE): without one, agent, tool, guardrails and cognitive
    nodes would stay queued for ever while everything else runs."""
    queue = settings.FLOWNOVA_IO_QUEUE
    if not queue:
        return "ok (off: every node runs on the default queue)"
    consumers: list[str] = []

    def collect(reply: dict[str, list[dict[str, object]]]) -> None:
        for worker, queues in reply.items():
            if any(consumed.get("name") == queue for consumed in queues):
                consumers.append(worker)
                raise _Found  # the answer is known: no need to wait out the timeout for the other workers

    try:
        celery_app.control.broadcast(
            "active_queues", reply=True, timeout=settings.FLOWNOVA_READYZ_TIMEOUT, callback=collect
        )
    except _Found:
        pass
    if not consumers:
        elapsed = seconds_since_start()
        if elapsed is not None:
            raise Starting(f"no worker consumes the I/O queue {queue!r} yet; bin/start launched it {elapsed:.0f} s ago")
        raise RuntimeError(
            f"no Celery worker consumes the I/O queue {queue!r}; its nodes would wait for ever: start one with "
            f"`celery -A flownova worker -Q {queue} -P threads`"
        )
    return f"ok ({consumers[0]} consumes {queue!r})"


CHECKS: dict[str, Callable[[], str]] = {
    "database": check_database,
    "redis": check_redis,
    "celery": check_celery,
    "io_queue": check_io_queue,
}
# The checks that reach the workers through Redis.
THROUGH_REDIS = frozenset({"celery", "io_queue"})


def run_checks() -> tuple[bool, dict[str, dict[str, object]]]:
    results: dict[str, dict[str, object]] = {}
    healthy = True
    for name, check in CHECKS.items():
        started = time.monotonic()
        if name in THROUGH_REDIS and results.get("redis", {}).get("ok") is False:
            # The workers are reached through Redis: with Redis down the answer is known, and asking would
            # only add Celery's connection retries to the response time.
            results[name] = {"ok": False, "detail": "skipped: Redis is down", "ms": 0}
            healthy = False
            continue
        starting = False
        try:
            detail = check()
            ok = True
        except Starting as exc:
            detail, ok, starting = f"starting: {exc}", False, True
        except Exception as exc:  # noqa: BLE001 - any failure of a dependency means "not ready"
            detail = f"{type(exc).__name__}: {exc}".strip()
            ok = False
        healthy &= ok
        results[name] = {"ok": ok, "detail": detail, "ms": round((time.monotonic() - started) * 1000, 1)}
        if starting:
            results[name]["starting"] = True
    return healthy, results


def overall_status(healthy: bool, results: dict[str, dict[str, object]]) -> str:
    """ "ok"; "starting" when every check that fails is one of a process still booting; else "unavailable"."""
    if healthy:
        return "ok"
    failing = [result for result in results.values() if not result["ok"]]
    return "starting" if all(result.get("starting") for result in failing) else "unavailable"


def check_statuses(results: dict[str, dict[str, object]], *, details: bool) -> dict[str, dict[str, object]]:
    """Each check's "ok", "starting" or "failing", with its detail and timing only when `details`."""
    shown: dict[str, dict[str, object]] = {}
    for name, result in results.items():
        label = "ok" if result["ok"] else "starting" if result.get("starting") else "failing"
        status: dict[str, object] = {"status": label}
        shown[name] = {**status, **result} if details else status
    return shown


@never_cache
@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@never_cache
@require_safe
def readyz(request: HttpRequest) -> JsonResponse:
    healthy, results = run_checks()
    checks = check_statuses(results, details=metrics.allowed(request))
    return JsonResponse({"status": overall_status(healthy, results), "checks": checks}, status=200 if healthy else 503)
