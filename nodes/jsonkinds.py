"""Names of JSON value kinds, for error messages (never a value's repr: that can be huge or fail). Pure."""

from __future__ import annotations

from collections.abc import Mapping


def json_kind(value: object) -> str:
    """ "null", "boolean", "number", "string", "list", "object", or the Python type name of anything else."""
    if value is None:
        return "null"
    if isinstance(value, bool):  # before int: True is an int to Python, not to JSON
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "list"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__


def json_kind_phrase(value: object) -> str:
    """The kind with its article, for a sentence: "null", "a string", "an object"."""
    kind = json_kind(value)
    if kind == "null":
        return kind
    return f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"
