"""Graph documents: parsing, every validation rule, abuse limits, topology and the round trip."""

from __future__ import annotations

import copy
import pickle
import time
from itertools import pairwise
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nodes.templating import check_syntax
from workflows.graph import (
    MAX_EDGES,
    MAX_NODES,
    Edge,
    Graph,
    GraphError,
    Issue,
    Node,
    NodeSpec,
    parse_graph,
    validate_graph,
)


def if_else_check(data: dict[str, Any]) -> list[tuple[str | None, str]]:
    return [(field, message) for field in ("left", "right") for message in check_syntax(data[field])]


# Stand-ins for the node registry's specs, shaped like the contract's node types (control flow cannot fail).
SPECS: dict[str, NodeSpec] = {
    "start": NodeSpec("start", {"type": "object", "properties": {"input_schema": {"type": "object"}}}, can_fail=False),
    "end": NodeSpec(
        "end",
        {"type": "object", "properties": {"output": {}}},
        handles=frozenset(),
        allows_outgoing=False,
        can_fail=False,
    ),
    "if_else": NodeSpec(
        "if_else",
        {
            "type": "object",
            "required": ["left", "operator", "right"],
            "properties": {
                "left": {},
                "right": {},
                "operator": {"enum": ["==", "=", "!=", ">", "<", ">=", "<="]},
            },
            "additionalProperties": False,
        },
        handles=frozenset({"true", "false"}),
        required_handles=True,
        check=if_else_check,
        can_fail=False,
    ),
    "agent": NodeSpec(
        "agent",
        {
            "type": "object",
            "properties": {
                "model": {"type": "string"},
                "tools": {"type": "array", "items": {"type": "string"}},
                "temperature": {"type": "number", "minimum": 0, "maximum": 2},
                "output_schema": {"type": "object", "properties": {"type": {"const": "object"}}},
            },
        },
    ),
    "fork": NodeSpec("fork", {"type": "object"}, can_fail=False),
    "join": NodeSpec("join", {"type": "object", "properties": {"mode": {"enum": ["all"]}}}, can_fail=False),
    "user_approval": NodeSpec(
        "user_approval",
        {"type": "object"},
        handles=frozenset({"approved", "rejected"}),
        required_handles=True,
        can_fail=False,
    ),
}

CONTRACT_EXAMPLE: dict[str, Any] = {
    "nodes": [
        {"id": "start", "type": "start", "position": {"x": 0, "y": 0}, "data": {}},
        {
            "id": "check",
            "type": "if_else",
            "position": {"x": 200, "y": 0},
            "data": {"left": "{{input.weather.temperature}}", "operator": ">", "right": "70"},
        },
        {"id": "end", "type": "end", "data": {}},
    ],
    "edges": [
        {"id": "e1", "source": "start", "target": "check"},
        {"id": "e2", "source": "check", "sourceHandle": "true", "target": "end"},
    ],
}


def node(node_id: str, node_type: str = "agent", **data: object) -> dict[str, object]:
    return {"id": node_id, "type": node_type, "data": data}


def edge(source: str, target: str, handle: str | None = None, **extra: object) -> dict[str, object]:
    document: dict[str, object] = {"source": source, "target": target, **extra}
    if handle is not None:
        document["sourceHandle"] = handle
    return document


def chain(*middle: dict[str, object]) -> dict[str, list[dict[str, object]]]:
    """start -> each of `middle` -> end, plain edges."""
    nodes = [node("start", "start"), *middle, node("end", "end")]
    ids = [str(item["id"]) for item in nodes]
    return {"nodes": nodes, "edges": [edge(a, b) for a, b in pairwise(ids)]}


def messages(doc: object) -> list[str]:
    return [issue.message for issue in validate_graph(doc, SPECS)]


def only_issue(doc: object) -> Issue:
    issues = validate_graph(doc, SPECS)
    assert len(issues) == 1, issues
    return issues[0]


# Valid documents and the Graph they give


def test_the_contract_example_parses() -> None:
    graph = parse_graph(CONTRACT_EXAMPLE, SPECS)
    assert list(graph.nodes) == ["start", "check", "end"]
    assert graph.start_id == "start"
    assert graph.node("check") == Node(
        "check",
        "if_else",
        {"left": "{{input.weather.temperature}}", "operator": ">", "right": "70"},
        {"x": 200, "y": 0},
    )
    assert graph.node("end").position is None
    assert graph.edges == [Edge("e1", "start", "check", None), Edge("e2", "check", "end", "true")]
    assert validate_graph(CONTRACT_EXAMPLE, SPECS) == []


def test_the_round_trip_gives_back_the_normalised_document() -> None:
    assert parse_graph(CONTRACT_EXAMPLE, SPECS).to_document() == CONTRACT_EXAMPLE
    react_flow = copy.deepcopy(CONTRACT_EXAMPLE)
    react_flow["nodes"][0].update(width=150, height=40, selected=True, dragging=False)
    react_flow["nodes"][0]["position"]["z"] = 3
    react_flow["edges"][0].update(type="smoothstep", animated=True, targetHandle=None, label="go")
    react_flow["edges"][0]["sourceHandle"] = None
    assert parse_graph(react_flow, SPECS).to_document() == CONTRACT_EXAMPLE


def test_missing_parts_are_filled_in_by_normalisation() -> None:
    doc = {
        "nodes": [{"id": "start", "type": "start"}, {"id": "end", "type": "end", "data": None, "position": None}],
        "edges": [{"source": "start", "target": "end", "sourceHandle": ""}],
    }
    normalised = {
        "nodes": [{"id": "start", "type": "start", "data": {}}, {"id": "end", "type": "end", "data": {}}],
        "edges": [{"id": "start->end", "source": "start", "target": "end"}],
    }
    graph = parse_graph(doc, SPECS)
    assert graph.to_document() == normalised
    assert parse_graph(normalised, SPECS).to_document() == normalised


def test_edges_without_ids_get_ids_from_their_ends_and_handle() -> None:
    doc = chain(node("check", "if_else", left=1, operator="==", right=1))
    doc["edges"] = [edge("start", "check"), edge("check", "end", "true"), edge("check", "end", "false")]
    graph = parse_graph(doc, SPECS)
    assert [item.id for item in graph.edges] == ["start->check", "check->end:true", "check->end:false"]


def test_a_graph_without_edges_key_has_no_edges() -> None:
    assert messages({"nodes": [node("start", "start"), node("end", "end")]}) == [
        'node "end" can\'t be reached from the start node',
        'node "start" has no outgoing edge; connect it or end the path with an end node',
    ]


def test_the_graph_does_not_share_data_with_the_document() -> None:
    doc = copy.deepcopy(CONTRACT_EXAMPLE)
    graph = parse_graph(doc, SPECS)
    doc["nodes"][1]["data"]["operator"] = "<"
    assert graph.node("check").data["operator"] == ">"
    exported_data = graph.to_document()["nodes"][1]["data"]
    assert isinstance(exported_data, dict)
    exported_data["operator"] = "!="
    assert graph.node("check").data["operator"] == ">"


def diamond() -> Graph:
    doc = {
        "nodes": [
            node("start", "start"),
            node("fan", "fork"),
            node("left", "agent"),
            node("right", "agent"),
            node("join", "join"),
            node("check", "if_else", left="{{input.a}}", operator="==", right="1"),
            node("yes", "end"),
            node("no", "end"),
        ],
        "edges": [
            edge("start", "fan"),
            edge("fan", "right", id="e-right"),
            edge("fan", "left", id="e-left"),
            edge("left", "join"),
            edge("right", "join"),
            edge("join", "check"),
            edge("check", "no", "false"),
            edge("check", "yes", "true"),
        ],
    }
    return parse_graph(doc, SPECS)


def test_outgoing_and_incoming_keep_document_order() -> None:
    graph = diamond()
    assert [item.id for item in graph.outgoing("fan")] == ["e-right", "e-left"]
    assert [item.source for item in graph.incoming("join")] == ["left", "right"]
    assert graph.incoming("start") == []
    assert graph.outgoing("yes") == []


def test_successors_filter_by_handle() -> None:
    graph = diamond()
    assert graph.successors("fan") == ["right", "left"]
    assert graph.successors("check") == ["no", "yes"]
    assert graph.successors("check", "true") == ["yes"]
    assert graph.successors("check", "maybe") == []
    assert graph.successors("fan", None) == ["right", "left"]
    assert graph.successors("check", None) == []


def test_successors_name_each_target_once() -> None:
    doc = chain(node("check", "if_else", left=1, operator="==", right=1))
    doc["edges"] = [edge("start", "check"), edge("check", "end", "true"), edge("check", "end", "false")]
    graph = parse_graph(doc, SPECS)
    assert graph.successors("check") == ["end"]
    assert len(graph.outgoing("check")) == 2


def test_topological_order_respects_edges_and_breaks_ties_by_document_order() -> None:
    assert diamond().topological_order() == ["start", "fan", "left", "right", "join", "check", "yes", "no"]


def test_downstream_is_the_node_and_everything_reachable_from_it() -> None:
    graph = diamond()
    assert graph.downstream("left") == {"left", "join", "check", "yes", "no"}
    assert graph.downstream("no") == {"no"}
    assert graph.downstream("start") == set(graph.nodes)


def test_node_raises_key_error_for_unknown_ids() -> None:
    with pytest.raises(KeyError):
        diamond().node("ghost")


# Each rule, one issue naming the culprit


@pytest.mark.parametrize(
    ("doc", "message", "node_id", "edge_id"),
    [
        pytest.param(
            {
                "nodes": [node("start", "start"), node("end", "end"), node("a b", "agent")],
                "edges": [edge("start", "end"), edge("start", "a b", id="x"), edge("a b", "end", id="y")],
            },
            'node "a b": the id must be 1 to 64 letters, digits, "_" or "-"',
            "a b",
            None,
            id="bad node id",
        ),
        pytest.param(
            {
                "nodes": [node("start", "start"), node("end", "end"), node("x" * 65, "agent")],
                "edges": [edge("start", "end"), edge("start", "x" * 65, id="x"), edge("x" * 65, "end", id="y")],
            },
            "the id must be 1 to 64",
            "x" * 65,
            None,
            id="node id too long",
        ),
        pytest.param(
            {
                "nodes": [node("start", "start"), node("end", "end"), node("end", "agent")],
                "edges": [edge("start", "end")],
            },
            'node "end" (nodes[2]): the id is already used by nodes[1]',
            "end",
            None,
            id="duplicate node id",
        ),
        pytest.param(
            {"nodes": [node("start", "start"), node("end", "end"), {"type": "agent"}], "edges": [edge("start", "end")]},
            'nodes[2]: "id" must be a string, got nothing',
            None,
            None,
            id="missing node id",
        ),
        pytest.param(
            {
                "nodes": [node("start", "start"), node("end", "end"), {"id": 5, "type": "agent"}],
                "edges": [edge("start", "end")],
            },
            'nodes[2]: "id" must be a string, got a number',
            None,
            None,
            id="numeric node id",
        ),
        pytest.param(
            chain(node("magic", "wizard")),
            'node "magic": unknown type "wizard"; known types: agent, end, fork, if_else, join, start, user_approval',
            "magic",
            None,
            id="unknown type",
        ),
        pytest.param(
            chain({"id": "typeless"}),
            'node "typeless": "type" must be one of: agent, end, fork, if_else, join, start, user_approval; '
            "got nothing",
            "typeless",
            None,
            id="missing type",
        ),
        pytest.param(
            chain({"id": "a", "type": "agent", "data": [1]}),
            'node "a": "data" must be an object, got a list',
            "a",
            None,
            id="data not an object",
        ),
        pytest.param(
            chain({"id": "a", "type": "agent", "position": {"x": 1}}),
            'node "a": "position" must be an object with numbers "x" and "y"',
            "a",
            None,
            id="position without y",
        ),
        pytest.param(
            chain({"id": "a", "type": "agent", "position": {"x": True, "y": 1}}),
            '"position" must be an object with numbers',
            "a",
            None,
            id="boolean position",
        ),
        pytest.param(
            chain({"id": "a", "type": "agent", "position": [0, 0]}),
            '"position" must be an object with numbers',
            "a",
            None,
            id="position as list",
        ),
        pytest.param(
            {
                "nodes": [node("start", "start"), node("end", "end")],
                "edges": [edge("start", "end"), edge("start", "gone")],
            },
            'edge "start->gone": target "gone" is not a node of this graph',
            None,
            "start->gone",
            id="dangling target",
        ),
        pytest.param(
            {
                "nodes": [node("start", "start"), node("end", "end")],
                "edges": [edge("start", "end"), edge("ghost", "end", id="e9")],
            },
            'edge "e9": source "ghost" is not a node of this graph',
            None,
            "e9",
            id="dangling source",
        ),
        pytest.param(
            {
                "nodes": [node("start", "start"), node("end", "end")],
                "edges": [edge("start", "end"), {"source": "start"}],
            },
            'edges[1]: "target" must be a node id, got nothing',
            None,
            None,
            id="edge without target",
        ),
        pytest.param(
            {"nodes": [node("start", "start"), node("end", "end")], "edges": [edge("start", "end"), "start->end"]},
            "edges[1] must be an object, got a string",
            None,
            None,
            id="edge not an object",
        ),
        pytest.param(
            {
                "nodes": [node("start", "start"), node("end", "end")],
                "edges": [edge("start", "end", id="e1"), edge("start", "end", "x", id="e1")],
            },
            'edge "e1" (edges[1]): the id is already used by edges[0]',
            None,
            "e1",
            id="duplicate edge id",
        ),
        pytest.param(
            {
                "nodes": [node("start", "start"), node("end", "end")],
                "edges": [edge("start", "end"), edge("start", "end", "other", id=7)],
            },
            'edges[1]: "id" must be a non-empty string of at most 200 characters',
            None,
            None,
            id="numeric edge id",
        ),
        pytest.param(
            {
                "nodes": [node("start", "start"), node("end", "end")],
                "edges": [edge("start", "end", id="a"), edge("start", "end", id="b")],
            },
            'edge "b": duplicates edges[0] (same source, target and sourceHandle)',
            None,
            "b",
            id="duplicate edge",
        ),
        pytest.param(
            {
                "nodes": [node("start", "start"), node("end", "end")],
                "edges": [edge("start", "end", sourceHandle=["x"])],
            },
            'edges[0]: "sourceHandle" must be a string of at most 64 characters',
            None,
            None,
            id="handle not a string",
        ),
        pytest.param(
            {
                "nodes": [node("start", "start"), node("a"), node("end", "end")],
                "edges": [edge("start", "a"), edge("a", "end"), edge("a", "a", id="loop")],
            },
            'edge "loop": connects node "a" to itself',
            "a",
            "loop",
            id="self loop",
        ),
        pytest.param(
            {
                "nodes": [
                    node("start", "start"),
                    node("check", "if_else", left=1, operator=">", right=2),
                    node("end", "end"),
                ],
                "edges": [edge("start", "check"), edge("check", "end", id="e2")],
            },
            'edge "e2": node "check" (if_else) needs a "sourceHandle"; use one of: false, true',
            "check",
            "e2",
            id="missing required handle",
        ),
        pytest.param(
            {
                "nodes": [
                    node("start", "start"),
                    node("check", "if_else", left=1, operator=">", right=2),
                    node("end", "end"),
                ],
                "edges": [edge("start", "check"), edge("check", "end", "maybe", id="e2")],
            },
            'edge "e2": node "check" (if_else) has no handle "maybe"; use one of: false, true',
            "check",
            "e2",
            id="unknown handle",
        ),
        pytest.param(
            {
                "nodes": [node("start", "start"), node("end", "end"), node("after"), node("done", "end")],
                "edges": [edge("start", "end"), edge("end", "after", id="e2"), edge("after", "done")],
            },
            'edge "e2": node "end" (end) can\'t have outgoing edges',
            "end",
            "e2",
            id="edge out of end",
        ),
        pytest.param(
            {
                "nodes": [node("start", "start"), node("a"), node("end", "end")],
                "edges": [edge("start", "end"), edge("start", "a")],
            },
            'node "a" has no outgoing edge; connect it or end the path with an end node',
            "a",
            None,
            id="dead end",
        ),
        pytest.param(
            {
                "nodes": [node("begin", "start"), node("end", "end"), node("start", "start")],
                "edges": [edge("begin", "end"), edge("start", "end")],
            },
            'the graph has 2 start nodes ("begin", "start"); it needs exactly one',
            None,
            None,
            id="two starts",
        ),
        pytest.param(
            {"nodes": [node("a"), node("end", "end")], "edges": [edge("a", "end")]},
            "the graph has no start node; add exactly one",
            None,
            None,
            id="no start",
        ),
        pytest.param(
            {
                "nodes": [node("start", "start"), node("end", "end"), node("island")],
                "edges": [edge("start", "end"), edge("island", "end")],
            },
            'node "island" can\'t be reached from the start node',
            "island",
            None,
            id="unreachable",
        ),
    ],
)
def test_each_rule_reports_one_issue_naming_its_culprit(
    doc: dict[str, object], message: str, node_id: str | None, edge_id: str | None
) -> None:
    issues = validate_graph(doc, SPECS)
    assert len(issues) == 1, issues
    assert message in issues[0].message
    assert (issues[0].node_id, issues[0].edge_id) == (node_id, edge_id)


def test_free_handles_are_accepted_where_the_spec_allows_any() -> None:
    doc = {
        "nodes": [node("start", "start"), node("a"), node("end", "end")],
        "edges": [edge("start", "a", "anything"), edge("a", "end"), edge("a", "end", "x")],
    }
    assert validate_graph(doc, SPECS) == []


def test_a_start_with_an_incoming_edge_is_reported_with_the_cycle_it_makes() -> None:
    doc = {
        "nodes": [node("start", "start"), node("a"), node("end", "end")],
        "edges": [edge("start", "a"), edge("a", "end"), edge("a", "start", id="back")],
    }
    assert messages(doc) == [
        'edge "back": the start node "start" can\'t have incoming edges',
        "cycle: start -> a -> start",
    ]


def test_a_graph_without_an_end_node_is_refused() -> None:
    doc = {"nodes": [node("start", "start"), node("a")], "edges": [edge("start", "a")]}
    assert messages(doc) == [
        "the graph has no end node; add at least one",
        'node "a" has no outgoing edge; connect it or end the path with an end node',
    ]


def test_cycles_name_their_nodes_once_per_loop() -> None:
    doc = {
        "nodes": [node("start", "start"), node("a"), node("b"), node("c"), node("x"), node("y"), node("end", "end")],
        "edges": [
            edge("start", "a"),
            edge("a", "b"),
            edge("b", "c"),
            edge("c", "a"),
            edge("c", "b"),
            edge("c", "x"),
            edge("x", "y"),
            edge("y", "x"),
            edge("y", "end"),
        ],
    }
    issues = validate_graph(doc, SPECS)
    assert [issue.message for issue in issues] == ["cycle: a -> b -> c -> a", "cycle: x -> y -> x"]
    assert [issue.node_id for issue in issues] == ["a", "x"]


def test_every_unreachable_node_gets_its_own_issue() -> None:
    doc = {
        "nodes": [node("start", "start"), node("end", "end"), node("u1"), node("u2")],
        "edges": [edge("start", "end"), edge("u1", "u2"), edge("u2", "end")],
    }
    issues = validate_graph(doc, SPECS)
    assert [(issue.node_id, "can't be reached" in issue.message) for issue in issues] == [
        ("u1", True),
        ("u2", True),
    ]


def test_schema_errors_are_all_reported_sorted_by_path_with_their_field() -> None:
    doc = chain(
        node(
            "brain",
            "agent",
            model=5,
            tools=["ok", 3, None],
            temperature=9,
            output_schema={"type": "array"},
        )
    )
    issues = validate_graph(doc, SPECS)
    assert [(issue.field, issue.node_id) for issue in issues] == [
        ("model", "brain"),
        ("output_schema.type", "brain"),
        ("temperature", "brain"),
        ("tools.1", "brain"),
        ("tools.2", "brain"),
    ]
    assert issues[0].message == "node \"brain\": data.model: 5 is not of type 'string'"
    assert issues[3].message.startswith('node "brain": data.tools.1: 3 is not of type')


def test_list_indexes_sort_numerically() -> None:
    doc = chain(node("brain", "agent", tools=[1] * 12))
    fields = [issue.field for issue in validate_graph(doc, SPECS)]
    assert fields == [f"tools.{index}" for index in range(12)]


def test_a_missing_required_property_points_at_that_property() -> None:
    doc = chain(node("check", "if_else", operator="~", extra=1))
    doc["edges"][1]["sourceHandle"] = "true"
    issues = validate_graph(doc, SPECS)
    assert [issue.field for issue in issues] == ["left", "right", None, "operator"]
    assert issues[0].message == "node \"check\": data: 'left' is a required property"
    assert issues[2].message.startswith('node "check": data: Additional properties are not allowed')
    assert issues[3].message.startswith("node \"check\": data.operator: '~' is not one of [")
    assert issues[0].as_dict() == {
        "message": "node \"check\": data: 'left' is a required property",
        "node_id": "check",
        "field": "left",
    }


def test_semantic_checks_run_on_schema_valid_data() -> None:
    doc = chain(node("check", "if_else", left="{{foo.bar}}", operator=">", right="{{ }}"))
    doc["edges"][1]["sourceHandle"] = "true"
    issues = validate_graph(doc, SPECS)
    assert [(issue.field, issue.message) for issue in issues] == [
        ("left", 'node "check": data.left: template {{foo.bar}}: unknown root "foo"; paths start with input or nodes'),
        ("right", 'node "check": data.right: template {{ }}: empty template; write a path such as input.field'),
    ]


def test_semantic_checks_wait_for_schema_valid_data() -> None:
    doc = chain(node("check", "if_else", left="{{foo.bar}}", operator="~", right=1))
    doc["edges"][1]["sourceHandle"] = "true"
    assert [issue.field for issue in validate_graph(doc, SPECS)] == ["operator"]


def test_a_check_without_a_field_names_only_the_node() -> None:
    specs = {**SPECS, "agent": NodeSpec("agent", {"type": "object"}, check=lambda data: [(None, "needs a model")])}
    issues = validate_graph(chain(node("brain", "agent")), specs)
    assert [issue.as_dict() for issue in issues] == [{"message": 'node "brain": needs a model', "node_id": "brain"}]


def test_a_crashing_check_or_broken_schema_becomes_an_issue() -> None:
    def explode(data: dict[str, Any]) -> list[tuple[str | None, str]]:
        raise RuntimeError("bug")

    specs = {
        **SPECS,
        "agent": NodeSpec("agent", {"type": "object"}, check=explode),
        "join": NodeSpec("join", {"type": "no-such-type"}),
    }
    doc = chain(node("brain", "agent"), node("merge", "join"))
    found = messages_with(doc, specs)
    assert found[0] == 'node "brain": data could not be checked (RuntimeError)'
    assert (
        found[1] == "node \"merge\": data could not be checked: Unknown type 'no-such-type' for validator with schema:"
    )
    assert len(found) == 2


def messages_with(doc: object, specs: dict[str, NodeSpec]) -> list[str]:
    return [issue.message for issue in validate_graph(doc, specs)]


def test_a_spec_that_forbids_outgoing_edges_makes_a_terminal_node() -> None:
    specs = {**SPECS, "stop": NodeSpec("stop", {"type": "object"}, allows_outgoing=False)}
    doc = {
        "nodes": [node("start", "start"), node("halt", "stop"), node("end", "end")],
        "edges": [edge("start", "halt"), edge("start", "end")],
    }
    assert validate_graph(doc, specs) == []
    doc["edges"].append(edge("halt", "end", id="out"))
    assert messages_with(doc, specs) == ['edge "out": node "halt" (stop) can\'t have outgoing edges']


def test_all_problems_are_collected_at_once() -> None:
    doc = {
        "nodes": [
            node("start", "start"),
            node("check", "if_else", operator="~"),
            node("bad id!", "agent"),
            node("mystery", "wizard"),
            7,
        ],
        "edges": [
            edge("start", "check"),
            edge("check", "nowhere", "true"),
            edge("check", "start", "maybe", id="back"),
            {"source": None},
        ],
    }
    found = messages(doc)
    expected_fragments = [
        "'left' is a required property",
        "'right' is a required property",
        "'~' is not one of",
        'node "bad id!": the id must be',
        'unknown type "wizard"',
        "nodes[4] must be an object",
        'target "nowhere" is not a node',
        'edge "back": the start node "start" can\'t have incoming edges',
        'edge "back": node "check" (if_else) has no handle "maybe"',
        'edges[3]: "source" must be a node id, got null',
        'edges[3]: "target" must be a node id, got nothing',
        "no end node",
        'node "bad id!" can\'t be reached',
        'node "mystery" can\'t be reached',
        "cycle: start -> check -> start",
        'node "bad id!" has no outgoing edge',
    ]
    for fragment in expected_fragments:
        assert any(fragment in message for message in found), (fragment, found)
    assert len(found) == len(expected_fragments)


# Bad shapes, garbage and abuse


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (None, 'the graph must be an object with "nodes" and "edges" lists, got null'),
        ([], 'the graph must be an object with "nodes" and "edges" lists, got a list'),
        ("graph", 'the graph must be an object with "nodes" and "edges" lists, got a string'),
        ({}, 'the graph\'s "nodes" must be a list, got nothing'),
        ({"nodes": {"a": 1}}, 'the graph\'s "nodes" must be a list, got an object'),
    ],
)
def test_a_document_of_the_wrong_shape_gets_one_clear_issue(doc: object, message: str) -> None:
    assert only_issue(doc).message == message


def test_edges_of_the_wrong_shape_are_reported_with_the_nodes_checked() -> None:
    found = messages({"nodes": [node("start", "start"), node("x", "wizard")], "edges": 5})
    assert len(found) == 2
    assert found[0] == 'the graph\'s "edges" must be a list, got a number'
    assert found[1].startswith('node "x": unknown type')


def test_too_many_nodes_is_one_issue_and_nothing_else() -> None:
    doc = {"nodes": [{"id": str(index)} for index in range(MAX_NODES + 1)], "edges": []}
    started = time.perf_counter()
    issue = only_issue(doc)
    assert "501 nodes" in issue.message
    assert "500 nodes" in issue.message
    assert time.perf_counter() - started < 0.05


def test_too_many_edges_is_one_issue_and_nothing_else() -> None:
    doc = {"nodes": [node("start", "start")], "edges": [edge("start", "start")] * (MAX_EDGES + 1)}
    assert "2001 edges" in only_issue(doc).message


def test_a_million_nodes_is_refused_quickly() -> None:
    started = time.perf_counter()
    assert len(validate_graph({"nodes": [None] * 1_000_000, "edges": []}, SPECS)) == 1
    assert time.perf_counter() - started < 0.05


def test_huge_values_do_not_crash_validation() -> None:
    huge = 10**5000
    doc = {
        "nodes": [
            {"id": "start", "type": "start", "position": {"x": huge, "y": -huge}, "data": {"x": huge}},
            node("brain", "agent", temperature=huge),
            {"id": huge, "type": huge},
            node("end", "end"),
        ],
        "edges": [edge("start", "brain"), edge("brain", "end"), {"id": huge, "source": huge, "target": "end"}],
    }
    found = messages(doc)
    assert any(message.startswith('node "brain": data') for message in found)
    assert 'nodes[2]: "id" must be a string, got a number' in found
    assert all(len(message) < 600 for message in found)


def test_huge_strings_are_clipped_in_messages() -> None:
    long_id = "x" * 100_000
    found = messages(chain(node("a", long_id), {"id": long_id, "type": "agent"}))
    assert found
    assert all(len(message) < 600 for message in found)


def test_nul_bytes_and_odd_text_are_just_invalid() -> None:
    found = messages(chain(node("a\x00b", "agent"), node("ok", "wiz\x00ard")))
    assert any(message.startswith('node "a\\u0000b": the id must be') for message in found)
    assert any('unknown type "wiz\\u0000ard"' in message for message in found)


json_garbage = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(4400, 5000).map(lambda digits: 10**digits)
    | st.floats()
    | st.text()
    | st.sampled_from(["start", "end", "if_else", "agent", "a", "b", "\x00", "true"]),
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(
            st.sampled_from(
                ["id", "type", "data", "position", "source", "target", "sourceHandle", "nodes", "edges", "x"]
            )
            | st.text(max_size=3),
            children,
            max_size=6,
        )
    ),
    max_leaves=30,
)


@given(json_garbage)
@settings(suppress_health_check=[HealthCheck.too_slow])
def test_garbage_never_raises_from_validate_and_only_graph_error_from_parse(doc: object) -> None:
    issues = validate_graph(doc, SPECS)
    assert all(isinstance(issue, Issue) and issue.message for issue in issues)
    try:
        parse_graph(doc, SPECS)
    except GraphError as error:
        assert error.issues == issues
    else:
        assert issues == []


node_ids = st.sampled_from(["start", "end", "a", "b", "c", "bad id", ""]) | st.integers()
graph_like = st.fixed_dictionaries(
    {
        "nodes": st.lists(
            st.fixed_dictionaries(
                {"id": node_ids, "type": st.sampled_from([*SPECS, "wizard"]) | st.none()},
                optional={"data": json_garbage, "position": json_garbage},
            ),
            max_size=8,
        ),
        "edges": st.lists(
            st.fixed_dictionaries(
                {"source": node_ids, "target": node_ids},
                optional={
                    "sourceHandle": st.sampled_from(["true", "false", "approved", "x", "", None]),
                    "id": st.sampled_from(["e1", "e2", "start->end"]) | st.integers(),
                },
            ),
            max_size=12,
        ),
    }
)


@given(graph_like)
@settings(suppress_health_check=[HealthCheck.too_slow])
def test_graph_shaped_garbage_is_validated_without_crashing(doc: dict[str, object]) -> None:
    issues = validate_graph(doc, SPECS)
    assert not any("could not be validated" in issue.message for issue in issues)
    if not issues:
        graph = parse_graph(doc, SPECS)
        assert_consistent(graph)


@st.composite
def valid_graphs(draw: st.DrawFn) -> dict[str, Any]:
    """Random valid DAGs: each middle node gets an edge from an earlier node and one to a later node."""
    count = draw(st.integers(min_value=0, max_value=25))
    ids = ["start", *(f"n{index}" for index in range(count)), "end"]
    edges: list[dict[str, object]] = []
    for position, node_id in enumerate(ids[1:-1], start=1):
        edges.append(edge(ids[draw(st.integers(0, position - 1))], node_id))
        edges.append(edge(node_id, ids[draw(st.integers(position + 1, len(ids) - 1))]))
    extra = draw(st.lists(st.tuples(st.integers(0, len(ids) - 2), st.integers(1, len(ids) - 1)), max_size=10))
    edges.extend(edge(ids[a], ids[b], "extra") for a, b in extra if a < b)
    if count == 0:
        edges.append(edge("start", "end"))
    unique = list({(item["source"], item["target"], item.get("sourceHandle")): item for item in edges}.values())
    order = draw(st.permutations(ids))
    nodes = [node(node_id, {"start": "start", "end": "end"}.get(node_id, "agent")) for node_id in order]
    return {"nodes": nodes, "edges": draw(st.permutations(unique))}


def assert_consistent(graph: Graph) -> None:
    order = graph.topological_order()
    assert sorted(order) == sorted(graph.nodes)
    position = {node_id: index for index, node_id in enumerate(order)}
    for item in graph.edges:
        assert position[item.source] < position[item.target]
        assert item in graph.outgoing(item.source)
        assert item in graph.incoming(item.target)
    assert parse_graph(graph.to_document(), SPECS).to_document() == graph.to_document()


@given(valid_graphs())
def test_valid_graphs_parse_and_round_trip(doc: dict[str, Any]) -> None:
    assert validate_graph(doc, SPECS) == []
    graph = parse_graph(doc, SPECS)
    assert list(graph.nodes) == [item["id"] for item in doc["nodes"]]
    assert graph.to_document() == {
        "nodes": doc["nodes"],
        "edges": [{"id": graph.edges[index].id, **item} for index, item in enumerate(doc["edges"])],
    }
    assert_consistent(graph)


@given(valid_graphs(), st.data())
def test_adding_a_back_edge_is_always_reported_as_a_cycle(doc: dict[str, Any], data: st.DataObject) -> None:
    graph = parse_graph(doc, SPECS)
    order = [node_id for node_id in graph.topological_order() if node_id not in ("start", "end")]
    if len(order) < 2:
        return
    later = data.draw(st.integers(1, len(order) - 1))
    earlier = data.draw(st.integers(0, later - 1))
    reachable = {order[earlier]}
    for node_id in graph.topological_order():
        if node_id in reachable:
            reachable.update(graph.successors(node_id))
    if order[later] not in reachable:
        return
    doc["edges"].append(edge(order[later], order[earlier], "back"))
    found = messages(doc)
    assert len(found) == 1
    assert found[0].startswith("cycle: ")
    cycle = found[0].removeprefix("cycle: ").split(" -> ")
    assert cycle[0] == cycle[-1]


# Errors and speed


def test_graph_error_lists_every_issue() -> None:
    with pytest.raises(GraphError) as caught:
        parse_graph({"nodes": [node("a")], "edges": []}, SPECS)
    error = caught.value
    assert isinstance(error, ValueError)
    assert [issue.message for issue in error.issues] == [
        "the graph has no end node; add at least one",
        "the graph has no start node; add exactly one",
        'node "a" has no outgoing edge; connect it or end the path with an end node',
    ]
    assert str(error) == "; ".join(issue.message for issue in error.issues)
    copy_of_error = pickle.loads(pickle.dumps(error))
    assert copy_of_error.issues == error.issues
    assert str(copy_of_error) == str(error)


def test_issue_as_dict_keeps_only_what_is_set() -> None:
    assert Issue("m").as_dict() == {"message": "m"}
    assert Issue("m", node_id="n", edge_id="e", field="f.0").as_dict() == {
        "message": "m",
        "node_id": "n",
        "edge_id": "e",
        "field": "f.0",
    }


def test_parsing_a_chain_takes_time_in_proportion_to_its_length() -> None:
    # A scaling check rather than a time limit (the timings belong to bench/): a 500-node chain must not cost
    # much more than ten 50-node ones, which a step quadratic in the nodes or edges would.
    def chain_of(length: int) -> dict[str, Any]:
        middle = [node(f"n{index}", "if_else", left="{{input.a}}", operator=">", right="1") for index in range(length)]
        doc = chain(*middle)
        for item in doc["edges"][1:]:
            item["sourceHandle"] = "true"
        assert validate_graph(doc, SPECS) == []
        return doc

    def fastest(doc: dict[str, Any]) -> float:
        timings = []
        for _ in range(5):
            started = time.perf_counter()
            parse_graph(doc, SPECS).topological_order()
            timings.append(time.perf_counter() - started)
        return min(timings)

    small, large = chain_of(48), chain_of(498)
    assert len(parse_graph(large, SPECS).topological_order()) == 500
    assert fastest(large) < 25 * fastest(small)


def test_a_500_node_cycle_is_found_without_recursion_limits() -> None:
    middle = [node(f"n{index}") for index in range(498)]
    doc = chain(*middle)
    started = time.perf_counter()
    assert messages(doc) == []  # the same chain without the cycle: the yardstick, measured in the same run
    yardstick = time.perf_counter() - started
    doc["edges"].append(edge("n497", "n0", "back"))
    started = time.perf_counter()
    found = messages(doc)
    assert len(found) == 1
    assert found[0].startswith("cycle: n0 -> n1 -> n2")
    assert found[0].endswith("n497 -> n0")
    # Linear, like validating the chain (a quadratic search would take hundreds of times longer); a ratio, so
    # that a busy machine does not fail it.
    assert time.perf_counter() - started < max(0.05, 5 * yardstick)


# One end node per run: the run's output never depends on which parallel branch finished last


TWO_ENDS_IN_PARALLEL = {
    "nodes": [
        node("start", "start"),
        node("fan", "fork"),
        node("a"),
        node("b"),
        node("one", "end"),
        node("two", "end"),
    ],
    "edges": [edge("start", "fan"), edge("fan", "a"), edge("fan", "b"), edge("a", "one"), edge("b", "two")],
}


def test_parallel_branches_that_end_at_different_end_nodes_are_refused_naming_both() -> None:
    doc = TWO_ENDS_IN_PARALLEL
    issue = only_issue(doc)
    assert '"one" and "two" can both be reached in one run' in issue.message
    assert issue.node_id == "two"


def test_a_decision_that_leads_to_different_end_nodes_is_fine_its_paths_are_exclusive() -> None:
    yes_no = {"left": "1", "operator": "==", "right": "1"}
    doc = {
        "nodes": [node("start", "start"), node("check", "if_else", **yes_no), node("yes", "end"), node("no", "end")],
        "edges": [edge("start", "check"), edge("check", "yes", "true"), edge("check", "no", "false")],
    }
    assert messages(doc) == []


def test_branches_that_join_before_a_decision_between_two_ends_are_fine() -> None:
    yes_no = {"left": "1", "operator": "==", "right": "1"}
    doc = {
        "nodes": [
            *(node(n, t) for n, t in [("start", "start"), ("fan", "fork"), ("a", "agent"), ("b", "agent")]),
            node("join", "join"),
            node("check", "if_else", **yes_no),
            node("yes", "end"),
            node("no", "end"),
        ],
        "edges": [
            *(edge(s, t) for s, t in [("start", "fan"), ("fan", "a"), ("fan", "b"), ("a", "join"), ("b", "join")]),
            edge("join", "check"),
            edge("check", "yes", "true"),
            edge("check", "no", "false"),
        ],
    }
    assert messages(doc) == []


def test_a_branch_that_can_leave_before_the_join_while_the_other_goes_on_is_refused() -> None:
    # a's false path ends at "rejected" while b still reaches the join (which fires on b alone) and "done".
    yes_no = {"left": "1", "operator": "==", "right": "1"}
    doc = {
        "nodes": [
            node("start", "start"),
            node("fan", "fork"),
            node("a", "if_else", **yes_no),
            node("b"),
            node("join", "join"),
            node("done", "end"),
            node("rejected", "end"),
        ],
        "edges": [
            edge("start", "fan"),
            edge("fan", "a"),
            edge("fan", "b"),
            edge("a", "join", "true"),
            edge("a", "rejected", "false"),
            edge("b", "join"),
            edge("join", "done"),
        ],
    }
    assert "can both be reached in one run" in only_issue(doc).message


def test_two_branches_into_the_same_end_node_are_fine() -> None:
    doc = {
        "nodes": [node("start", "start"), node("fan", "fork"), node("a"), node("b"), node("end", "end")],
        "edges": [edge("start", "fan"), edge("fan", "a"), edge("fan", "b"), edge("a", "end"), edge("b", "end")],
    }
    assert messages(doc) == []


def test_a_run_snapshot_saved_before_the_rule_still_parses_so_its_run_can_finish() -> None:
    doc = TWO_ENDS_IN_PARALLEL
    with pytest.raises(GraphError):
        parse_graph(doc, SPECS)
    assert set(parse_graph(doc, SPECS, recorded=True).nodes) == {"start", "fan", "a", "b", "one", "two"}
