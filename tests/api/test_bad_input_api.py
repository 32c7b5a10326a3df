"""Bad input never gives a 500: every case answers a 4xx whose JSON `detail` names the problem, and nothing
already stored changes."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import pytest
from django.contrib.auth.models import User
from django.test import override_settings
from rest_framework.test import APIClient

from flownova.api_parsers import BodyTooLarge, SafeJSONParser
from runs.models import Run
from tests.factories import make_workflow
from workflows.models import Workflow

if TYPE_CHECKING:
    from rest_framework.response import _MonkeyPatchedResponse

pytestmark = pytest.mark.django_db


Stored = tuple[Workflow, dict[str, object]]  # a workflow and its document as first saved


@pytest.fixture
def stored(alice: User) -> Stored:
    """A workflow whose document must survive every bad request below."""
    workflow = make_workflow(alice, name="Keep me")
    return workflow, workflow.document()


def assert_unchanged(stored: Stored) -> None:
    workflow, document = stored
    workflow.refresh_from_db()
    assert workflow.document() == document and workflow.version == 1
    assert Workflow.objects.count() == 1 and not Run.objects.exists()


def send(
    client: APIClient, method: str, path: str, raw: bytes | str, content_type: str = "application/json"
) -> _MonkeyPatchedResponse:
    return getattr(client, method)(path, raw, content_type=content_type)


def targets(workflow: Workflow) -> list[tuple[str, str]]:
    return [
        ("post", "/api/workflows/"),
        ("patch", f"/api/workflows/{workflow.pk}/"),
        ("put", f"/api/workflows/{workflow.pk}/"),
        ("post", f"/api/workflows/{workflow.pk}/runs/"),
        ("post", "/api/workflows/import/"),
    ]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ('{"name": "x",', "JSON parse error: Expecting property name enclosed in double quotes: line 1 column 14"),
        ("{'name': 'x'}", "JSON parse error: Expecting property name enclosed in double quotes: line 1 column 2"),
        ('{"name": NaN}', "JSON parse error: NaN is not valid JSON (numbers must be finite)"),
        ('{"name": "a\x00b"}', "JSON parse error: Invalid control character at: line 1 column 12"),
        (b'{"name": "\xff"}', "The body is not valid UTF-8: invalid start byte at byte 10."),
    ],
)
def test_malformed_json_is_400_naming_the_parse_error(
    api: Callable[..., APIClient], alice: User, stored: Stored, raw: str | bytes, message: str
) -> None:
    client = api(alice)
    for method, path in targets(stored[0]):
        response = send(client, method, path, raw)
        assert response.status_code == 400, (method, path)
        assert response.json()["detail"].startswith(message)
    assert_unchanged(stored)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "nul\u0000byte", "graph": {"nodes": [], "edges": []}}, "name"),
        ({"input": {"customer": {"name": "a\u0000"}}}, "input.customer.name"),
        (
            {"name": "x", "graph": {"nodes": [{"id": "s", "type": "start", "data": {"k\u0000": 1}}]}},
            "graph.nodes[0].data.k\\u0000",
        ),
        ({"input": {"list": ["ok", "bad\u0000"]}}, "input.list[1]"),
    ],
)
def test_nul_characters_are_400_naming_the_field(
    api: Callable[..., APIClient], alice: User, stored: Stored, body: dict[str, Any], field: str
) -> None:
    client = api(alice)
    for method, path in targets(stored[0]):
        response = send(client, method, path, json.dumps(body))
        assert response.status_code == 400
        assert response.json() == {
            "detail": f"{field}: text may not contain NUL characters (\\u0000)",
            "field": field,
        }
    assert_unchanged(stored)


def test_unpaired_surrogates_and_infinite_numbers_are_400_naming_the_field(
    api: Callable[..., APIClient], alice: User, stored: Stored
) -> None:
    client = api(alice)
    workflow = stored[0]
    response = send(client, "post", f"/api/workflows/{workflow.pk}/runs/", '{"input": {"text": "\\ud800"}}')
    assert response.status_code == 400
    assert response.json()["detail"] == "input.text: text may not contain an unpaired surrogate (\\ud800)"
    response = send(client, "post", f"/api/workflows/{workflow.pk}/runs/", '{"input": {"big": 1e400}}')
    assert response.status_code == 400
    assert response.json()["detail"] == "input.big: the number is too large (it would be infinite)"
    assert_unchanged(stored)


def test_deep_nesting_is_400_and_deeper_than_the_parser_can_go_too(
    api: Callable[..., APIClient], alice: User, stored: Stored
) -> None:
    client = api(alice)
    path = f"/api/workflows/{stored[0].pk}/runs/"
    fine: dict[str, Any] = {"input": {}}
    inner = fine["input"]
    for _ in range(60):
        inner["a"] = {}
        inner = inner["a"]
    deep = '{"input": ' + '{"a": ' * 70 + "{}" + "}" * 70 + "}"
    response = send(client, "post", path, deep)
    assert response.status_code == 400
    assert response.json()["detail"].endswith(": the JSON is nested more than 64 levels deep")
    assert response.json()["field"].startswith("input.a.a.a")
    abyss = "[" * 100_000 + "]" * 100_000
    response = send(client, "post", path, abyss)
    assert response.status_code == 400
    assert response.json()["detail"] == "JSON parse error: the document is nested too deeply."
    assert_unchanged(stored)
    assert send(client, "post", path, json.dumps(fine)).status_code == 201  # 62 levels are fine


def test_a_body_over_the_limit_is_413(api: Callable[..., APIClient], alice: User, stored: Stored) -> None:
    client = api(alice)
    with override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=1000):
        body = json.dumps({"name": "big", "description": "x" * 2000, "graph": {"nodes": []}})
        for method, path in targets(stored[0]):
            response = send(client, method, path, body)
            assert response.status_code == 413
            assert response.json() == {"detail": "The request body is larger than the limit of 1000 bytes."}
    assert_unchanged(stored)


def test_the_parser_stops_reading_at_the_limit_without_a_content_length() -> None:
    request = SimpleNamespace(META={})  # a chunked upload: no Content-Length to trust
    with override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=10):
        stream = io.BytesIO(b'{"name": "' + b"x" * 10_000 + b'"}')
        with pytest.raises(BodyTooLarge):
            SafeJSONParser().parse(stream, "application/json", {"request": request})
        assert stream.tell() == 11
        assert SafeJSONParser().parse(io.BytesIO(b'{"a": 1}'), "application/json", {"request": request}) == {"a": 1}


def test_a_body_that_is_not_json_is_415(api: Callable[..., APIClient], alice: User, stored: Stored) -> None:
    client = api(alice)
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"):
        response = send(client, "post", "/api/workflows/", "name=x", content_type)
        assert response.status_code == 415
        assert response.json()["detail"] == f'Unsupported media type "{content_type}" in request.'
    assert_unchanged(stored)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ([], "non_field_errors"),
        ("just a string", "non_field_errors"),
        (42, "non_field_errors"),
        ({"name": 5.5, "graph": []}, "graph"),
        ({"name": {"first": "x"}, "graph": {"nodes": []}}, "name"),
    ],
)
def test_wrong_types_are_400(
    api: Callable[..., APIClient], alice: User, stored: Stored, body: object, field: str
) -> None:
    response = send(api(alice), "post", "/api/workflows/", json.dumps(body))
    assert response.status_code == 400
    assert field in response.json()
    assert response.json()["detail"]
    assert_unchanged(stored)


def test_unknown_paths_and_methods_answer_json(api: Callable[..., APIClient], alice: User, stored: Stored) -> None:
    client = api(alice)
    missing = client.get("/api/flows/")
    assert missing.status_code == 404 and missing.json()["detail"].startswith("Not found")
    assert client.get("/api/workflows/abc/").status_code == 404
    assert client.get("/api/workflows/99999999999999999999999/").status_code == 404
    not_allowed = client.delete("/api/runs/")
    assert not_allowed.status_code == 405 and not_allowed.json() == {"detail": 'Method "DELETE" not allowed.'}
    assert_unchanged(stored)


def test_the_handler_turns_django_errors_and_crashes_into_json() -> None:
    from django.core.exceptions import RequestDataTooBig

    from flownova.api_errors import api_exception_handler

    too_big = api_exception_handler(
        RequestDataTooBig("Request body exceeded settings.DATA_UPLOAD_MAX_MEMORY_SIZE."), {}
    )
    assert too_big.status_code == 413 and too_big.data["detail"].startswith("The request body is larger than")
    crash = api_exception_handler(RuntimeError("secret internals"), {})
    assert crash.status_code == 500
    assert crash.data == {"detail": "Internal server error. It has been logged; please report it if it persists."}
