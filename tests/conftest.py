"""Fixtures shared by the whole suite: personas, the real Celery worker, and a real daphne server.

Nothing here replaces a service: tests run against the machine's PostgreSQL and Redis, a Celery worker
process started for the session, and daphne serving the ASGI application.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import redis
from celery import Celery
from django.conf import settings
from pytest_django import Settings

from tests.llm_server import ScriptedLLM

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from runs.models import Run
    from workflows.models import Workflow

ROOT = Path(__file__).resolve().parent.parent
LOG_DIR = ROOT / ".flownova" / "test-logs"


@pytest.fixture(scope="session", autouse=True)
def clean_test_redis() -> None:
    """Messages or channel groups left by an earlier, interrupted test run must not leak into this one."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.flushdb()
    client.close()


def test_database_url() -> str:
    db = settings.DATABASES["default"]
    user = db.get("USER") or ""
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    return f"postgres://{user}{password}@{host}:{port}/{db['NAME']}"


def service_env(**overrides: str) -> dict[str, str]:
    """The environment for a process of ours pointed at the test database, the test Redis and the scripted
    LLM server (the only "provider" a test process can reach)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.endswith(("_API_KEY", "_API_BASE")) and key != "FLOWNOVA_LLM_URL"
    }
    env.update(
        DJANGO_SETTINGS_MODULE="tests.settings",
        DATABASE_URL=test_database_url(),
        FLOWNOVA_TEST_REDIS_URL=settings.REDIS_URL,
        PYTHONUNBUFFERED="1",
        OPENAI_API_BASE=scripted_llm().base_url,
        OPENAI_API_KEY="test-key",
        FLOWNOVA_LOG_FORMAT="json",  # the worker's log is read back by tests
    )
    env.update(overrides)
    return env


_SCRIPTED_LLM: ScriptedLLM | None = None


def scripted_llm() -> ScriptedLLM:
    """The suite's one scripted LLM server, started on first use and living as long as the test session."""
    global _SCRIPTED_LLM
    if _SCRIPTED_LLM is None:
        _SCRIPTED_LLM = ScriptedLLM().start()
    return _SCRIPTED_LLM


@pytest.fixture(scope="session")
def llm_server() -> ScriptedLLM:
    return scripted_llm()


@dataclass
class WorkerProcess:
    hostname: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_worker(
    env: dict[str, str],
    *,
    concurrency: int = 2,
    timeout: float = 60.0,
    control: Celery | None = None,
    pool: str = "prefork",
    queues: str | None = None,
    name: str | None = None,
) -> WorkerProcess:
    """A worker process, answering a ping through `control` (an app on the worker's broker; by default the
    suite's own) before this returns. `queues` (-Q) defaults to the default queue."""
    if control is None:
        from flownova.celery import app

        control = app

    LOG_DIR.mkdir(parents=True, exist_ok=True)
    hostname = f"{name or 'test-' + uuid.uuid4().hex[:8]}@{socket.gethostname()}"
    log_path = LOG_DIR / f"worker-{hostname.split('@')[0]}.log"
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "flownova",
        "worker",
        "--loglevel=INFO",
        f"--concurrency={concurrency}",
        f"--pool={pool}",
        "-n",
        hostname,
        "--without-gossip",
        "--without-mingle",
        *(["-Q", queues] if queues else []),
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the Celery worker exited with {process.returncode}:\n{log_path.read_text()}")
        if control.control.ping(destination=[hostname], timeout=0.5):
            return WorkerProcess(hostname, process, log_path)
    process.kill()
    raise RuntimeError(f"the Celery worker did not answer within {timeout}s:\n{log_path.read_text()}")


def stop_process(process: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# The suite's I/O worker: threads, as in production, with fewer pooled database connections than threads, so that
# a thread holding its connection through a network wait would show.
IO_WORKER_THREADS = 8
IO_WORKER_POOL_SIZE = 3


def start_io_worker(env: dict[str, str], *, name: str, control: Celery | None = None) -> WorkerProcess:
    """A worker consuming only the I/O queue, on threads, with a pool of database connections (as the Procfile
    runs it)."""
    return start_worker(
        {**env, "FLOWNOVA_DB_POOL_SIZE": str(IO_WORKER_POOL_SIZE)},
        concurrency=IO_WORKER_THREADS,
        pool="threads",
        queues=settings.FLOWNOVA_IO_QUEUE,
        name=name,
        control=control,
    )


@dataclass
class IOWorker:
    """The session's I/O worker, which a test that kills it starts again."""

    current: WorkerProcess
    env: dict[str, str]
    name: str

    def restart(self) -> WorkerProcess:
        stop_process(self.current.process)
        self.current = start_io_worker(self.env, name=self.name)
        return self.current


_IO_WORKER: IOWorker | None = None


@pytest.fixture(scope="session")
def celery_worker(django_db_setup: None, clean_test_redis: None) -> Iterator[WorkerProcess]:
    """A real Celery worker consuming from the test Redis and writing to the test database, and beside it the I/O
    worker (`io_worker`), so every agent, tool, guardrails and cognitive node goes through the real routing.

    Tests that use it must commit what the worker reads: mark them `django_db(transaction=True)`.
    """
    global _IO_WORKER
    env = service_env()
    worker = start_worker(env)
    name = f"io-{worker.hostname.split('@')[0]}"
    _IO_WORKER = IOWorker(start_io_worker(env, name=name), env, name)
    yield worker
    stop_process(_IO_WORKER.current.process)
    stop_process(worker.process)


@pytest.fixture
def io_worker(celery_worker: WorkerProcess) -> IOWorker:
    assert _IO_WORKER is not None
    return _IO_WORKER


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class ServerProcess:
    base_url: str
    process: subprocess.Popen[bytes]
    log_path: Path


def start_daphne(env: dict[str, str], *, timeout: float = 30.0) -> ServerProcess:
    """daphne serving flownova.asgi on a free loopback port, answering /healthz before this returns."""
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log_path = LOG_DIR / f"daphne-{port}.log"
    command = [sys.executable, "-m", "flownova.serve", "-b", "127.0.0.1", "-p", str(port), "flownova.asgi:application"]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"daphne exited with {process.returncode}:\n{log_path.read_text()}")
        try:
            if httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                return ServerProcess(base_url, process, log_path)
        except httpx.TransportError:
            time.sleep(0.1)
    stop_process(process)
    raise RuntimeError(f"daphne did not answer within {timeout}s:\n{log_path.read_text()}")


@pytest.fixture
def make_user(django_user_model: type[User]) -> Callable[..., User]:
    def make(username: str, *, staff: bool = False, superuser: bool = False) -> User:
        return django_user_model.objects.create_user(
            username=username, password=f"{username}-password", is_staff=staff or superuser, is_superuser=superuser
        )

    return make


@pytest.fixture
def alice(make_user: Callable[..., User]) -> User:
    """Owns the workflows and runs in a test."""
    return make_user("alice")


@pytest.fixture
def mallory(make_user: Callable[..., User]) -> User:
    """An authenticated outsider who must be refused everything of alice's."""
    return make_user("mallory")


@pytest.fixture
def superuser(make_user: Callable[..., User]) -> User:
    return make_user("root-admin", superuser=True)


def _usage_entry(run: Run, seq: int, day: int, **usage: Any) -> None:
    from datetime import UTC, datetime

    from runs.models import LedgerEntry

    when = datetime(2026, 11, day, 12, tzinfo=UTC)
    total = usage["prompt_tokens"] + usage["completion_tokens"]
    LedgerEntry.objects.create(
        run=run,
        seq=seq,
        node_id=f"n{seq}",
        node_type="agent",
        status="succeeded",
        started_at=when,
        finished_at=when,
        llm_usage={"calls": 1, "total_tokens": total, **usage},
    )


@pytest.fixture
def usage_ledger(alice: User, mallory: User) -> tuple[Workflow, Workflow]:
    """LLM usage in the ledger: alice's Support (two priced calls) and Triage (a local model), mallory's Hers."""
    from tests.factories import make_run, make_workflow

    support, triage = make_workflow(alice, name="Support"), make_workflow(alice, name="Triage")
    first, second = make_run(support), make_run(triage)
    _usage_entry(first, 1, 20, model="openai/gpt-4o-mini", prompt_tokens=100, completion_tokens=20, cost_usd=0.002)
    _usage_entry(first, 2, 21, model="openai/gpt-4o-mini", prompt_tokens=50, completion_tokens=10, cost_usd=0.001)
    _usage_entry(second, 1, 21, model="openai/local-llama", prompt_tokens=30, completion_tokens=5, cost_usd=None)
    _usage_entry(
        make_run(make_workflow(mallory, name="Hers")), 1, 21, model="x", prompt_tokens=999, completion_tokens=1
    )
    return support, triage


@pytest.fixture(autouse=True)
def fresh_throttles(settings: Settings) -> None:
    """Rate-limit counters live in Redis and would carry over between tests (and test runs, whose users get
    the same ids again): give each test its own cache key prefix."""
    settings.CACHES = {
        "default": {**settings.CACHES["default"], "KEY_PREFIX": f"test-{uuid.uuid4().hex}"},
    }
