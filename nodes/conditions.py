"""The if/else node's operators (docs/CONTRACT.md, Node types). Pure Python, no Django.

How values compare, in order:

1. Numbers and numeric strings (``"70"``, ``" 3.5 "``, ``"-1e3"``; not ``"nan"``, ``"inf"``, ``""``, and never
   booleans) compare as exact decimals, so ``"70" == 70.0``, ``"100" > "9"`` and huge integers stay exact.
2. ``"true"``/``"false"`` strings (any case, trimmed) equal the booleans True/False. This applies when the
   other side is a real boolean; two strings still compare as strings (``"TRUE" != "true"``).
3. Otherwise ``==``/``!=`` compare JSON values structurally, with these same rules inside lists and objects.
   A boolean never equals a number (``True != 1``).

Ordering (``>``, ``<``, ``>=``, ``<=``) works on two numbers or two strings (lexicographic, by code point);
anything else (objects, lists, null, booleans, a number against a non-numeric string) raises ConditionError.

``contains``: substring for a string (the right side turned into text the way templates render it), membership
for a list (with ``==``'s rules), key membership for an object. A number or boolean on the left is searched as
its text; null contains nothing. ``not_contains`` is the negation.

``is_empty``: null, ``""``, a whitespace-only string, ``[]`` and ``{}``; ``0`` and ``false`` are not empty.
The right side of ``is_empty``/``is_not_empty`` is ignored.
"""

from __future__ import annotations

import math
import operator as op
import re
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from nodes.jsonkinds import json_kind
from nodes.templating import TemplateError, to_text

__all__ = ["CONDITION_NAMES", "OPERATORS", "UNARY_OPERATORS", "ConditionError", "evaluate"]

OPERATORS: tuple[str, ...] = (
    "==",
    "=",
    "!=",
    ">",
    "<",
    ">=",
    "<=",
    "contains",
    "not_contains",
    "is_empty",
    "is_not_empty",
)
UNARY_OPERATORS: frozenset[str] = frozenset({"is_empty", "is_not_empty"})
# The original FlowNova's if/else condition names (normalised: lower case, snake_case) -> our operators; the
# if_else type declares them for workflows/importing.py.
CONDITION_NAMES: dict[str, str] = {
    "equals": "==",
    "equal": "==",
    "eq": "==",
    "==": "==",
    "=": "==",
    "not_equals": "!=",
    "not_equal": "!=",
    "neq": "!=",
    "ne": "!=",
    "!=": "!=",
    "greater_than": ">",
    "gt": ">",
    ">": ">",
    "less_than": "<",
    "lt": "<",
    "<": "<",
    "greater_than_or_equal": ">=",
    "greater_than_or_equals": ">=",
    "greater_or_equal": ">=",
    "gte": ">=",
    "ge": ">=",
    ">=": ">=",
    "less_than_or_equal": "<=",
    "less_than_or_equals": "<=",
    "less_or_equal": "<=",
    "lte": "<=",
    "le": "<=",
    "<=": "<=",
    "contains": "contains",
    "not_contains": "not_contains",
    "does_not_contain": "not_contains",
    "is_empty": "is_empty",
    "empty": "is_empty",
    "is_not_empty": "is_not_empty",
    "not_empty": "is_not_empty",
}

# ASCII digits only: str.isdigit-style Unicode digits ("٣") are not what a user means by a number here.
_NUMBER_RE = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_BOOLEAN_WORDS = {"true": True, "false": False}
_ORDERINGS: dict[str, Callable[[Any, Any], bool]] = {">": op.gt, "<": op.lt, ">=": op.ge, "<=": op.le}


class ConditionError(ValueError):
    """The condition can't be evaluated: unknown operator, or values that can't be ordered."""


def evaluate(left: object, operator: str, right: object) -> bool:
    """Apply `operator` to `left` and `right` with the rules in the module docstring."""
    if not isinstance(operator, str) or operator not in OPERATORS:
        raise ConditionError(f"unknown operator {_show(operator)}; use one of: {', '.join(OPERATORS)}")
    if operator in ("==", "="):
        return _equal(left, right)
    if operator == "!=":
        return not _equal(left, right)
    if operator == "contains":
        return _contains(left, right)
    if operator == "not_contains":
        return not _contains(left, right)
    if operator == "is_empty":
        return _is_empty(left)
    if operator == "is_not_empty":
        return not _is_empty(left)
    return _order(left, operator, right)


def _equal(left: object, right: object) -> bool:
    left_number, right_number = _as_number(left), _as_number(right)
    if left_number is not None and right_number is not None:
        return left_number == right_number
    if isinstance(left, bool) or isinstance(right, bool):
        return _as_boolean(left) is not None and _as_boolean(left) == _as_boolean(right)
    if isinstance(left, Mapping) and isinstance(right, Mapping):
        return left.keys() == right.keys() and all(_equal(left[key], right[key]) for key in left)
    if isinstance(left, (list, tuple)) and isinstance(right, (list, tuple)):
        return len(left) == len(right) and all(map(_equal, left, right))
    if json_kind(left) != json_kind(right):
        return False
    return left == right


def _order(left: object, operator: str, right: object) -> bool:
    left_number, right_number = _as_number(left), _as_number(right)
    if left_number is not None and right_number is not None:
        return _ORDERINGS[operator](left_number, right_number)
    if isinstance(left, str) and isinstance(right, str):
        return _ORDERINGS[operator](left, right)
    raise ConditionError(
        f"can't compare {json_kind(left)} {_show(left)} {operator} {json_kind(right)} {_show(right)}: "
        "ordering needs two numbers or two strings"
    )


def _contains(container: object, item: object) -> bool:
    if container is None:
        return False
    if isinstance(container, Mapping):
        return _text(item) in container
    if isinstance(container, (list, tuple)):
        return any(_equal(element, item) for element in container)
    return _text(item) in _text(container)


def _is_empty(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, (list, tuple, Mapping)):
        return len(value) == 0
    return False


def _as_number(value: object) -> Decimal | None:
    """The exact numeric value of a number or numeric string; None for anything else (booleans included)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        # repr() gives the shortest text that round-trips, so 0.1 becomes Decimal("0.1") and equals "0.1".
        return None if math.isnan(value) else Decimal(repr(value))
    if isinstance(value, str):
        text = value.strip()
        if _NUMBER_RE.fullmatch(text) is None:
            return None
        try:
            return Decimal(text)
        except InvalidOperation:  # an exponent too large even for Decimal
            return None
    return None


def _as_boolean(value: object) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return _BOOLEAN_WORDS.get(value.strip().lower())
    return None


def _text(value: object) -> str:
    try:
        return to_text(value)
    except TemplateError as exc:
        raise ConditionError(str(exc)) from exc


def _show(value: object) -> str:
    """A short rendering of a value for error messages."""
    try:
        text = to_text(value) if not isinstance(value, str) else f'"{value}"'
    except TemplateError:
        text = f"<{type(value).__name__}>"
    return text if len(text) <= 60 else text[:57] + "..."
