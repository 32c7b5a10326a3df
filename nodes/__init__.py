"""The node type registry: one module per type, each registering a `NodeType`.

Adding a node type touches one module (and its test). Extra modules named in the `FLOWNOVA_NODE_MODULES`
setting are imported when Django starts (see `runs.apps`), so a deployment can add its own types.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nodes.base import NodeType
from nodes.spec import NodeSpec

_REGISTRY: dict[str, NodeType] = {}


def register(node_type: NodeType) -> NodeType:
    existing = _REGISTRY.get(node_type.type)
    if existing is not None and existing is not node_type:
        raise ValueError(f"node type {node_type.type!r} is registered twice")
    _REGISTRY[node_type.type] = node_type
    return node_type


def get_node_type(type_name: str) -> NodeType:
    try:
        return _REGISTRY[type_name]
    except KeyError:
        raise KeyError(f"unknown node type {type_name!r}; known: {', '.join(sorted(_REGISTRY))}") from None


def node_specs() -> Mapping[str, NodeSpec]:
    """What the graph validator needs, for every registered type."""
    return {name: node_type.spec for name, node_type in _REGISTRY.items()}


def node_types() -> Mapping[str, NodeType]:
    return dict(_REGISTRY)


# Drawn first (top) on a node: the outcome most graphs follow.
_FIRST_HANDLES = frozenset({"true", "pass", "approved", "success"})


def node_catalogue() -> list[dict[str, Any]]:
    """What the canvas needs to draw and configure every registered type; pages embed it as JSON, so a
    deployment's own node types get a palette entry, handles and a form without front-end changes."""
    catalogue = []
    for name, node_type in sorted(_REGISTRY.items()):
        spec = node_type.spec
        handles = sorted(spec.handles, key=lambda h: (h not in _FIRST_HANDLES, h)) if spec.handles else None
        catalogue.append(
            {
                "type": name,
                "handles": handles,
                "allows_outgoing": spec.allows_outgoing,
                "data_schema": spec.data_schema,
                "side_effects": node_type.side_effects,
            }
        )
    return catalogue


# The built-in types register themselves on import.
from nodes.types import (  # noqa: E402,F401
    agent,
    cognitive,
    end,
    fork,
    guardrails,
    if_else,
    join,
    start,
    tool,
    user_approval,
)
