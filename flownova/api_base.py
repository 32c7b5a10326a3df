"""Pieces every API view shares: pagination, strict serializers, the token throttle, and the OpenAPI error
responses. (The run-start rate limit is the runs app's, `runs.ratelimit`: every way of starting a run counts.)"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from django.conf import settings
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle
from rest_framework.views import APIView

__all__ = [
    "Pagination",
    "StrictFieldsMixin",
    "TokenObtainThrottle",
    "add_error_responses",
    "error_response",
    "query_dict",
]


class Pagination(PageNumberPagination):
    """DRF's `{count, next, previous, results}`, with `?page_size=` from 1 to 200 (default PAGE_SIZE).

    Stricter than DRF's: a `page` or `page_size` that isn't a whole number in range (including an empty one)
    is a 400 naming it, where DRF would quietly fall back to a default; a page past the end stays a 404."""

    page_size_query_param = "page_size"
    max_page_size = 200

    def get_page_number(self, request: Request, paginator: Any) -> Any:
        raw = request.query_params.get(self.page_query_param)
        if raw is None:
            return 1
        if raw in self.last_page_strings:
            return paginator.num_pages
        return _whole_number(self.page_query_param, raw, maximum=None)

    def get_page_size(self, request: Request) -> int | None:
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        return _whole_number(self.page_size_query_param, raw, maximum=self.max_page_size)

    def get_schema_operation_parameters(self, view: APIView) -> list[dict[str, Any]]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            parameter["schema"]["minimum"] = 1
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"]["maximum"] = self.max_page_size
        return parameters


def _whole_number(name: str, raw: str, *, maximum: int | None) -> int:
    if _WHOLE_NUMBER.fullmatch(raw) and int(raw) >= 1 and (maximum is None or int(raw) <= maximum):
        return int(raw)
    limit = f" from 1 to {maximum}" if maximum is not None else " from 1"
    raise serializers.ValidationError({name: [f"Must be a whole number{limit}."]})


_WHOLE_NUMBER = re.compile(r"[0-9]{1,9}")


def query_dict(request: Request) -> dict[str, str]:
    """The query parameters as a plain dict, for a serializer to validate. (Given the QueryDict itself, DRF
    reads it as an HTML form and takes an empty value for a missing one: `?status=` would mean no filter.)"""
    return request.query_params.dict()


# To a type checker, the serializer the mixin is put before in a class's bases; at run time, a plain mixin.
if TYPE_CHECKING:
    _Serializer = serializers.Serializer[Any]
else:
    _Serializer = object


class StrictFieldsMixin(_Serializer):
    """Refuse a body that sets read-only fields (`owner`, `status`, `version`...) or fields the serializer
    doesn't know, naming each one: a silently ignored typo or privilege grab is worse than a 400."""

    def to_internal_value(self, data: Any) -> Any:
        unexpected = self.unexpected_fields(data)
        try:
            value = super().to_internal_value(data)
        except serializers.ValidationError as exc:
            if unexpected and isinstance(exc.detail, dict):
                raise serializers.ValidationError({**exc.detail, **unexpected}) from None
            raise
        if unexpected:
            raise serializers.ValidationError(unexpected)
        return value

    def unexpected_fields(self, data: Any) -> dict[str, list[str]]:
        if not isinstance(data, Mapping):
            return {}
        fields = self.fields
        errors = {}
        for name in data:
            if name not in fields:
                errors[str(name)] = ["Unknown field."]
            elif fields[name].read_only:
                errors[str(name)] = ["This field is read-only; it can't be set."]
        return errors


class TokenObtainThrottle(SimpleRateThrottle):
    """Token requests per client address: slows password guessing."""

    scope = "auth_token"

    def get_rate(self) -> str | None:
        return settings.FLOWNOVA_AUTH_TOKEN_RATE or None

    def get_cache_key(self, request: Request, view: APIView) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


# --- OpenAPI ------------------------------------------------------------------------------------------------

_ERROR = {
    "type": "object",
    "description": "Any error: `detail` says what is wrong; some errors carry more keys.",
    "properties": {"detail": {"type": "string"}},
    "required": ["detail"],
}
_VALIDATION_ERROR = {
    "type": "object",
    "description": "Invalid input: `detail` names every field at fault; each field maps to a list of messages "
    "(`non_field_errors` for the object as a whole). A body refused as a whole (NUL character, nesting too deep) "
    "names the place in `field`.",
    "properties": {
        "detail": {"type": "string"},
        "field": {"type": "string"},
        "non_field_errors": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["detail"],
}


def error_response(description: str, *, validation: bool = False) -> OpenApiResponse:
    """An error answer for `extend_schema(responses=...)`."""
    ref = "ValidationError" if validation else "Error"
    return OpenApiResponse(response={"$ref": f"#/components/schemas/{ref}"}, description=description)


_COMMON = {
    "401": "Not authenticated: send `Authorization: Token <key>` (or the session cookie with the CSRF token).",
    "404": "Not found: there is no such object, or it is not yours.",
    "400": "Invalid input; `detail` names what is wrong.",
    "413": "The body is larger than the limit (FLOWNOVA_MAX_BODY_BYTES).",
    "415": "The body is not `application/json`.",
    "403": "A session-authenticated write without a valid CSRF token (`X-CSRFToken`).",
}
_WRITE_METHODS = {"post", "put", "patch"}


def add_error_responses(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: document the errors every operation can answer, so that views
    only list their own (403, 409, 429...)."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault("Error", _ERROR)
    schemas.setdefault("ValidationError", _VALIDATION_ERROR)
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            if method not in {"get", "post", "put", "patch", "delete"}:
                continue
            codes = []
            security = operation.get("security") or []
            if security and {} not in security:  # {} in the list: anonymous access is allowed
                codes.append("401")
            params = operation.get("parameters", [])
            if "{" in path or any(p.get("name") == "page" for p in params):
                codes.append("404")  # an unknown id, or a page past the end
            if method in _WRITE_METHODS or any(p.get("in") == "query" for p in params):
                codes.append("400")
            if method in _WRITE_METHODS:
                codes += ["413", "415"]
            if method in _WRITE_METHODS | {"delete"} and any("cookieAuth" in option for option in security):
                codes.append("403")
            responses = operation.setdefault("responses", {})
            for code in codes:
                ref = "ValidationError" if code == "400" else "Error"
                description = _COMMON[code] if code != "404" or "{" in path else "No such page."
                responses.setdefault(
                    code,
                    {
                        "description": description,
                        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}},
                    },
                )
    return result
