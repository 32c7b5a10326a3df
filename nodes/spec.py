"""What the graph validator knows about a node: a node as a document holds it, and a node type's spec."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


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
    node's data, says how to read them there instead. `handles_for` answers for one node either way."""

    type: str
    data_schema: dict[str, Any]
    handles: frozenset[str] | None = None
    required_handles: bool = False
    allows_outgoing: bool = True
    check: Callable[[dict[str, Any]], list[tuple[str | None, str]]] | None = None
    handles_from: HandlesFrom | None = None

    def __post_init__(self) -> None:
        if self.handles is not None and self.handles_from is not None:
            raise ValueError(f"node type {self.type!r}: declare its handles or handles_from, not both")

    def handles_for(self, data: Mapping[str, Any]) -> frozenset[str] | None:
        """The handles a node of this type with `data` has; None when any handle will do."""
        if self.handles_from is not None:
            return self.handles_from.handles(data)
        return self.handles


@dataclass(frozen=True)
class Node:
    id: str
    type: str
    data: dict[str, Any]
    position: dict[str, Any] | None
