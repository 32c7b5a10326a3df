"""Webhook throughput: how many calls of one webhook daphne accepts per second, and how fast it answers.

    .venv/bin/python -m bench.webhooks [--clients 50] [--seconds 10] [--wait N] [--concurrency 2]

Sets up as bench.engine does (its own database flownova_bench, recreated, and Redis database 13; production
settings, DEBUG off), creates a user, a workflow of start -> end and a webhook trigger on it with no rate limit
(FLOWNOVA_WEBHOOK_RATE is emptied for this process and the servers it starts), then starts a Celery worker (so
the runs proceed; the measure is acceptance) and daphne on a free loopback port, as the Procfile runs it (its
access log on; its output goes to .flownova/bench/). After a short warm-up, --clients concurrent clients
(asyncio, one connection each) POST to the webhook's URL on 127.0.0.1 for --seconds, each call with a body of
its own. It prints:

- calls accepted per second (202), and p50/p99 latency from sending a call to its 202;
- the count of answers that were not 202 (by status) and of transport errors;
- whether every accepted call made exactly one run: the runs the trigger started are exactly the accepted
  calls' run ids, each with that call's body as its input, and one "started" firing each;
- how long the worker then took to finish the runs.

With --wait N the calls ask `?wait=N` and the measure is the time to the 200 that carries the run's output (a
call that is still 202 after N seconds counts as not 200).

The load generator runs on the same machine as daphne, PostgreSQL, Redis and the worker, and competes with
them for the CPU: the numbers are a floor for this machine, not a property of the webhook alone.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

os.environ["FLOWNOVA_WEBHOOK_RATE"] = ""  # the trigger has no rate limit of its own, and no default either
os.environ.setdefault("ALLOWED_HOSTS", "127.0.0.1")  # DEBUG is off: only the hosts named are served

import httpx
from django.contrib.auth import get_user_model
from django.db import connection

# First of ours: importing bench.engine points Django at the bench database and sets it up.
from bench import engine
from runs.models import FINAL_RUN_STATUSES, Run
from triggers.models import FiringOutcome, Trigger, TriggerFiring, TriggerType
from triggers.services import trigger_create
from workflows.services import workflow_create

ROOT = engine.ROOT
LOG_DIR = ROOT / ".flownova" / "bench"
GRAPH = {
    "nodes": [{"id": "start", "type": "start", "data": {}}, {"id": "end", "type": "end", "data": {}}],
    "edges": [{"id": "e1", "source": "start", "target": "end"}],
}


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)  # ms, accepted calls only
    accepted: dict[str, int] = field(default_factory=dict)  # call id -> run id
    refused: Counter[int] = field(default_factory=Counter)  # status -> count
    errors: Counter[str] = field(default_factory=Counter)  # transport error -> count


def start_daphne() -> tuple[subprocess.Popen[bytes], str, Path]:
    port = free_port()
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    log_path = LOG_DIR / f"daphne-{port}.log"
    command = [sys.executable, "-m", "flownova.serve", "-b", "127.0.0.1", "-p", str(port), "flownova.asgi:application"]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=ROOT, env=dict(os.environ), stdout=log, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"daphne exited with {process.returncode}; see {log_path}")
        try:
            if httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                return process, base_url, log_path
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit(f"daphne did not answer within 60 s; see {log_path}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def client(
    number: int, url: str, deadline: float, wait: float | None, tally: Tally, http: httpx.AsyncClient
) -> None:
    params = {"wait": str(wait)} if wait else None
    success = 200 if wait else 202
    sent = 0
    while time.monotonic() < deadline:
        call = f"{number}-{sent}"
        sent += 1
        started = time.perf_counter()
        try:
            answer = await http.post(url, json={"call": call}, params=params)
        except httpx.HTTPError as exc:
            tally.errors[type(exc).__name__] += 1
            continue
        elapsed = (time.perf_counter() - started) * 1000
        if answer.status_code == success and (not wait or answer.json().get("status") == "succeeded"):
            tally.latencies.append(elapsed)
            tally.accepted[call] = answer.json()["run_id"]
        else:
            tally.refused[answer.status_code] += 1


async def load(url: str, clients: int, seconds: float, wait: float | None) -> tuple[Tally, float]:
    tally = Tally()
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    timeout = httpx.Timeout((wait or 0) + 30)
    async with httpx.AsyncClient(limits=limits, timeout=timeout) as http:
        started = time.monotonic()
        deadline = started + seconds
        await asyncio.gather(*(client(n, url, deadline, wait, tally, http) for n in range(clients)))
        return tally, time.monotonic() - started


def verify(trigger: Trigger, tally: Tally) -> list[str]:
    """What is wrong with "every accepted call made exactly one run" (nothing: an empty list)."""
    problems = []
    runs = dict(Run.objects.filter(trigger={"type": "webhook", "id": trigger.pk}).values_list("pk", "input"))
    accepted_runs = list(tally.accepted.values())
    if len(set(accepted_runs)) != len(accepted_runs):
        problems.append(f"{len(accepted_runs) - len(set(accepted_runs))} run ids were answered to several calls")
    if set(runs) != set(accepted_runs):
        problems.append(
            f"{len(set(runs) - set(accepted_runs))} runs no accepted call answered, "
            f"{len(set(accepted_runs) - set(runs))} accepted calls without their run"
        )
    wrong_input = [call for call, run_id in tally.accepted.items() if runs.get(run_id) != {"call": call}]
    if wrong_input:
        problems.append(f"{len(wrong_input)} runs without their call's body as input")
    firings = TriggerFiring.objects.filter(trigger=trigger, outcome=FiringOutcome.STARTED).count()
    if firings != len(runs):
        problems.append(f"{firings} started firings for {len(runs)} runs")
    return problems


def cpu_seconds(pid: int) -> float:
    """The CPU time a process has used (user and system), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def drain(run_ids: list[int], timeout: float = 600) -> float:
    """Seconds until every run is final (polled with one plain query, as bench.engine does)."""
    started = time.monotonic()
    with connection.cursor() as cursor:
        while time.monotonic() - started < timeout:
            cursor.execute(
                "SELECT count(*) FROM runs_run WHERE id = ANY(%s) AND status <> ALL(%s)",
                [run_ids, list(FINAL_RUN_STATUSES)],
            )
            row = cursor.fetchone()
            if row is not None and row[0] == 0:
                return time.monotonic() - started
            time.sleep(0.05)
    raise SystemExit(f"the runs did not finish within {timeout:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=50, help="concurrent clients, one connection each")
    parser.add_argument("--seconds", type=float, default=10, help="how long the clients call")
    parser.add_argument("--wait", type=float, default=None, help="call with ?wait=N and measure the time to 200")
    parser.add_argument("--concurrency", type=int, default=2, help="worker processes")
    args = parser.parse_args()

    load_before = os.getloadavg()
    engine.setup_database()
    user, _ = get_user_model().objects.get_or_create(username="bench")
    workflow = workflow_create(owner=user, name="webhook", graph=GRAPH)
    warm_trigger = Trigger(workflow=workflow, type=TriggerType.WEBHOOK, name="warm-up")
    warm_secret = trigger_create(warm_trigger)
    trigger = Trigger(workflow=workflow, type=TriggerType.WEBHOOK, name="bench")
    secret = trigger_create(trigger)
    worker = engine.start_worker(args.concurrency)
    daphne, base_url, log_path = start_daphne()
    try:
        # Warm-up on a trigger of its own: imports, connections and caches of daphne and the worker.
        warm, _ = asyncio.run(load(f"{base_url}/hooks/{warm_secret}/", min(args.clients, 10), 1.0, args.wait))
        drain(list(warm.accepted.values()))
        daphne_cpu, own_cpu = cpu_seconds(daphne.pid), time.process_time()
        tally, elapsed = asyncio.run(load(f"{base_url}/hooks/{secret}/", args.clients, args.seconds, args.wait))
        daphne_cpu, own_cpu = cpu_seconds(daphne.pid) - daphne_cpu, time.process_time() - own_cpu
        load_during = os.getloadavg()
        problems = verify(trigger, tally)
        drained = drain(list(tally.accepted.values()))
    finally:
        daphne.terminate()
        daphne.wait(30)
        worker.terminate()
        worker.wait(30)

    accepted = len(tally.accepted)
    what = "200" if args.wait else "202"
    mode = f", ?wait={args.wait:g}" if args.wait else ""
    print(
        f"{args.clients} clients for {elapsed:.1f} s against one webhook{mode} on daphne (1 process), "
        f"{args.concurrency} worker processes, {os.cpu_count()} CPUs"
    )
    print(f"load average: {load_before[0]:.2f} before, {load_during[0]:.2f} at the end of the calls")
    print(
        f"CPU during the calls: daphne {daphne_cpu / elapsed:.0%} of a CPU, this load generator {own_cpu / elapsed:.0%}"
    )
    print(f"accepted ({what}):        {accepted / elapsed:8.1f} calls/s   ({accepted} calls)")
    if tally.latencies:
        p50, p99 = engine.pct(tally.latencies, 0.5), engine.pct(tally.latencies, 0.99)
        print(f"latency to the {what}:   p50 {p50:7.1f} ms   p99 {p99:7.1f} ms")
    refused = ", ".join(f"{status}: {count}" for status, count in sorted(tally.refused.items())) or "none"
    errors = ", ".join(f"{name}: {count}" for name, count in sorted(tally.errors.items())) or "none"
    print(f"answers other than {what}: {sum(tally.refused.values())} ({refused}); transport errors: {errors}")
    print(f"every accepted call made exactly one run: {'yes' if not problems else 'NO: ' + '; '.join(problems)}")
    print(f"the worker finished the {accepted} runs {drained:.1f} s after the calls ended")
    print(f"daphne's output: {log_path}")
    if problems:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
