"""The fault battery's private services (bench/faults.py): a PostgreSQL cluster and a redis-server of its own on
free loopback ports, the Celery worker as the test suite starts it, and the recovery sweep called from this
process."""

from __future__ import annotations

import contextlib
import logging
import os
import pwd
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parent.parent
PG_BIN = Path(os.environ.get("FLOWNOVA_FAULTS_PG_BIN", "/usr/lib/postgresql/15/bin"))

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


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
