"""The tools REST API (docs/CONTRACT.md, REST API), mounted by a test URLconf until flownova/urls.py routes it."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from rest_framework.test import APIClient

from tests.tools.servers import LocalServer, Reply
from tools.models import Tool, ToolCall
from tools.services import tool_create

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.tools.urls")]

SECRET = "Bearer sk-live-51HxYzVerySecretValue"


@pytest.fixture
def api(alice: User) -> APIClient:
    client = APIClient()
    client.force_authenticate(alice)
    return client


def body(**changes: Any) -> dict[str, Any]:
    return {
        "name": "weather",
        "description": "Current weather by city",
        "method": "GET",
        "url": "https://api.example.test/weather/{city}",
        "headers": {"Accept": "application/json"},
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        "secret_headers": {"Authorization": SECRET},
        **changes,
    }


def test_creating_a_tool_stores_its_secrets_encrypted_and_never_returns_them(api: APIClient, alice: User) -> None:
    response = api.post("/api/tools/", body(), format="json")
    assert response.status_code == 201, response.data
    data = response.json()
    assert data["name"] == "weather" and data["secret_header_names"] == ["Authorization"]
    assert "secret_headers" not in data
    assert SECRET not in response.content.decode()
    tool = Tool.objects.get(pk=data["id"])
    assert tool.owner == alice
    with connection.cursor() as cursor:
        cursor.execute("SELECT secret_headers_encrypted FROM tools_tool WHERE id = %s", [tool.pk])
        stored = cursor.fetchone()[0]
    assert stored and SECRET not in stored and "sk-live" not in stored


def test_reading_never_shows_secret_values(api: APIClient) -> None:
    tool_id = api.post("/api/tools/", body(), format="json").json()["id"]
    for url in ("/api/tools/", f"/api/tools/{tool_id}/"):
        response = api.get(url)
        assert response.status_code == 200
        assert "sk-live" not in response.content.decode()
    listed = api.get("/api/tools/").json()
    assert listed["count"] == 1 and listed["results"][0]["secret_header_names"] == ["Authorization"]


def test_the_owner_comes_from_the_request_and_cannot_be_set_in_the_body(
    api: APIClient, alice: User, mallory: User
) -> None:
    response = api.post("/api/tools/", body(owner=mallory.pk), format="json")
    assert response.status_code == 400 and response.json()["owner"] == ["Unknown field."]
    assert not Tool.objects.exists()
    tool_id = api.post("/api/tools/", body(), format="json").json()["id"]
    assert Tool.objects.get(pk=tool_id).owner == alice
    response = api.patch(f"/api/tools/{tool_id}/", {"secret_header_names": ["X"]}, format="json")
    assert response.status_code == 400 and "read-only" in response.json()["secret_header_names"][0]


def test_other_users_tools_are_invisible(api: APIClient, mallory: User) -> None:
    tool_id = api.post("/api/tools/", body(), format="json").json()["id"]
    outsider = APIClient()
    outsider.force_authenticate(mallory)
    assert outsider.get("/api/tools/").json()["count"] == 0
    for method in ("get", "patch", "delete"):
        assert getattr(outsider, method)(f"/api/tools/{tool_id}/", {}, format="json").status_code == 404
    assert outsider.post(f"/api/tools/{tool_id}/test/", {}, format="json").status_code == 404


def test_staff_see_every_tool(api: APIClient, superuser: User) -> None:
    api.post("/api/tools/", body(), format="json")
    staff = APIClient()
    staff.force_authenticate(superuser)
    assert staff.get("/api/tools/").json()["count"] == 1


def test_unauthenticated_requests_are_refused() -> None:
    assert APIClient().get("/api/tools/").status_code in (401, 403)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"name": "not an identifier"}, "name"),
        ({"url": "file:///etc/passwd"}, "url"),
        ({"url": "https://api.example.test/{nope}"}, "url"),
        ({"method": "TRACE"}, "method"),
        ({"parameters": {"type": "object", "properties": {"a": {"type": 5}}}}, "parameters"),
        ({"parameters": "not json schema"}, "parameters"),
        ({"headers": {"Host": "evil"}}, "headers"),
        ({"secret_headers": {"X-Key": "a\r\nb"}}, "secret_headers"),
        ({"secret_headers": ["Authorization"]}, "secret_headers"),
    ],
)
def test_an_invalid_definition_is_a_400_naming_the_field(api: APIClient, changes: dict[str, Any], field: str) -> None:
    response = api.post("/api/tools/", body(**changes), format="json")
    assert response.status_code == 400
    assert field in response.json(), response.json()
    assert Tool.objects.count() == 0


def test_a_duplicate_name_is_a_400(api: APIClient) -> None:
    api.post("/api/tools/", body(), format="json")
    response = api.post("/api/tools/", body(), format="json")
    assert response.status_code == 400
    assert response.json()["name"] == ["this project already has a tool named 'weather'"]


def test_secrets_are_kept_when_omitted_replaced_when_sent_and_removed_with_an_empty_object(api: APIClient) -> None:
    tool_id = api.post("/api/tools/", body(), format="json").json()["id"]
    url = f"/api/tools/{tool_id}/"
    assert api.patch(url, {"description": "new"}, format="json").json()["secret_header_names"] == ["Authorization"]
    replaced = api.patch(url, {"secret_headers": {"X-Api-Key": "k-1"}}, format="json").json()
    assert replaced["secret_header_names"] == ["X-Api-Key"]
    full = body(secret_headers={"X-Api-Key": "k-2"})
    assert api.put(url, full, format="json").json()["secret_header_names"] == ["X-Api-Key"]
    assert api.patch(url, {"secret_headers": {}}, format="json").json()["secret_header_names"] == []
    assert not Tool.objects.get(pk=tool_id).secret_headers_encrypted


def test_a_patch_is_validated_against_the_whole_definition(api: APIClient) -> None:
    tool_id = api.post("/api/tools/", body(), format="json").json()["id"]
    # Dropping the parameter the URL uses would leave {city} undeclared.
    response = api.patch(f"/api/tools/{tool_id}/", {"parameters": {"type": "object"}}, format="json")
    assert response.status_code == 400
    assert "{city} is not a parameter" in json.dumps(response.json())


def test_delete(api: APIClient) -> None:
    tool_id = api.post("/api/tools/", body(), format="json").json()["id"]
    assert api.delete(f"/api/tools/{tool_id}/").status_code == 204
    assert not Tool.objects.exists()


# --- the test call ------------------------------------------------------------------------------------------------


@pytest.fixture
def echo_tool(alice: User, server: LocalServer, allow_loopback: None) -> Tool:
    return tool_create(
        owner=alice,
        name="echo",
        url=f"{server.url}/echo/{{city}}",
        parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        secret_headers={"Authorization": SECRET},
    )


def test_the_test_action_calls_the_tool_and_records_the_call(
    api: APIClient, echo_tool: Tool, server: LocalServer
) -> None:
    response = api.post(f"/api/tools/{echo_tool.pk}/test/", {"arguments": {"city": "Oslo"}}, format="json")
    assert response.status_code == 200
    data = response.json()
    assert data["ok"] and data["status_code"] == 200
    assert data["result"]["path"] == "/echo/Oslo"
    assert server.received[0].headers["authorization"] == SECRET
    assert "sk-live" not in response.content.decode()
    call = ToolCall.objects.get(tool=echo_tool)
    assert call.run_id is None and call.status_code == 200 and "sk-live" not in call.response


def test_the_test_action_refuses_bad_arguments_without_calling(
    api: APIClient, echo_tool: Tool, server: LocalServer
) -> None:
    response = api.post(f"/api/tools/{echo_tool.pk}/test/", {"arguments": {"city": 5}}, format="json")
    assert response.status_code == 400
    assert response.json()["arguments"] == ["city: 5 is not of type 'string'"]
    assert server.received == [] and not ToolCall.objects.exists()
    response = api.post(f"/api/tools/{echo_tool.pk}/test/", {"arguments": [1]}, format="json")
    assert response.status_code == 400 and response.json()["arguments"] == ["must be a JSON object"]


def test_the_test_action_reports_a_failing_tool_as_an_outcome(
    api: APIClient, alice: User, make_server: Callable[..., LocalServer], allow_loopback: None
) -> None:
    down = make_server(lambda request, count: Reply(404, body="nope"))
    tool = tool_create(owner=alice, name="down", url=f"{down.url}/x")
    data = api.post(f"/api/tools/{tool.pk}/test/", {}, format="json").json()
    assert (data["ok"], data["status_code"], data["error"]) == (False, 404, "tool 'down': HTTP 404 Not Found")


def test_a_disabled_tool_cannot_be_test_called(
    api: APIClient, alice: User, server: LocalServer, allow_loopback: None
) -> None:
    tool = tool_create(owner=alice, name="off", url=f"{server.url}/x", is_active=False)
    response = api.post(f"/api/tools/{tool.pk}/test/", {}, format="json")
    assert response.status_code == 400 and "tool 'off' is disabled" in response.json()["detail"]
    assert server.received == []
