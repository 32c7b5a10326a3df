"""The pure engine core, without a database: routing, dead paths, joins, merging."""

from __future__ import annotations

from typing import Any

import pytest

from nodes import node_specs
from runs.engine.core import (
    DEAD,
    FIRED,
    advance,
    fired_sources,
    merge_inputs,
    output_of,
    reusable,
    skipped_on_replay,
    template_node_refs,
)
from workflows.graph import Graph, parse_graph


def graph(nodes: dict[str, str], edges: list[tuple[str, str] | tuple[str, str, str]]) -> Graph:
    """nodes: id -> type; edges: (source, target[, handle])."""
    data = {"if_else": {"left": "1", "operator": "==", "right": "1"}}
    return parse_graph(
        {
            "nodes": [{"id": node_id, "type": kind, "data": data.get(kind, {})} for node_id, kind in nodes.items()],
            "edges": [
                {
                    "id": f"{e[0]}-{e[1]}-{e[2] if len(e) > 2 else ''}",
                    "source": e[0],
                    "target": e[1],
                    **({"sourceHandle": e[2]} if len(e) > 2 else {}),
                }
                for e in edges
            ],
        },
        node_specs(),
    )


def run_all(g: Graph, handles: dict[str, str | None] | None = None) -> tuple[list[str], list[str]]:
    """Drive the core to the end the way the services do; returns (execution order, skipped)."""
    handles = handles or {}
    known: dict[str, dict[str, str]] = {}
    queue, executed, skipped = [g.start_id], [], []
    while queue:
        node_id = queue.pop(0)
        assert node_id not in executed, f"{node_id} ran twice"
        executed.append(node_id)
        step = advance(g, node_id, handle=handles.get(node_id), known_arrivals=known)
        known.update(step.arrivals)
        queue.extend(step.ready)
        for node in step.skipped:
            assert node not in skipped, f"{node} skipped twice"
        skipped.extend(step.skipped)
    return executed, skipped


CHAIN = graph({"start": "start", "a": "fork", "b": "fork", "end": "end"}, [("start", "a"), ("a", "b"), ("b", "end")])


def test_a_chain_runs_each_node_once_in_order() -> None:
    assert run_all(CHAIN) == (["start", "a", "b", "end"], [])


IF_ELSE = graph(
    {
        "start": "start",
        "check": "if_else",
        "yes": "fork",
        "no": "fork",
        "after_no": "fork",
        "end_yes": "end",
        "end_no": "end",
    },
    [
        ("start", "check"),
        ("check", "yes", "true"),
        ("check", "no", "false"),
        ("yes", "end_yes"),
        ("no", "after_no"),
        ("after_no", "end_no"),
    ],
)


def test_if_else_fires_the_taken_handle_and_skips_the_whole_other_path() -> None:
    executed, skipped = run_all(IF_ELSE, {"check": "true"})
    assert executed == ["start", "check", "yes", "end_yes"]
    assert skipped == ["no", "after_no", "end_no"]


def test_the_other_handle_takes_the_other_path() -> None:
    executed, skipped = run_all(IF_ELSE, {"check": "false"})
    assert executed == ["start", "check", "no", "after_no", "end_no"]
    assert skipped == ["yes", "end_yes"]


DIAMOND = graph(
    {"start": "start", "fork": "fork", "a": "fork", "b": "fork", "c": "fork", "join": "join", "end": "end"},
    [
        ("start", "fork"),
        ("fork", "a"),
        ("fork", "b"),
        ("fork", "c"),
        ("a", "join"),
        ("b", "join"),
        ("c", "join"),
        ("join", "end"),
    ],
)


def test_fork_makes_every_branch_ready_at_once() -> None:
    step = advance(DIAMOND, "fork", handle=None)
    assert step.ready == ["a", "b", "c"]


def test_join_waits_for_every_branch_and_fires_once() -> None:
    known: dict[str, dict[str, str]] = {}
    for branch in ("b", "a"):
        step = advance(DIAMOND, branch, handle=None, known_arrivals=known)
        assert step.ready == []
        known.update(step.arrivals)
    assert set(known["join"].values()) == {FIRED}
    last = advance(DIAMOND, "c", handle=None, known_arrivals=known)
    assert last.ready == ["join"]


def test_a_branch_finishing_twice_is_refused() -> None:
    first = advance(DIAMOND, "a", handle=None)
    with pytest.raises(ValueError, match="already resolved"):
        advance(DIAMOND, "a", handle=None, known_arrivals=first.arrivals)


def test_the_whole_diamond_runs_join_and_end_once() -> None:
    executed, skipped = run_all(DIAMOND)
    assert executed.count("join") == 1 and executed.count("end") == 1
    assert executed[-2:] == ["join", "end"] and skipped == []


# A join after an if/else inside one branch: the dead half of the if/else still counts as arrived.
BRANCHY = graph(
    {
        "start": "start",
        "fork": "fork",
        "check": "if_else",
        "x": "fork",
        "y": "fork",
        "other": "fork",
        "join": "join",
        "end": "end",
    },
    [
        ("start", "fork"),
        ("fork", "check"),
        ("fork", "other"),
        ("check", "x", "true"),
        ("check", "y", "false"),
        ("x", "join"),
        ("y", "join"),
        ("other", "join"),
        ("join", "end"),
    ],
)


def test_join_counts_dead_branches_as_arrived() -> None:
    executed, skipped = run_all(BRANCHY, {"check": "false"})
    assert skipped == ["x"]
    assert executed.index("join") > executed.index("y") and executed.index("join") > executed.index("other")
    assert executed[-1] == "end"


def test_a_node_whose_every_incoming_edge_is_dead_is_skipped_not_run() -> None:
    g = graph(
        {
            "start": "start",
            "check": "if_else",
            "t1": "fork",
            "t2": "fork",
            "merge": "fork",
            "end": "end",
            "other": "end",
        },
        [
            ("start", "check"),
            ("check", "t1", "true"),
            ("check", "other", "false"),
            ("t1", "t2"),
            ("t1", "merge"),
            ("t2", "merge"),
            ("merge", "end"),
        ],
    )
    executed, skipped = run_all(g, {"check": "false"})
    assert executed == ["start", "check", "other"]
    assert skipped == ["t1", "t2", "merge", "end"]


def test_fired_sources_follow_incoming_edge_order_and_ignore_dead_edges() -> None:
    arrivals = {"a-join-": FIRED, "b-join-": DEAD, "c-join-": FIRED}
    assert fired_sources(DIAMOND, "join", arrivals) == ["a", "c"]


def test_merge_inputs_later_branch_wins_on_conflicts() -> None:
    outputs: dict[str, dict[str, Any]] = {"a": {"x": 1, "shared": "a"}, "c": {"y": 2, "shared": "c"}}
    assert merge_inputs(["a", "c"], outputs) == {"x": 1, "y": 2, "shared": "c"}
    assert merge_inputs(["c", "a"], outputs)["shared"] == "a"


def test_output_accumulates_input_and_new_fields() -> None:
    assert output_of({"a": 1, "b": 2}, {"b": 3, "c": 4}) == {"a": 1, "b": 3, "c": 4}


def test_template_node_refs() -> None:
    assert template_node_refs(["input.a", "nodes.check.condition", "nodes.x", "nodes"]) == {"check", "x"}


def test_wide_fork_join_decides_in_linear_time() -> None:
    width = 300
    nodes = {"start": "start", "fork": "fork", "join": "join", "end": "end"}
    nodes.update({f"b{i}": "fork" for i in range(width)})
    edges: list[Any] = [("start", "fork"), ("join", "end")]
    edges += [("fork", f"b{i}") for i in range(width)] + [(f"b{i}", "join") for i in range(width)]
    executed, _ = run_all(graph(nodes, edges))
    assert executed.count("join") == 1 and len(executed) == width + 4


def test_a_resume_reuses_the_successes_before_the_resume_point_of_the_same_type_unless_named_to_run_again() -> None:
    g = graph(
        {"start": "start", "check": "if_else", "a": "fork", "b": "fork", "join": "join", "end": "end"},
        [
            ("start", "check"),
            ("check", "a", "true"),
            ("check", "b", "false"),
            ("a", "join"),
            ("b", "join"),
            ("join", "end"),
        ],
    )
    recorded = {
        "start": ("succeeded", "start"),
        "check": ("succeeded", "if_else"),
        "a": ("succeeded", "fork"),
        "b": ("skipped", "fork"),  # not a success: never reused
        "join": ("succeeded", "join"),
    }
    assert reusable(g, "join", recorded) == ["start", "check", "a"]  # in order; join and after run again
    assert reusable(g, "a", recorded) == ["start", "check"]
    assert reusable(g, "join", recorded, frozenset({"check"})) == ["start", "a"]
    # A node whose type changed in the version resumed on is executed, not reused.
    assert reusable(g, "end", {**recorded, "a": ("succeeded", "tool")}) == ["start", "check", "join"]
    assert reusable(g, "start", recorded) == []


def test_a_resume_at_a_node_the_recorded_path_skipped_would_skip_it_again() -> None:
    g = graph(
        {"start": "start", "check": "if_else", "yes": "end", "no": "end"},
        [("start", "check"), ("check", "yes", "true"), ("check", "no", "false")],
    )
    recorded = [("start", None), ("check", "false")]
    assert skipped_on_replay(g, "yes", recorded) is True
    assert skipped_on_replay(g, "no", recorded) is False
    assert skipped_on_replay(g, "check", recorded[:1]) is False
