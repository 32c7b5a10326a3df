"""`POST /api/nodes/transform/preview/`: a transform expression tried on sample data, with a run's limits."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import override_settings
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db

URL = "/api/nodes/transform/preview/"


def preview(client: APIClient, body: Any) -> Any:
    return client.post(URL, body, format="json")


def test_it_needs_authentication(api: Callable[..., APIClient]) -> None:
    response = preview(api(), {"expression": "{}", "input": {}})
    assert response.status_code == 401


def test_an_expression_answers_its_result_over_input_and_nodes(api: Callable[..., APIClient], alice: User) -> None:
    body = {
        "expression": '{"total": $sum(input.items), "tier": nodes.classify.label}',
        "input": {"items": [1, 2, 3.5]},
        "nodes": {"classify": {"label": "gold"}},
    }
    response = preview(api(alice), body)
    assert response.status_code == 200
    assert response.json() == {"ok": True, "result": {"total": 6.5, "tier": "gold"}}


def test_nodes_may_be_left_out(api: Callable[..., APIClient], alice: User) -> None:
    response = preview(api(alice), {"expression": '{"n": $count($keys(nodes))}', "input": {}})
    assert response.json() == {"ok": True, "result": {"n": 0}}


@pytest.mark.parametrize(
    ("expression", "error", "position"),
    [
        ('{"a": ', "JSONata S0203: Expected } before end of expression at position 6", 6),
        ('{"a": $nope()}', "JSONata T1006: Attempted to invoke a non-function at position 12", 12),
        ("[1, 2]", "the expression's value must be a JSON object, not a list of 2 items", None),
    ],
)
def test_a_failing_expression_is_an_answer_with_the_error_and_its_position(
    api: Callable[..., APIClient], alice: User, expression: str, error: str, position: int | None
) -> None:
    response = preview(api(alice), {"expression": expression, "input": {}})
    assert response.status_code == 200
    answer = response.json()
    assert answer["ok"] is False and answer["position"] == position
    assert answer["error"].startswith(error)


@override_settings(FLOWNOVA_TRANSFORM_TIMEOUT_MS=200)
def test_the_preview_has_the_runs_time_limit(api: Callable[..., APIClient], alice: User) -> None:
    expression = "$count($map([1..1000000], function($v) { $v * 2 }))"
    answer = preview(api(alice), {"expression": expression, "input": {}}).json()
    assert answer == {
        "ok": False,
        "error": "the expression ran longer than the limit of 200 ms (FLOWNOVA_TRANSFORM_TIMEOUT_MS)",
        "position": None,
    }


@override_settings(FLOWNOVA_MAX_NODE_OUTPUT_BYTES=1000)
def test_the_preview_has_the_node_output_cap(api: Callable[..., APIClient], alice: User) -> None:
    answer = preview(api(alice), {"expression": '{"big": $pad("", 5000)}', "input": {}}).json()
    assert answer["ok"] is False and "FLOWNOVA_MAX_NODE_OUTPUT_BYTES" in answer["error"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"input": {}}, "expression"),
        ({"expression": "", "input": {}}, "expression"),
        ({"expression": 3, "input": {}}, "expression"),
        ({"expression": "{}"}, "input"),
        ({"expression": "{}", "input": [1]}, "input"),
        ({"expression": "{}", "input": {}, "nodes": {"a": 1}}, "nodes"),
        ({"expression": "{}", "input": {}, "extra": 1}, "extra"),
    ],
)
def test_a_bad_body_is_a_400_naming_the_field(
    api: Callable[..., APIClient], alice: User, body: dict[str, Any], field: str
) -> None:
    response = preview(api(alice), body)
    assert response.status_code == 400
    assert field in response.json()


def test_a_body_that_is_not_an_object_is_a_400(api: Callable[..., APIClient], alice: User) -> None:
    assert preview(api(alice), [1, 2]).status_code == 400


def test_previews_are_rate_limited_per_user(api: Callable[..., APIClient], alice: User, mallory: User) -> None:
    body = {"expression": "{}", "input": {}}
    with override_settings(FLOWNOVA_TRANSFORM_PREVIEW_RATE="2/min"):
        client = api(alice)
        assert [preview(client, body).status_code for _ in range(2)] == [200, 200]
        refused = preview(client, body)
        assert refused.status_code == 429
        assert 0 < int(refused["Retry-After"]) <= 60
        assert preview(api(mallory), body).status_code == 200
