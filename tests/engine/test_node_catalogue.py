"""What the node types declare (nodes/base.py, NodeType) and the catalogue the editor reads; no database."""

from __future__ import annotations

import re
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from nodes import get_node_type, node_catalogue, node_specs, node_types
from nodes.base import NodeContext, NodeError, NodeResult, NodeType, data_schema, field_schema, merge_child_output
from nodes.spec import Node, NodeSpec
from workflows.graph import validate_graph

BUILT_INS = (
    "start",
    "end",
    "fork",
    "join",
    "subworkflow",
    "map",
    "loop",
    "if_else",
    "switch",
    "agent",
    "guardrails",
    "cognitive",
    "tool",
    "user_approval",
)


def test_the_built_ins_come_first_in_palette_order_each_with_a_title_a_group_and_a_colour() -> None:
    catalogue = node_catalogue()
    assert [entry["type"] for entry in catalogue[: len(BUILT_INS)]] == list(BUILT_INS)
    groups = list(dict.fromkeys(entry["group"] for entry in catalogue[: len(BUILT_INS)]))
    assert groups == ["Flow", "Logic", "AI", "Tools", "People"]
    for entry in catalogue[: len(BUILT_INS)]:
        assert entry["title"] and entry["description"] and entry["icon"], entry["type"]
        assert entry["group"] in {"Flow", "Logic", "AI", "Tools", "People"}
        assert entry["colour"].startswith("#")


def test_what_replay_and_the_engine_need_is_declared_not_inferred_from_names() -> None:
    declared = node_types()
    assert [name for name, kind in declared.items() if kind.ends_run] == ["end"]
    assert [name for name, kind in declared.items() if not kind.accepts_incoming] == ["start"]
    assert [name for name, kind in declared.items() if kind.starts_child_runs] == [
        "cognitive",
        "loop",
        "map",
        "subworkflow",
    ]
    tool_fields = {name: dict(kind.tool_fields) for name, kind in declared.items() if kind.tool_fields}
    assert tool_fields == {"agent": {"tools": "many"}, "cognitive": {"tools": "many"}, "tool": {"tool": "one"}}


def test_summaries_and_output_fields_name_what_the_canvas_shows_and_hints() -> None:
    catalogue = {entry["type"]: entry for entry in node_catalogue()}
    assert catalogue["if_else"]["summary"] == "{{left}} {{operator}} {{right}}"
    assert catalogue["switch"]["summary"] == "{{value}}"
    assert catalogue["agent"]["summary"] == "{{model}}"
    assert catalogue["user_approval"]["summary"] == "{{assignees}}"
    first = {name: catalogue[name]["output_fields"][0] for name in catalogue if catalogue[name]["output_fields"]}
    assert {name: first[name] for name in BUILT_INS if name in first} == {
        "if_else": "condition",
        "switch": "case",
        "agent": "message",
        "tool": "result",
        "guardrails": "guardrail_result",
        "user_approval": "approval",
        "cognitive": "cognitive",
        "join": "branches",
        "subworkflow": "result",
        "map": "results",
        "loop": "result",
    }


def test_form_hints_live_in_each_property_schema() -> None:
    catalogue = {entry["type"]: entry for entry in node_catalogue()}
    widgets = {
        (name, key): schema["x-widget"]
        for name in BUILT_INS
        for key, schema in catalogue[name]["data_schema"]["properties"].items()
        if "x-widget" in schema
    }
    assert widgets == {
        ("agent", "system_prompt"): "textarea",
        ("agent", "user_prompt"): "textarea",
        ("agent", "tools"): "tools",
        ("tool", "tool"): "tool",
        ("if_else", "left"): "template",
        ("if_else", "right"): "template",
        ("switch", "value"): "template",
        ("guardrails", "policy"): "textarea",
        ("guardrails", "subject"): "template",
        ("user_approval", "message"): "textarea",
        ("cognitive", "instruction"): "textarea",
        ("cognitive", "tools"): "tools",
        ("subworkflow", "workflow"): "workflow",
        ("map", "items"): "template",
        ("map", "workflow"): "workflow",
        ("loop", "workflow"): "workflow",
    }
    for entry in catalogue.values():
        properties = entry["data_schema"]["properties"]
        assert all(schema.get("title") for schema in properties.values()), entry["type"]
        assert all(properties[key]["x-advanced"] is True for key in ("label", "retries", "timeout_seconds"))
    assert catalogue["agent"]["data_schema"]["properties"]["user_prompt"]["title"] == "User prompt"
    assert catalogue["start"]["data_schema"]["properties"]["input_schema"]["title"] == "Input schema (JSON Schema)"


def test_the_form_hints_are_valid_json_schema_and_change_no_verdict() -> None:
    for spec in node_specs().values():
        Draft202012Validator.check_schema(spec.data_schema)
    validator = Draft202012Validator(get_node_type("agent").spec.data_schema)
    assert validator.is_valid({"user_prompt": "Hi", "retries": 3, "label": "x"})
    assert not validator.is_valid({"user_prompt": "", "tools": ["a", "a"]})
    graph = {
        "nodes": [
            {"id": "start", "type": "start", "data": {}},
            {"id": "check", "type": "if_else", "data": {"left": "{{input.a}}", "operator": ">", "right": 1}},
            {"id": "end", "type": "end", "data": {}},
        ],
        "edges": [
            {"source": "start", "target": "check"},
            {"source": "check", "target": "end", "sourceHandle": "true"},
            {"source": "check", "target": "end", "sourceHandle": "false"},
        ],
    }
    assert validate_graph(graph, node_specs()) == []


def test_handles_read_from_data_are_described_so_the_editor_derives_them_as_the_server_does() -> None:
    catalogue = {entry["type"]: entry for entry in node_catalogue()}
    switch = catalogue["switch"]
    assert switch["handles"] is None
    assert switch["handles_from"] == {"field": "cases", "key": "id", "extra": ["default"]}
    assert [name for name, entry in catalogue.items() if "handles_from" in entry] == ["switch"]
    assert catalogue["if_else"]["handles"] == ["true", "false"]
    cases: list[dict[str, Any]] = [{"id": "refund", "operator": "=="}, {"id": "late", "operator": "is_empty"}]
    described = switch["handles_from"]
    derived = frozenset(case[described["key"]] for case in cases) | set(described["extra"])
    assert get_node_type("switch").spec.handles_for({"value": "x", described["field"]: cases}) == derived
    assert derived == {"refund", "late", "default"}
    # A case's form: its operator is chosen from if/else's operators, its value may be a template.
    case = switch["data_schema"]["properties"]["cases"]["items"]
    assert (
        case["properties"]["operator"]["enum"] == catalogue["if_else"]["data_schema"]["properties"]["operator"]["enum"]
    )
    assert case["properties"]["right"]["x-widget"] == "template"
    assert case["required"] == ["id", "operator"]


def test_a_child_runs_result_merges_as_its_type_declares() -> None:
    own = {"cognitive": {"reasoning": "r", "graph": {}}, "seen": 1}
    child = {"answer": 42, "seen": 0}
    assert get_node_type("cognitive").child_result(own, child, 7) == {
        "answer": 42,
        "seen": 1,
        "cognitive": {"reasoning": "r", "graph": {}, "output": child, "run_id": 7},
    }
    assert merge_child_output({"mine": 1}, None, 7) == {"mine": 1}


def test_a_type_that_declares_only_a_spec_and_a_handler_gets_neutral_defaults() -> None:
    bare = NodeType(spec=NodeSpec(type="queue_lookup", data_schema=data_schema()), execute=lambda ctx: NodeResult())
    assert (bare.title, bare.colour, bare.group, bare.order, bare.icon) == (
        "Queue lookup",
        "#868e96",
        "Other",
        1000,
        "",
    )
    assert bare.accepts_incoming and not bare.ends_run and not bare.starts_child_runs


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"colour": "teal"}, "colour must be a CSS hex colour"),
        ({"tool_fields": {"tools": "all"}}, "tool_fields['tools'] must be one of one, many"),
        ({"tool_fields": {"tool": "one"}}, "tool_fields names 'tool', which is not a property"),
        ({"order": "first"}, "order must be an integer"),
    ],
)
def test_a_type_declaring_something_malformed_is_refused_naming_it(changes: dict[str, Any], message: str) -> None:
    spec = NodeSpec(type="odd", data_schema=data_schema({"tools": {"type": "array"}}))
    with pytest.raises(ValueError, match=f"node type 'odd': .*{re.escape(message)}"):
        NodeType(spec=spec, execute=lambda ctx: NodeResult(), **changes)


def test_a_form_widget_outside_the_known_ones_is_refused() -> None:
    with pytest.raises(
        ValueError, match="x-widget must be one of textarea, template, tools, tool, workflow, not 'slider'"
    ):
        field_schema({"type": "number"}, widget="slider")
    spec = NodeSpec(type="odd", data_schema=data_schema({"level": {"type": "number", "x-widget": "slider"}}))
    with pytest.raises(ValueError, match="property 'level': x-widget must be one of"):
        NodeType(spec=spec, execute=lambda ctx: NodeResult())


def test_a_handler_whose_context_lacks_a_service_fails_the_node_naming_it() -> None:
    data = {"tool": "weather", "arguments": {}}
    context = NodeContext(run_id=1, node=Node("call", "tool", data, None), input={})
    with pytest.raises(NodeError, match="this node's context has no tools"):
        get_node_type("tool").execute(context)
    agent = NodeContext(run_id=1, node=Node("ask", "agent", {"user_prompt": "Hi"}, None), input={})
    with pytest.raises(NodeError, match="this node's context has no LLM client"):
        get_node_type("agent").execute(agent)
