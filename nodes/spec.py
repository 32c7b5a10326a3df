"""What the graph validator knows about a node: a node as a document holds it, and a node type's spec."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class NodeSpec:
    """What validation needs to know about a node type; node type modules provide one each."""

    type: str
    data_schema: dict
    handles: frozenset[str] | None = None
    required_handles: bool = False
    allows_outgoing: bool = True
    check: Callable[[dict], list[tuple[str | None, str]]] | None = None


@dataclass(frozen=True)
class Node:
    id: str
    type: str
    data: dict
    position: dict | None
