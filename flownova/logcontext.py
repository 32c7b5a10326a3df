"""Run, node and task ids on every log record, for the web and the worker.

`log_context(run_id=..., node_id=...)` binds ids for the code inside it (contextvars, so threads and
asyncio tasks each keep their own); `ContextFilter` copies them, and the current Celery task's id, onto each
record, where the JSON formatter (python-json-logger) writes them as fields.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

_CONTEXT: ContextVar[dict[str, Any]] = ContextVar("flownova_log_context", default={})  # noqa: B039 - never mutated
FIELDS = ("run_id", "node_id", "task_id")


@contextmanager
def log_context(**ids: Any) -> Iterator[None]:
    token = _CONTEXT.set({**_CONTEXT.get(), **{key: value for key, value in ids.items() if value is not None}})
    try:
        yield
    finally:
        _CONTEXT.reset(token)


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        context = _CONTEXT.get()
        for field in FIELDS:
            if not hasattr(record, field):
                setattr(record, field, context.get(field))
        if getattr(record, "task_id", None) is None:
            record.task_id = _celery_task_id()
        return True


def _celery_task_id() -> str | None:
    from celery import current_task

    request = getattr(current_task, "request", None)
    return getattr(request, "id", None) if request is not None else None


# A webhook's URL is its credential: `/hooks/<secret>/` must never reach a log, whoever logs the path
# (Django logs every 4xx and 5xx response with its path and the request).
_WEBHOOK_PATH = re.compile(r"/hooks/[^/\s'\"]+")
_WEBHOOK_REDACTED = "/hooks/<redacted>"


def redact_webhook_paths(text: str) -> str:
    """`text` with every `/hooks/<secret>` replaced by `/hooks/<redacted>`."""
    return _WEBHOOK_PATH.sub(_WEBHOOK_REDACTED, text) if "/hooks/" in text else text


class WebhookSecretFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "/hooks/" in message:
            record.msg, record.args = redact_webhook_paths(message), ()
        request = getattr(record, "request", None)
        if request is not None and "/hooks/" in str(request):
            record.request = redact_webhook_paths(str(request))
        return True
