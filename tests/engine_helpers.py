"""Helpers for tests that run workflows on the real worker."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from django.contrib.auth.models import User

from runs.models import FINAL_RUN_STATUSES, LedgerEntry, Run
from runs.services import run_start
from tests.factories import make_workflow


def graph_of(nodes: Sequence[tuple[str, str, dict[str, Any]]], edges: Sequence[tuple[str, ...]]) -> dict[str, Any]:
    """nodes: (id, type, data); edges: (source, target[, handle])."""
    return {
        "nodes": [{"id": node_id, "type": kind, "data": data} for node_id, kind, data in nodes],
        "edges": [
            {"id": f"e{i}", "source": e[0], "target": e[1], **({"sourceHandle": e[2]} if len(e) > 2 else {})}
            for i, e in enumerate(edges)
        ],
    }


def start(owner: User, graph: dict[str, Any], run_input: dict[str, Any] | None = None) -> Run:
    return run_start(workflow=make_workflow(owner, graph=graph), input=run_input or {}, user=owner)


def wait_for(run: Run, *statuses: str, timeout: float = 30.0) -> Run:
    """Poll until the run reaches one of `statuses` (default: any final status)."""
    wanted = set(statuses) or set(FINAL_RUN_STATUSES)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run.refresh_from_db()
        if run.status in wanted:
            return run
        if run.status in FINAL_RUN_STATUSES:
            raise AssertionError(f"run {run.pk} ended {run.status} ({run.error}) while waiting for {wanted}")
        time.sleep(0.02)
    raise AssertionError(f"run {run.pk} still {run.status} after {timeout}s; wanted {wanted}")


def ledger(run: Run) -> list[tuple[str, str]]:
    return list(LedgerEntry.objects.filter(run=run).order_by("seq").values_list("node_id", "status"))
