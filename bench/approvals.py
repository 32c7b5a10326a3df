"""Many runs waiting for approval at once hold no worker, and each resumes when decided.

    .venv/bin/python -m bench.approvals [--runs 10000] [--concurrency 2] [--deciders 4]

Starts --runs runs of start -> approval -> end on the real stack (its own worker, database flownova_bench and
Redis database 13, as bench.engine), waits until all are `waiting`, checks that the worker has no task in
hand while they wait, then decides every request (from --deciders threads) and prints how long each run
took to resume: from its decision to its next node starting, p50 and p99.
"""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from bench import engine

# Importing bench.engine pointed Django at the bench database and set it up; what follows needs that.
APPROVAL_GRAPH, pct, setup_database, start_worker = (
    engine.APPROVAL_GRAPH,
    engine.pct,
    engine.setup_database,
    engine.start_worker,
)

from django.contrib.auth import get_user_model  # noqa: E402
from django.db import connection  # noqa: E402

from approvals.models import ApprovalRequest  # noqa: E402
from approvals.services import approval_decide  # noqa: E402
from flownova.celery import app  # noqa: E402
from runs.models import LedgerEntry, Run  # noqa: E402
from runs.services import run_start  # noqa: E402
from workflows.services import workflow_create  # noqa: E402


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10000)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--deciders", type=int, default=4)
    args = parser.parse_args()

    setup_database()
    user, _ = get_user_model().objects.get_or_create(username="bench")
    workflow = workflow_create(owner=user, name="approval", graph=APPROVAL_GRAPH)
    worker = start_worker(args.concurrency)
    try:
        started = time.monotonic()
        run_ids = [run_start(workflow=workflow, input={"i": i}, user=user).pk for i in range(args.runs)]
        wait_until(
            lambda: Run.objects.filter(pk__in=run_ids, status="waiting").count() == args.runs,
            timeout=3600,
            what=f"{args.runs} runs to wait",
        )
        to_waiting = time.monotonic() - started
        active = app.control.inspect(timeout=2).active() or {}
        busy = sum(len(tasks) for tasks in active.values())

        approvals = list(ApprovalRequest.objects.filter(run_id__in=run_ids).values_list("pk", "run_id"))
        decided_at: dict[int, datetime] = {}

        def decide(chunk: list[tuple[int, int]]) -> None:
            for approval_id, run_id in chunk:
                decided_at[run_id] = datetime.now(UTC)
                approval_decide(approval_id=approval_id, user=user, decision="approved")
            connection.close()

        deciding = time.monotonic()
        threads = [threading.Thread(target=decide, args=(approvals[i :: args.deciders],)) for i in range(args.deciders)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        decide_seconds = time.monotonic() - deciding
        wait_until(
            lambda: Run.objects.filter(pk__in=run_ids, status="succeeded").count() == args.runs,
            timeout=3600,
            what="every run to finish",
        )
        ends = dict(LedgerEntry.objects.filter(run_id__in=run_ids, node_id="end").values_list("run_id", "started_at"))
        latencies = [engine.ms_between(decided_at[run_id], ends[run_id]) for run_id in run_ids]
    finally:
        worker.terminate()
        worker.wait(30)

    print(f"{args.runs} runs waiting at once after {to_waiting:.1f} s; tasks in the worker's hands meanwhile: {busy}")
    print(f"decided in {decide_seconds:.1f} s from {args.deciders} threads; every run resumed and succeeded")
    p50, p99 = pct(latencies, 0.5), pct(latencies, 0.99)
    print(f"resume latency (decision -> next node starts): p50 {p50:.1f} ms, p99 {p99:.1f} ms")


if __name__ == "__main__":
    main()
