"""The Celery application. Production-safe defaults live in settings (CELERY_* names)."""

from __future__ import annotations

import os
import socket

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "flownova.settings")

app = Celery("flownova")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.task(name="flownova.ping", ignore_result=False, acks_late=False)
def ping(payload: str = "pong") -> dict[str, object]:
    """A task that proves a worker consumes from the broker; used by tests and by operators."""
    return {"payload": payload, "hostname": socket.gethostname(), "pid": os.getpid()}
