"""The API served by daphne (ASGI), as in production: tokens, 401, and the body limit answered with 413."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from django.conf import settings
from django.contrib.auth.models import User
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
