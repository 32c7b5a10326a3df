"""/healthz and /readyz, with every dependency up, and with each one down. /readyz shows the details of its
checks (error texts, host names, timings) only to the callers /metrics admits: the metrics token or a staff
login; anyone else gets "ok" or "failing" per check and the HTTP status."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.contrib.auth.models import User
from django.test import Client, override_settings

from flownova.health import check_statuses, overall_status
from tests.conftest import WorkerProcess, service_env, start_daphne, stop_process

CLOSED_PORT_DATABASE = "postgres://postgres@127.0.0.1:1/flownova"
CLOSED_PORT_REDIS = "redis://127.0.0.1:1/0"
METRICS_TOKEN = "readyz-test-token"
BEARER = {"Authorization": f"Bearer {METRICS_TOKEN}"}


def statuses(body: dict[str, Any]) -> dict[str, str]:
    return {name: check["status"] for name, check in body["checks"].items()}


def assert_no_details(body: dict[str, Any]) -> None:
    """Only each check's status: nothing that names a host, a port, a worker or how long a check took."""
    assert all(set(check) == {"status"} for check in body["checks"].values()), body


def test_healthz_answers_without_touching_dependencies(client: Client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_readyz_is_green_when_database_redis_and_a_worker_answer(client: Client, celery_worker: WorkerProcess) -> None:
    response = client.get("/readyz")
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ok"
    assert statuses(body) == {"database": "ok", "redis": "ok", "celery": "ok", "io_queue": "ok"}
    assert_no_details(body)
    assert celery_worker.hostname not in response.content.decode()

    with override_settings(FLOWNOVA_METRICS_TOKEN=METRICS_TOKEN):
        detailed = client.get("/readyz", headers=BEARER).json()
    assert {name: check["ok"] for name, check in detailed["checks"].items()} == {
        "database": True,
        "redis": True,
        "celery": True,
        "io_queue": True,
    }
    assert celery_worker.hostname in detailed["checks"]["celery"]["detail"]
    assert f"io-{celery_worker.hostname}" in detailed["checks"]["io_queue"]["detail"]


def test_readyz_is_503_naming_database_and_redis_when_both_are_down() -> None:
    server = start_daphne(
        service_env(
            DATABASE_URL=CLOSED_PORT_DATABASE,
            FLOWNOVA_TEST_REDIS_URL=CLOSED_PORT_REDIS,
            DATABASE_CONNECT_TIMEOUT="2",
            FLOWNOVA_METRICS_TOKEN=METRICS_TOKEN,
        )
    )
    try:
        assert httpx.get(f"{server.base_url}/healthz").status_code == 200
        anonymous = httpx.get(f"{server.base_url}/readyz", timeout=30)
        response = httpx.get(f"{server.base_url}/readyz", headers=BEARER, timeout=30)
    finally:
        stop_process(server.process)
    assert anonymous.status_code == 503
    assert anonymous.json()["status"] == "unavailable"
    assert statuses(anonymous.json()) == {
        "database": "failing",
        "redis": "failing",
        "celery": "failing",
        "io_queue": "failing",
    }
    assert_no_details(anonymous.json())
    assert "127.0.0.1" not in anonymous.text and "Error" not in anonymous.text

    body = response.json()
    assert response.status_code == 503
    assert body["status"] == "unavailable"
    assert body["checks"]["database"]["ok"] is False
    assert "127.0.0.1" in body["checks"]["database"]["detail"]
    assert body["checks"]["redis"]["ok"] is False
    assert body["checks"]["celery"]["ok"] is False


@pytest.mark.django_db(transaction=True)
def test_readyz_is_503_naming_celery_when_no_worker_listens() -> None:
    # Redis database 14 is up but no worker consumes from it.
    env = service_env(
        FLOWNOVA_TEST_REDIS_URL="redis://127.0.0.1:6379/14",
        FLOWNOVA_READYZ_TIMEOUT="1",
        FLOWNOVA_METRICS_TOKEN=METRICS_TOKEN,
    )
    server = start_daphne(env)
    try:
        anonymous = httpx.get(f"{server.base_url}/readyz", timeout=30)
        response = httpx.get(f"{server.base_url}/readyz", headers=BEARER, timeout=30)
    finally:
        stop_process(server.process)
    assert anonymous.status_code == 503
    assert statuses(anonymous.json()) == {"database": "ok", "redis": "ok", "celery": "failing", "io_queue": "failing"}
    assert_no_details(anonymous.json())

    body = response.json()
    assert response.status_code == 503, body
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["redis"]["ok"] is True
    assert body["checks"]["celery"]["ok"] is False
    assert "no Celery worker answered" in body["checks"]["celery"]["detail"]
    assert "no Celery worker consumes the I/O queue 'io'" in body["checks"]["io_queue"]["detail"]


@pytest.mark.django_db
@override_settings(FLOWNOVA_METRICS_TOKEN=METRICS_TOKEN, FLOWNOVA_READYZ_TIMEOUT=0.3)
def test_readyz_details_are_for_staff_and_the_metrics_token_only(client: Client, alice: User, superuser: User) -> None:
    def checks(**headers: str) -> dict[str, Any]:
        response = client.get("/readyz", headers=headers)
        assert response.status_code in (200, 503)
        return response.json()

    # A worker may or may not be up for this test: the shape is what counts, not the verdict.
    assert_no_details(checks())
    assert_no_details(checks(Authorization="Bearer wrong-token"))
    assert_no_details(checks(Authorization="Bearer t\u00f6ken"))  # non-ASCII: refused, not a 500
    detailed = checks(**BEARER)["checks"]
    assert set(detailed) == {"database", "redis", "celery", "io_queue"}
    assert all({"status", "ok", "detail", "ms"} <= set(check) for check in detailed.values())
    assert detailed["database"] == {**detailed["database"], "status": "ok", "ok": True, "detail": "ok"}

    client.force_login(alice)  # signed in, but not staff
    assert_no_details(checks())
    client.force_login(superuser)
    assert all("detail" in check for check in checks()["checks"].values())


@pytest.mark.django_db(transaction=True)
def test_readyz_says_starting_while_the_worker_bin_start_launched_boots(tmp_path: Path) -> None:
    started_at = tmp_path / "started-at"
    # Redis database 14 is up but no worker consumes from it: the worker bin/start launched is not up yet.
    server = start_daphne(
        service_env(
            FLOWNOVA_TEST_REDIS_URL="redis://127.0.0.1:6379/14",
            FLOWNOVA_READYZ_TIMEOUT="1",
            FLOWNOVA_METRICS_TOKEN=METRICS_TOKEN,
            FLOWNOVA_STARTED_AT_FILE=str(started_at),
            FLOWNOVA_READYZ_STARTING_SECONDS="60",
        )
    )

    def readyz(**headers: str) -> httpx.Response:
        return httpx.get(f"{server.base_url}/readyz", headers=headers, timeout=30)

    try:
        started_at.write_text(f"{time.time() - 5:.3f}\n")
        anonymous, detailed = readyz(), readyz(**BEARER)
        started_at.write_text(f"{time.time() - 61:.3f}\n")  # the grace is over: the worker is missing
        late = readyz(**BEARER)
        started_at.write_text("not a time")
        unreadable = readyz()
        started_at.unlink()
        never = readyz()
    finally:
        stop_process(server.process)

    assert anonymous.status_code == 503
    assert anonymous.json() == {
        "status": "starting",
        "checks": {
            "database": {"status": "ok"},
            "redis": {"status": "ok"},
            "celery": {"status": "starting"},
            "io_queue": {"status": "starting"},
        },
    }
    celery = detailed.json()["checks"]["celery"]
    assert detailed.json()["status"] == "starting"
    assert celery["starting"] is True and celery["ok"] is False
    assert celery["detail"].startswith("starting: no Celery worker answered yet; bin/start launched one ")
    assert "start one with" not in celery["detail"]

    for response in (late, unreadable, never):
        assert response.status_code == 503
        assert response.json()["status"] == "unavailable"
        assert response.json()["checks"]["celery"]["status"] == "failing"
        assert response.json()["checks"]["io_queue"]["status"] == "failing"
    assert "start one with `celery -A flownova worker`" in late.json()["checks"]["celery"]["detail"]


def test_readyz_is_unavailable_when_anything_but_a_booting_process_fails() -> None:
    booting = {"ok": False, "detail": "starting: ...", "ms": 1, "starting": True}
    down = {"ok": False, "detail": "OperationalError", "ms": 1}
    up = {"ok": True, "detail": "ok", "ms": 1}
    assert overall_status(True, {"database": up, "celery": up}) == "ok"
    assert overall_status(False, {"database": up, "celery": booting}) == "starting"
    assert overall_status(False, {"database": down, "celery": booting}) == "unavailable"
    assert check_statuses({"database": down, "celery": booting}, details=False) == {
        "database": {"status": "failing"},
        "celery": {"status": "starting"},
    }


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_readyz_is_503_when_no_worker_consumes_the_io_queue(client: Client, celery_worker: WorkerProcess) -> None:
    # The suite's workers answer, but none consumes this queue: its nodes would wait for ever.
    with override_settings(FLOWNOVA_IO_QUEUE="io-nobody", FLOWNOVA_METRICS_TOKEN=METRICS_TOKEN):
        response = client.get("/readyz", headers=BEARER)
    body = response.json()
    assert response.status_code == 503, body
    assert statuses(body) == {"database": "ok", "redis": "ok", "celery": "ok", "io_queue": "failing"}
    assert "no Celery worker consumes the I/O queue 'io-nobody'" in body["checks"]["io_queue"]["detail"]

    with override_settings(FLOWNOVA_IO_QUEUE="", FLOWNOVA_METRICS_TOKEN=METRICS_TOKEN):
        response = client.get("/readyz", headers=BEARER)
    assert response.status_code == 200, response.json()
    assert response.json()["checks"]["io_queue"]["detail"].startswith("ok (off")
