"""Map benchmark on the real stack: PostgreSQL, Redis and Celery workers started by this script.

    .venv/bin/python -m bench.map [--items 1000] [--concurrency 10] [--workers 2] [--repeat 3]

A map node runs a one-node sub-workflow (start -> end) once per item as child runs, `--concurrency` at a time;
this prints items per second from the run's start to its end (median of `--repeat` rounds), with the time the
map node itself waited, and checks that the results came back in item order.

It uses its own database (flownova_bench, recreated) and Redis database 13, as bench/engine.py does.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import TYPE_CHECKING

from django.contrib.auth import get_user_model

from bench.engine import setup_database, start_worker, wait_runs
from runs.models import LedgerEntry, Run
from runs.services import run_start
from workflows.services import workflow_create

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from workflows.models import Workflow

ECHO = {
    "nodes": [
        {"id": "start", "type": "start", "data": {}},
        {"id": "end", "type": "end", "data": {"output": {"got": "{{input.n}}"}}},
    ],
    "edges": [{"id": "e1", "source": "start", "target": "end"}],
}


def map_graph(workflow_id: int, concurrency: int) -> dict[str, object]:
    data = {"items": "{{input.items}}", "workflow": workflow_id, "input": {"n": "{{item}}"}, "concurrency": concurrency}
    return {
        "nodes": [
            {"id": "start", "type": "start", "data": {}},
            {"id": "each", "type": "map", "data": data},
            {"id": "end", "type": "end", "data": {}},
        ],
        "edges": [{"id": "e1", "source": "start", "target": "each"}, {"id": "e2", "source": "each", "target": "end"}],
    }


def one_round(user: User, workflow: Workflow, items: int) -> tuple[float, float]:
    """Items per second from the run's start to its end, and the seconds the map node waited."""
    started = time.monotonic()
    run = run_start(workflow=workflow, input={"items": list(range(items))}, user=user)
    wait_runs([run.pk], timeout=1800)
    elapsed = time.monotonic() - started
    run.refresh_from_db()
    results = (run.output or {}).get("results")
    if results != [{"got": index} for index in range(items)]:
        raise SystemExit(f"run {run.pk}: the results are not the items' outputs in order")
    if Run.objects.filter(parent=run).count() != items:
        raise SystemExit(f"run {run.pk}: expected {items} child runs")
    stamps = list(
        LedgerEntry.objects.filter(run=run, node_id="each").order_by("seq").values_list("started_at", "finished_at")
    )
    began, ended = stamps[0][0], stamps[-1][1]
    waited = (ended - began).total_seconds() if began and ended else float("nan")
    return items / elapsed, waited


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=10, help="the map's child runs at a time (1-50)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    setup_database()
    user, _ = get_user_model().objects.get_or_create(username="bench")
    child = workflow_create(owner=user, name="echo", description="", graph=ECHO)
    parent = workflow_create(owner=user, name="map", description="", graph=map_graph(child.pk, args.concurrency))
    worker = start_worker(args.workers)
    try:
        one_round(user, parent, 20)  # warm-up: imports, connections, caches
        rounds = [one_round(user, parent, args.items) for _ in range(args.repeat)]
    finally:
        worker.terminate()
        worker.wait(30)
    rates = [rate for rate, _ in rounds]
    print(
        f"worker processes: {args.workers}; map over {args.items} items of a one-node sub-workflow, "
        f"concurrency {args.concurrency}, median of {args.repeat} rounds"
    )
    print(
        f"map throughput:   {statistics.median(rates):8.1f} items/s   (rounds: {', '.join(f'{r:.0f}' for r in rates)})"
    )
    print(f"map node waited:  {statistics.median(w for _, w in rounds):8.2f} s per round")


if __name__ == "__main__":
    main()
