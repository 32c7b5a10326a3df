"""Secret headers are bound to the origin they were entered for: moving a tool to another scheme, host or port
removes them (unless the same change enters secrets again), through the service, the API and the admin."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from django.contrib.auth.models import User
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from tests.tools.servers import LocalServer, Reply
from tools.calling import tool_call
from tools.models import Tool
from tools.secrets import secrets_decrypt
from tools.services import tool_create, tool_origin, tool_update

pytestmark = pytest.mark.django_db

SECRET = "Bearer sk-live-51HxYzVerySecretValue"
URL = "https://api.example.test/weather/{city}"
PARAMETERS = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


@pytest.fixture
def tool(alice: User) -> Tool:
    return tool_create(owner=alice, name="weather", url=URL, parameters=PARAMETERS, secret_headers={"X-Key": SECRET})


def stored_secrets(tool: Tool) -> dict[str, str]:
    tool.refresh_from_db()
    return secrets_decrypt(tool.secret_headers_encrypted)


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("https://api.example.test/x", "https://API.Example.TEST:443/y?q={q}", True),
        ("http://api.example.test/x", "http://api.example.test:80/", True),
        ("https://api.example.test/x", "https://api.example.test./x", True),
        ("http://[::1]:8080/", "http://[0:0::1]:8080/a", True),
        ("https://api.example.test/x", "http://api.example.test/x", False),
        ("https://api.example.test/x", "https://api.example.test:8443/x", False),
        ("https://api.example.test/x", "https://evil.example.test/x", False),
        ("https://api.example.test/x", "https://api.example.test.evil.test/x", False),
    ],
)
def test_origins_are_compared_normalized_with_default_ports(a: str, b: str, same: bool) -> None:
    assert (tool_origin(a) == tool_origin(b)) is same


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example.test/weather/{city}",
        "http://api.example.test/weather/{city}",
        "https://api.example.test:8443/weather/{city}",
    ],
)
def test_moving_a_tool_to_another_origin_removes_its_secret_headers(tool: Tool, url: str) -> None:
    updated = tool_update(tool=tool, fields={"url": url})
    assert updated.secret_headers_cleared
    assert "removed" in updated.notice and "secret headers" in updated.notice
    assert stored_secrets(tool) == {}
    assert Tool.objects.get(pk=tool.pk).url == url


def test_a_change_within_the_origin_keeps_the_secret_headers(tool: Tool) -> None:
    updated = tool_update(tool=tool, fields={"url": "https://API.example.test:443/v2/weather/{city}"})
    assert not updated.secret_headers_cleared and updated.notice == ""
    assert stored_secrets(tool) == {"X-Key": SECRET}


def test_secrets_entered_with_the_new_url_are_kept(tool: Tool) -> None:
    updated = tool_update(tool=tool, fields={"url": "https://new.example.test/w/{city}"}, secret_headers={"X-Key": "n"})
    assert not updated.secret_headers_cleared
    assert stored_secrets(tool) == {"X-Key": "n"}


def test_the_stored_url_is_what_counts_even_when_the_instance_was_changed_before(tool: Tool) -> None:
    # The admin's form writes the new values on the instance before the service sees it.
    tool.url = "https://evil.example.test/weather/{city}"
    updated = tool_update(tool=tool, fields={"url": tool.url})
    assert updated.secret_headers_cleared and stored_secrets(tool) == {}


def test_a_moved_tool_sends_no_secret_to_the_new_host(
    alice: User, make_server: Callable[..., LocalServer], allow_loopback: None
) -> None:
    first, second = make_server(), make_server(lambda request, count: Reply(body={"seen": request.headers}))
    tool = tool_create(owner=alice, name="echo", url=f"{first.url}/a", secret_headers={"X-Key": SECRET})
    tool_update(tool=tool, fields={"url": f"{second.url}/a"})  # another port: another origin
    call = tool_call(tool=Tool.objects.get(pk=tool.pk), arguments={})
    assert call["ok"], call["error"]
    assert "x-key" not in second.received[0].headers


# --- the API ------------------------------------------------------------------------------------------------------


@pytest.fixture
def api(alice: User) -> APIClient:
    client = APIClient()
    client.force_authenticate(alice)
    return client


@pytest.mark.urls("tests.tools.urls")
def test_the_api_says_when_a_new_origin_removed_the_secret_headers(api: APIClient, tool: Tool) -> None:
    response = api.patch(f"/api/tools/{tool.pk}/", {"url": "https://evil.example.test/w/{city}"}, format="json")
    assert response.status_code == 200, response.json()
    data = response.json()
    assert data["secret_headers_cleared"] is True and data["secret_header_names"] == []
    assert "secret headers" in data["notice"] and "https://evil.example.test" in data["notice"]
    assert stored_secrets(tool) == {}

    response = api.patch(f"/api/tools/{tool.pk}/", {"description": "same origin"}, format="json")
    assert response.json()["secret_headers_cleared"] is False and "notice" not in response.json()


@pytest.mark.urls("tests.tools.urls")
def test_the_api_keeps_secrets_sent_with_the_new_url(api: APIClient, tool: Tool) -> None:
    body = {"url": "https://new.example.test/w/{city}", "secret_headers": {"X-Key": "fresh"}}
    data = api.patch(f"/api/tools/{tool.pk}/", body, format="json").json()
    assert data["secret_headers_cleared"] is False and data["secret_header_names"] == ["X-Key"]


# --- the admin ----------------------------------------------------------------------------------------------------


def test_the_admin_says_when_a_new_origin_removed_the_secret_headers(
    client: Client, superuser: User, tool: Tool, alice: User
) -> None:
    client.force_login(superuser)
    data = {
        "owner": alice.pk,
        "name": "weather",
        "description": "Weather",
        "method": "GET",
        "url": "https://evil.example.test/weather/{city}",
        "headers": json.dumps({}),
        "parameters": json.dumps(PARAMETERS),
        "timeout_seconds": "",
        "is_active": "on",
        "secret_headers": "",
    }
    response = client.post(reverse("admin:tools_tool_change", args=[tool.pk]), data)
    assert response.status_code == 302, response.content.decode()[:2000]
    shown = [str(message) for message in get_messages(response.wsgi_request)]
    assert any("secret headers" in message and "removed" in message for message in shown), shown
    assert stored_secrets(tool) == {}
