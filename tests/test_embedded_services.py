"""The private PostgreSQL and Redis (flownova/embedded.py) that bin/start and bin/test run on a machine that has
neither: when they are chosen, and that the application really runs on them (migrations, a Celery worker, a
workflow run), with the data kept across a stop and a start."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from celery import Celery

from flownova import embedded
from flownova.embedded import DEFAULT_POSTGRES, DEFAULT_REDIS, Plan, ServiceError, Services, answers, decide
from tests.conftest import ROOT, service_env, start_worker, stop_process


class Probe:
    """What answers on the default addresses, and which addresses were asked about."""

    def __init__(self, *answering: tuple[str, int]) -> None:
        self.answering = set(answering)
        self.asked: list[tuple[str, int]] = []

    def __call__(self, host: str, port: int) -> bool:
        self.asked.append((host, port))
        return (host, port) in self.answering


def test_auto_uses_the_services_that_answer_on_the_default_addresses() -> None:
    probe = Probe(DEFAULT_POSTGRES, DEFAULT_REDIS)
    assert decide({}, probe) == Plan(postgres=False, redis=False)
    assert probe.asked == [DEFAULT_POSTGRES, DEFAULT_REDIS]


def test_auto_embeds_what_nothing_answers_for() -> None:
    assert decide({"FLOWNOVA_SERVICES": "auto"}, Probe()) == Plan(postgres=True, redis=True)
    assert decide({}, Probe(DEFAULT_REDIS)) == Plan(postgres=True, redis=False)
    assert decide({}, Probe(DEFAULT_POSTGRES)) == Plan(postgres=False, redis=True)


def test_auto_keeps_a_configured_url_without_probing_it() -> None:
    probe = Probe()
    plan = decide({"DATABASE_URL": "postgres://db.example:5432/flownova"}, probe)
    assert plan == Plan(postgres=False, redis=True)
    assert probe.asked == [DEFAULT_REDIS]
    probe = Probe()
    assert decide({"REDIS_URL": "redis://cache:6379/0", "DATABASE_URL": "postgres://x/y"}, probe) == Plan(False, False)
    assert probe.asked == []


def test_forced_modes_ignore_what_answers() -> None:
    probe = Probe(DEFAULT_POSTGRES, DEFAULT_REDIS)
    env = {"FLOWNOVA_SERVICES": "embedded", "DATABASE_URL": "postgres://x/y", "REDIS_URL": "redis://x/0"}
    assert decide(env, probe) == Plan(postgres=True, redis=True)
    assert decide({"FLOWNOVA_SERVICES": " External "}, probe) == Plan(postgres=False, redis=False)
    assert probe.asked == []


def test_an_unknown_mode_is_refused_by_name() -> None:
    with pytest.raises(ServiceError, match=r"FLOWNOVA_SERVICES is 'docker'; it must be one of auto, embedded"):
        decide({"FLOWNOVA_SERVICES": "docker"}, Probe())


def test_answers_tells_a_listening_port_from_a_closed_one() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert answers("127.0.0.1", port)
    assert not answers("127.0.0.1", port)


def test_as_root_without_a_user_to_run_postgres_as_the_error_names_the_user_it_could_not_create(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_such_user(name: str) -> None:
        raise KeyError(name)

    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(pwd, "getpwnam", no_such_user)
    monkeypatch.setenv("PATH", "/nonexistent")  # no useradd to run
    with pytest.raises(ServiceError, match="could not create the system user flownova-postgres"):
        embedded.postgres_owner()


@pytest.fixture
def home() -> Iterator[Path]:
    # Under the repository, not pytest's 0700 temporary folder: run as root, PostgreSQL runs as another user,
    # which must be able to reach its data directory.
    (ROOT / ".flownova").mkdir(exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="embedded-test-", dir=ROOT / ".flownova"))
    folder.chmod(0o755)
    yield folder
    Services(folder).stop()
    shutil.rmtree(folder)


# One process migrates, creates the user and runs the workflow: a manage.py start takes seconds, and the
# worker starts meanwhile (a run waits for a worker).
SETUP_AND_RUN = """
from django.contrib.auth.models import User
from django.core.management import call_command
call_command("migrate", interactive=False, verbosity=0)
User.objects.create_user("embedded")
call_command(
    "run_workflow", "workflows/examples/parallel_checks.json", user="embedded", timeout=60,
    input='{"order": {"amount": 1500, "country": "FR"}}',
)
"""


@pytest.mark.timeout(150)
def test_the_application_runs_on_the_embedded_services(home: Path) -> None:
    services = Services(home)
    urls = services.start(Plan(postgres=True, redis=True), redis_db=0)
    database_url, redis_url = urls["DATABASE_URL"], urls["REDIS_URL"]
    assert database_url.startswith("postgres://postgres@127.0.0.1:") and database_url.endswith("/flownova")
    assert redis_url.startswith("redis://127.0.0.1:")
    ports = {int(database_url.split(":")[-1].split("/")[0]), int(redis_url.split(":")[-1].split("/")[0])}
    assert not ports & {DEFAULT_POSTGRES[1], DEFAULT_REDIS[1]}
    assert services.env() == urls

    env = service_env(DATABASE_URL=database_url, FLOWNOVA_TEST_REDIS_URL=redis_url)
    command = [sys.executable, "manage.py", "shell", "-c", SETUP_AND_RUN]
    run = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    control = Celery("embedded-control", broker=redis_url)
    try:
        worker = start_worker(env, control=control)
        try:
            output, _ = run.communicate(timeout=120)
        finally:
            stop_process(worker.process)
    finally:
        control.close()
        if run.poll() is None:
            run.kill()
    assert run.returncode == 0, output
    assert '"run_succeeded"' in output, output

    services.stop()
    assert services.env() == {}
    for port in ports:
        assert not answers("127.0.0.1", port)
    assert (home / "postgres" / "data" / "PG_VERSION").exists()
    assert (home / "redis" / "dump.rdb").exists()

    # Started again, on the same ports: the run is still there.
    assert services.start(Plan(postgres=True, redis=True)) == urls
    with psycopg.connect(database_url.replace("postgres://", "postgresql://")) as conn:
        row = conn.execute("SELECT count(*) FROM runs_run WHERE status = 'succeeded'").fetchone()
    assert row == (1,)
