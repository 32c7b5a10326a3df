"""The API served by daphne (ASGI), as in production: tokens, 401, and the body limit answered with 413."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection
from rest_framework.authtoken.models import Token

from tests.conftest import ServerProcess, service_env, start_daphne, stop_process
from workflows.models import Workflow

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def server() -> Iterator[ServerProcess]:
    process = start_daphne(service_env())
    yield process
    stop_process(process.process)


def test_the_api_over_daphne(server: ServerProcess, alice: User) -> None:
    auth = {"Authorization": f"Token {Token.objects.create(user=alice).key}"}
    url = f"{server.base_url}/api/workflows/"
    assert httpx.get(url, headers=auth).json()["count"] == 0
    anonymous = httpx.get(url)
    assert anonymous.status_code == 401 and anonymous.headers["WWW-Authenticate"] == "Token"

    graph = {
        "nodes": [{"id": "s", "type": "start"}, {"id": "e", "type": "end"}],
        "edges": [{"source": "s", "target": "e"}],
    }
    created = httpx.post(url, json={"name": "over ASGI", "graph": graph}, headers=auth)
    assert created.status_code == 201, created.text

    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    huge = b'{"name": "' + b"x" * limit + b'", "graph": {"nodes": []}}'
    refused = httpx.post(url, content=huge, headers={**auth, "Content-Type": "application/json"}, timeout=30)
    assert refused.status_code == 413
    assert refused.json() == {"detail": f"The request body is larger than the limit of {limit} bytes."}
    broken = httpx.post(url, content=b'{"name": ', headers={**auth, "Content-Type": "application/json"})
    assert broken.status_code == 400 and broken.json()["detail"].startswith("JSON parse error: ")
    assert list(Workflow.objects.values_list("name", flat=True)) == ["over ASGI"]


def database_connections() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")
        row = cursor.fetchone()
    assert row is not None
    return int(row[0])


def test_bursts_of_requests_hold_no_more_connections_than_the_pool(alice: User) -> None:
    # Under ASGI each request's database work runs in a thread of its own: without the web process's pool, each
    # burst left one open connection per request until PostgreSQL refused new clients.
    token, _ = Token.objects.get_or_create(user=alice)
    process = start_daphne(service_env(FLOWNOVA_DB_POOL_SIZE="4"))
    try:
        before = database_connections()

        def call(_: int) -> int:
            return httpx.get(
                f"{process.base_url}/api/workflows/", headers={"Authorization": f"Token {token.key}"}, timeout=30
            ).status_code

        for _ in range(3):
            with ThreadPoolExecutor(max_workers=30) as pool:
                assert set(pool.map(call, range(30))) == {200}
            assert database_connections() <= before + 4
    finally:
        stop_process(process.process)
