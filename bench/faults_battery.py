"""The fault battery's frame (bench/faults.py): the workflows its runs start, a scenario's runs from start to
end around its fault, and the checks every run must pass."""

from __future__ import annotations

import random
import re
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.faults_scenarios import FAULTS, HEALTHY, Expect, Fault, poisons
from bench.faults_services import Postgres, RedisServer, Sweeper, Worker, db_retry

# The node's own time limit; its hard limit (and so the sweep's wait for a node whose worker died) is 10 s more.
NODE_TIMEOUT = 10


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


# --- workflows ---------------------------------------------------------------------------------------------------


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

    nodes: list[tuple[str, str, dict[str, Any]]] = [("start", "start", {}), ("fork", "fork", {})]
    branches: list[tuple[str, str, dict[str, Any]]] = [
        (f"b{i}", "test_sleep", sleep(seconds)) for i, seconds in enumerate(sleeps)
    ]
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


# --- scenarios --------------------------------------------------------------------------------------------------


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

    def scenario(self, name: str, plans: list[tuple[Any, Expect]], fault: Fault) -> Result:
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
        fault(self, result, ids)
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

    # --- the battery ---

    def run_all(self, only: list[str]) -> None:
        for key in only:
            name, fault = FAULTS[key]
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
