"""Error paths without a database: which types may have an `error` edge, how the core routes a failure that
takes one (and a success that does not), and what a resume may reuse."""

from __future__ import annotations

from typing import Any

import pytest

from nodes import get_node_type, node_specs
from runs.engine.core import DEAD, FIRED, advance, outgoing_resolution, reusable, went_on
from tests.engine_helpers import graph_of
from workflows.graph import Graph, parse_graph, validate_graph

TRANSFORM = {"expression": '{"x": 1}'}
FIRST: list[tuple[str, str, dict[str, Any]]] = [("start", "start", {}), ("t", "transform", TRANSFORM)]


def issues(doc: dict[str, Any]) -> list[tuple[str, str | None]]:
    return [(issue.message, issue.edge_id) for issue in validate_graph(doc, node_specs())]


def with_error_path(kind: str, data: dict[str, Any], *, own: str | None = None) -> dict[str, Any]:
    """start -> node -> ok (on `own`, or every edge) and node -error-> handled: two ends a run never reaches
    together, since a node either goes on or takes its error path."""
    ok_edge = ("node", "ok", own) if own else ("node", "ok")
    return graph_of(
        [("start", "start", {}), ("node", kind, data), ("ok", "end", {}), ("handled", "end", {})],
        [("start", "node"), ok_edge, ("node", "handled", "error")],
    )


def parsed(doc: dict[str, Any]) -> Graph:
    return parse_graph(doc, node_specs())


# --- which types can fail ------------------------------------------------------------------------------------


def test_control_flow_cannot_fail_and_everything_that_does_work_can() -> None:
    cannot = {"start", "end", "fork", "join", "if_else", "switch", "user_approval"}
    for kind in cannot:
        assert get_node_type(kind).can_fail is False, kind
    for kind in ("agent", "tool", "guardrails", "transform", "cognitive"):
        assert get_node_type(kind).can_fail is True, kind


@pytest.mark.parametrize(
    ("kind", "data", "own"),
    [
        ("transform", TRANSFORM, None),
        ("agent", {"user_prompt": "hi"}, None),
        ("tool", {"tool": "lookup"}, "success"),
        ("guardrails", {"policy": "be nice"}, "pass"),
        ("cognitive", {"instruction": "do it"}, None),
    ],
)
def test_a_node_that_can_fail_may_have_an_error_edge_beside_its_own(
    kind: str, data: dict[str, Any], own: str | None
) -> None:
    assert issues(with_error_path(kind, data, own=own)) == []


@pytest.mark.parametrize(
    ("kind", "data", "own"),
    [
        ("if_else", {"left": "1", "operator": "==", "right": "1"}, "true"),
        ("switch", {"value": "a", "cases": [{"id": "a", "operator": "==", "right": "a"}]}, "a"),
        ("user_approval", {}, "approved"),
        ("fork", {}, None),
        ("join", {}, None),
    ],
)
def test_an_error_edge_from_a_type_that_cannot_fail_is_refused_naming_the_edge(
    kind: str, data: dict[str, Any], own: str | None
) -> None:
    found = issues(with_error_path(kind, data, own=own))
    assert len(found) == 1, found
    message, edge_id = found[0]
    assert edge_id == "e2"
    assert message.startswith(f'edge "e2": node "node" ({kind}) cannot fail, so it has no "error" handle')


def test_an_error_edge_from_start_or_end_is_refused_naming_the_edge() -> None:
    doc = graph_of(
        [("start", "start", {}), ("t", "transform", TRANSFORM), ("end", "end", {}), ("other", "end", {})],
        [("start", "t"), ("start", "other", "error"), ("t", "end"), ("end", "other", "error")],
    )
    found = issues(doc)
    assert ('edge "e1": node "start" (start) cannot fail, so it has no "error" handle', "e1") in found
    assert ('edge "e3": node "end" (end) can\'t have outgoing edges', "e3") in found


def test_a_switch_case_named_error_is_its_own_handle_not_an_error_path() -> None:
    data = {"value": "a", "cases": [{"id": "error", "operator": "==", "right": "a"}]}
    doc = graph_of(
        [("start", "start", {}), ("node", "switch", data), ("a", "end", {}), ("b", "end", {})],
        [("start", "node"), ("node", "a", "error"), ("node", "b", "default")],
    )
    assert issues(doc) == []


def test_an_edge_without_a_handle_from_an_agent_stays_a_normal_edge_and_unknown_handles_list_error() -> None:
    doc = graph_of(
        [("start", "start", {}), ("t", "tool", {"tool": "lookup"}), ("end", "end", {})],
        [("start", "t"), ("t", "end", "done")],
    )
    assert issues(doc) == [('edge "e1": node "t" (tool) has no handle "done"; use one of: error, success', "e1")]
    g = parsed(with_error_path("agent", {"user_prompt": "hi"}))
    assert [(e.target, e.source_handle) for e in g.outgoing("node")] == [("ok", None), ("handled", "error")]


def test_one_end_per_run_knows_the_error_path_never_runs_with_the_rest() -> None:
    # Without an error path, an agent's two unlabelled edges run together and may not end apart.
    doc = graph_of(
        [("start", "start", {}), ("a", "agent", {"user_prompt": "hi"}), ("x", "end", {}), ("y", "end", {})],
        [("start", "a"), ("a", "x"), ("a", "y")],
    )
    assert any("can both be reached in one run" in message for message, _ in issues(doc))
    # A fork after the error path still must join: the rule applies on the error path too.
    doc = graph_of(
        [
            ("start", "start", {}),
            ("t", "transform", TRANSFORM),
            ("ok", "end", {}),
            ("f", "fork", {}),
            ("x", "end", {}),
            ("y", "end", {}),
        ],
        [("start", "t"), ("t", "ok"), ("t", "f", "error"), ("f", "x"), ("f", "y")],
    )
    assert any("can both be reached in one run" in message for message, _ in issues(doc))


# --- routing ------------------------------------------------------------------------------------------------


def test_a_success_fires_every_edge_but_the_error_path_and_a_failure_only_the_error_path() -> None:
    g = parsed(with_error_path("transform", TRANSFORM))
    fired, dead = outgoing_resolution(g, "node", None)
    assert [e.target for e in fired] == ["ok"] and [e.target for e in dead] == ["handled"]
    fired, dead = outgoing_resolution(g, "node", "error")
    assert [e.target for e in fired] == ["handled"] and [e.target for e in dead] == ["ok"]
    step = advance(g, "node", handle="error")
    assert step.ready == ["handled"] and step.skipped == ["ok"]
    assert step.arrivals == {"ok": {"e1": DEAD}, "handled": {"e2": FIRED}}


def test_a_join_after_both_the_path_and_the_error_path_runs_once_with_the_branch_that_came() -> None:
    g = parsed(
        graph_of(
            [*FIRST, ("fix", "transform", TRANSFORM), ("join", "join", {}), ("end", "end", {})],
            [("start", "t"), ("t", "join"), ("t", "fix", "error"), ("fix", "join"), ("join", "end")],
        )
    )
    first = advance(g, "t", handle="error")
    assert first.ready == ["fix"] and first.skipped == []
    assert first.arrivals["join"] == {"e1": DEAD}
    second = advance(g, "fix", handle=None, known_arrivals=first.arrivals)
    assert second.ready == ["join"]


def test_a_resume_reuses_a_failure_that_took_its_error_path_and_nothing_else_that_failed() -> None:
    assert went_on("succeeded", None) and went_on("failed", "error")
    assert not went_on("failed", "") and not went_on("failed", None) and not went_on("skipped", "error")
    g = parsed(
        graph_of(
            [*FIRST, ("ok", "end", {}), ("fix", "transform", TRANSFORM), ("handled", "end", {})],
            [("start", "t"), ("t", "ok"), ("t", "fix", "error"), ("fix", "handled")],
        )
    )
    recorded: dict[str, tuple[str, str] | tuple[str, str, str | None]] = {
        "start": ("succeeded", "start", ""),
        "t": ("failed", "transform", "error"),
        "fix": ("succeeded", "transform", ""),
    }
    assert reusable(g, "handled", recorded) == ["start", "t", "fix"]
    assert reusable(g, "handled", {**recorded, "t": ("failed", "transform", "")}) == ["start", "fix"]
    assert reusable(g, "handled", {**recorded, "t": ("failed", "transform")}) == ["start", "fix"]
