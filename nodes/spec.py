"""What the graph validator knows about a node: a node as a document holds it, and a node type's spec."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

# The handle a node that can fail takes when it fails for good and has an edge from it (its error path).
ERROR_HANDLE = "error"


@dataclass(frozen=True)
class HandlesFrom:
    """Handles a node reads from its own data rather than from its type: the `key` of each object in the list
    `field` (or, with no `key`, each string in it), plus `extra`. A `switch` declares
    `HandlesFrom("cases", "id", ("default",))`.

    It is a description rather than a function so that the editor can compute the same handles in the browser
    while cases are added, removed and renamed (node_catalogue's `handles_from`)."""

    field: str
    key: str | None = None
    extra: tuple[str, ...] = ()

    def handles(self, data: Mapping[str, Any]) -> frozenset[str]:
        """The handles `data` gives; items of the wrong shape (the data's own checks report them) give none."""
        items = data.get(self.field)
        found = set(self.extra)
        if isinstance(items, (list, tuple)):
            for item in items:
                if self.key is None:
                    name = item
                else:
                    name = item.get(self.key) if isinstance(item, Mapping) else None
                if isinstance(name, str) and name:
                    found.add(name)
        return frozenset(found)

    def as_dict(self) -> dict[str, Any]:
        return {"field": self.field, "key": self.key, "extra": list(self.extra)}


@dataclass(frozen=True)
class NodeSpec:
    """What validation needs to know about a node type; node type modules provide one each.

    `handles` are the type's handles (None: any); `handles_from`, for a type whose handles depend on each
    node's data, says how to read them there instead. `handles_for` answers for one node either way.

    `can_fail`: a node of the type may fail for good (after its retries), and may then have an outgoing edge
    with the `error` handle (ERROR_HANDLE), its error path, besides its own handles. Control flow that cannot
    fail at run time (start, end, fork, join, the decisions) says False, and an `error` edge from it is
    refused."""

    type: str
    data_schema: dict[str, Any]
    handles: frozenset[str] | None = None
    required_handles: bool = False
    allows_outgoing: bool = True
    check: Callable[[dict[str, Any]], list[tuple[str | None, str]]] | None = None
    handles_from: HandlesFrom | None = None
    can_fail: bool = True

    def __post_init__(self) -> None:
        if self.handles is not None and self.handles_from is not None:
            raise ValueError(f"node type {self.type!r}: declare its handles or handles_from, not both")

    def handles_for(self, data: Mapping[str, Any]) -> frozenset[str] | None:
        """The handles a node of this type with `data` has; None when any handle will do."""
        if self.handles_from is not None:
            return self.handles_from.handles(data)
        return self.handles

    def edge_handles(self, data: Mapping[str, Any]) -> frozenset[str] | None:
        """The handles an outgoing edge of a node with `data` may carry: its own, plus `error` when the type
        can fail; None when any handle will do (an `error` edge is then its error path, if it can fail)."""
        handles = self.handles_for(data)
        if handles is None or not self.can_fail:
            return handles
        return handles | {ERROR_HANDLE}


@dataclass(frozen=True)
class Node:
    id: str
    type: str
    data: dict[str, Any]
    position: dict[str, Any] | None
