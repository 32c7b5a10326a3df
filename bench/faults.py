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

This module is the command and its report; the battery's parts live beside it: bench/faults_services.py (the
private services), bench/faults_battery.py (a scenario's runs and the checks), bench/faults_scenarios.py (the
faults, by family) and bench/faults_nodes.py (the poison type the test node types lack, a node module).
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from bench.faults_battery import QUICK, Battery, Config, Result
from bench.faults_scenarios import FAULTS
from bench.faults_services import ROOT, Postgres, RedisServer, Worker

DATABASE = "flownova_faults"


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


SCENARIOS = tuple(FAULTS)


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
        FLOWNOVA_NODE_MODULES="tests.nodes,bench.faults_nodes",
        FLOWNOVA_RECOVER_QUEUED_AFTER=str(config.recover_after),
        FLOWNOVA_RECOVER_RUNNING_GRACE=str(config.recover_after),
        FLOWNOVA_RECOVER_CONTINUED_AFTER=str(config.recover_after),
        # A node without a timeout of its own whose worker died is recovered after this (+30 s, + the grace).
        FLOWNOVA_TASK_SOFT_TIME_LIMIT="20",
        FLOWNOVA_RETRY_BACKOFF_SECONDS="0.2",
        FLOWNOVA_RETRY_BACKOFF_MAX_SECONDS="2",
        FLOWNOVA_EGRESS_ALLOWLIST="",
        FLOWNOVA_RUN_START_RATE="",  # the battery starts hundreds of runs as one user
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
