"""The one JSON reader for what people send: API bodies (flownova.api_parsers) and the JSON typed or uploaded
into page forms.

`json.loads` alone accepts documents PostgreSQL refuses later, which would surface as a 500 once the value is
saved: NUL characters and unpaired surrogates (neither text nor jsonb can store them), `NaN`/`Infinity` and
numbers like `1e400` that become infinite floats (jsonb has no such numbers). It also raises errors that are
not JSONDecodeError for integers longer than Python converts (ValueError) and for deep nesting
(RecursionError). `parse_json` turns every one of these into a JSONInputError that says what is wrong and,
for a value, where (a dotted path like `nodes[0].data.prompt`), so each caller can answer 400 next to its
field.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Mapping
from typing import Any

from django.conf import settings

__all__ = ["DEFAULT_MAX_DEPTH", "JSONInputError", "check_json_value", "parse_json"]

DEFAULT_MAX_DEPTH = 64
# Characters neither PostgreSQL text nor jsonb can store.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


class JSONInputError(ValueError):
    """Why a JSON text was refused.

    `field` is the dotted path to the value at fault ("" for the document as a whole). `parsing` is true when
    the text could not be read as a JSON document at all (a syntax error, `NaN`, nesting beyond what the parser
    follows); `decode_error` is json's own error for a syntax error, with its position."""

    def __init__(
        self, message: str, *, field: str = "", parsing: bool = False, decode_error: json.JSONDecodeError | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.parsing = parsing or decode_error is not None
        self.decode_error = decode_error

    def __str__(self) -> str:
        if self.decode_error is not None:
            return f"not valid JSON: {self.message}"
        return f"{self.field}: {self.message}" if self.field else self.message


class _LongInteger:
    """Stands for an integer with more digits than Python converts (sys.get_int_max_str_digits), so that the
    walk over the document can name where it is; int() would raise without saying."""

    def __init__(self, digits: int) -> None:
        self.digits = digits


def _parse_int(text: str) -> int | _LongInteger:
    limit = sys.get_int_max_str_digits()
    digits = len(text) - text.startswith("-")
    if limit and digits > limit:
        return _LongInteger(digits)
    return int(text)


def _refuse_constant(name: str) -> Any:
    raise JSONInputError(f"{name} is not valid JSON (numbers must be finite)", parsing=True)


def parse_json(text: str | bytes, *, max_depth: int | None = None) -> Any:
    """The document in `text`, or JSONInputError naming what is wrong.

    Bytes are decoded as JSON allows (UTF-8, or UTF-16/32 recognised from the first bytes). Nesting deeper
    than `max_depth` (default: FLOWNOVA_API_MAX_JSON_DEPTH) is refused too."""
    if isinstance(text, bytes):
        encoding = json.detect_encoding(text)
        try:
            text = text.decode(encoding)
        except UnicodeDecodeError as exc:
            raise JSONInputError(
                f"the text is not valid {exc.encoding}: {exc.reason} at byte {exc.start}", parsing=True
            ) from None
    try:
        value = json.loads(text, parse_constant=_refuse_constant, parse_int=_parse_int)
    except RecursionError:
        raise JSONInputError("the document is nested too deeply.", parsing=True) from None
    except json.JSONDecodeError as exc:  # says where: "Expecting ',' delimiter: line 1 column 9 (char 8)"
        raise JSONInputError(str(exc), decode_error=exc) from None
    if max_depth is None:
        max_depth = getattr(settings, "FLOWNOVA_API_MAX_JSON_DEPTH", DEFAULT_MAX_DEPTH)
    check_json_value(value, max_depth=max_depth)
    return value


def check_json_value(value: object, *, max_depth: int) -> None:
    """Raise JSONInputError for the first value in `value` that can't be stored or is nested too deeply.

    Iterative, so a document nested to any depth can't exhaust the stack."""
    stack: list[tuple[object, str, int]] = [(value, "", 1)]
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, str):
            _check_text(item, path)
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise JSONInputError("the number is too large (it would be infinite)", field=_printable(path))
        elif isinstance(item, _LongInteger):
            limit = sys.get_int_max_str_digits()
            message = f"the number has {item.digits} digits; at most {limit} are allowed"
            raise JSONInputError(message, field=_printable(path))
        elif isinstance(item, (Mapping, list)):
            if depth > max_depth:
                raise JSONInputError(f"the JSON is nested more than {max_depth} levels deep", field=_printable(path))
            if isinstance(item, Mapping):
                for key, child in reversed(list(item.items())):
                    child_path = f"{path}.{key}" if path else str(key)
                    _check_text(key, child_path)
                    stack.append((child, child_path, depth + 1))
            else:
                for index in range(len(item) - 1, -1, -1):
                    stack.append((item[index], f"{path}[{index}]", depth + 1))


def _check_text(text: str, path: str) -> None:
    match = _UNSTORABLE.search(text)
    if match is None:
        return
    if match.group() == "\x00":
        raise JSONInputError("text may not contain NUL characters (\\u0000)", field=_printable(path))
    code = f"\\u{ord(match.group()):04x}"
    raise JSONInputError(f"text may not contain an unpaired surrogate ({code})", field=_printable(path))


def _printable(path: str) -> str:
    # The path itself may be made of a key with the bad character; show it escaped, never raw.
    return _UNSTORABLE.sub(lambda match: f"\\u{ord(match.group()):04x}", path)
