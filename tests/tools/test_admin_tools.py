"""The tool admin: write-only secret headers, validation through the service, and the test-call action."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from tests.tools.servers import LocalServer, Reply
from tools.models import Tool, ToolCall
from tools.secrets import secrets_decrypt
from tools.services import tool_create

pytestmark = pytest.mark.django_db

SECRET = "Bearer sk-live-51HxYzVerySecretValue"


def form_data(owner: User, **changes: str) -> dict[str, Any]:
    return {
        "owner": owner.pk,
        "name": "weather",
        "description": "Weather",
        "method": "GET",
        "url": "https://api.example.test/w/{city}",
        "headers": json.dumps({"Accept": "application/json"}),
        "parameters": json.dumps(
            {"type": "object", "properties": {"city": {"type": "string", "examples": ["Oslo"]}}, "required": ["city"]}
        ),
        "timeout_seconds": "",
        "is_active": "on",
        "secret_headers": "",
        **changes,
    }


@pytest.fixture
def admin_client(client: Client, superuser: User) -> Client:
    client.force_login(superuser)
    return client


def test_adding_a_tool_encrypts_the_secret_headers_given_as_lines(admin_client: Client, alice: User) -> None:
    data = form_data(alice, secret_headers=f"Authorization: {SECRET}\nX-Api-Key: k-1\n")
    response = admin_client.post(reverse("admin:tools_tool_add"), data)
    assert response.status_code == 302, response.content.decode()[:3000]
    tool = Tool.objects.get(name="weather")
    assert tool.owner == alice
    assert SECRET not in tool.secret_headers_encrypted
    assert secrets_decrypt(tool.secret_headers_encrypted) == {"Authorization": SECRET, "X-Api-Key": "k-1"}


def test_secret_headers_may_be_given_as_json(admin_client: Client, alice: User) -> None:
    data = form_data(alice, secret_headers=json.dumps({"X-Api-Key": "k-2"}))
    assert admin_client.post(reverse("admin:tools_tool_add"), data).status_code == 302
    assert secrets_decrypt(Tool.objects.get().secret_headers_encrypted) == {"X-Api-Key": "k-2"}


@pytest.fixture
def tool(alice: User) -> Tool:
    return tool_create(
        owner=alice,
        name="weather",
        description="Weather",
        url="https://api.example.test/w/{city}",
        parameters={"type": "object", "properties": {"city": {"type": "string"}}},
        secret_headers={"Authorization": SECRET},
    )


def test_the_change_page_shows_secret_header_names_never_values(admin_client: Client, tool: Tool) -> None:
    page = admin_client.get(reverse("admin:tools_tool_change", args=[tool.pk])).content.decode()
    assert "Current secret headers: Authorization." in page
    assert "sk-live" not in page and tool.secret_headers_encrypted not in page


def test_a_blank_secret_field_keeps_the_secrets_and_the_checkbox_clears_them(
    admin_client: Client, tool: Tool, alice: User
) -> None:
    url = reverse("admin:tools_tool_change", args=[tool.pk])
    assert admin_client.post(url, form_data(alice, description="Changed")).status_code == 302
    tool.refresh_from_db()
    assert tool.description == "Changed"
    assert secrets_decrypt(tool.secret_headers_encrypted) == {"Authorization": SECRET}
    assert admin_client.post(url, form_data(alice, clear_secret_headers="on")).status_code == 302
    tool.refresh_from_db()
    assert tool.secret_headers_encrypted == ""


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"url": "gopher://example.test/"}, "must start with http:// or https://"),
        ({"url": "https://api.example.test/{nope}"}, "{nope} is not a parameter"),
        ({"name": "two words"}, "identifier"),
        ({"parameters": json.dumps({"type": "array"})}, "type"),
        ({"secret_headers": "no colon here"}, "Line 1 is not `Name: value`"),
        ({"secret_headers": "{not json"}, "not a valid JSON object"),
        ({"secret_headers": "X-Key: v", "clear_secret_headers": "on"}, "Either enter new secret headers or clear them"),
        (
            {"headers": json.dumps({"Authorization": "x"}), "secret_headers": "Authorization: y"},
            "both a plain and a secret",
        ),
    ],
)
def test_invalid_input_is_shown_on_the_form_and_nothing_is_saved(
    admin_client: Client, alice: User, changes: dict[str, str], message: str
) -> None:
    response = admin_client.post(reverse("admin:tools_tool_add"), form_data(alice, **changes))
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not Tool.objects.exists()


def test_a_bad_secret_line_is_not_echoed_back(admin_client: Client, alice: User) -> None:
    response = admin_client.post(reverse("admin:tools_tool_add"), form_data(alice, secret_headers="hunter2-secret"))
    assert response.status_code == 200
    assert "hunter2-secret" not in response.content.decode()


def test_the_test_call_action_uses_the_schema_examples_and_shows_the_answer(
    admin_client: Client, alice: User, make_server: Callable[..., LocalServer], allow_loopback: None
) -> None:
    server = make_server(lambda request, count: Reply(body={"city": request.path.rsplit("/", 1)[-1], "temp": 21}))
    tool = tool_create(
        owner=alice,
        name="weather",
        url=f"{server.url}/w/{{city}}",
        parameters={"type": "object", "properties": {"city": {"type": "string", "examples": ["Oslo"]}}},
        secret_headers={"Authorization": SECRET},
    )
    response = admin_client.post(
        reverse("admin:tools_tool_changelist"), {"action": "make_test_call", "_selected_action": [tool.pk]}
    )
    assert response.status_code == 302
    shown = [str(message) for message in get_messages(response.wsgi_request)]
    assert len(shown) == 1
    assert shown[0].startswith('weather with {"city": "Oslo"}: HTTP 200 in ')
    assert '{"city": "Oslo", "temp": 21}' in shown[0]
    assert server.received[0].path == "/w/Oslo"
    call = ToolCall.objects.get()
    assert call.run_id is None and call.tool == tool and call.status_code == 200


def test_the_test_call_action_reports_failures(
    admin_client: Client, alice: User, allow_loopback: None, make_server: Callable[..., LocalServer]
) -> None:
    server = make_server()
    tool = tool_create(
        owner=alice,
        name="strict",
        url=f"{server.url}/s",
        parameters={"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]},
    )
    response = admin_client.post(
        reverse("admin:tools_tool_changelist"), {"action": "make_test_call", "_selected_action": [tool.pk]}
    )
    shown = [str(message) for message in get_messages(response.wsgi_request)]
    assert shown == ["strict with {}: invalid arguments for tool 'strict': 'n' is a required property."]
    assert server.received == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"X-Key": ' + "[" * 5000 + "]" * 5000 + "}", "nested"),
        ('{"X-Key": "a\\u0000b"}', "NUL"),
        ('{"X-Key": NaN}', "NaN"),
    ],
)
def test_secret_headers_as_hostile_json_are_refused_as_a_form_error_never_a_500(text: str, expected: str) -> None:
    from django import forms

    from tools.admin import parse_secret_headers

    with pytest.raises(forms.ValidationError) as refused:
        parse_secret_headers(text)
    assert expected in " ".join(refused.value.messages)
