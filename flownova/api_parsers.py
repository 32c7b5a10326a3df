"""The API's only body parser: JSON, refused with a clear 4xx before anything can reach the database.

DRF's own JSONParser reads the request as a stream, so Django's DATA_UPLOAD_MAX_MEMORY_SIZE (checked only by
`request.body`) never applies to it; and it accepts values PostgreSQL refuses later with a 500 (NUL
characters and unpaired surrogates in text and jsonb, `Infinity` from `1e400`). This parser enforces the size
limit itself (413) and reads the body with flownova.jsonbody.parse_json, the reader the page forms use too:
a document that can't be read is a 400 naming the parse error, and a value that can't be stored (NUL
characters, unpaired surrogates, non-finite numbers, integers too long to convert, nesting deeper than
FLOWNOVA_API_MAX_JSON_DEPTH) a 400 naming the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.conf import settings
from rest_framework import status
from rest_framework.exceptions import APIException, ParseError
from rest_framework.parsers import JSONParser

from flownova.jsonbody import JSONInputError, parse_json

__all__ = ["BodyTooLarge", "InvalidBody", "SafeJSONParser"]


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
            return parse_json(text)
        except JSONInputError as exc:
            if exc.parsing:
                raise ParseError(f"JSON parse error: {exc.message}") from None
            raise InvalidBody(exc.message, exc.field) from None
