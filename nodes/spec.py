"""What the graph validator knows about a node: a node as a document holds it, and a node type's spec."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class NodeSpec:
    """What validation needs to know about a node type; node type modules provide one each."""

    type: str
    data_schema: dict[str, Any]
    handles: frozenset[str] | None = None
    required_handles: bool = False
    allows_outgoing: bool = True
    check: Callable[[dict[str, Any]], list[tuple[str | None, str]]] | None = None


@dataclass(frozen=True)
class Node:
    id: str
    type: str
    data: dict[str, Any]
    position: dict[str, Any] | None
