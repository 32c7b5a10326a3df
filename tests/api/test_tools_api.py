"""The tools endpoints as routed under /api/ (the viewset itself is tested in tests/tools/): the owner's, the
outsider's 404s, staff, and secrets never echoed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

pytest.importorskip("tools.api")

from tools.models import Tool

pytestmark = pytest.mark.django_db

SECRET = "Bearer sk-test-not-to-be-echoed"


def tool_body(**changes: Any) -> dict[str, Any]:
    return {
        "name": "weather",
        "description": "Current weather by city",
        "method": "GET",
        "url": "https://api.example.test/weather/{city}",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        "secret_headers": {"Authorization": SECRET},
        **changes,
    }


def test_the_owner_creates_reads_updates_and_deletes_a_tool(api: Callable[..., APIClient], alice: User) -> None:
    client = api(alice)
    created = client.post("/api/tools/", tool_body(), format="json")
    assert created.status_code == 201, created.json()
    tool_id = created.json()["id"]
    for response in (created, client.get("/api/tools/"), client.get(f"/api/tools/{tool_id}/")):
        assert SECRET not in response.content.decode()
    assert client.get("/api/tools/").json()["count"] == 1
    assert client.patch(f"/api/tools/{tool_id}/", {"description": "Weather"}, format="json").status_code == 200
    assert client.delete(f"/api/tools/{tool_id}/").status_code == 204
    assert not Tool.objects.exists()


def test_an_outsider_gets_404_for_alices_tool_and_staff_see_it(
    api: Callable[..., APIClient], alice: User, mallory: User, superuser: User
) -> None:
    tool_id = api(alice).post("/api/tools/", tool_body(), format="json").json()["id"]
    client = api(mallory)
    assert client.get("/api/tools/").json()["count"] == 0
    for method, body in [("get", None), ("put", tool_body(name="mine")), ("patch", {"name": "mine"}), ("delete", None)]:
        assert getattr(client, method)(f"/api/tools/{tool_id}/", body, format="json").status_code == 404, method
    assert Tool.objects.get(pk=tool_id).name == "weather"
    assert [item["id"] for item in api(superuser).get("/api/tools/").json()["results"]] == [tool_id]
    assert api().get(f"/api/tools/{tool_id}/").status_code == 401
