"""The `transform` node type (nodes/types/transform.py) and its JSONata evaluation (nodes/jsonata_eval.py): no
database, no worker."""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.test import override_settings

from nodes import get_node_type, node_catalogue, node_specs
from nodes.base import NodeContext, NodeError
from nodes.jsonata_eval import ExpressionError, evaluate, syntax_error
from nodes.spec import Node
from tests.engine_helpers import graph_of
from workflows.graph import validate_graph

COUNT_A_MILLION = "$count($map([1..1000000], function($v) { $v * 2 }))"
DEEP_RECURSION = "($f := function($n) { $n <= 0 ? 0 : 1 + $f($n - 1) }; {'depth': $f(100000)})"


def execute(
    expression: str, node_input: dict[str, Any], nodes: dict[str, dict[str, Any]] | None = None
) -> dict[str, Any]:
    node = Node("shape", "transform", {"expression": expression}, None)
    context = NodeContext(run_id=1, node=node, input=node_input, nodes=nodes or {})
    return get_node_type("transform").execute(context).fields


def transform_graph(expression: object) -> dict[str, Any]:
    return graph_of(
        [("start", "start", {}), ("shape", "transform", {"expression": expression}), ("end", "end", {})],
        [("start", "shape"), ("shape", "end")],
    )


def test_the_expression_sees_the_input_and_earlier_nodes_fields() -> None:
    fields = execute(
        '{"total": $sum(input.items.price), "who": nodes.classify.label & "/" & input.name}',
        {"name": "Ann", "items": [{"price": 2}, {"price": 3.5}]},
        {"classify": {"label": "gold"}},
    )
    assert fields == {"total": 5.5, "who": "gold/Ann"}


def test_its_fields_are_the_object_the_expression_yields_merged_over_the_input() -> None:
    # The engine merges a node's own fields over its input (output = {**input, **fields}).
    fields = execute('{"name": $uppercase(input.name), "n": 1}', {"name": "ann", "kept": True})
    assert fields == {"name": "ANN", "n": 1}
    assert {**{"name": "ann", "kept": True}, **fields} == {"name": "ANN", "kept": True, "n": 1}


def test_an_empty_object_adds_nothing() -> None:
    assert execute("{}", {"a": 1}) == {}


@pytest.mark.parametrize(
    ("expression", "said"),
    [
        ("42", "a number (42)"),
        ("[1, 2]", "a list of 2 items"),
        ("input.missing", "undefined or null"),
        ('"text"', 'a string ("text")'),
        ("true", "a boolean (true)"),
    ],
)
def test_a_value_that_is_not_an_object_fails_the_node_saying_what_it_was(expression: str, said: str) -> None:
    with pytest.raises(NodeError) as failure:
        execute(expression, {})
    assert str(failure.value) == f'transform "shape": the expression\'s value must be a JSON object, not {said}'


def test_a_function_in_the_value_fails_the_node() -> None:
    with pytest.raises(NodeError, match="holds something JSON cannot"):
        execute('{"f": function($x) { $x }}', {})


def test_an_evaluation_error_fails_the_node_naming_it_the_code_and_the_position() -> None:
    with pytest.raises(NodeError) as failure:
        execute('{\n  "x": $nope(1)\n}', {})
    message = str(failure.value)
    assert message.startswith('transform "shape": JSONata T1006: ')
    assert "at position 15 (line 2, column 14)" in message


def test_an_evaluation_error_is_permanent_not_retried() -> None:
    from nodes.base import TransientNodeError

    with pytest.raises(NodeError) as failure:
        execute('{"x": input.a + "s"}', {"a": 1})
    assert not isinstance(failure.value, TransientNodeError)
    assert "T2002" in str(failure.value)


@override_settings(FLOWNOVA_TRANSFORM_TIMEOUT_MS=300)
def test_a_long_running_expression_stops_at_the_time_limit_naming_the_setting() -> None:
    began = time.monotonic()
    with pytest.raises(NodeError) as failure:
        execute(COUNT_A_MILLION, {})
    elapsed = time.monotonic() - began
    assert "longer than the limit of 300 ms (FLOWNOVA_TRANSFORM_TIMEOUT_MS)" in str(failure.value)
    assert 0.25 < elapsed < 1.5


def test_the_time_limit_counts_from_each_evaluation_not_from_the_first() -> None:
    for _ in range(3):  # each well under the limit, together over it
        assert evaluate("{'n': $count([1..50000])}", {}, timeout_ms=1000, max_depth=500) == {"n": 50000}


@override_settings(FLOWNOVA_TRANSFORM_MAX_DEPTH=100)
def test_deep_recursion_stops_at_the_depth_bound_naming_the_setting() -> None:
    with pytest.raises(NodeError, match=r"deeper than the limit of 100 levels \(FLOWNOVA_TRANSFORM_MAX_DEPTH\)"):
        execute(DEEP_RECURSION, {})


def test_the_default_depth_bound_trips_before_pythons_recursion_limit() -> None:
    with pytest.raises(ExpressionError) as failure:
        evaluate(DEEP_RECURSION, {}, timeout_ms=5000, max_depth=500)
    assert failure.value.code == "depth"
    nested = "[" * 1000 + "1" + "]" * 1000
    with pytest.raises(ExpressionError, match="FLOWNOVA_TRANSFORM_MAX_DEPTH"):
        evaluate(nested, {}, timeout_ms=5000, max_depth=500)


def test_a_syntax_error_is_refused_when_the_graph_is_saved_naming_the_field_and_the_position() -> None:
    issues = validate_graph(transform_graph('{"total": $sum(input.items'), node_specs())
    assert [(issue.node_id, issue.field) for issue in issues] == [("shape", "expression")]
    assert "JSONata S0203" in issues[0].message and "at position 26 (line 1, column 27)" in issues[0].message


def test_a_valid_expression_validates_and_an_empty_or_missing_one_does_not() -> None:
    assert validate_graph(transform_graph('{"a": input.a}'), node_specs()) == []
    for data in ({"expression": ""}, {}, {"expression": 3}):
        graph = transform_graph("x")
        graph["nodes"][1]["data"] = data
        issues = validate_graph(graph, node_specs())
        assert [(issue.node_id, issue.field) for issue in issues] == [("shape", "expression")], data


def test_syntax_error_reports_the_parsers_position() -> None:
    error = syntax_error("input.a +")
    assert error is not None and error.code == "S0207" and error.position == 9
    assert syntax_error("input.a + 1") is None


def test_it_is_a_worker_node_in_the_data_group_with_no_side_effects() -> None:
    node_type = get_node_type("transform")
    assert not node_type.instant and not node_type.side_effects
    entry = next(entry for entry in node_catalogue() if entry["type"] == "transform")
    assert (entry["group"], entry["summary"], entry["output_fields"]) == ("Data", "{{expression}}", [])
    expression = entry["data_schema"]["properties"]["expression"]
    assert expression["x-widget"] == "textarea"
    assert expression["x-preview"] == "/api/nodes/transform/preview/"
    assert entry["data_schema"]["required"] == ["expression"]
