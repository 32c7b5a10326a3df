"""workflows.importing: the pure conversion of imported documents (no database)."""

from __future__ import annotations

import copy

import pytest

from runs.nodes import node_specs
from tests.api.seed_sample import CONVERTED_GRAPH, SEED_EXPORT
from workflows.graph import GraphError, validate_graph
from workflows.importing import CONDITION_NAMES, DocumentError, convert_seed_graph, import_document, is_seed_graph

OURS = {
    "name": "Support router",
    "description": "optional",
    "graph": {
        "nodes": [
            {"id": "start", "type": "start", "position": {"x": 0, "y": 0}, "data": {}},
            {"id": "check", "type": "if_else", "data": {"left": "{{input.t}}", "operator": ">", "right": "70"}},
            {"id": "end", "type": "end", "data": {}},
        ],
        "edges": [
            {"id": "e1", "source": "start", "target": "check"},
            {"id": "e2", "source": "check", "sourceHandle": "true", "target": "end"},
        ],
    },
}


def test_our_document_comes_back_as_it_is() -> None:
    original = copy.deepcopy(OURS)
    assert import_document(OURS) == OURS
    assert OURS == original  # nothing is changed in place
    assert not is_seed_graph(OURS["graph"])


def test_the_seed_export_converts_to_a_valid_graph_of_ours() -> None:
    document = import_document(SEED_EXPORT)
    assert document == {
        "name": "Refund review",
        "description": "Large refunds need a person.",
        "graph": CONVERTED_GRAPH,
    }
    assert validate_graph(document["graph"], node_specs()) == []


def test_nodes_and_edges_at_the_top_level_are_read_as_the_graph() -> None:
    flat = {"name": "flat", "nodes": OURS["graph"]["nodes"], "edges": OURS["graph"]["edges"]}
    assert import_document(flat) == {"name": "flat", "description": "", "graph": OURS["graph"]}


@pytest.mark.parametrize(
    ("condition", "operator"),
    [
        ("equals", "=="),
        ("not_equals", "!="),
        ("greater_than", ">"),
        ("less_than", "<"),
        ("greater_than_or_equal", ">="),
        ("less_than_or_equal", "<="),
        ("contains", "contains"),
        ("not_contains", "not_contains"),
        ("does_not_contain", "not_contains"),
        ("is_empty", "is_empty"),
        ("is_not_empty", "is_not_empty"),
        ("notEquals", "!="),
        ("Greater Than", ">"),
        ("less-than", "<"),
        ("GTE", ">="),
        ("==", "=="),
    ],
)
def test_if_else_conditions_map_to_our_operators(condition: str, operator: str) -> None:
    graph = {"nodes": [{"id": "c", "data": {"type": "if_else", "config": {"lhs": 1, "condition": condition}}}]}
    assert convert_seed_graph(graph)["nodes"][0]["data"] == {"left": 1, "operator": operator}


def test_every_condition_name_maps_to_an_operator_the_if_else_node_knows() -> None:
    from runs.engine.conditions import OPERATORS

    assert set(CONDITION_NAMES.values()) <= set(OPERATORS)


def test_an_unknown_condition_is_refused_naming_the_node() -> None:
    graph = {
        "nodes": [
            {"id": "ok", "data": {"type": "if_else", "config": {"lhs": 1, "condition": "equals", "rhs": 1}}},
            {"id": "odd", "data": {"type": "if_else", "config": {"lhs": 1, "condition": "matches_regex"}}},
            {"id": "worse", "data": {"type": "if_else", "config": {"lhs": 1, "condition": 5}}},
        ]
    }
    with pytest.raises(GraphError) as caught:
        convert_seed_graph(graph)
    issues = [issue.as_dict() for issue in caught.value.issues]
    assert [(issue["node_id"], issue["field"]) for issue in issues] == [("odd", "condition"), ("worse", "condition")]
    assert issues[0]["message"].startswith('node "odd": unknown if/else condition "matches_regex"; known conditions: ')
    assert "greater_than" in issues[0]["message"]


def test_type_names_are_normalised_and_aliased() -> None:
    nodes = [
        {"id": f"n{index}", "data": {"type": seed_type}}
        for index, seed_type in enumerate(["IfElse", "if-else", "ifelse", "User Approval", "approval", "guardrail"])
    ]
    converted = convert_seed_graph({"nodes": nodes, "edges": []})
    assert [node["type"] for node in converted["nodes"]] == [
        "if_else",
        "if_else",
        "if_else",
        "user_approval",
        "user_approval",
        "guardrails",
    ]


def test_config_keys_win_over_data_keys_and_the_label_is_kept() -> None:
    node = {"id": "a", "type": "custom", "data": {"type": "end", "label": "Done", "output": 1, "config": {"output": 2}}}
    assert convert_seed_graph({"nodes": [node]})["nodes"][0] == {
        "id": "a",
        "type": "end",
        "data": {"label": "Done", "output": 2},
    }


def test_a_config_that_is_not_an_object_is_refused_naming_the_node() -> None:
    with pytest.raises(GraphError) as caught:
        convert_seed_graph({"nodes": [{"id": "a", "data": {"type": "end", "config": [1]}}]})
    assert caught.value.issues[0].as_dict() == {
        "message": 'node "a": data.config must be an object, not a list',
        "node_id": "a",
    }


def test_only_approval_handles_are_renamed() -> None:
    graph = {
        "nodes": [
            {"id": "ask", "data": {"type": "user_approval"}},
            {"id": "other", "data": {"type": "fork"}},
        ],
        "edges": [
            {"source": "ask", "target": "x", "source_handle": "YES"},
            {"source": "ask", "target": "y", "source_handle": "no"},
            {"source": "other", "target": "z", "source_handle": "yes"},
            {"source": ["not", "an", "id"], "target": "z", "source_handle": "yes"},
        ],
    }
    handles = [edge.get("sourceHandle") for edge in convert_seed_graph(graph)["edges"]]
    assert handles == ["approved", "rejected", "yes", "yes"]


def test_an_edge_with_source_handle_alone_marks_the_seed_format() -> None:
    graph = {"nodes": [{"id": "s", "type": "start"}], "edges": [{"source": "s", "target": "e", "source_handle": "x"}]}
    assert is_seed_graph(graph)
    assert convert_seed_graph(graph)["edges"] == [{"source": "s", "target": "e", "sourceHandle": "x"}]


@pytest.mark.parametrize(
    ("doc", "errors"),
    [
        ([], {"non_field_errors": ["a workflow document must be a JSON object, not a list"]}),
        ({"graph": {"nodes": []}}, {"name": ["a workflow document needs a non-empty string `name`"]}),
        (
            {"name": "x", "description": 3, "graph": {}},
            {"description": ["`description` must be a string, not a number"]},
        ),
        (
            {"name": "x"},
            {"graph": [{"message": "a workflow document needs a `graph` (or top-level `nodes` and `edges`)"}]},
        ),
    ],
)
def test_a_document_that_is_not_one_is_refused_naming_the_key(doc: object, errors: dict) -> None:  # type: ignore[type-arg]
    with pytest.raises(DocumentError) as caught:
        import_document(doc)
    assert caught.value.errors == errors


def test_malformed_seed_parts_are_left_for_the_graph_validator_to_name() -> None:
    graph = {"nodes": ["junk", {"id": "a", "data": {"type": "start"}}], "edges": "junk"}
    converted = convert_seed_graph(graph)
    assert converted["nodes"][0] == "junk" and converted["edges"] == "junk"
    messages = [issue.message for issue in validate_graph(converted, node_specs())]
    assert "nodes[0] must be an object, got a string" in messages
