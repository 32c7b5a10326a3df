"""/healthz and /readyz, with every dependency up, and with each one down."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import service_env, start_daphne, stop_process

CLOSED_PORT_DATABASE = "postgres://postgres@127.0.0.1:1/flownova"
CLOSED_PORT_REDIS = "redis://127.0.0.1:1/0"


def test_healthz_answers_without_touching_dependencies(client) -> None:  # type: ignore[no-untyped-def]
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_readyz_is_green_when_database_redis_and_a_worker_answer(client, celery_worker) -> None:  # type: ignore[no-untyped-def]
    response = client.get("/readyz")
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ok"
    assert {name: check["ok"] for name, check in body["checks"].items()} == {
        "database": True,
        "redis": True,
        "celery": True,
    }


def test_readyz_is_503_naming_database_and_redis_when_both_are_down() -> None:
    server = start_daphne(
        service_env(
            DATABASE_URL=CLOSED_PORT_DATABASE, FLOWNOVA_TEST_REDIS_URL=CLOSED_PORT_REDIS, DATABASE_CONNECT_TIMEOUT="2"
        )
    )
    try:
        assert httpx.get(f"{server.base_url}/healthz").status_code == 200
        response = httpx.get(f"{server.base_url}/readyz", timeout=30)
    finally:
        stop_process(server.process)
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
    server = start_daphne(service_env(FLOWNOVA_TEST_REDIS_URL="redis://127.0.0.1:6379/14", FLOWNOVA_READYZ_TIMEOUT="1"))
    try:
        response = httpx.get(f"{server.base_url}/readyz", timeout=30)
    finally:
        stop_process(server.process)
    body = response.json()
    assert response.status_code == 503, body
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["redis"]["ok"] is True
    assert body["checks"]["celery"]["ok"] is False
    assert "no Celery worker answered" in body["checks"]["celery"]["detail"]
