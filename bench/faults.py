"""Fault battery: runs hit by worker kills, a Redis restart, a PostgreSQL restart and poison nodes must all end
in a recorded, bounded outcome.

    .venv/bin/python -m bench.faults [--quick] [--only kill,redis,postgres,poison] [--runs 20] [--bound 120]
                                     [--seed 1] [--keep-logs DIR]

Everything runs on private services that this script starts and removes at the end (also on Ctrl-C or an
error), so nothing else on the machine is disturbed: a PostgreSQL cluster (initdb into a temporary folder with
the machine's binaries, fsync on) and a redis-server that keeps nothing on disk (as in production), each on a
free loopback port; a Celery worker started as the test suite starts it (prefork, 2 processes); and the
recovery sweep (runs.recover_stalled) called every 2 s by this script, with 5 s thresholds.

Each scenario starts N runs at once of start -> fork -> branches (sleeps of 0.2-1 s) -> join -> chain -> end:
1. worker SIGKILL: pool processes killed in the middle of a node, several times, and the main process once (the
   worker is then started again, as a supervisor would);
2. Redis restart: SHUTDOWN NOSAVE under load, down for a while, started again on the same port;
3. PostgreSQL restart: stopped (fast) under load, down for a while, started again;
4. poison nodes, mixed with healthy runs: a node that kills its own worker every time, results the database
   cannot store (executed by the worker, and inline), a node that swallows its soft time limit.

--quick (about a minute) starts 6 runs per scenario with 2 branches, keeps the outages shorter and does not kill
the worker's main process.

Checks, per scenario: every run ends within --bound seconds of the fault's end; healthy runs succeed, poison
runs fail with the expected message; each join succeeded exactly once per run; each run's ledger seq numbers
are gapless; no node is left pending, queued, running or waiting in a finished run; the worker's main process
survived. Prints one table and the findings; exits 1 when a check did not hold (the logs are then kept).

This module is also a node module (FLOWNOVA_NODE_MODULES): imported by the worker and by this script's own
Django, it registers the one poison type the test node types lack.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import pwd
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from nodes.base import NodeContext, NodeResult

ROOT = Path(__file__).resolve().parent.parent
PG_BIN = Path(os.environ.get("FLOWNOVA_FAULTS_PG_BIN", "/usr/lib/postgresql/15/bin"))
DATABASE = "flownova_faults"
IGNORE_SOFT_LIMIT = "faults_ignore_soft_limit"
# The node's own time limit; its hard limit (and so the sweep's wait for a node whose worker died) is 10 s more.
NODE_TIMEOUT = 10

T = TypeVar("T")


@dataclass(frozen=True)
class Config:
    runs: int = 20
    branches: int = 3
    bound: float = 120  # seconds after a fault ends by which every run must have ended
    load: float = 3  # seconds the runs work before a fault
    kills: tuple[str, ...] = ("pool", "pool", "main", "pool", "pool")  # in order: every pool process, or the main one
    kill_every: float = 3
    redis_down: float = 12
    postgres_down: float = 5
    recover_after: int = 5  # FLOWNOVA_RECOVER_QUEUED_AFTER and FLOWNOVA_RECOVER_RUNNING_GRACE
    sweep_every: float = 2
    swallow_timeout: int = 3  # timeout_seconds of the node that swallows its soft limit


QUICK = Config(
    runs=6,
    branches=2,
    load=1.5,
    kills=("pool", "pool"),
    kill_every=1.5,
    redis_down=5,
    postgres_down=2,
    swallow_timeout=1,
)


# --- the poison type the test node types lack ------------------------------------------------------------------


def ignore_soft_limit(ctx: NodeContext) -> NodeResult:
    """Catches the soft time limit and carries on, as a handler with a broad `except` does: only the hard limit
    (timeout_seconds + 10 s) stops it. Returns after `seconds` (60) if nothing does."""
    from celery.exceptions import SoftTimeLimitExceeded

    from nodes.base import NodeResult

    deadline = time.monotonic() + float(ctx.data.get("seconds", 60))
    while time.monotonic() < deadline:
        with contextlib.suppress(SoftTimeLimitExceeded):
            time.sleep(0.05)
    return NodeResult(fields={"survived": True})


def register_node_types() -> None:
    from nodes import register
    from nodes.base import NodeType, data_schema
    from workflows.graph import NodeSpec

    register(NodeType(spec=NodeSpec(type=IGNORE_SOFT_LIMIT, data_schema=data_schema()), execute=ignore_soft_limit))


# --- private services -----------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def as_postgres_user() -> dict[str, Any]:
    """initdb and postgres refuse to run as root: as root, they run as the `postgres` system user."""
    if os.geteuid() != 0:
        return {}
    try:
        entry = pwd.getpwnam("postgres")
    except KeyError:
        raise SystemExit("running as root, but there is no `postgres` user to run PostgreSQL as") from None
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


class Postgres:
    """A cluster of our own: initdb into `root`, listening on a free loopback port only (no Unix socket in the
    machine's socket folder), fsync on."""

    def __init__(self, root: Path) -> None:
        self.root = root / "postgres"
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.port = free_port()

    def init(self) -> None:
        if not (PG_BIN / "initdb").exists():
            raise SystemExit(f"no PostgreSQL binaries in {PG_BIN} (set FLOWNOVA_FAULTS_PG_BIN)")
        self.root.mkdir(mode=0o700)
        owner = as_postgres_user()
        if owner:
            os.chown(self.root, owner["user"], owner["group"])
        self._run("initdb", "-D", self.data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-instructions")
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"listen_addresses = '127.0.0.1'\nport = {self.port}\nunix_socket_directories = '{self.root}'\n"
                "fsync = on\nmax_connections = 50\n"
            )
        self.start()

    def start(self) -> None:
        self._run("pg_ctl", "-D", self.data, "-l", self.log, "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", self.data, "-m", mode, "-w", "-t", "60", "stop")

    def close(self) -> None:
        # By its pid file, not by what we did last: an interrupted `pg_ctl start` may have started the server.
        if (self.data / "postmaster.pid").exists():
            try:
                self.stop("fast")
            except (subprocess.SubprocessError, OSError):
                self.stop("immediate")

    def _run(self, program: str, *args: object) -> None:
        # A session of its own: a Ctrl-C in the terminal must not reach the postmaster (we stop it ourselves).
        done = subprocess.run(
            [str(PG_BIN / program), *map(str, args)],
            cwd=self.root,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=120,
            start_new_session=True,
            check=False,
            **as_postgres_user(),
        )
        if done.returncode:
            raise RuntimeError(f"{program} {' '.join(map(str, args))} failed:\n{done.stdout.decode(errors='replace')}")


class RedisServer:
    """A redis-server of our own on a free loopback port that keeps nothing on disk, as in production."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.log = root / "redis.log"
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def client(self) -> Any:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        # No retries: redis-py's default ones would reconnect (for seconds) to the server SHUTDOWN just stopped.
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5, retry=Retry(NoBackoff(), 0))

    def start(self) -> None:
        import redis

        command = ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no"]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [*command, "--dir", str(self.root)], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            with contextlib.suppress(redis.RedisError):
                if self.client().ping():
                    return
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"redis-server did not start on port {self.port}:\n{self.log.read_text()}")

    def shutdown(self) -> None:
        """SHUTDOWN NOSAVE: every queued and unacknowledged message is gone."""
        import redis

        with contextlib.suppress(redis.ConnectionError):
            self.client().shutdown(nosave=True)
        if self.process is not None:
            self.process.wait(15)

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            try:
                self.shutdown()
            except (subprocess.TimeoutExpired, OSError):
                self.process.kill()
                self.process.wait()


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (name) state ppid ...": the name may hold spaces and parentheses, so split after the last ")".
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


class Worker:
    """The Celery worker, started with the test suite's command (tests/conftest.py start_worker), in a process
    group of its own so that it and its pool can be killed, and cleaned up, together."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = env
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None
        self.hostname = ""

    def start(self, timeout: float = 90) -> None:
        self.hostname = f"faults-{uuid.uuid4().hex[:8]}@{socket.gethostname()}"
        command = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "flownova",
            "worker",
            "--loglevel=INFO",
            "--concurrency=2",
            "--pool=prefork",
            "-n",
            self.hostname,
            "--without-gossip",
            "--without-mingle",
        ]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the Celery worker exited with {self.process.returncode}; see {self.log}")
            if self.answers(0.5):
                return
        raise RuntimeError(f"the Celery worker did not answer within {timeout}s; see {self.log}")

    def answers(self, timeout: float) -> bool:
        from flownova.celery import app

        try:
            return bool(app.control.ping(destination=[self.hostname], timeout=timeout))
        except Exception:  # noqa: BLE001 - the broker is down or reconnecting: no answer
            time.sleep(timeout)
            return False

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def pool(self) -> list[int]:
        return children_of(self.process.pid) if self.process is not None and self.alive() else []

    def kill_main(self) -> None:
        """SIGKILL the main process; then its orphaned pool processes, as a supervisor restarting the service
        would (they can no longer take or acknowledge a message)."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()
        time.sleep(1)
        self._kill_group()

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._kill_group()

    def _kill_group(self) -> None:
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)

    def log_size(self) -> int:
        return self.log.stat().st_size if self.log.exists() else 0


class Sweeper(threading.Thread):
    """The recovery sweep, called every few seconds, as Celery beat calls it every minute in production. It
    runs in this process, so that it keeps sweeping while Redis is down (what it sends then is logged and
    sent at a later sweep)."""

    def __init__(self, every: float) -> None:
        super().__init__(name="sweeper", daemon=True)
        self.every = every
        self.halt = threading.Event()
        self.dispatched = 0
        self.failures = 0

    def run(self) -> None:
        from django import db

        from runs.tasks import recover_stalled

        while not self.halt.wait(self.every):
            db.close_old_connections()
            try:
                self.dispatched += recover_stalled()
            except Exception:  # PostgreSQL is restarting: logged, and the next sweep tries again
                self.failures += 1
                logging.getLogger(__name__).warning("the recovery sweep failed", exc_info=True)
                with contextlib.suppress(Exception):
                    db.connection.close()
        db.connection.close()


def db_retry(read: Callable[[], T], *, timeout: float = 90) -> T:
    """Read from PostgreSQL, reconnecting while it restarts."""
    from django.db import InterfaceError, OperationalError, connection

    deadline = time.monotonic() + timeout
    while True:
        try:
            return read()
        except (OperationalError, InterfaceError):
            with contextlib.suppress(Exception):
                connection.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


# --- workflows --------------------------------------------------------------------------------------------------


def battery_graph(
    sleeps: list[float],
    *,
    marker: str = "",
    poison: tuple[str, dict[str, Any]] | None = None,
    retries: int | None = None,
) -> dict[str, Any]:
    """start -> fork -> one sleeping branch per entry of `sleeps` (and `poison`, a branch of its own) -> join ->
    chain of two sleeps -> end. `retries` for the sleeping nodes (the default when None)."""

    def sleep(seconds: float) -> dict[str, Any]:
        data: dict[str, Any] = {"seconds": seconds, "timeout_seconds": NODE_TIMEOUT}
        if retries is not None:
            data["retries"] = retries
        return {**data, "marker": marker} if marker else data

    nodes = [("start", "start", {}), ("fork", "fork", {})]
    branches = [(f"b{i}", "test_sleep", sleep(seconds)) for i, seconds in enumerate(sleeps)]
    if poison is not None:
        branches.append(("poison", *poison))
    nodes += [*branches, ("join", "join", {}), ("c1", "test_sleep", sleep(0.2)), ("c2", "test_sleep", sleep(0.2))]
    nodes.append(("end", "end", {}))
    edges = [("start", "fork"), *[("fork", b[0]) for b in branches], *[(b[0], "join") for b in branches]]
    edges += [("join", "c1"), ("c1", "c2"), ("c2", "end")]
    return {
        "nodes": [{"id": node_id, "type": kind, "data": data} for node_id, kind, data in nodes],
        "edges": [{"id": f"e{i}", "source": s, "target": t} for i, (s, t) in enumerate(edges)],
    }


@dataclass(frozen=True)
class Expect:
    label: str  # "healthy" or the poison node's type
    status: str
    error: str = ""  # a part of the run's error


HEALTHY = Expect("healthy", "succeeded")


def poisons(config: Config) -> list[tuple[tuple[str, dict[str, Any]], Expect]]:
    swallow = {"seconds": 60, "retries": 0, "timeout_seconds": config.swallow_timeout}
    return [
        (
            ("test_suicide", {"retries": 1}),
            Expect("test_suicide", "failed", "given up after 2 attempt(s), 2 of them lost"),
        ),
        (
            ("test_unstorable", {}),
            Expect("test_unstorable", "failed", 'node "poison" (test_unstorable) could not be executed: TypeError'),
        ),
        (
            ("test_unstorable_instant", {}),
            Expect(
                "test_unstorable_instant",
                "failed",
                'node "poison" (test_unstorable_instant) could not be executed: TypeError',
            ),
        ),
        (
            (IGNORE_SOFT_LIMIT, swallow),
            Expect(IGNORE_SOFT_LIMIT, "failed", "given up after 1 attempt(s), 1 of them lost"),
        ),
    ]


# --- scenarios ---------------------------------------------------------------------------------------------------


@dataclass
class Result:
    name: str
    runs: int = 0
    succeeded: int = 0
    failed: int = 0
    not_finished: int = 0
    join_once: bool = True
    gapless: bool = True
    worker: str = "yes"
    seconds: float = 0.0
    redelivered: int = 0  # attempts recorded as lost because the worker running them stopped
    findings: list[str] = field(default_factory=list)  # checks that did not hold
    notes: list[str] = field(default_factory=list)  # what the fault did, and what the logs say


class Marker:
    """The lines test_sleep appends (`<pid> <attempt>`) as each node starts, read as they come."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0

    def new_pids(self) -> list[int]:
        try:
            with self.path.open("rb") as file:
                file.seek(self.offset)
                text = file.read()
        except FileNotFoundError:
            return []
        complete = text[: text.rfind(b"\n") + 1]
        self.offset += len(complete)
        return [int(line.split()[0]) for line in complete.decode().splitlines() if line.strip()]


# What the worker's log says, counted per scenario: (pattern, what it counts).
LOG_PATTERNS = [
    (r"exited with 'signal 9", "pool processes killed"),
    (r"exited with 'exitcode", "pool processes that exited by themselves"),
    (r"attempt \d+ lost:", "attempts lost"),
    (r"Connection to broker lost", "broker connections lost"),
    (r"could not send \d+ node task", "dispatches that could not reach Redis"),
    (r"retry: Retry in \d+s: (OperationalError|InterfaceError)", "task retries on a database error"),
    (r"Soft time limit \(", "soft time limits"),
    (r"Hard time limit \(", "hard time limits"),
]


class Battery:
    def __init__(
        self, config: Config, root: Path, worker: Worker, redis_server: RedisServer, postgres: Postgres, *, seed: int
    ) -> None:
        from django.contrib.auth import get_user_model

        self.config = config
        self.root = root
        self.worker = worker
        self.redis = redis_server
        self.postgres = postgres
        self.rng = random.Random(seed)  # noqa: S311 - branch sleeps and run order, not secrets
        self.user = get_user_model().objects.create_user(username="faults")
        self.sweeper = Sweeper(config.sweep_every)
        self.results: list[Result] = []

    def workflows(self, name: str, count: int, **graph: Any) -> list[Any]:
        """`count` variants of the graph, each with its own branch sleeps (so the branches end in other orders)."""
        from workflows.services import workflow_create

        made = []
        for i in range(count):
            sleeps = [round(self.rng.uniform(0.2, 1.0), 2) for _ in range(self.config.branches)]
            made.append(workflow_create(owner=self.user, name=f"{name} {i}", graph=battery_graph(sleeps, **graph)))
        return made

    # --- the scenario frame ---

    def scenario(
        self, name: str, plans: list[tuple[Any, Expect]], fault: Callable[[Result, list[int]], None]
    ) -> Result:
        from runs.models import FINAL_RUN_STATUSES, Run
        from runs.services import run_start

        print(f"... {name}: {len(plans)} runs", file=sys.stderr, flush=True)
        result = Result(name, runs=len(plans))
        log_from, swept, sweep_failures = self.worker.log_size(), self.sweeper.dispatched, self.sweeper.failures
        started = time.monotonic()
        runs = [
            (run_start(workflow=workflow, input={"i": i}, user=self.user).pk, expect)
            for i, (workflow, expect) in enumerate(plans)
        ]
        ids = [pk for pk, _ in runs]
        fault(result, ids)
        deadline = time.monotonic() + self.config.bound
        while True:
            self.ensure_worker(result)
            open_runs = db_retry(lambda: Run.objects.filter(pk__in=ids).exclude(status__in=FINAL_RUN_STATUSES).count())
            if open_runs == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        result.seconds = time.monotonic() - started
        db_retry(lambda: self.check(runs, result))
        if self.sweeper.dispatched > swept:
            result.notes.append(
                f"the recovery sweep dispatched {self.sweeper.dispatched - swept} node(s) again (queued over "
                f"{self.config.recover_after} s: lost, or only waiting in the queue; a duplicate message is a no-op)"
            )
        if self.sweeper.failures > sweep_failures:
            result.notes.append(f"the recovery sweep failed {self.sweeper.failures - sweep_failures} time(s)")
        logged = self.log_counts(log_from)
        said = ", ".join(f"{count} {label}" for label, count in logged.items() if count)
        if said:
            result.notes.append(f"worker log: {said}")
        stopped = logged["pool processes killed"] + logged["pool processes that exited by themselves"]
        if result.redelivered and not stopped and result.worker == "yes":
            result.notes.append(
                f"{result.redelivered} attempt(s) recorded as lost because 'the worker running it stopped', though no "
                "worker process stopped in this scenario"
            )
        self.results.append(result)
        verdict = "ok" if not result.findings else f"{len(result.findings)} finding(s)"
        print(f"    {verdict}, {result.seconds:.0f} s", file=sys.stderr, flush=True)
        return result

    def in_flight(self, ids: list[int]) -> int:
        from runs.models import FINAL_RUN_STATUSES, Run

        return db_retry(lambda: Run.objects.filter(pk__in=ids).exclude(status__in=FINAL_RUN_STATUSES).count())

    def ensure_worker(self, result: Result) -> None:
        """A worker main process that died on its own is a finding; it is started again so the scenario ends."""
        if self.worker.alive():
            return
        assert self.worker.process is not None
        code = self.worker.process.returncode
        tail = self.worker.log.read_text(errors="replace").strip().splitlines()[-5:]
        result.findings.append(
            f"the worker's main process exited by itself (exit status {code}); it was started again. "
            f"Last log lines: {' | '.join(tail)}"
        )
        result.worker = "NO (restarted)"
        self.worker.stop()  # its orphaned pool processes
        self.worker.start()

    def log_counts(self, offset: int) -> dict[str, int]:
        with self.worker.log.open("rb") as file:
            file.seek(offset)
            text = file.read().decode(errors="replace")
        return {label: len(re.findall(pattern, text)) for pattern, label in LOG_PATTERNS}

    def check(self, runs: list[tuple[int, Expect]], result: Result) -> None:
        from runs.models import FINAL_RUN_STATUSES, UNFINISHED_NODE_STATUSES, LedgerEntry, NodeRun, Run
        from runs.services import LOST_PREFIX, LOST_REDELIVERED, LOST_STALLED

        result.succeeded = result.failed = result.not_finished = 0
        result.join_once = result.gapless = True
        ids = [pk for pk, _ in runs]
        rows = {
            pk: (status, error, last)
            for pk, status, error, last in Run.objects.filter(pk__in=ids).values_list(
                "pk", "status", "error", "last_ledger_seq"
            )
        }
        ledger: dict[int, list[tuple[int, str, str, str]]] = defaultdict(list)
        for run_id, seq, node_id, status, error in (
            LedgerEntry.objects.filter(run_id__in=ids)
            .order_by("run_id", "seq")
            .values_list("run_id", "seq", "node_id", "status", "error")
        ):
            ledger[run_id].append((seq, node_id, status, error or ""))
        nodes: dict[int, list[tuple[str, str, int]]] = defaultdict(list)
        for run_id, node_id, status, attempts in (
            NodeRun.objects.filter(run_id__in=ids).order_by("id").values_list("run_id", "node_id", "status", "attempts")
        ):
            nodes[run_id].append((node_id, status, attempts))
        lost: Counter[str] = Counter()
        for pk, expect in runs:
            status, error, last = rows[pk]
            states = ", ".join(f"{node}={state}({attempts})" for node, state, attempts in nodes[pk])
            if status not in FINAL_RUN_STATUSES:
                result.not_finished += 1
                result.findings.append(
                    f"run {pk} ({expect.label}) NOT FINISHED {self.config.bound:.0f} s after the fault ended: "
                    f"run {status}; nodes (attempts): {states}"
                )
            elif status == "succeeded":
                result.succeeded += 1
            else:
                result.failed += 1
            if status in FINAL_RUN_STATUSES and (status != expect.status or expect.error not in (error or "")):
                wanted = expect.status + (f" with {expect.error!r}" if expect.error else "")
                result.findings.append(
                    f"run {pk} ({expect.label}) ended {status} ({error!r}); expected {wanted}; nodes: {states}"
                )
            entries = ledger[pk]
            seqs = [seq for seq, _, _, _ in entries]
            if seqs != list(range(1, len(seqs) + 1)) or len(seqs) != last:
                result.gapless = False
                result.findings.append(f"run {pk}: ledger seq numbers {seqs} (the run counted {last})")
            succeeded = Counter(node for _, node, state, _ in entries if state == "succeeded")
            if succeeded["join"] > 1 or (status == "succeeded" and succeeded["join"] != 1):
                result.join_once = False
                result.findings.append(f"run {pk} ({status}): the join succeeded {succeeded['join']} time(s)")
            twice = sorted(node for node, count in succeeded.items() if count > 1 and node != "join")
            if twice:
                result.findings.append(f"run {pk}: nodes that succeeded more than once: {twice}")
            left = [f"{node}={state}" for node, state, _ in nodes[pk] if state in UNFINISHED_NODE_STATUSES]
            if status in FINAL_RUN_STATUSES and left:
                result.findings.append(f"run {pk} ended {status} with nodes left {', '.join(left)}")
            lost.update(
                err.removeprefix(LOST_PREFIX)
                for _, _, state, err in entries
                if state == "retrying" and err.startswith(LOST_PREFIX)
            )
        result.redelivered = lost[LOST_REDELIVERED]
        reasons = {LOST_REDELIVERED: "the worker running it stopped", LOST_STALLED: "no result within the time limit"}
        if lost:
            said = ", ".join(f"{count} '{reasons.get(reason, reason)}'" for reason, count in lost.items())
            result.notes.append(f"{sum(lost.values())} lost attempt(s) recorded in the ledgers, then run again: {said}")

    # --- the faults ---

    def kills(self, result: Result, ids: list[int]) -> None:
        """SIGKILL pool processes while they execute a node (found by the line test_sleep writes as it starts),
        and the main process, which is then started again."""
        marker = Marker(self.root / "marker")
        time.sleep(self.config.load)
        killed = planned = 0
        for n, step in enumerate(self.config.kills):
            if n:
                time.sleep(self.config.kill_every)
            if step == "main":
                flying = self.in_flight(ids)
                self.worker.kill_main()
                planned += 1
                self.worker.start()
                result.notes.append(f"SIGKILL of the worker's main process with {flying} run(s) in flight; restarted")
            else:
                killed += self.kill_pool_mid_node(marker)
        result.notes.append(f"SIGKILL of {killed} pool process(es) in the middle of a node")
        if planned:
            result.worker = f"yes ({planned} planned kill)"

    def kill_pool_mid_node(self, marker: Marker, within: float = 5) -> int:
        """Kill each pool process as soon as it starts a sleeping node; returns how many were killed."""
        marker.new_pids()  # lines from before: those nodes may be over
        pool, killed = set(self.worker.pool()), set()
        deadline = time.monotonic() + within
        while pool - killed and time.monotonic() < deadline:
            for pid in marker.new_pids():
                if pid in pool and pid not in killed:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                        killed.add(pid)
            time.sleep(0.01)
        return len(killed)

    def redis_restart(self, result: Result, ids: list[int]) -> None:
        time.sleep(self.config.load)
        flying = self.in_flight(ids)
        self.redis.shutdown()
        time.sleep(self.config.redis_down)
        self.redis.start()
        came_back = time.monotonic()
        result.notes.append(
            f"Redis stopped (SHUTDOWN NOSAVE: queued messages lost) for {self.config.redis_down:.0f} s with "
            f"{flying} run(s) in flight, started again on the same port"
        )
        if not self.worker.alive():
            return  # a finding, recorded (and the worker restarted) by ensure_worker
        while time.monotonic() - came_back < 60:
            if self.worker.answers(1):
                result.notes.append(
                    f"the worker answered a ping {time.monotonic() - came_back:.1f} s after Redis came back"
                )
                return
        result.findings.append("the worker did not answer a ping within 60 s of Redis coming back")

    def postgres_restart(self, result: Result, ids: list[int]) -> None:
        time.sleep(self.config.load)
        flying = self.in_flight(ids)
        self.postgres.stop("fast")
        time.sleep(self.config.postgres_down)
        self.postgres.start()
        result.notes.append(
            f"PostgreSQL stopped (fast: every session ended) for {self.config.postgres_down:.0f} s with {flying} "
            "run(s) in flight, started again"
        )

    def no_fault(self, result: Result, ids: list[int]) -> None:
        pass

    # --- the battery ---

    def run_all(self, only: list[str]) -> None:
        for key in only:
            name, fault = {
                "kill": ("worker SIGKILL", self.kills),
                "redis": ("Redis restart", self.redis_restart),
                "postgres": ("PostgreSQL restart", self.postgres_restart),
                "poison": ("poison nodes", self.no_fault),
            }[key]
            self.scenario(name, self.plans(key), fault)

    def plans(self, key: str) -> list[tuple[Any, Expect]]:
        """The runs of a scenario: healthy ones (spread over 4 variants of the graph), and for `poison` each poison
        type in a branch of its own (twice among 16 runs or more), mixed in a random order with healthy runs."""
        runs = self.config.runs
        if key != "poison":
            options: dict[str, Any] = {"marker": str(self.root / "marker")} if key == "kill" else {}
            if key == "postgres":
                # A database restart must not cost a node an attempt: a result that could not be recorded is
                # recorded once PostgreSQL is back, so nodes with no retries at all still succeed.
                options["retries"] = 0
            flows = self.workflows(key, 4, **options)
            return [(flows[i % len(flows)], HEALTHY) for i in range(runs)]
        poisoned = [
            (self.workflows(f"poison {kind}", 1, poison=(kind, data))[0], expect)
            for (kind, data), expect in poisons(self.config)
        ]
        poisoned *= 2 if runs >= 4 * len(poisoned) else 1
        healthy = self.workflows("healthy", 2)
        mixed = poisoned + [(healthy[i % 2], HEALTHY) for i in range(max(runs - len(poisoned), 0))]
        self.rng.shuffle(mixed)
        return mixed


def print_report(results: list[Result]) -> bool:
    headers = [
        "scenario",
        "runs",
        "succeeded",
        "failed",
        "not finished",
        "join-once",
        "ledger-gapless",
        "worker survived",
        "seconds",
    ]
    yes = {True: "yes", False: "NO"}
    rows = [
        [
            r.name,
            str(r.runs),
            str(r.succeeded),
            str(r.failed),
            str(r.not_finished),
            yes[r.join_once],
            yes[r.gapless],
            r.worker,
            f"{r.seconds:.1f}",
        ]
        for r in results
    ]
    widths = [max(len(row[i]) for row in [headers, *rows]) for i in range(len(headers))]
    numeric = {1, 2, 3, 4, 8}
    for row in [headers, *rows]:
        print(
            "  ".join(
                cell.rjust(w) if i in numeric else cell.ljust(w)
                for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            ).rstrip()
        )
    findings = [(r.name, f) for r in results for f in r.findings]
    print()
    print("findings:" if findings else "findings: none")
    for name, finding in findings:
        print(f"- [{name}] {finding}")
    print()
    print("what each fault did:")
    for r in results:
        for note in r.notes:
            print(f"- [{r.name}] {note}")
    print()
    failed = sum(1 for r in results if r.findings)
    print("every check held" if not failed else f"checks did not hold in {failed} scenario(s)")
    return not failed


SCENARIOS = ("kill", "redis", "postgres", "poison")


def scenario_list(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in SCENARIOS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"scenarios are {', '.join(SCENARIOS)}; not {', '.join(unknown) or 'none'}")
    return names


def service_env(config: Config, root: Path, postgres: Postgres, redis_server: RedisServer) -> dict[str, str]:
    """The environment of the worker and of this script's own Django: the private services, production settings
    (DEBUG off), the test node types, and short recovery thresholds."""
    env = {key: value for key, value in os.environ.items() if not key.endswith(("_API_KEY", "_API_BASE"))}
    (root / "metrics").mkdir()
    env.update(
        DJANGO_SETTINGS_MODULE="flownova.settings",
        DATABASE_URL=f"postgres://postgres@127.0.0.1:{postgres.port}/{DATABASE}",
        REDIS_URL=f"redis://127.0.0.1:{redis_server.port}/0",
        DEBUG="false",
        SECRET_KEY="faults-" + "x" * 50,
        FLOWNOVA_SECRET_KEYS="ZmxvdW5vdmEtYmVuY2gta2V5LW5vdC1hLXNlY3JldCE=",  # noqa: S106 - throw-away, as the bench's
        FLOWNOVA_NODE_MODULES="tests.nodes,bench.faults",
        FLOWNOVA_RECOVER_QUEUED_AFTER=str(config.recover_after),
        FLOWNOVA_RECOVER_RUNNING_GRACE=str(config.recover_after),
        # A node without a timeout of its own whose worker died is recovered after this (+30 s, + the grace).
        FLOWNOVA_TASK_SOFT_TIME_LIMIT="20",
        FLOWNOVA_RETRY_BACKOFF_SECONDS="0.2",
        FLOWNOVA_RETRY_BACKOFF_MAX_SECONDS="2",
        FLOWNOVA_EGRESS_ALLOWLIST="",
        FLOWNOVA_LOG_FORMAT="plain",
        LOG_LEVEL="INFO",
        PROMETHEUS_MULTIPROC_DIR=str(root / "metrics"),
        PYTHONUNBUFFERED="1",
    )
    return env


def keep_logs(root: Path, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for log in [*root.glob("*.log"), root / "postgres" / "postgres.log"]:
        if log.exists():
            shutil.copy(log, target / log.name)
    print(f"logs kept in {target}", file=sys.stderr)


def on_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer runs and shorter outages: about a minute")
    parser.add_argument("--runs", type=int, help="runs per scenario (20; 6 with --quick)")
    parser.add_argument("--bound", type=float, help="seconds after a fault ends by which every run must end (120)")
    parser.add_argument("--seed", type=int, default=1, help="for the branch sleeps and the order of the runs")
    parser.add_argument("--keep-logs", type=Path, help="copy the logs here (they are kept anyway when a check fails)")
    parser.add_argument(
        "--only",
        type=scenario_list,
        default=list(SCENARIOS),
        help=f"comma-separated scenarios to run, of {','.join(SCENARIOS)} (default: all)",
    )
    args = parser.parse_args(argv)
    config = QUICK if args.quick else Config()
    config = replace(config, runs=args.runs or config.runs, bound=args.bound or config.bound)

    sys.path.insert(0, str(ROOT))
    root = Path(tempfile.mkdtemp(prefix="flownova-faults-"))
    root.chmod(0o711)  # PostgreSQL's own user must reach its folder inside
    signal.signal(signal.SIGTERM, on_sigterm)
    postgres, redis_server = Postgres(root), RedisServer(root)
    worker: Worker | None = None
    battery: Battery | None = None
    ok = interrupted = False
    began = time.monotonic()
    try:
        postgres.init()
        redis_server.start()
        env = service_env(config, root, postgres, redis_server)
        os.environ.update(env)
        import django

        django.setup()
        # This process's own log (the sweep's warnings, broker errors while Redis is down) goes to a file.
        handler = logging.FileHandler(root / "battery.log")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        logging.getLogger().handlers = [handler]
        from django.core.management import call_command

        call_command("preflight", verbosity=0, stdout=io.StringIO())  # creates the database
        call_command("migrate", verbosity=0)
        worker = Worker(env, root / "worker.log")
        worker.start()
        print(
            f"... private PostgreSQL on 127.0.0.1:{postgres.port}, Redis on 127.0.0.1:{redis_server.port}, "
            f"worker up: {time.monotonic() - began:.0f} s",
            file=sys.stderr,
            flush=True,
        )
        battery = Battery(config, root, worker, redis_server, postgres, seed=args.seed)
        battery.sweeper.start()
        battery.run_all(args.only)
        ok = print_report(battery.results)
    except KeyboardInterrupt:
        interrupted = True
        print("interrupted: stopping every process and removing the temporary folder", file=sys.stderr)
    finally:
        # A second Ctrl-C (or a SIGTERM) must not cut the clean-up short.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if battery is not None:
            battery.sweeper.halt.set()
            battery.sweeper.join(15)
        if worker is not None:
            worker.stop()
        if "django.db" in sys.modules:
            from django.db import connections

            connections.close_all()
        redis_server.close()
        postgres.close()
        if args.keep_logs or not (ok or interrupted):
            keep_logs(root, args.keep_logs or ROOT / ".flownova" / "faults" / time.strftime("%Y%m%d-%H%M%S"))
        shutil.rmtree(root, ignore_errors=True)
    return 130 if interrupted else 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
else:
    # Imported by Django as a node module (FLOWNOVA_NODE_MODULES names it, for the worker and for the script).
    register_node_types()
