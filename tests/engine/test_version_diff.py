"""The diff between two workflow versions (workflows/versions.py): pure, so no database."""

from __future__ import annotations

from typing import Any

import jsonpatch
from hypothesis import given, settings
from hypothesis import strategies as st

from workflows.versions import diff_canvas, documents_diff, items_diff, readable_ops

_IDS = st.sampled_from(["start", "a", "b", "c", "d", "end"])
_SCALARS = st.none() | st.booleans() | st.integers(-5, 5) | st.text(max_size=4)
_JSON = st.recursive(
    _SCALARS,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=3), children, max_size=3),
    max_leaves=8,
)
_NODE = st.fixed_dictionaries(
    {
        "type": st.sampled_from(["start", "end", "transform", "agent"]),
        "data": st.dictionaries(st.sampled_from(["x", "y", "label", "model"]), _JSON, max_size=3),
    },
    optional={"position": st.fixed_dictionaries({"x": st.integers(0, 9), "y": st.integers(0, 9)})},
)


@st.composite
def node_lists(draw: st.DrawFn) -> list[dict[str, Any]]:
    ids = draw(st.lists(_IDS, unique=True, max_size=6))
    return [{"id": node_id, **draw(_NODE)} for node_id in ids]


@settings(max_examples=300, deadline=None)
@given(before=node_lists(), after=node_lists())
def test_each_patch_turns_the_earlier_node_into_the_later_one(
    before: list[dict[str, Any]], after: list[dict[str, Any]]
) -> None:
    diff = items_diff(before, after)
    old = {node["id"]: node for node in before}
    new = {node["id"]: node for node in after}
    for change in diff["changed"]:
        assert jsonpatch.apply_patch(old[change["id"]], change["patch"]) == new[change["id"]]
        assert change["patch"], "a node listed as changed has a non-empty patch"


@settings(max_examples=300, deadline=None)
@given(before=node_lists(), after=node_lists())
def test_added_removed_and_changed_partition_the_ids_that_differ(
    before: list[dict[str, Any]], after: list[dict[str, Any]]
) -> None:
    diff = items_diff(before, after)
    old = {node["id"]: node for node in before}
    new = {node["id"]: node for node in after}
    added, removed = set(diff["added"]), set(diff["removed"])
    changed = {change["id"] for change in diff["changed"]}
    unchanged = {node_id for node_id in old.keys() & new.keys() if old[node_id] == new[node_id]}
    assert added == new.keys() - old.keys()
    assert removed == old.keys() - new.keys()
    assert changed == {node_id for node_id in old.keys() & new.keys() if old[node_id] != new[node_id]}
    # Disjoint, and with the unchanged ones they cover every id of either version.
    assert len(added) + len(removed) + len(changed) + len(unchanged) == len(old.keys() | new.keys())


@given(nodes=node_lists())
def test_a_version_compared_with_itself_has_no_difference(nodes: list[dict[str, Any]]) -> None:
    document = {"name": "n", "description": "d", "graph": {"nodes": nodes, "edges": []}}
    diff = documents_diff(document, document, a_number=1, b_number=1)
    assert diff["name"] is None and diff["description"] is None
    assert diff["nodes"] == {"added": [], "removed": [], "changed": []}


def test_name_description_nodes_and_edges_are_compared() -> None:
    a = {
        "name": "Invoices",
        "description": "",
        "graph": {
            "nodes": [
                {"id": "start", "type": "start", "data": {}},
                {"id": "old", "type": "transform", "data": {"expression": "1"}},
                {"id": "end", "type": "end", "data": {"output": {"n": 1}}},
            ],
            "edges": [
                {"id": "e1", "source": "start", "target": "old"},
                {"id": "e2", "source": "old", "target": "end"},
            ],
        },
    }
    b = {
        "name": "Bills",
        "description": "",
        "graph": {
            "nodes": [
                {"id": "start", "type": "start", "data": {}},
                {"id": "new", "type": "transform", "data": {"expression": "2"}},
                {"id": "end", "type": "end", "data": {"output": {"n": 2}}},
            ],
            "edges": [
                {"id": "e1", "source": "start", "target": "new"},
                {"id": "e3", "source": "new", "target": "end"},
            ],
        },
    }
    diff = documents_diff(a, b, a_number=3, b_number=5)
    assert (diff["a"], diff["b"]) == (3, 5)
    assert diff["name"] == {"from": "Invoices", "to": "Bills"}
    assert diff["description"] is None
    assert diff["nodes"] == {
        "added": ["new"],
        "removed": ["old"],
        "changed": [{"id": "end", "patch": [{"op": "replace", "path": "/data/output/n", "value": 2}]}],
    }
    assert diff["edges"] == {
        "added": ["e3"],
        "removed": ["e2"],
        "changed": [{"id": "e1", "patch": [{"op": "replace", "path": "/target", "value": "new"}]}],
    }

    canvas = diff_canvas(a, b, diff)
    assert [node["id"] for node in canvas["graph"]["nodes"]] == ["start", "new", "end", "old"]
    assert [edge["id"] for edge in canvas["graph"]["edges"]] == ["e1", "e3", "e2"]
    assert canvas["marks"] == {
        "nodes": {"new": "added", "old": "removed", "end": "changed"},
        "edges": {"e3": "added", "e2": "removed", "e1": "changed"},
    }


def test_readable_ops_show_the_value_each_operation_replaces() -> None:
    before = {"data": {"n": 1, "gone": True}}
    ops = jsonpatch.make_patch(before, {"data": {"n": 2, "new": "x"}}).patch
    rows = {row["path"]: (row["op"], row["old"], row["new"]) for row in readable_ops(before, ops)}
    assert rows["/data/n"] == ("replace", "1", "2")
    assert rows["/data/gone"] == ("remove", "true", "")
    assert rows["/data/new"] == ("add", "", '"x"')
