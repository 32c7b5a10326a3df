"""The fault battery (bench/faults.py) in its quick form: runs hit by pool processes killed mid-node, a Redis
restart, a PostgreSQL restart and poison nodes all end in a recorded, bounded outcome. It starts its own
PostgreSQL cluster, redis-server and Celery worker on free loopback ports, so it touches neither the suite's
database nor its Redis; about a minute."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PG_BIN = Path(os.environ.get("FLOWNOVA_FAULTS_PG_BIN", "/usr/lib/postgresql/15/bin"))

pytestmark = pytest.mark.timeout(420)


def test_every_run_ends_within_its_bound_through_every_fault_of_the_quick_battery() -> None:
    if not (PG_BIN / "initdb").exists() or shutil.which("redis-server") is None:
        pytest.skip(f"the battery needs PostgreSQL's binaries ({PG_BIN}) and redis-server")
    done = subprocess.run(
        [sys.executable, "-m", "bench.faults", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )
    report = f"{done.stdout}\n{done.stderr[-4000:]}"
    assert done.returncode == 0, report
    assert "every check held" in done.stdout, report
    table = done.stdout.split("\n\n", 1)[0]
    for scenario in ("worker SIGKILL", "Redis restart", "PostgreSQL restart", "poison nodes"):
        assert scenario in table, report
