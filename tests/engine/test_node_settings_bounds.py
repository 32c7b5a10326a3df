"""Every numeric setting of every node type is bounded in its schema: a value such as 1e12 seconds is refused
when the graph is saved, instead of overflowing later in every attempt of a run."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from nodes import node_specs

# Values the node passes through, not settings of its own (an if/else compares any scalar).
NOT_SETTINGS = {("if_else", "left"), ("if_else", "right")}


def numeric_properties(schema: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    if not isinstance(schema, dict):
        return
    kinds = schema.get("type")
    kinds = kinds if isinstance(kinds, list) else [kinds]
    if path and {"number", "integer"} & set(kinds) and not {"string", "null"} & set(kinds):
        yield path, schema
    for name, child in (schema.get("properties") or {}).items():
        yield from numeric_properties(child, f"{path}.{name}" if path else name)
    if isinstance(schema.get("items"), dict):
        yield from numeric_properties(schema["items"], f"{path}[]")


CASES = [
    (spec.type, path, prop)
    for spec in node_specs().values()
    for path, prop in numeric_properties(spec.data_schema)
    if (spec.type, path) not in NOT_SETTINGS
]


def test_there_are_numeric_settings_to_check() -> None:
    assert {"retries", "timeout_seconds", "deadline_seconds"} <= {path for _, path, _ in CASES}


@pytest.mark.parametrize(("node_type", "path", "prop"), CASES, ids=[f"{t}.{p}" for t, p, _ in CASES])
def test_every_numeric_setting_has_a_lower_and_an_upper_bound(node_type: str, path: str, prop: dict[str, Any]) -> None:
    assert "minimum" in prop or "exclusiveMinimum" in prop, f"{node_type}.{path} has no lower bound"
    assert "maximum" in prop or "exclusiveMaximum" in prop, f"{node_type}.{path} has no upper bound"
