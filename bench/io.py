"""Slow calls on the I/O queue: many runs of start -> agent -> end (a model answering in --delay seconds) and of
start -> tool -> end (an HTTP tool answering in --delay seconds), started through the REST API.

    .venv/bin/python -m bench.io [--runs 500] [--delay 2] [--io-concurrency 200] [--io-pool 10] [--io-workers 1]
                                 [--baseline-seconds 30] [--kinds agent,tool]

Sets up as bench.engine does, in a database of its own (flownova_bench_io, emptied) and Redis database 11, with
production settings (DEBUG off). A user with an API token owns a workflow of each kind. It starts:

- on loopback, in this process (asyncio, so a few hundred calls held at once cost it little): an
  OpenAI-compatible chat completions server that answers every call after --delay seconds (streamed or not, as
  asked), and an HTTP server whose one route answers after --delay seconds (the tool). The egress guard refuses
  loopback addresses: FLOWNOVA_EGRESS_ALLOWLIST is set to 127.0.0.1 for the processes this bench starts, and
  only for them;
- daphne (flownova.serve, as the Procfile runs it), the Celery worker on the default queue (--concurrency 2,
  prefork) and --io-workers I/O workers (threads, --io-concurrency each, with a pool of --io-pool database
  connections each), as the Procfile runs them.

For each kind it POSTs --runs runs to `/api/workflows/{id}/runs/` (50 connections), then waits until every run
has ended, and prints: the time from the first POST to the last run's end (and from the last POST answered),
the p50/p99 of each run's duration (created to finished), how many ended and succeeded, the worker processes
and threads, the CPU each process used, their peak resident memory (summed over the processes, sampled every
0.2 s), and the peak of PostgreSQL connections each worker held.

Then the baseline, as before the I/O queue: FLOWNOVA_IO_QUEUE empty and only the prefork worker (2 processes),
so every node waits in one queue. The same --runs runs are started and counted after --baseline-seconds (the
backlog would take runs x delay / 2 seconds to drain); the runs still open are then cancelled.

Everything shares the machine's CPUs with this process (the servers and the load); the load average is printed
before and after.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/flownova_bench_io")
os.environ.setdefault("FLOWNOVA_BENCH_REDIS_URL", "redis://127.0.0.1:6379/11")
# Only the processes this bench starts may reach its loopback servers.
os.environ["FLOWNOVA_EGRESS_ALLOWLIST"] = "127.0.0.1"
os.environ.setdefault("ALLOWED_HOSTS", "127.0.0.1")  # DEBUG is off: only the hosts named are served

import httpx
import psutil  # type: ignore[import-untyped]  # no types in the virtualenv
import redis
from aiohttp import web
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection

# First of ours: importing bench.engine points Django at the bench database and sets it up.
from bench import engine
from bench.webhooks import free_port, start_daphne
from flownova.celery import app
from runs.models import FINAL_RUN_STATUSES, Run
from runs.services import RunFinishedError, run_cancel
from tools.models import Tool
from tools.services import tool_create
from workflows.services import workflow_create

ROOT = engine.ROOT
LOG_DIR = ROOT / ".flownova" / "bench"
# A model LiteLLM has a price for, as in production: its cost lookup for a model it does not know takes half
# again as much CPU per call (41 ms instead of 28 ms for a streamed answer, measured on this machine).
MODEL = "openai/gpt-4o-mini"


# --- the slow loopback servers ------------------------------------------------------------------------------


class SlowServers:
    """The model and the tool, on one aiohttp application in a thread of this process."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.calls = 0
        self.loop = asyncio.new_event_loop()
        self.port = free_port()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._ready = threading.Event()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> SlowServers:
        self._thread.start()
        if not self._ready.wait(10):
            raise SystemExit("the loopback servers did not start")
        return self

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        application = web.Application()
        application.router.add_post("/v1/chat/completions", self.completion)
        application.router.add_get("/slow", self.tool)
        runner = web.AppRunner(application, access_log=None)
        self.loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", self.port, backlog=2048)
        self.loop.run_until_complete(site.start())
        self._ready.set()
        self.loop.run_forever()

    async def tool(self, request: web.Request) -> web.Response:
        self.calls += 1
        await asyncio.sleep(self.delay)
        return web.json_response({"answer": 42})

    async def completion(self, request: web.Request) -> web.StreamResponse:
        self.calls += 1
        body = await request.json()
        await asyncio.sleep(self.delay)
        base = {"id": f"chatcmpl-{uuid.uuid4().hex[:8]}", "created": int(time.time()), "model": body.get("model")}
        usage = {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}
        text = "all done"
        if not body.get("stream"):
            message = {"role": "assistant", "content": text}
            choice = {"index": 0, "message": message, "finish_reason": "stop"}
            return web.json_response({**base, "object": "chat.completion", "choices": [choice], "usage": usage})
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        chunk = {**base, "object": "chat.completion.chunk"}
        deltas: list[dict[str, Any]] = [{"role": "assistant", "content": ""}, {"content": text}, {}]
        for index, delta in enumerate(deltas):
            finish = "stop" if index == len(deltas) - 1 else None
            event = {**chunk, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
            await response.write(f"data: {json.dumps(event)}\n\n".encode())
        await response.write(f"data: {json.dumps({**chunk, 'choices': [], 'usage': usage})}\n\n".encode())
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response


# --- processes ----------------------------------------------------------------------------------------------


@dataclass
class Worker:
    name: str
    process: subprocess.Popen[bytes]

    def processes(self) -> list[psutil.Process]:
        try:
            main = psutil.Process(self.process.pid)
            return [main, *main.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []


def start_worker(name: str, env: dict[str, str], *args: str) -> Worker:
    hostname = f"{name}-{uuid.uuid4().hex[:6]}@%h"
    command = [sys.executable, "-m", "celery", "-A", "flownova", "worker", "-n", hostname, *args]
    command += ["--loglevel=WARNING", "--without-gossip", "--without-mingle"]
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    with (LOG_DIR / f"io-{name}.log").open("ab") as log:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    expanded = hostname.replace("%h", socket.gethostname())
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the {name} worker exited with {process.returncode}; see {LOG_DIR}/io-{name}.log")
        if app.control.ping(destination=[expanded], timeout=0.5):
            return Worker(name, process)
    process.kill()
    raise SystemExit(f"the {name} worker did not start")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class Peaks:
    rss_bytes: int = 0
    processes: int = 0
    threads: int = 0
    connections: int = 0
    running: bool = True
    per_worker: dict[str, int] = field(default_factory=dict)  # peak RSS by worker
    worker_connections: dict[str, int] = field(default_factory=dict)  # peak PostgreSQL connections by worker


def database_connections(worker: Worker) -> int:
    """TCP connections from the worker's processes to PostgreSQL's port."""
    port = int(settings.DATABASES["default"].get("PORT") or 5432)
    count = 0
    for process in worker.processes():
        try:
            count += sum(1 for c in process.net_connections(kind="tcp") if c.raddr and c.raddr.port == port)
        except psutil.NoSuchProcess:
            continue
    return count


@contextmanager
def sampled(workers: list[Worker]) -> Iterator[Peaks]:
    """Peak resident memory and thread count of the workers' processes, and PostgreSQL connections to the bench
    database, sampled every 0.2 s in a thread while the block runs."""
    peaks = Peaks()
    database = settings.DATABASES["default"]["NAME"]

    def sample() -> None:
        import psycopg

        with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as own:
            while peaks.running:
                total, count, threads = 0, 0, 0
                for worker in workers:
                    rss = 0
                    for process in worker.processes():
                        try:
                            rss += process.memory_info().rss
                            threads += process.num_threads()
                            count += 1
                        except psutil.NoSuchProcess:
                            continue
                    peaks.per_worker[worker.name] = max(peaks.per_worker.get(worker.name, 0), rss)
                    peaks.worker_connections[worker.name] = max(
                        peaks.worker_connections.get(worker.name, 0), database_connections(worker)
                    )
                    total += rss
                row = own.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", [database]).fetchone()
                peaks.connections = max(peaks.connections, int(row[0]) if row else 0)
                peaks.rss_bytes = max(peaks.rss_bytes, total)
                peaks.processes = max(peaks.processes, count)
                peaks.threads = max(peaks.threads, threads)
                time.sleep(0.2)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield peaks
    finally:
        peaks.running = False
        thread.join(5)


# --- the load -----------------------------------------------------------------------------------------------


async def post_runs(base_url: str, token: str, workflow_id: int, count: int) -> list[int]:
    """Start `count` runs through the API, 50 requests at a time; their ids."""
    limits = httpx.Limits(max_connections=50, max_keepalive_connections=50)
    headers = {"Authorization": f"Token {token}"}
    url = f"{base_url}/api/workflows/{workflow_id}/runs/"
    gate = asyncio.Semaphore(50)
    async with httpx.AsyncClient(limits=limits, timeout=60, headers=headers) as http:

        async def one(number: int) -> int:
            async with gate:
                answer = await http.post(url, json={"input": {"n": number}})
            if answer.status_code != 201:
                raise SystemExit(f"starting a run answered {answer.status_code}: {answer.text[:300]}")
            run_id: int = answer.json()["id"]
            return run_id

        return list(await asyncio.gather(*(one(n) for n in range(count))))


def finished_count(run_ids: list[int]) -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM runs_run WHERE id = ANY(%s) AND status = ANY(%s)",
            [run_ids, list(FINAL_RUN_STATUSES)],
        )
        row = cursor.fetchone()
    return int(row[0]) if row else 0


def wait_finished(run_ids: list[int], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if finished_count(run_ids) == len(run_ids):
            return True
        time.sleep(0.1)
    return False


@dataclass
class Result:
    label: str
    started: int
    finished: int
    succeeded: int
    seconds: float
    durations: list[float]
    peaks: Peaks
    posted: float = 0.0  # seconds until every POST was answered
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds used meanwhile, by process


def cpu_seconds(processes: dict[str, list[psutil.Process]]) -> dict[str, float]:
    used = {}
    for name, group in processes.items():
        total = 0.0
        for process in group:
            try:
                times = process.cpu_times()
                total += times.user + times.system
            except psutil.NoSuchProcess:
                continue
        used[name] = total
    return used


def measure(
    label: str,
    base_url: str,
    token: str,
    workflow_id: int,
    runs: int,
    workers: list[Worker],
    limit: float,
    daphne: subprocess.Popen[bytes],
) -> Result:
    processes = {worker.name: worker.processes() for worker in workers}
    processes.update(daphne=[psutil.Process(daphne.pid)], bench=[psutil.Process()])
    cpu_before = cpu_seconds(processes)
    with sampled(workers) as peaks:
        began = time.monotonic()
        run_ids = asyncio.run(post_runs(base_url, token, workflow_id, runs))
        posted = time.monotonic() - began
        done = wait_finished(run_ids, limit - posted)
        seconds = time.monotonic() - began
    cpu = {name: used - cpu_before[name] for name, used in cpu_seconds(processes).items()}
    rows = list(Run.objects.filter(pk__in=run_ids).values_list("status", "created_at", "finished_at"))
    durations = [(end - start).total_seconds() for status, start, end in rows if end is not None]
    succeeded = sum(1 for status, _, _ in rows if status == "succeeded")
    if not done:
        for run in Run.objects.filter(pk__in=run_ids).exclude(status__in=FINAL_RUN_STATUSES):
            try:
                run_cancel(run=run)
            except RunFinishedError:
                pass
    return Result(label, len(run_ids), len(durations), succeeded, seconds, durations, peaks, posted, cpu)


def report(result: Result) -> None:
    mib = result.peaks.rss_bytes / 2**20
    per = ", ".join(f"{name} {rss / 2**20:.0f} MiB" for name, rss in result.peaks.per_worker.items())
    print(f"\n{result.label}")
    print(
        f"  finished:  {result.finished} of {result.started} ({result.succeeded} succeeded) in {result.seconds:.1f} s"
    )
    after = result.seconds - result.posted
    ending = f"the last ended {after:.1f} s later" if result.finished == result.started else "not all ended"
    print(f"  every run started (POST answered) after {result.posted:.1f} s; {ending}")
    if result.durations:
        p50, p99 = engine.pct(result.durations, 0.5), engine.pct(result.durations, 0.99)
        print(f"  run duration: p50 {p50:.2f} s   p99 {p99:.2f} s   max {max(result.durations):.2f} s")
    print(f"  worker processes: {result.peaks.processes}, threads {result.peaks.threads}")
    used = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in result.cpu.items())
    print(f"  CPU used meanwhile: {used}")
    print(f"  peak RSS of the workers: {mib:.0f} MiB ({per})")
    own = ", ".join(f"{name} {count}" for name, count in result.peaks.worker_connections.items())
    print(f"  peak PostgreSQL connections: {own} (all processes: {result.peaks.connections})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--delay", type=float, default=2.0, help="seconds the model and the tool take to answer")
    parser.add_argument("--io-concurrency", type=int, default=200, help="threads of each I/O worker")
    parser.add_argument("--io-workers", type=int, default=1, help="I/O worker processes")
    parser.add_argument("--io-pool", type=int, default=10, help="pooled database connections of the I/O worker")
    parser.add_argument("--baseline-seconds", type=float, default=30, help="the baseline's time (0: none)")
    parser.add_argument("--kinds", default="agent,tool", help="agent, tool or both")
    parser.add_argument("--limit", type=float, default=120, help="give up on a measured batch after this long")
    args = parser.parse_args()
    kinds = [kind.strip() for kind in args.kinds.split(",") if kind.strip()]

    from rest_framework.authtoken.models import Token  # a model: once bench.engine has set Django up

    load_before = os.getloadavg()
    engine.setup_database()
    servers = SlowServers(args.delay).start()
    user, _ = get_user_model().objects.get_or_create(username="bench")
    token = Token.objects.get_or_create(user=user)[0].key
    Tool.objects.filter(owner=user).delete()  # left by an earlier run of this bench
    tool_create(owner=user, name="slow", url=f"{servers.base_url}/slow", timeout_seconds=30)
    flows = {
        "agent": ("agent", {"model": MODEL, "user_prompt": "Summarise run {{input.n}}."}),
        "tool": ("tool", {"tool": "slow", "arguments": {}}),
    }
    workflows = {}
    for kind in kinds:
        node_type, data = flows[kind]
        edge = {"sourceHandle": "success"} if kind == "tool" else {}
        graph = {
            "nodes": [
                {"id": "start", "type": "start", "data": {}},
                {"id": "call", "type": node_type, "data": data},
                {"id": "end", "type": "end", "data": {}},
            ],
            "edges": [
                {"id": "e1", "source": "start", "target": "call"},
                {"id": "e2", "source": "call", "target": "end", **edge},
            ],
        }
        workflows[kind] = workflow_create(owner=user, name=f"io {kind}", graph=graph).pk

    base_env = dict(os.environ, OPENAI_API_BASE=f"{servers.base_url}/v1", OPENAI_API_KEY="bench")
    os.environ.update(OPENAI_API_BASE=base_env["OPENAI_API_BASE"], OPENAI_API_KEY="bench")
    daphne, base_url, _ = start_daphne()
    results: list[Result] = []

    def batch(label: str, kind: str, count: int, workers: list[Worker], limit: float) -> Result:
        return measure(label, base_url, token, workflows[kind], count, workers, limit, daphne)

    try:
        # With the I/O queue.
        routed = dict(base_env, FLOWNOVA_IO_QUEUE="io")
        default = start_worker("default", routed, "--concurrency=2")
        io_env = dict(routed, FLOWNOVA_DB_POOL_SIZE=str(args.io_pool))
        threads = ("-Q", "io", "-P", "threads", f"--concurrency={args.io_concurrency}")
        ios = [start_worker(f"io{n + 1}", io_env, *threads) for n in range(args.io_workers)]
        try:
            for kind in kinds:
                # A short warm-up: imports, connections, LiteLLM's client.
                batch("warm-up", kind, 5, [default, *ios], args.limit)
                shape = f"{args.io_workers} x {args.io_concurrency} threads, pool {args.io_pool}"
                label = f"{kind}: {args.runs} runs, I/O queue on ({shape})"
                results.append(batch(label, kind, args.runs, [default, *ios], args.limit))
        finally:
            for io in ios:
                stop(io.process)
            stop(default.process)
        redis.Redis.from_url(settings.REDIS_URL).flushdb()

        # The baseline: one queue, the prefork worker only (--baseline-seconds 0: none).
        if args.baseline_seconds > 0:
            baseline = start_worker("baseline", dict(base_env, FLOWNOVA_IO_QUEUE=""), "--concurrency=2")
            try:
                for kind in kinds:
                    label = f"{kind}: {args.runs} runs, baseline (one queue, 2 prefork processes)"
                    results.append(batch(label, kind, args.runs, [baseline], args.baseline_seconds))
                    redis.Redis.from_url(settings.REDIS_URL).flushdb()  # the backlog of the cancelled runs
            finally:
                stop(baseline.process)
    finally:
        stop(daphne)

    print(
        f"\n{os.cpu_count()} CPUs; model and tool answer in {args.delay:g} s; load average {load_before[0]:.2f} "
        f"before, {os.getloadavg()[0]:.2f} after; calls served by the loopback servers: {servers.calls}"
    )
    for result in results:
        report(result)


if __name__ == "__main__":
    main()
