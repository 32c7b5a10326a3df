"""The faults of the battery (bench/faults.py), by family: the worker killed, a service restarted under load,
and poison nodes. Each fault gets the battery and the scenario's runs, and notes in the result what it did."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bench.faults_battery import Battery, Config, Result

IGNORE_SOFT_LIMIT = "faults_ignore_soft_limit"


@dataclass(frozen=True)
class Expect:
    label: str  # "healthy" or the poison node's type
    status: str
    error: str = ""  # a part of the run's error


HEALTHY = Expect("healthy", "succeeded")

Fault = Callable[["Battery", "Result", list[int]], None]


# --- the worker killed ----------------------------------------------------------------------------------------------


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


def worker_kills(battery: Battery, result: Result, ids: list[int]) -> None:
    """SIGKILL pool processes while they execute a node (found by the line test_sleep writes as it starts),
    and the main process, which is then started again."""
    marker = Marker(battery.root / "marker")
    time.sleep(battery.config.load)
    killed = planned = 0
    for n, step in enumerate(battery.config.kills):
        if n:
            time.sleep(battery.config.kill_every)
        if step == "main":
            flying = battery.in_flight(ids)
            battery.worker.kill_main()
            planned += 1
            battery.worker.start()
            result.notes.append(f"SIGKILL of the worker's main process with {flying} run(s) in flight; restarted")
        else:
            killed += kill_pool_mid_node(battery, marker)
    result.notes.append(f"SIGKILL of {killed} pool process(es) in the middle of a node")
    if planned:
        result.worker = f"yes ({planned} planned kill)"


def kill_pool_mid_node(battery: Battery, marker: Marker, within: float = 5) -> int:
    """Kill each pool process as soon as it starts a sleeping node; returns how many were killed."""
    marker.new_pids()  # lines from before: those nodes may be over
    pool = set(battery.worker.pool())
    killed: set[int] = set()
    deadline = time.monotonic() + within
    while pool - killed and time.monotonic() < deadline:
        for pid in marker.new_pids():
            if pid in pool and pid not in killed:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                    killed.add(pid)
        time.sleep(0.01)
    return len(killed)


# --- a service restarted under load ---------------------------------------------------------------------------------


def redis_restart(battery: Battery, result: Result, ids: list[int]) -> None:
    time.sleep(battery.config.load)
    flying = battery.in_flight(ids)
    battery.redis.shutdown()
    time.sleep(battery.config.redis_down)
    battery.redis.start()
    came_back = time.monotonic()
    result.notes.append(
        f"Redis stopped (SHUTDOWN NOSAVE: queued messages lost) for {battery.config.redis_down:.0f} s with "
        f"{flying} run(s) in flight, started again on the same port"
    )
    if not battery.worker.alive():
        return  # a finding, recorded (and the worker restarted) by ensure_worker
    while time.monotonic() - came_back < 60:
        if battery.worker.answers(1):
            result.notes.append(
                f"the worker answered a ping {time.monotonic() - came_back:.1f} s after Redis came back"
            )
            return
    result.findings.append("the worker did not answer a ping within 60 s of Redis coming back")


def postgres_restart(battery: Battery, result: Result, ids: list[int]) -> None:
    time.sleep(battery.config.load)
    flying = battery.in_flight(ids)
    battery.postgres.stop("fast")
    time.sleep(battery.config.postgres_down)
    battery.postgres.start()
    result.notes.append(
        f"PostgreSQL stopped (fast: every session ended) for {battery.config.postgres_down:.0f} s with {flying} "
        "run(s) in flight, started again"
    )


# --- poison nodes ---------------------------------------------------------------------------------------------------


def poisons(config: Config) -> list[tuple[tuple[str, dict[str, Any]], Expect]]:
    """Each poison node (a branch of its own in a healthy graph) and how its run must end."""
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


def no_fault(battery: Battery, result: Result, ids: list[int]) -> None:
    """The poison nodes are the fault: the runs go on undisturbed."""


# The scenarios by command-line key: the name in the report, and the fault.
FAULTS: dict[str, tuple[str, Fault]] = {
    "kill": ("worker SIGKILL", worker_kills),
    "redis": ("Redis restart", redis_restart),
    "postgres": ("PostgreSQL restart", postgres_restart),
    "poison": ("poison nodes", no_fault),
}
