"""JSONata expressions (jsonata-python): checking one's syntax, and evaluating one within a time limit and a
depth bound. Pure: no Django; the callers pass the limits and name their settings in messages.

The library bounds an evaluation itself (a `Timebox` on the expression's frame, checked each time an
expression node is entered or left): past the time limit it raises D1012, past the depth bound D1011. The
clock starts when the expression is compiled, so each evaluation compiles it afresh. It raises Python's
recursion limit to 10000 when imported; the depth bound keeps an evaluation far below it, and a
RecursionError is reported as a depth overflow all the same.
"""

from __future__ import annotations

import json
from typing import Any

from jsonata import JException, Jsonata  # type: ignore[import-untyped]

TIMEOUT_SETTING = "FLOWNOVA_TRANSFORM_TIMEOUT_MS"
DEPTH_SETTING = "FLOWNOVA_TRANSFORM_MAX_DEPTH"


class ExpressionError(Exception):
    """An expression that does not parse or does not evaluate. `code` is JSONata's (S0203, T2002...) or ours
    (`timeout`, `depth`, `not_json`, `not_object`); `position` is the character offset the library points at,
    if it points at one."""

    def __init__(self, message: str, code: str = "", position: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.position = position


def _where(expression: str, position: int | None) -> str:
    if position is None:
        return ""
    before = expression[:position]
    line = before.count("\n") + 1
    column = position - (before.rfind("\n") + 1) + 1
    return f" at position {position} (line {line}, column {column})"


def _error(expression: str, exc: JException) -> ExpressionError:
    position = exc.location if isinstance(exc.location, int) and exc.location >= 0 else None
    message = str(exc).strip()
    return ExpressionError(f"JSONata {exc.error}: {message}{_where(expression, position)}", exc.error, position)


def syntax_error(expression: str) -> ExpressionError | None:
    """The expression's syntax error, or None when it parses."""
    try:
        Jsonata(expression)
    except JException as exc:
        return _error(expression, exc)
    except RecursionError:
        return ExpressionError("the expression is nested too deeply to parse", "depth")
    return None


def evaluate(expression: str, data: Any, *, timeout_ms: int, max_depth: int) -> Any:
    """The expression's value over `data` as plain JSON (None for JSONata's undefined and null). Raises
    ExpressionError for a syntax or evaluation error, a limit passed, or a value JSON cannot hold (a function)."""
    try:
        value = Jsonata(expression, timeout=timeout_ms, stack=max_depth).evaluate(data)
    except JException as exc:
        if exc.error == "D1012":
            raise ExpressionError(
                f"the expression ran longer than the limit of {timeout_ms} ms ({TIMEOUT_SETTING})", "timeout"
            ) from None
        if exc.error == "D1011":
            raise ExpressionError(
                f"the expression nested deeper than the limit of {max_depth} levels ({DEPTH_SETTING})", "depth"
            ) from None
        raise _error(expression, exc) from None
    except RecursionError:
        raise ExpressionError(
            f"the expression nested too deeply for the limit of {max_depth} levels ({DEPTH_SETTING})", "depth"
        ) from None
    try:
        # Plain dicts and lists (the library's sequences are list subclasses), and nothing JSON cannot hold.
        plain: Any = json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError):
        raise ExpressionError("the expression's value holds something JSON cannot (a function?)", "not_json") from None
    return plain


def describe(value: Any) -> str:
    """What a value that is not an object is, for a message: "a number (3)", "a list of 2 items", "undefined"."""
    if value is None:
        return "undefined or null"
    if isinstance(value, bool):
        return f"a boolean ({json.dumps(value)})"
    if isinstance(value, int | float):
        return f"a number ({json.dumps(value)})"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:40] + "…"
        return f"a string ({json.dumps(shown, ensure_ascii=False)})"
    if isinstance(value, list):
        return f"a list of {len(value)} item{'' if len(value) == 1 else 's'}"
    return type(value).__name__


def evaluate_object(expression: str, data: Any, *, timeout_ms: int, max_depth: int) -> dict[str, Any]:
    """Like `evaluate`, for an expression whose value must be a JSON object."""
    value = evaluate(expression, data, timeout_ms=timeout_ms, max_depth=max_depth)
    if not isinstance(value, dict):
        raise ExpressionError(f"the expression's value must be a JSON object, not {describe(value)}", "not_object")
    return value
