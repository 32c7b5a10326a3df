"""The API's only body parser: JSON, refused with a clear 4xx before anything can reach the database.

DRF's own JSONParser reads the request as a stream, so Django's DATA_UPLOAD_MAX_MEMORY_SIZE (checked only by
`request.body`) never applies to it; and it accepts values PostgreSQL refuses later with a 500 (NUL
characters and unpaired surrogates in text and jsonb, `Infinity` from `1e400`). This parser enforces the size
limit itself (413), names the JSON syntax error (400), and walks the parsed document once to refuse, naming
the field: NUL characters, unpaired surrogates, non-finite numbers and nesting deeper than
FLOWNOVA_API_MAX_JSON_DEPTH.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from rest_framework import status
from rest_framework.exceptions import APIException, ParseError
from rest_framework.parsers import JSONParser

__all__ = ["BodyTooLarge", "InvalidBody", "SafeJSONParser", "check_json_value"]

DEFAULT_MAX_DEPTH = 64
# Characters neither PostgreSQL text nor jsonb can store.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


class BodyTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "body_too_large"

    def __init__(self, limit: int | None = None) -> None:
        limit = limit if limit is not None else settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        super().__init__(f"The request body is larger than the limit of {limit} bytes.")
        self.limit = limit


class InvalidBody(ParseError):
    """A body that parsed but holds something we refuse to store; `field` is where, as a dotted path."""

    default_code = "invalid_body"

    def __init__(self, message: str, field: str) -> None:
        where = field or "the body"
        super().__init__({"detail": f"{where}: {message}", "field": field})


def check_json_value(value: object, *, max_depth: int) -> None:
    """Raise InvalidBody for the first value in `value` that can't be stored or is nested too deeply.

    Iterative, so a document nested to any depth can't exhaust the stack."""
    stack: list[tuple[object, str, int]] = [(value, "", 1)]
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, str):
            _check_text(item, path)
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise InvalidBody("the number is too large (it would be infinite)", path)
        elif isinstance(item, (Mapping, list)):
            if depth > max_depth:
                raise InvalidBody(f"the JSON is nested more than {max_depth} levels deep", path)
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
        raise InvalidBody("text may not contain NUL characters (\\u0000)", _printable(path))
    code = f"\\u{ord(match.group()):04x}"
    raise InvalidBody(f"text may not contain an unpaired surrogate ({code})", _printable(path))


def _printable(path: str) -> str:
    # The path itself may be made of a key with the bad character; show it escaped, never raw.
    return _UNSTORABLE.sub(lambda match: f"\\u{ord(match.group()):04x}", path)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON (numbers must be finite)")


class SafeJSONParser(JSONParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: Mapping[str, Any] | None = None) -> Any:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        request = (parser_context or {}).get("request")
        if request is not None and limit is not None:
            meta = request.META
            try:
                declared = int(meta.get("CONTENT_LENGTH") or 0)
            except (TypeError, ValueError):
                declared = 0
            if declared > limit:
                raise BodyTooLarge(limit)
        # Read one byte more than allowed: a body without a (truthful) Content-Length is caught here.
        raw = stream.read(limit + 1) if limit is not None else stream.read()
        if limit is not None and len(raw) > limit:
            raise BodyTooLarge(limit)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ParseError(f"The body is not valid UTF-8: {exc.reason} at byte {exc.start}.") from None
        try:
            data = json.loads(text, parse_constant=_refuse_constant)
        except RecursionError:
            raise ParseError("JSON parse error: the document is nested too deeply.") from None
        except ValueError as exc:  # JSONDecodeError says where: "Expecting ',' delimiter: line 1 column 9"
            raise ParseError(f"JSON parse error: {exc}") from None
        check_json_value(data, max_depth=getattr(settings, "FLOWNOVA_API_MAX_JSON_DEPTH", DEFAULT_MAX_DEPTH))
        return data
