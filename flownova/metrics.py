"""Prometheus metrics, shared across processes.

Web and worker processes each count what they do; with PROMETHEUS_MULTIPROC_DIR set (bin/start, docker
compose and the test suite set it), prometheus_client's multiprocess mode writes every process's values to
that folder and `/metrics` adds them up, so a counter incremented in a Celery pool process is visible from
the web process. Without it (a single `runserver`, say) each process has its own registry.

Observations are made after the transaction that caused them commits (see `observe_after_commit`), so a
rolled-back transition counts nothing.

Gauges read from the database at scrape time belong to the app that owns the data, which registers them
here (`register_scrape_collector`, from its AppConfig.ready): like every shared module of flownova, this one
imports no app.

`/metrics` is protected: with FLOWNOVA_METRICS_TOKEN set it answers `Authorization: Bearer <token>` (what
Prometheus sends); a signed-in staff user may always read it.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.registry import Collector

RUNS_STARTED = Counter("flownova_runs_started_total", "Runs started")
RUNS_FINISHED = Counter("flownova_runs_finished_total", "Runs that ended, by final status", ["status"])
NODE_EXECUTIONS = Counter(
    "flownova_node_executions_total", "Node executions recorded in the ledger, by type and status", ["type", "status"]
)
NODE_DURATION = Histogram(
    "flownova_node_duration_seconds",
    "Node execution time (ledger duration), by type",
    ["type"],
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300),
)
QUEUE_WAIT = Histogram(
    "flownova_queue_wait_seconds",
    "Time from a node being queued to a worker starting it",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30),
)
LLM_TOKENS = Counter(
    "flownova_llm_tokens_total", "LLM tokens, by model and kind (prompt, completion)", ["model", "kind"]
)
LLM_COST = Counter("flownova_llm_cost_usd_total", "LLM cost in USD where LiteLLM knows the price, by model", ["model"])
TOOL_CALLS = Counter("flownova_tool_calls_total", "Outbound tool calls, by tool and outcome", ["tool", "outcome"])
TRIGGER_FIRINGS = Counter(
    "flownova_trigger_firings_total", "Trigger firings, by trigger type and outcome", ["type", "outcome"]
)
WEBHOOK_CALLS = Counter("flownova_webhook_calls_total", "Webhook calls answered, by status code", ["status"])
WEBSOCKETS = Gauge("flownova_websocket_connections", "Open WebSocket connections", multiprocess_mode="livesum")


def observe_after_commit(observe: Callable[[], None]) -> None:
    transaction.on_commit(observe)


def node_recorded(*, node_type: str, status: str, duration_ms: int | None) -> None:
    NODE_EXECUTIONS.labels(node_type, status).inc()
    if duration_ms is not None:
        NODE_DURATION.labels(node_type).observe(duration_ms / 1000)


def llm_used(usage: dict[str, Any] | None) -> None:
    if not usage:
        return
    model = str(usage.get("model", "unknown"))
    LLM_TOKENS.labels(model, "prompt").inc(usage.get("prompt_tokens") or 0)
    LLM_TOKENS.labels(model, "completion").inc(usage.get("completion_tokens") or 0)
    if usage.get("cost_usd"):
        LLM_COST.labels(model).inc(usage["cost_usd"])


def tool_called(calls: list[dict[str, Any]]) -> None:
    for call in calls:
        outcome = "error" if call.get("error") else "ok"
        TOOL_CALLS.labels(str(call.get("tool", "")), outcome).inc()


# Collectors added to every scrape, by name (an app registering again replaces its own).
_SCRAPE_COLLECTORS: dict[str, Collector] = {}


def register_scrape_collector(name: str, collector: Collector) -> None:
    """Add `collector` to every scrape of /metrics: for values read at scrape time (from the database, say),
    which no single process could keep right."""
    _SCRAPE_COLLECTORS[name] = collector


def registry() -> CollectorRegistry:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        collected = CollectorRegistry()
        multiprocess.MultiProcessCollector(collected)  # type: ignore[no-untyped-call]  # unannotated upstream
    else:
        from prometheus_client import REGISTRY

        collected = CollectorRegistry()
        collected.register(_Delegate(REGISTRY))
    for collector in _SCRAPE_COLLECTORS.values():
        collected.register(collector)
    return collected


class _Delegate:
    def __init__(self, inner: CollectorRegistry) -> None:
        self.inner = inner

    def collect(self) -> Any:
        return self.inner.collect()


def allowed(request: HttpRequest) -> bool:
    token = settings.FLOWNOVA_METRICS_TOKEN
    header = request.headers.get("Authorization", "")
    # Compared as bytes: compare_digest refuses str with non-ASCII characters (a TypeError, so a 500).
    if token and header.startswith("Bearer ") and hmac.compare_digest(header[7:].strip().encode(), token.encode()):
        return True
    user = getattr(request, "user", None)
    return bool(user and user.is_authenticated and user.is_staff)


def metrics_view(request: HttpRequest) -> HttpResponse:
    if not allowed(request):
        response = HttpResponse("metrics need a bearer token (FLOWNOVA_METRICS_TOKEN) or a staff login\n", status=401)
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(generate_latest(registry()), content_type=CONTENT_TYPE_LATEST)


def process_exited(pid: int) -> None:
    """Called for a worker pool process that ended, so its live gauges stop counting."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]  # unannotated upstream
