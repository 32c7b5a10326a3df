"""Comparing two versions of a workflow: pure functions over the contract's documents, no Django.

A version's document is `{name, description, graph}`. Its nodes and edges are matched by id: an id only in the
later version is *added*, one only in the earlier is *removed*, one in both whose document differs is *changed*,
with the RFC 6902 JSON Patch that turns the earlier node (or edge) into the later one. The API's diff
(`workflows/versions_api.py`) and the diff page (`workflows/version_views.py`) both answer with what
`documents_diff` returns; the page's canvas draws `diff_canvas`.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from typing import Any

import jsonpatch
import jsonpointer

__all__ = ["diff_canvas", "documents_diff", "items_diff", "readable_ops"]


def _by_id(items: object) -> dict[str, dict[str, Any]]:
    """Nodes or edges by id, in document order (an item without a string id cannot be matched: left out)."""
    found: dict[str, dict[str, Any]] = {}
    if isinstance(items, Sequence) and not isinstance(items, str):
        for item in items:
            if isinstance(item, Mapping) and isinstance(item.get("id"), str):
                found.setdefault(item["id"], dict(item))
    return found


def items_diff(before: object, after: object) -> dict[str, Any]:
    """`{added, removed, changed}` between two lists of nodes (or edges): ids added (in `after`'s order), ids
    removed (in `before`'s order), and `{id, patch}` for each id in both whose document differs, the patch
    turning the earlier document into the later one."""
    old, new = _by_id(before), _by_id(after)
    changed = []
    for item_id, item in old.items():
        if item_id in new:
            patch = jsonpatch.make_patch(item, new[item_id]).patch
            if patch:
                changed.append({"id": item_id, "patch": patch})
    return {
        "added": [item_id for item_id in new if item_id not in old],
        "removed": [item_id for item_id in old if item_id not in new],
        "changed": changed,
    }


def _graph(document: Mapping[str, Any]) -> Mapping[str, Any]:
    graph = document.get("graph")
    return graph if isinstance(graph, Mapping) else {}


def _field_change(a: Mapping[str, Any], b: Mapping[str, Any], key: str) -> dict[str, Any] | None:
    before, after = a.get(key, ""), b.get(key, "")
    return None if before == after else {"from": before, "to": after}


def documents_diff(a: Mapping[str, Any], b: Mapping[str, Any], *, a_number: int, b_number: int) -> dict[str, Any]:
    """What changed from version `a_number` (document `a`) to version `b_number` (document `b`): the name and
    description as `{from, to}` (null when unchanged), and the nodes' and edges' `items_diff`."""
    graph_a, graph_b = _graph(a), _graph(b)
    return {
        "a": a_number,
        "b": b_number,
        "name": _field_change(a, b, "name"),
        "description": _field_change(a, b, "description"),
        "nodes": items_diff(graph_a.get("nodes"), graph_b.get("nodes")),
        "edges": items_diff(graph_a.get("edges"), graph_b.get("edges")),
    }


def diff_canvas(a: Mapping[str, Any], b: Mapping[str, Any], diff: Mapping[str, Any]) -> dict[str, Any]:
    """What the diff page's canvas draws: version b's graph plus what version a had and b removed (drawn where
    a had it), so it shows the union; and each node's and edge's mark (`added`, `removed`, `changed`)."""
    graph_a, graph_b = _graph(a), _graph(b)
    old_nodes, old_edges = _by_id(graph_a.get("nodes")), _by_id(graph_a.get("edges"))
    nodes = list(_by_id(graph_b.get("nodes")).values()) + [old_nodes[i] for i in diff["nodes"]["removed"]]
    edges = list(_by_id(graph_b.get("edges")).values()) + [old_edges[i] for i in diff["edges"]["removed"]]
    marks: dict[str, dict[str, str]] = {"nodes": {}, "edges": {}}
    for kind in ("nodes", "edges"):
        for mark in ("added", "removed"):
            marks[kind].update(dict.fromkeys(diff[kind][mark], mark))
        marks[kind].update({item["id"]: "changed" for item in diff[kind]["changed"]})
    return {"graph": {"nodes": nodes, "edges": edges}, "marks": marks}


_ABSENT = object()


def _shown(value: Any) -> str:
    return "" if value is _ABSENT else json.dumps(value, ensure_ascii=False, default=str)


def readable_ops(before: Any, ops: list[dict[str, Any]]) -> list[dict[str, str]]:
    """JSON Patch operations with the value each one replaces, for a page: the patch is applied step by step,
    because each operation's path refers to the document as the previous operations left it."""
    document = copy.deepcopy(before)
    rows = []
    for op in ops:
        at = op.get("from", op["path"]) if op["op"] in ("move", "copy") else op["path"]
        old = _ABSENT if op["op"] == "add" else jsonpointer.resolve_pointer(document, at, _ABSENT)
        new = op.get("value", old if op["op"] in ("move", "copy") else _ABSENT)
        rows.append(
            {"op": op["op"], "path": op["path"], "from": op.get("from", ""), "old": _shown(old), "new": _shown(new)}
        )
        document = jsonpatch.apply_patch(document, [op])
    return rows
