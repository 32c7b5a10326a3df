"""tool_validate_definition: what the API and the admin refuse, each with a message naming the problem."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User

from projects.services import project_create
from tools.definitions import ToolDefinitionError, tool_validate_definition
from tools.services import tool_create, tool_update

VALID: dict[str, Any] = {
    "name": "get_item",
    "method": "GET",
    "url": "https://api.example.test/items/{item_id}?expand={expand}",
    "parameters": {
        "type": "object",
        "properties": {
            "item_id": {"type": "string"},
            "expand": {"type": "boolean", "x-in": "path"},
            "trace": {"type": "string", "x-in": "header"},
        },
        "required": ["item_id"],
    },
    "headers": {"Accept": "application/json"},
    "secret_headers": {"Authorization": "Bearer x"},
}


def errors_for(**changes: Any) -> dict[str, list[str]]:
    return tool_validate_definition(**{**VALID, **changes})


def test_a_valid_definition_has_no_errors() -> None:
    assert errors_for() == {}


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"name": "get item"}, "name", "identifier"),
        ({"name": "9lives"}, "name", "identifier"),
        ({"name": ""}, "name", "identifier"),
        ({"method": "TRACE"}, "method", "'TRACE' is not one of GET, POST, PUT, PATCH, DELETE"),
        ({"url": ""}, "url", "a URL is required"),
        ({"url": "ftp://example.test/x"}, "url", "must start with http:// or https://"),
        ({"url": "file:///etc/passwd"}, "url", "must start with http:// or https://"),
        ({"url": "https://user:pw@example.test/"}, "url", "must not hold credentials"),
        ({"url": "https://{tenant}.example.test/"}, "url", "not in the host"),
        ({"url": "https://example.test:{port}/"}, "url", "not in the host"),
        ({"url": "https://example.test/items/{missing}"}, "url", "{missing} is not a parameter"),
        ({"url": "https://example.test/items/{item id}"}, "url", "braces must enclose a parameter name"),
        ({"url": "https://example.test/{item_id}/{trace}"}, "url", "its \"x-in\" says 'header'"),
        ({"url": "https://example.test/items"}, "url", 'parameter \'expand\' has "x-in": "path" but the URL has no'),
        ({"url": "https://example.test/x#frag"}, "url", "#fragment"),
        ({"parameters": []}, "parameters", "must be a JSON Schema object"),
        ({"parameters": {"type": "array"}}, "parameters", 'must be a schema of "type": "object"'),
        (
            {"parameters": {"type": "object", "properties": {"a": {"type": "nope"}}}},
            "parameters",
            "not a valid JSON Schema",
        ),
        (
            {"parameters": {"type": "object", "properties": {"a": {"x-in": "cookie"}}}},
            "parameters",
            '"x-in" must be one of',
        ),
        ({"parameters": {"type": "object", "properties": {"a-b": {}}}}, "parameters", "'a-b' is not an identifier"),
        ({"headers": ["Accept"]}, "headers", "must be an object"),
        ({"headers": {"Bad Name": "x"}}, "headers", "'Bad Name' is not a valid header name"),
        ({"headers": {"Host": "x"}}, "headers", "Host is set by the HTTP client"),
        ({"headers": {"X-A": 1}}, "headers", "the value of X-A must be a string"),
        ({"headers": {"X-A": "a\r\nX-B: b"}}, "headers", "must not contain line breaks"),
        ({"secret_headers": {"X-Key": "a\nb"}}, "secret_headers", "must not contain line breaks"),
        ({"headers": {"authorization": "x"}}, "secret_headers", "cannot be both a plain and a secret header"),
        ({"timeout_seconds": 0}, "timeout_seconds", "above 0"),
        ({"timeout_seconds": 601}, "timeout_seconds", "at most 600"),
    ],
)
def test_each_problem_is_named_on_its_field(changes: dict[str, Any], field: str, message: str) -> None:
    errors = errors_for(**changes)
    assert field in errors, errors
    assert any(message in text for text in errors[field]), errors[field]


def test_a_secret_value_is_never_echoed_in_an_error() -> None:
    errors = errors_for(secret_headers={"X-Key": "hunter2\r\nInjected: 1"})
    assert "hunter2" not in str(errors)


def test_every_problem_is_reported_at_once() -> None:
    errors = errors_for(name="bad name", method="TRACE", url="gopher://x/")
    assert set(errors) == {"name", "method", "url"}


@pytest.mark.django_db
def test_a_name_is_unique_per_project(alice: User, mallory: User) -> None:
    tool_create(owner=alice, name="weather", url="https://api.example.test/w")
    with pytest.raises(ToolDefinitionError, match="this project already has a tool named 'weather'"):
        tool_create(owner=alice, name="weather", url="https://api.example.test/w2")
    tool_create(owner=mallory, name="weather", url="https://api.example.test/w")  # another project may
    team = project_create(name="Team", by=alice)
    tool_create(owner=alice, project=team, name="weather", url="https://api.example.test/w")


@pytest.mark.django_db
def test_an_invalid_update_saves_nothing(alice: User) -> None:
    tool = tool_create(owner=alice, name="weather", url="https://api.example.test/w")
    with pytest.raises(ToolDefinitionError) as caught:
        tool_update(tool=tool, fields={"url": "ftp://x/"})
    assert "url" in caught.value.errors
    tool.refresh_from_db()
    assert tool.url == "https://api.example.test/w"
