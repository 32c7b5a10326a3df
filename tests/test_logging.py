"""Structured logs: the worker writes JSON lines carrying the run, node and task ids."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from django.contrib.auth.models import User

from tests.conftest import WorkerProcess
from tests.engine_helpers import graph_of, start, wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def worker_records(worker: WorkerProcess) -> list[dict[str, Any]]:
    records = []
    for line in worker.log().splitlines():
        if line.startswith("{"):
            try:
                records.append(json.loads(line))
            except ValueError:
                continue
    return records


def test_logs_of_a_run_carry_its_run_node_and_task_ids(alice: User, celery_worker: WorkerProcess) -> None:
    graph = graph_of(
        [("start", "start", {}), ("boom", "test_fail", {"message": "no stock left"}), ("end", "end", {})],
        [("start", "boom"), ("boom", "end")],
    )
    run = wait_for(start(alice, graph))
    assert run.status == "failed"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        ours = [r for r in worker_records(celery_worker) if r.get("run_id") == run.pk]
        failure = [r for r in ours if "no stock left" in r["message"]]
        if failure and any(r["message"] == "run failed" for r in ours):
            break
        time.sleep(0.1)
    assert failure, "the node failure was not logged with the run id"
    record = failure[0]
    assert record["node_id"] == "boom" and record["level"] == "WARNING"
    assert record["task_id"]  # the Celery task that executed the node
    assert {"time", "logger", "process"} <= set(record)
