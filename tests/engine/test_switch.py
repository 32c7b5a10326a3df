"""The `switch` node type and handles read from a node's data: routing, validation, the engine's resolution of
its edges; no database."""

from __future__ import annotations

from typing import Any

import pytest

from nodes import get_node_type, node_specs
from nodes.base import NodeContext, NodeError
from nodes.spec import HandlesFrom, Node, NodeSpec
from runs.engine import core
from workflows.graph import parse_graph, validate_graph

SWITCH = get_node_type("switch")

REFUND_CASES: list[dict[str, Any]] = [
    {"id": "refund", "operator": "==", "right": "refund"},
    {"id": "billing", "operator": "contains", "right": "invoice"},
    {"id": "blank", "operator": "is_empty"},
]


def route(value: Any, cases: list[dict[str, Any]], run_input: dict[str, Any] | None = None) -> tuple[str | None, Any]:
    node = Node("route", "switch", {"value": value, "cases": cases}, None)
    result = SWITCH.execute(NodeContext(run_id=1, node=node, input=run_input or {}))
    return result.handle, result.fields


def switch_graph(cases: list[dict[str, Any]], edges: list[tuple[str, ...]] | None = None) -> dict[str, Any]:
    """start -> route (a switch on input.topic) -> one end per handle named in `edges` (default: every case and
    default)."""
    handles = [case["id"] for case in cases if isinstance(case, dict) and "id" in case] + ["default"]
    wanted = edges if edges is not None else [(handle, f"end_{handle}") for handle in handles]
    targets = list(dict.fromkeys(target for _, target in wanted))
    return {
        "nodes": [
            {"id": "start", "type": "start", "data": {}},
            {"id": "route", "type": "switch", "data": {"value": "{{input.topic}}", "cases": cases}},
            *({"id": target, "type": "end", "data": {}} for target in targets),
        ],
        "edges": [
            {"id": "in", "source": "start", "target": "route"},
            *(
                {"id": f"to_{target}_{handle}", "source": "route", "target": target, "sourceHandle": handle}
                for handle, target in wanted
            ),
        ],
    }


def messages(doc: dict[str, Any]) -> list[str]:
    return [issue.message for issue in validate_graph(doc, node_specs())]


# --- routing ---------------------------------------------------------------------------------------------------


def test_the_first_matching_case_wins() -> None:
    cases = [
        {"id": "first", "operator": "contains", "right": "fund"},
        {"id": "second", "operator": "==", "right": "refund"},
    ]
    assert route("refund", cases) == ("first", {"case": "first"})


def test_no_matching_case_takes_default() -> None:
    assert route("shipping", REFUND_CASES) == ("default", {"case": "default"})


def test_cases_after_the_match_are_not_evaluated() -> None:
    # The second case cannot be evaluated (ordering a string against a number), but the first one matched.
    cases: list[dict[str, Any]] = [
        {"id": "hit", "operator": "==", "right": "x"},
        {"id": "broken", "operator": ">", "right": 3},
    ]
    assert route("x", cases)[0] == "hit"


@pytest.mark.parametrize(
    ("operator", "value", "right", "matches"),
    [
        ("==", "70", 70, True),
        ("=", "abc", "abc", True),
        ("==", "a", "b", False),
        ("!=", "a", "b", True),
        (">", "100", "9", True),
        ("<", 3, "2.5", False),
        (">=", 5, 5, True),
        ("<=", 6, 5, False),
        ("contains", "hello world", "world", True),
        ("not_contains", "hello", "x", True),
        ("is_empty", "  ", None, True),
        ("is_not_empty", "", None, False),
        ("==", "TRUE", True, True),
    ],
)
def test_every_operator_routes_as_if_else_compares(operator: str, value: Any, right: Any, matches: bool) -> None:
    case: dict[str, Any] = {"id": "hit", "operator": operator}
    if right is not None:
        case["right"] = right
    assert route(value, [case])[0] == ("hit" if matches else "default")


def test_templates_are_rendered_in_the_value_and_in_each_case() -> None:
    cases = [{"id": "same", "operator": "==", "right": "{{input.expected}}"}]
    assert route("{{input.topic}}", cases, {"topic": 42, "expected": "42"})[0] == "same"
    assert (
        route("ticket: {{input.topic}}", [{"id": "t", "operator": "==", "right": "ticket: 42"}], {"topic": 42})[0]
        == "t"
    )


def test_a_missing_template_path_fails_the_node_naming_it() -> None:
    with pytest.raises(NodeError, match=r"input\.topic"):
        route("{{input.topic}}", REFUND_CASES, {"other": 1})


def test_a_case_that_cannot_be_evaluated_fails_the_node_naming_the_case() -> None:
    cases = [{"id": "big", "operator": ">", "right": 3}]
    with pytest.raises(NodeError, match=r"case 'big' \(cases.0\): can't compare"):
        route({"an": "object"}, cases)


# --- validation ------------------------------------------------------------------------------------------------


def test_a_switch_with_an_edge_per_case_and_default_is_valid() -> None:
    assert messages(switch_graph(REFUND_CASES)) == []


def test_not_every_handle_needs_an_edge() -> None:
    assert messages(switch_graph(REFUND_CASES, [("refund", "end_a"), ("default", "end_b")])) == []


@pytest.mark.parametrize(
    ("cases", "field", "message"),
    [
        ([], "cases", "data.cases: [] should be non-empty"),
        ([{"id": "", "operator": "=="}], "cases.0.id", "should be non-empty"),
        ([{"id": "a b", "operator": "==", "right": 1}], "cases.0.id", 'must be 1 to 64 letters, digits, "_" or "-"'),
        ([{"id": "default", "operator": "==", "right": 1}], "cases.0.id", '"default" is the handle taken when no case'),
        (
            [{"id": "a", "operator": "==", "right": 1}, {"id": "a", "operator": "!=", "right": 2}],
            "cases.1.id",
            "case id 'a' is already used by cases.0",
        ),
        ([{"id": "a", "operator": "~", "right": 1}], "cases.0.operator", "'~' is not one of"),
        ([{"id": "a", "operator": ">"}], "cases.0.right", "operator '>' needs a value to compare with"),
        ([{"id": "a", "operator": "==", "right": "{{ }}"}], "cases.0.right", "template {{ }}"),
        ([{"operator": "==", "right": 1}], "cases.0.id", "'id' is a required property"),
        (["refund"], "cases.0", "'refund' is not of type 'object'"),
    ],
)
def test_bad_cases_are_refused_naming_node_and_field(cases: list[Any], field: str, message: str) -> None:
    issues = [issue for issue in validate_graph(switch_graph(cases, [("default", "end")]), node_specs())]
    matching = [issue for issue in issues if issue.field == field]
    assert matching, [issue.as_dict() for issue in issues]
    assert all(issue.node_id == "route" for issue in matching)
    assert any(message in issue.message for issue in matching), [issue.message for issue in matching]


def test_a_unary_operator_needs_no_right_and_a_missing_value_is_named() -> None:
    doc = switch_graph([{"id": "blank", "operator": "is_empty"}])
    assert messages(doc) == []
    del doc["nodes"][1]["data"]["value"]
    assert messages(doc) == ["node \"route\": data: 'value' is a required property"]


def test_an_edge_from_a_removed_or_renamed_case_is_refused_naming_the_edge() -> None:
    doc = switch_graph(REFUND_CASES)
    doc["nodes"][1]["data"]["cases"] = REFUND_CASES[1:]  # "refund" removed; its edge is still there
    issues = validate_graph(doc, node_specs())
    assert [(issue.node_id, issue.edge_id) for issue in issues] == [("route", "to_end_refund_refund")]
    assert issues[0].message == (
        'edge "to_end_refund_refund": node "route" (switch) has no handle "refund"; use one of: billing, blank, default'
    )


def test_every_edge_of_a_switch_needs_a_handle() -> None:
    doc = switch_graph(REFUND_CASES, [("default", "end")])
    del doc["edges"][1]["sourceHandle"]
    assert messages(doc) == [
        'edge "to_end_default": node "route" (switch) needs a "sourceHandle"; '
        "use one of: billing, blank, default, refund"
    ]


def test_switch_paths_are_exclusive_so_they_may_end_at_different_end_nodes() -> None:
    # The one-end-per-run check treats a switch as a decision, like if/else, not as a fork.
    doc = switch_graph(REFUND_CASES)
    assert len({edge["target"] for edge in doc["edges"]}) == 5
    assert messages(doc) == []


# --- the mechanism, for any type -----------------------------------------------------------------------------


def test_handles_from_reads_keys_or_strings_and_ignores_what_the_data_checks_report() -> None:
    by_key = HandlesFrom("routes", "name", ("otherwise",))
    assert by_key.handles({"routes": [{"name": "a"}, {"name": "b"}, "junk", {"name": 3}, {"name": ""}]}) == {
        "a",
        "b",
        "otherwise",
    }
    assert by_key.handles({}) == {"otherwise"}
    assert HandlesFrom("labels").handles({"labels": ["x", "y", 1]}) == {"x", "y"}
    assert by_key.as_dict() == {"field": "routes", "key": "name", "extra": ["otherwise"]}


def test_a_custom_type_reading_handles_from_its_data_is_validated_with_them() -> None:
    specs = {
        **node_specs(),
        "fan": NodeSpec("fan", {"type": "object"}, handles_from=HandlesFrom("outs"), required_handles=True),
    }
    doc = switch_graph(REFUND_CASES)
    doc["nodes"][1] = {"id": "route", "type": "fan", "data": {"outs": ["left", "right"]}}
    doc["edges"] = [
        {"id": "in", "source": "start", "target": "route"},
        {"id": "l", "source": "route", "target": "end_refund", "sourceHandle": "left"},
        {"id": "x", "source": "route", "target": "end_blank", "sourceHandle": "refund"},
    ]
    doc["nodes"] = [node for node in doc["nodes"] if node["id"] in {"start", "route", "end_refund", "end_blank"}]
    assert [issue.message for issue in validate_graph(doc, specs)] == [
        # A type that can fail (the default) has its error path too.
        'edge "x": node "route" (fan) has no handle "refund"; use one of: error, left, right'
    ]


def test_a_spec_cannot_declare_both_static_and_data_handles() -> None:
    with pytest.raises(ValueError, match="declare its handles or handles_from, not both"):
        NodeSpec("odd", {}, handles=frozenset({"a"}), handles_from=HandlesFrom("cases", "id"))


def test_the_engine_fires_only_the_chosen_case_and_skips_the_rest() -> None:
    graph = parse_graph(switch_graph(REFUND_CASES), node_specs())
    step = core.advance(graph, "route", handle="billing")
    assert step.ready == ["end_billing"]
    assert sorted(step.skipped) == ["end_blank", "end_default", "end_refund"]


def test_a_chosen_case_without_an_edge_skips_every_branch() -> None:
    # The engine works from edges, not from the spec: a case with no edge kills every outgoing edge, and the run
    # then stops without reaching an end node (settled as failed, saying so), as for if/else.
    graph = parse_graph(switch_graph(REFUND_CASES, [("refund", "a"), ("default", "b")]), node_specs())
    step = core.advance(graph, "route", handle="blank")
    assert step.ready == [] and sorted(step.skipped) == ["a", "b"]
