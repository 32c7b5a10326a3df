"""Every API error is a JSON object with a human-readable `detail` (DRF's exception handler, extended).

- Validation errors keep DRF's shape (field name -> list of messages; a workflow's `graph` -> list of issue
  objects naming the node or edge) and gain a `detail` that names each field at fault.
- Django's RequestDataTooBig (bodies over DATA_UPLOAD_MAX_MEMORY_SIZE, raised when `request.body` is read)
  becomes 413, other SuspiciousOperations 400.
- An unexpected exception is logged with its traceback and answered with a JSON 500 that reveals nothing.

`flownova.api_base` describes these bodies in the OpenAPI schema.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from rest_framework import status
from rest_framework.exceptions import ParseError
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler
from rest_framework.views import set_rollback

from flownova.api_parsers import BodyTooLarge

logger = logging.getLogger("flownova.api")

__all__ = ["api_exception_handler", "error_body"]

_MAX_SUMMARY = 1000


def api_exception_handler(exc: Exception, context: Mapping[str, Any]) -> Response:
    if isinstance(exc, RequestDataTooBig):
        exc = BodyTooLarge()
    elif isinstance(exc, SuspiciousOperation):
        exc = ParseError(f"The request was refused: {exc}")
    response = drf_exception_handler(exc, dict(context))
    if response is None:
        view = context.get("view")
        logger.error("Unhandled error in %s", type(view).__name__ if view else "the API", exc_info=exc)
        set_rollback()
        return Response(
            {"detail": "Internal server error. It has been logged; please report it if it persists."},
            status=status.HTTP_500_INTERNAL_SERVER_ERROR,
        )
    response.data = error_body(response.data)
    return response


def error_body(data: object) -> dict[str, Any]:
    """`data` (what DRF would answer) as an object with a `detail` string."""
    if isinstance(data, Mapping):
        if "detail" in data:
            return dict(data)
        return {"detail": _summary(data), **data}
    if isinstance(data, list):
        return {"detail": _clip("; ".join(_first_message(item) for item in data)), "errors": data}
    return {"detail": str(data)}


def _summary(errors: Mapping[str, Any]) -> str:
    parts = []
    for field, messages in errors.items():
        message = _first_message(messages)
        count = len(messages) if isinstance(messages, list) else 1
        more = f" (and {count - 1} more)" if count > 1 else ""
        parts.append(message + more if field == "non_field_errors" else f"{field}: {message}{more}")
    if list(errors) == ["non_field_errors"]:
        return _clip("; ".join(parts) + ".")
    return _clip("Invalid input: " + "; ".join(parts) + ".")


def _first_message(value: object) -> str:
    while isinstance(value, list) and value:
        value = value[0]
    if isinstance(value, Mapping):
        if "message" in value:
            return str(value["message"]).rstrip(".")
        if value:
            key, inner = next(iter(value.items()))
            return f"{key}: {_first_message(inner)}"
    # DRF's messages end with a period; the summary joins them with semicolons and ends with its own.
    return str(value).rstrip(".")


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_SUMMARY else text[: _MAX_SUMMARY - 1] + "…"
