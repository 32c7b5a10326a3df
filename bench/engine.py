"""Engine benchmark on the real stack: PostgreSQL, Redis and Celery workers started by this script.

    .venv/bin/python -m bench.engine [--chains 8] [--length 50] [--fork-width 100] [--concurrency 2]

Prints, in one run:
- nodes/s for chains of no-op nodes (several runs at once), and the same chains on a bare Celery baseline
  (a self-dispatching chain of tasks that each write one PostgreSQL row), with the ratio between the two;
- per-node engine overhead p50/p99: the gap between one node's handler finishing and the next one's starting,
  in a chain that runs alone, and the bare baseline's step period in a chain that runs alone (its floor);
- the time from a fork of N branches finishing to its join starting;
- resume latency: from an approval decision to the next node starting.

It uses its own database (flownova_bench, recreated) and Redis database 13, so it disturbs nothing else.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

ROOT = Path(__file__).resolve().parent.parent
BENCH_DB = "flownova_bench"
os.environ.setdefault("DATABASE_URL", f"postgres://postgres@127.0.0.1:5432/{BENCH_DB}")
os.environ["REDIS_URL"] = os.environ.get("FLOWNOVA_BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
os.environ["DJANGO_SETTINGS_MODULE"] = "flownova.settings"
# Production settings: DEBUG off (it wraps every query in a recording cursor), throw-away keys.
os.environ.setdefault("DEBUG", "false")
os.environ.setdefault("SECRET_KEY", "bench-" + "x" * 50)
os.environ.setdefault("FLOWNOVA_SECRET_KEYS", "ZmxvdW5vdmEtYmVuY2gta2V5LW5vdC1hLXNlY3JldCE=")
os.environ.setdefault("LOG_LEVEL", "WARNING")
os.environ.setdefault("FLOWNOVA_RUN_START_RATE", "")  # thousands of runs start as one user
sys.path.insert(0, str(ROOT))

import django  # noqa: E402

django.setup()

import redis  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402

from approvals.models import ApprovalRequest  # noqa: E402
from approvals.services import approval_decide  # noqa: E402
from bench import baseline_tasks  # noqa: E402
from flownova.celery import app  # noqa: E402
from runs.models import FINAL_RUN_STATUSES, LedgerEntry, Run  # noqa: E402
from runs.services import run_start  # noqa: E402
from workflows.services import workflow_create  # noqa: E402

if TYPE_CHECKING:
    from django.contrib.auth.models import User


def chain_graph(length: int) -> dict[str, Any]:
    """start -> (length - 2) pass-through nodes -> end: `length` node executions in all."""
    ids = ["start", *[f"n{i}" for i in range(length - 2)], "end"]
    nodes = [{"id": node_id, "type": "fork", "data": {}} for node_id in ids]
    nodes[0]["type"], nodes[-1]["type"] = "start", "end"
    edges = [{"id": f"e{i}", "source": ids[i], "target": ids[i + 1]} for i in range(len(ids) - 1)]
    return {"nodes": nodes, "edges": edges}


def fork_graph(width: int) -> dict[str, Any]:
    branches = [f"b{i}" for i in range(width)]
    nodes = [{"id": "start", "type": "start", "data": {}}, {"id": "fork", "type": "fork", "data": {}}]
    nodes += [{"id": b, "type": "fork", "data": {}} for b in branches]
    nodes += [{"id": "join", "type": "join", "data": {}}, {"id": "end", "type": "end", "data": {}}]
    edges = [{"id": "s", "source": "start", "target": "fork"}, {"id": "j", "source": "join", "target": "end"}]
    edges += [{"id": f"f{b}", "source": "fork", "target": b} for b in branches]
    edges += [{"id": f"t{b}", "source": b, "target": "join"} for b in branches]
    return {"nodes": nodes, "edges": edges}


APPROVAL_GRAPH = {
    "nodes": [
        {"id": "start", "type": "start", "data": {}},
        {"id": "ask", "type": "user_approval", "data": {"message": "ok?"}},
        {"id": "end", "type": "end", "data": {}},
        {"id": "no", "type": "end", "data": {}},
    ],
    "edges": [
        {"id": "e1", "source": "start", "target": "ask"},
        {"id": "e2", "source": "ask", "target": "end", "sourceHandle": "approved"},
        {"id": "e3", "source": "ask", "target": "no", "sourceHandle": "rejected"},
    ],
}


def setup_database() -> None:
    call_command("preflight", verbosity=0)
    call_command("migrate", verbosity=0)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL flownova.ledger_purge = 'on'")  # the ledger refuses TRUNCATE otherwise
        cursor.execute("TRUNCATE runs_run, workflows_workflow RESTART IDENTITY CASCADE")
    baseline_tasks.create_table()
    redis.Redis.from_url(settings.REDIS_URL).flushdb()


def start_worker(concurrency: int) -> subprocess.Popen[bytes]:
    name = f"bench-{uuid.uuid4().hex[:6]}@%h"  # several instances may run: each its own name
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "flownova",
        "worker",
        "-I",
        "bench.baseline_tasks",
        "-n",
        name,
        f"--concurrency={concurrency}",
        "--loglevel=WARNING",
        "--without-gossip",
        "--without-mingle",
    ]
    worker = subprocess.Popen(command, cwd=ROOT, env=dict(os.environ))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        answers = app.control.ping(timeout=0.5) or []
        if any(name.split("@")[0] in host for answer in answers for host in answer):
            return worker
    worker.kill()
    raise SystemExit("the benchmark worker did not start")


def wait_runs(run_ids: list[int], timeout: float = 600) -> None:
    # Polled with one plain query, as the baseline is: the harness must not compete for the CPU it measures.
    deadline = time.monotonic() + timeout
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute(
                "SELECT count(*) FROM runs_run WHERE id = ANY(%s) AND status <> ALL(%s)",
                [run_ids, list(FINAL_RUN_STATUSES)],
            )
            if cursor.fetchone()[0] == 0:
                break
            time.sleep(0.01)
        else:
            raise SystemExit("benchmark runs did not finish in time")
    failed = Run.objects.filter(pk__in=run_ids).exclude(status="succeeded")
    if failed.exists():
        raise SystemExit(f"benchmark runs failed: {list(failed.values_list('pk', 'error'))}")


def engine_throughput(user: User, chains: int, length: int) -> float:
    workflow = workflow_create(owner=user, name=f"chain-{length}", graph=chain_graph(length))
    started = time.monotonic()
    runs = [run_start(workflow=workflow, input={"i": i}, user=user).pk for i in range(chains)]
    wait_runs(runs)
    return chains * length / (time.monotonic() - started)


def baseline_throughput(chains: int, length: int) -> float:
    prefix = uuid.uuid4().hex[:6]
    started = time.monotonic()
    for i in range(chains):
        baseline_tasks.baseline_step.delay(f"{prefix}-{i}", 0, length)
    deadline = time.monotonic() + 600
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute(f"SELECT count(*) FROM {baseline_tasks.TABLE} WHERE chain LIKE %s", [f"{prefix}-%"])  # noqa: S608
            if cursor.fetchone()[0] >= chains * length:
                return chains * length / (time.monotonic() - started)
            time.sleep(0.01)
    raise SystemExit("the baseline did not finish in time")


def overhead_ms(user: User, length: int) -> tuple[list[float], list[float]]:
    """A chain of `length` running alone: each node finishing -> the next starting, and the step period (one
    node starting -> the next starting)."""
    workflow = workflow_create(owner=user, name="overhead", graph=chain_graph(length))
    run = run_start(workflow=workflow, input={}, user=user)
    wait_runs([run.pk])
    entries = list(LedgerEntry.objects.filter(run=run).order_by("seq").values_list("started_at", "finished_at"))
    gaps = [ms_between(entries[i][1], entries[i + 1][0]) for i in range(len(entries) - 1)]
    periods = [ms_between(entries[i][0], entries[i + 1][0]) for i in range(len(entries) - 1)]
    return gaps, periods


def baseline_gaps_ms(length: int) -> list[float]:
    """The bare baseline's step period in a chain that runs alone: one task's row written -> the next one's."""
    prefix = f"alone-{uuid.uuid4().hex[:6]}"
    baseline_tasks.baseline_step.delay(prefix, 0, length)
    deadline = time.monotonic() + 600
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute(f"SELECT at FROM {baseline_tasks.TABLE} WHERE chain = %s ORDER BY step", [prefix])  # noqa: S608
            stamps = [row[0] for row in cursor.fetchall()]
            if len(stamps) >= length:
                return [(stamps[i + 1] - stamps[i]).total_seconds() * 1000 for i in range(len(stamps) - 1)]
            time.sleep(0.05)
    raise SystemExit("the baseline chain did not finish in time")


def fork_to_join_ms(user: User, width: int) -> float:
    workflow = workflow_create(owner=user, name=f"fork-{width}", graph=fork_graph(width))
    run = run_start(workflow=workflow, input={}, user=user)
    wait_runs([run.pk])
    fork = LedgerEntry.objects.get(run=run, node_id="fork")
    join = LedgerEntry.objects.get(run=run, node_id="join")
    return ms_between(fork.finished_at, join.started_at)


def resume_ms(user: User, samples: int) -> list[float]:
    workflow = workflow_create(owner=user, name="approval", graph=APPROVAL_GRAPH)
    latencies = []
    for _ in range(samples):
        run = run_start(workflow=workflow, input={}, user=user)
        while not ApprovalRequest.objects.filter(run=run).exists():
            time.sleep(0.005)
        decided_at = datetime.now(UTC)
        approval_decide(approval_id=ApprovalRequest.objects.get(run=run).pk, user=user, decision="approved")
        wait_runs([run.pk])
        end = LedgerEntry.objects.get(run=run, node_id="end")
        latencies.append(ms_between(decided_at, end.started_at))
    return latencies


def ms_between(earlier: datetime | None, later: datetime | None) -> float:
    """Milliseconds from one recorded time to another; a finished run's ledger entries have both."""
    if earlier is None or later is None:
        raise SystemExit("a ledger entry of a finished run has no start or finish time")
    return (later - earlier).total_seconds() * 1000


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chains", type=int, default=8, help="runs at once in the throughput test")
    parser.add_argument("--length", type=int, default=50, help="node executions per chain")
    parser.add_argument("--fork-width", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=2, help="worker processes, in all")
    parser.add_argument("--instances", type=int, default=1, help="worker instances sharing them (as on separate hosts)")
    parser.add_argument("--repeat", type=int, default=5, help="rounds of engine/baseline, alternated")
    args = parser.parse_args()

    setup_database()
    user, _ = get_user_model().objects.get_or_create(username="bench")
    if args.instances < 1 or args.concurrency % args.instances:
        raise SystemExit("--concurrency must be a multiple of --instances")
    workers = [start_worker(args.concurrency // args.instances) for _ in range(args.instances)]
    try:
        engine_throughput(user, 2, 10)  # warm-up: imports, connections, caches
        baseline_throughput(2, 10)
        engine_rates, baseline_rates = [], []
        for _ in range(args.repeat):
            engine_rates.append(engine_throughput(user, args.chains, args.length))
            baseline_rates.append(baseline_throughput(args.chains, args.length))
        gaps, periods = overhead_ms(user, 200)
        bare_gaps = baseline_gaps_ms(200)
        fork_join = [fork_to_join_ms(user, args.fork_width) for _ in range(3)]
        resumes = resume_ms(user, 20)
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(30)

    engine = statistics.median(engine_rates)
    baseline = statistics.median(baseline_rates)
    rounds = ", ".join
    print(
        f"worker processes: {args.concurrency} in {args.instances} instance(s); "
        f"{args.chains} chains x {args.length} nodes at once, "
        f"median of {args.repeat} rounds"
    )
    print(f"engine throughput:        {engine:8.1f} nodes/s   (rounds: {rounds(f'{r:.0f}' for r in engine_rates)})")
    print(f"bare Celery baseline:     {baseline:8.1f} steps/s   (rounds: {rounds(f'{r:.0f}' for r in baseline_rates)})")
    print(f"engine / baseline:        {engine / baseline:8.2f}x")
    print(
        f"per-node overhead:        p50 {pct(gaps, 0.5):6.2f} ms   p99 {pct(gaps, 0.99):6.2f} ms"
        "   (chain of 200 alone: one node finishing -> the next starting)"
    )
    print(
        f"step period:              p50 {pct(periods, 0.5):6.2f} ms   p99 {pct(periods, 0.99):6.2f} ms"
        "   (chain of 200 alone: one node starting -> the next starting)"
    )
    print(
        f"bare Celery step period:  p50 {pct(bare_gaps, 0.5):6.2f} ms   p99 {pct(bare_gaps, 0.99):6.2f} ms"
        "   (baseline chain of 200 alone: one row written -> the next; the floor of the line above)"
    )
    print(
        f"fork({args.fork_width}) -> join start:  median {statistics.median(fork_join):6.1f} ms"
        f"   (runs: {rounds(f'{v:.0f}' for v in fork_join)})"
    )
    print(
        f"approval resume latency:  p50 {pct(resumes, 0.5):6.2f} ms   p99 {pct(resumes, 0.99):6.2f} ms"
        "   (decision -> next node starts)"
    )


if __name__ == "__main__":
    main()
