"""The node type registry: a node type is one module that registers a `NodeType` (nodes/base.py) declaring
everything about it: its data schema and handles, its handler, how the editor shows it, what the engine and the
importer must know.

The registry finds the types itself: every module of `nodes.types`, then every module named in the
`FLOWNOVA_NODE_MODULES` setting (a package there stands for all its modules), so a deployment adds a type by
adding a module and naming it. They are imported once, on the first use of the registry (`load`); Django's
start-up loads them too (runs/apps.py), so a module that does not import stops the process at once.
"""

from __future__ import annotations

import importlib
import pkgutil
import threading
from collections.abc import Mapping
from typing import Any

from nodes.base import NodeType
from nodes.spec import NodeSpec

BUILT_IN_PACKAGE = "nodes.types"

_REGISTRY: dict[str, NodeType] = {}
_lock = threading.RLock()
_loaded = False
_loading = False


class NodeModuleError(ImportError):
    """A module named in FLOWNOVA_NODE_MODULES (or a built-in one) does not import."""


def register(node_type: NodeType) -> NodeType:
    existing = _REGISTRY.get(node_type.type)
    if existing is not None and existing is not node_type:
        raise ValueError(f"node type {node_type.type!r} is registered twice")
    _REGISTRY[node_type.type] = node_type
    return node_type


def load() -> None:
    """Import the built-in node types and those of FLOWNOVA_NODE_MODULES, once. Raises NodeModuleError naming
    the module that does not import (and tries again at the next call)."""
    global _loaded, _loading
    if _loaded:
        return
    with _lock:
        if _loaded or _loading:  # a node module that uses the registry while it is being loaded
            return
        _loading = True
        try:
            _import_all(BUILT_IN_PACKAGE, setting=None)
            for name in _configured_modules():
                _import_all(name, setting="FLOWNOVA_NODE_MODULES")
            _loaded = True
        finally:
            _loading = False


def _configured_modules() -> list[str]:
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured

    try:
        names = getattr(settings, "FLOWNOVA_NODE_MODULES", [])
    except ImproperlyConfigured:  # plain Python without Django settings (a script, the pure tests): built-ins only
        return []
    if isinstance(names, str):
        names = [names]
    return [name.strip() for name in names if name.strip()]


def _with_default_model(schema: dict[str, Any]) -> dict[str, Any]:
    """An LLM type's data schema with the model used when its `model` is left empty, for the form to show."""
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured

    properties = schema.get("properties", {})
    try:
        default = getattr(settings, "FLOWNOVA_DEFAULT_MODEL", None)
    except ImproperlyConfigured:  # plain Python without Django settings: nothing to show
        return schema
    if not default or not isinstance(properties.get("model"), dict):
        return schema
    model = {
        **properties["model"],
        "x-placeholder": default,
        "description": f"Empty: the default model, {default} (FLOWNOVA_DEFAULT_MODEL or FLOWNOVA_LLM_URL).",
    }
    return {**schema, "properties": {**properties, "model": model}}


def _import_all(name: str, *, setting: str | None) -> None:
    """Import the module `name`; for a package, every module in it."""
    module = _import(name, setting=setting)
    path = getattr(module, "__path__", None)
    if path is None:
        return
    for found in pkgutil.walk_packages(path, prefix=f"{module.__name__}.", onerror=lambda failed: None):
        _import(found.name, setting=setting)


def _import(name: str, *, setting: str | None) -> Any:
    try:
        return importlib.import_module(name)
    except Exception as exc:
        named = f"{setting} names {name!r}" if setting else f"the node type module {name!r}"
        raise NodeModuleError(f"{named}, which does not import: {type(exc).__name__}: {exc}") from exc


def get_node_type(type_name: str) -> NodeType:
    load()
    try:
        return _REGISTRY[type_name]
    except KeyError:
        raise KeyError(f"unknown node type {type_name!r}; known: {', '.join(sorted(_REGISTRY))}") from None


def node_specs() -> Mapping[str, NodeSpec]:
    """What the graph validator needs, for every registered type."""
    load()
    return {name: node_type.spec for name, node_type in _REGISTRY.items()}


def node_types() -> Mapping[str, NodeType]:
    load()
    return dict(_REGISTRY)


# Drawn first (top) on a node: the outcome most graphs follow.
_FIRST_HANDLES = frozenset({"true", "pass", "approved", "success"})


def node_catalogue() -> list[dict[str, Any]]:
    """What the canvas needs to draw and configure every registered type, in palette order; pages embed it as
    JSON, so a deployment's own node types get a palette entry, handles and a form without front-end changes.

    A type whose handles depend on each node's data (a switch's cases) has `handles` null and a `handles_from`,
    `{"field", "key", "extra"}`: the handles are the `key` of each object in the data's list `field` (each string
    in it when `key` is null), then `extra`, so the editor derives them as the data changes, as
    `NodeSpec.handles_for` does on the server. `can_fail` says the editor draws an `error` handle too, besides
    `handles` (a node's error path). A type that `uses_llm` has its `model` field's `x-placeholder` set to the
    default model, which its nodes use when they name none."""
    catalogue = []
    for node_type in sorted(node_types().values(), key=lambda node_type: (node_type.order, node_type.type)):
        spec = node_type.spec
        handles = sorted(spec.handles, key=lambda h: (h not in _FIRST_HANDLES, h)) if spec.handles else None
        extra = {"handles_from": spec.handles_from.as_dict()} if spec.handles_from is not None else {}
        catalogue.append(
            {
                "type": node_type.type,
                "title": node_type.title,
                "description": node_type.description,
                "icon": node_type.icon,
                "colour": node_type.colour,
                "group": node_type.group,
                "order": node_type.order,
                "summary": node_type.summary,
                "output_fields": list(node_type.output_fields),
                "handles": handles,
                "allows_outgoing": spec.allows_outgoing,
                "can_fail": spec.can_fail,
                "accepts_incoming": node_type.accepts_incoming,
                "data_schema": _with_default_model(spec.data_schema) if node_type.uses_llm else spec.data_schema,
                "side_effects": node_type.side_effects,
                "uses_llm": node_type.uses_llm,
                **extra,
            }
        )
    return catalogue
