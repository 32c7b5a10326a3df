"""workflows.importing: the pure conversion of imported documents (no database)."""

from __future__ import annotations

import copy
import itertools
import json
from typing import Any

import pytest

from nodes import node_specs
from tests.api.seed_sample import CONVERTED_GRAPH, SEED_EXPORT
from workflows.graph import GraphError, validate_graph
from workflows.importing import CONDITION_NAMES, DocumentError, convert_seed_graph, import_document, is_seed_graph

OURS: dict[str, Any] = {
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
    from nodes.conditions import OPERATORS

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
def test_a_document_that_is_not_one_is_refused_naming_the_key(doc: object, errors: dict[str, Any]) -> None:
    with pytest.raises(DocumentError) as caught:
        import_document(doc)
    assert caught.value.errors == errors


def test_malformed_seed_parts_are_left_for_the_graph_validator_to_name() -> None:
    graph = {"nodes": ["junk", {"id": "a", "data": {"type": "start"}}], "edges": "junk"}
    converted = convert_seed_graph(graph)
    assert converted["nodes"][0] == "junk" and converted["edges"] == "junk"
    messages = [issue.message for issue in validate_graph(converted, node_specs())]
    assert "nodes[0] must be an object, got a string" in messages


# --- original FlowNova export fields that change behaviour: converted, or refused naming node and field ---


def seed_node(node_id: str, seed_type: str, **config: object) -> dict[str, Any]:
    return {"id": node_id, "type": "custom", "data": {"type": seed_type, "config": config}}


def seed_graph(*middle: dict[str, Any], edges: list[tuple[str, ...]] | None = None) -> dict[str, Any]:
    """start -> each node of `middle` in turn -> end, unless `edges` says otherwise (source, target[, handle])."""
    ids = ["start", *(node["id"] for node in middle), "end"]
    pairs = edges if edges is not None else list(itertools.pairwise(ids))
    return {
        "nodes": [seed_node("start", "start"), *middle, seed_node("end", "end")],
        "edges": [
            {"source": e[0], "target": e[1], "source_handle": e[2] if len(e) > 2 else None, "target_handle": None}
            for e in pairs
        ],
    }


def converted_data(graph: dict[str, Any], node_id: str, **options: Any) -> dict[str, Any]:
    converted = convert_seed_graph(graph, **options)
    assert validate_graph(converted, node_specs()) == []
    return next(node["data"] for node in converted["nodes"] if node["id"] == node_id)


def refusal(graph: dict[str, Any], **options: Any) -> tuple[str | None, str | None, str]:
    with pytest.raises(GraphError) as caught:
        convert_seed_graph(graph, **options)
    (issue,) = caught.value.issues
    return issue.node_id, issue.field, issue.message


@pytest.mark.parametrize(
    ("seed_type", "config"),
    [
        ("agent", {"user_prompt": "Hi"}),
        ("guardrail", {"policy": "Be nice."}),
        ("cognitive", {"instruction": "Plan it."}),
    ],
)
def test_llm_model_becomes_the_nodes_model(seed_type: str, config: dict[str, Any]) -> None:
    graph = seed_graph(seed_node("llm", seed_type, llm_model="gpt-4o-mini", **config))
    if seed_type == "guardrail":  # its two routes
        graph = seed_graph(
            seed_node("llm", seed_type, llm_model="gpt-4o-mini", **config),
            seed_node("no", "end"),
            edges=[("start", "llm"), ("llm", "end", "pass"), ("llm", "no", "fail")],
        )
    data = converted_data(graph, "llm")
    assert data["model"] == "gpt-4o-mini" and "llm_model" not in data


def test_an_empty_llm_model_sets_nothing() -> None:
    data = converted_data(seed_graph(seed_node("llm", "agent", llm_model=None, user_prompt="Hi")), "llm")
    assert "model" not in data and "llm_model" not in data
    assert "llm_model" not in converted_data(seed_graph(seed_node("s", "fork", llm_model="")), "s")


@pytest.mark.parametrize(
    ("node", "message"),
    [
        (seed_node("x", "if", lhs=1, condition="is_empty", llm_model="gpt-4o"), 'a "if_else" node has no model here'),
        (seed_node("x", "agent", user_prompt="Hi", llm_model=4), "must be a model name (a string), not a number"),
        (
            seed_node("x", "agent", user_prompt="Hi", llm_model="gpt-4o", model="gpt-4o-mini"),
            '"gpt-4o" contradicts the node\'s model "gpt-4o-mini"',
        ),
    ],
)
def test_an_llm_model_that_cannot_be_kept_is_refused(node: dict[str, Any], message: str) -> None:
    graph = seed_graph(node, edges=[("start", "x"), ("x", "end", "true"), ("x", "end", "false")])
    node_id, field, text = refusal(graph)
    assert (node_id, field) == ("x", "llm_model")
    assert text.startswith('node "x": llm_model: ') and message in text


SENTIMENT = {"type": "object", "properties": {"sentiment": {"type": "string"}}, "required": ["sentiment"]}


@pytest.mark.parametrize(
    "config",
    [
        {"structured_output": True, "structured_output_schema": SENTIMENT},
        {"structured_output": True, "structured_output_schema": json.dumps(SENTIMENT)},
        {"structured_output_schema": SENTIMENT},
        {"structured_output": SENTIMENT},
        {"structured_output": True, "structured_output_schema": SENTIMENT, "output_schema": SENTIMENT},
    ],
    ids=["on-with-schema", "schema-as-json-text", "schema-only", "switch-is-the-schema", "agrees-with-ours"],
)
def test_structured_output_becomes_output_schema(config: dict[str, Any]) -> None:
    data = converted_data(seed_graph(seed_node("a", "agent", user_prompt="Rate it", **config)), "a")
    assert data["output_schema"] == SENTIMENT
    assert "structured_output" not in data and "structured_output_schema" not in data


def test_structured_output_switched_off_leaves_a_text_answer() -> None:
    config = {"structured_output": False, "structured_output_schema": SENTIMENT}
    data = converted_data(seed_graph(seed_node("a", "agent", user_prompt="Rate it", **config)), "a")
    assert "output_schema" not in data and "structured_output_schema" not in data


@pytest.mark.parametrize(
    ("node", "field", "message"),
    [
        (
            seed_node("a", "agent", user_prompt="x", structured_output=True),
            "structured_output",
            "is on, but there is no structured_output_schema",
        ),
        (
            seed_node("a", "agent", user_prompt="x", structured_output=True, structured_output_schema="{nope"),
            "structured_output_schema",
            "is not valid JSON",
        ),
        (
            seed_node("a", "agent", user_prompt="x", structured_output_schema=["a"]),
            "structured_output_schema",
            "must be a JSON Schema object, not a list",
        ),
        (
            seed_node("a", "agent", user_prompt="x", structured_output="yes", structured_output_schema=SENTIMENT),
            "structured_output",
            "must be true, false or a JSON Schema object, not a string",
        ),
        (
            seed_node(
                "a", "agent", user_prompt="x", structured_output_schema=SENTIMENT, output_schema={"type": "object"}
            ),
            "structured_output_schema",
            "contradicts the node's output_schema",
        ),
        (
            seed_node("a", "end", structured_output=True, structured_output_schema=SENTIMENT),
            "structured_output_schema",
            'a "end" node has no structured output here; only agent nodes do',
        ),
    ],
)
def test_a_structured_output_that_cannot_be_kept_is_refused(node: dict[str, Any], field: str, message: str) -> None:
    node_id, issue_field, text = refusal(seed_graph(node))
    assert (node_id, issue_field) == ("a", field)
    assert text.startswith(f'node "a": {field}: ') and message in text


TOOLS = {"order_lookup", "refund_issue"}


@pytest.mark.parametrize(
    ("config", "document_tools", "expected"),
    [
        ({"tools": ["order_lookup"]}, None, ["order_lookup"]),
        ({"tools": [{"id": "t_81f2", "name": "order_lookup"}]}, None, ["order_lookup"]),
        ({"tools": ["t_81f2", 7]}, [{"id": "t_81f2", "name": "order_lookup"}, {"id": 7, "name": "refund_issue"}], None),
        ({"tool_ids": ["t_81f2"]}, [{"id": "t_81f2", "name": "order_lookup"}], ["order_lookup"]),
        ({"tools": ["order_lookup"], "tool_ids": ["t_9"]}, [{"id": "t_9", "name": "refund_issue"}], None),
    ],
    ids=["our-name", "entry-with-a-name", "ids-named-by-the-document", "tool_ids", "both-fields"],
)
def test_seed_tool_ids_become_the_users_tool_names(
    config: dict[str, Any], document_tools: object, expected: object
) -> None:
    graph = seed_graph(seed_node("a", "agent", user_prompt="Help", **config))
    data = converted_data(graph, "a", tool_names=TOOLS, seed_tools=document_tools)
    assert data["tools"] == (expected or ["order_lookup", "refund_issue"])
    assert "tool_ids" not in data


def test_a_tool_nodes_seed_id_becomes_the_tool_name() -> None:
    graph = seed_graph(
        seed_node("call", "tool", tool_id="t_81f2", arguments={"id": "{{input.order}}"}),
        edges=[("start", "call"), ("call", "end", "success"), ("call", "end", "error")],
    )
    data = converted_data(graph, "call", tool_names=TOOLS, seed_tools=[{"id": "t_81f2", "name": "order_lookup"}])
    assert data == {"tool": "order_lookup", "arguments": {"id": "{{input.order}}"}}


@pytest.mark.parametrize(
    ("node", "field", "message"),
    [
        (
            seed_node("a", "agent", user_prompt="x", tools=["t_81f2", "order_lookup"]),
            "tools",
            '"t_81f2" is not the id or name of one of your tools: register the tool first',
        ),
        (
            seed_node("a", "agent", user_prompt="x", tool_ids=["t_1", "t_2"]),
            "tool_ids",
            '"t_1" (named "shipping_quote" in the document), "t_2" are not ids or names of your tools',
        ),
        (seed_node("a", "agent", user_prompt="x", tools="t_1"), "tools", "must be a list of tool ids, not a string"),
        (seed_node("a", "tool", tool_id=12), "tool_id", "12 is not the id or name of one of your tools"),
        (
            seed_node("a", "tool", tool_id="refund_issue", tool="order_lookup"),
            "tool_id",
            "names the tool 'refund_issue', but the node's tool is 'order_lookup'",
        ),
        (seed_node("a", "cognitive", instruction="x", tools=[{"id": "t_3"}]), "tools", '"t_3" is not the id or name'),
    ],
)
def test_a_tool_id_that_names_none_of_the_users_tools_is_refused(
    node: dict[str, Any], field: str, message: str
) -> None:
    graph = seed_graph(node)
    node_id, issue_field, text = refusal(graph, tool_names=TOOLS, seed_tools=[{"id": "t_1", "name": "shipping_quote"}])
    assert (node_id, issue_field) == ("a", field)
    assert text.startswith(f'node "a": {field}: ') and message in text


def test_without_the_users_tools_every_tool_id_is_refused() -> None:
    graph = seed_graph(seed_node("a", "agent", user_prompt="x", tools=["order_lookup"]))
    assert refusal(graph)[:2] == ("a", "tools")


def test_templates_reading_the_seed_if_else_fields_read_ours() -> None:
    graph = seed_graph(
        seed_node("early", "agent", user_prompt="Own field {{input.lhs_value}}"),
        seed_node("check", "ifElse", lhs="{{input.amount}}", condition="gt", rhs=100),
        seed_node("late", "agent", user_prompt="{{input.lhs_value}} vs {{ input.rhs_value ?? 0 }}: {{input.lhs}}"),
        seed_node("after", "end", output={"amount": "{{input.lhs_value}}", "same": "{{nodes.check.lhs_value}}"}),
        edges=[
            ("start", "early"),
            ("early", "check"),
            ("check", "late", "true"),
            ("check", "after", "false"),
            ("late", "after"),
        ],
    )
    graph["nodes"].pop()  # no separate end: "after" is the end
    converted = convert_seed_graph(graph)
    data = {node["id"]: node["data"] for node in converted["nodes"]}
    assert data["early"]["user_prompt"] == "Own field {{input.lhs_value}}"  # before any if/else: the run's input
    assert data["late"]["user_prompt"] == "{{input.left_value}} vs {{ input.right_value ?? 0 }}: {{input.lhs}}"
    assert data["after"]["output"] == {"amount": "{{input.left_value}}", "same": "{{nodes.check.left_value}}"}
    assert validate_graph(converted, node_specs()) == []


def test_the_whole_seed_document_passes_the_users_tools_on() -> None:
    document = {
        "name": "Triage",
        "tools": [{"id": "t_81f2", "name": "order_lookup"}],
        **seed_graph(seed_node("a", "agent", user_prompt="Help", llm_model="gpt-4o-mini", tools=["t_81f2"])),
    }
    graph = import_document(document, tool_names=TOOLS)["graph"]
    assert graph["nodes"][1]["data"] == {"user_prompt": "Help", "model": "gpt-4o-mini", "tools": ["order_lookup"]}
    with pytest.raises(DocumentError) as caught:
        import_document(document)
    (issue,) = caught.value.errors["graph"]
    assert issue["node_id"] == "a" and issue["field"] == "tools"
