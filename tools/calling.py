"""Calling a tool.

`tool_call` is what a `tool` node, an agent and the admin's or API's test call use. It validates the arguments
against the tool's JSON Schema before anything leaves, builds the request (path, query, body and header
placement), adds the decrypted secret headers, sends it through `tools.egress`, and returns one dict: the keys
of a ToolCall record (`RECORD_KEYS`, what NodeResult.tool_calls carries) plus `result` (the parsed answer),
`ok`, `error_kind` and `transient`. It never raises for a failed call: the failure is in `error`. Given a
`record` function (the engine passes `tool_call_start`), the call is recorded as started right before its request
goes out, and the record carries that row's id (`call_id`) for whoever completes it.

What the record keeps of an answer can always be stored: NUL characters and unpaired UTF-16 surrogates (which
PostgreSQL's text and jsonb columns refuse) are replaced with U+FFFD in the parsed result, the recorded response
and the arguments, and the record's `note` says so.

Secret header values never leave this module in clear: they are replaced by "[redacted]" in everything
returned, recorded or logged (the recorded answer and parsed result too, in case a server echoes them).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from django.conf import settings
from django.db import DatabaseError
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from tools import egress
from tools.definitions import (
    PATH_PARAM_RE,
    argument_header_reserved,
    header_key,
    header_value_problem,
    reserved_parameter_message,
)
from tools.models import Tool
from tools.recording import CallRecorder, tool_call_finish, tool_call_record, tool_call_start
from tools.redaction import UNSTORABLE_HINT_RE, Redactor, Storable
from tools.secrets import SecretsError, secrets_decrypt

logger = logging.getLogger(__name__)

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
MAX_ERRORS_SHOWN = 20


class ToolCallError(Exception):
    """A call that cannot even be attempted (the tool is disabled). Failures of an attempted call are not
    raised: `tool_call` reports them in its result's `error`."""


class _ArgumentError(Exception):
    """The request cannot be built from these arguments (or this definition); nothing is sent."""

    def __init__(self, message: str, *, kind: str = "arguments") -> None:
        super().__init__(message)
        self.kind = kind


class _NotRecorded(Exception):
    """The call could not be recorded as started, so it is not sent."""


def tool_argument_errors(*, tool: Tool, arguments: Any) -> list[str]:
    """Every way `arguments` break the tool's parameter schema, each naming the argument at fault."""
    if not isinstance(arguments, dict):
        return [f"arguments must be a JSON object, not {type(arguments).__name__}"]
    try:
        validator = Draft202012Validator(tool.parameters or {"type": "object"})
        found = sorted(validator.iter_errors(arguments), key=lambda error: list(map(str, error.absolute_path)))
    except SchemaError as exc:  # a definition saved before validation existed
        return [f"the tool's parameter schema is invalid: {exc.message}"]
    messages = []
    for error in found[:MAX_ERRORS_SHOWN]:
        where = ".".join(map(str, error.absolute_path))
        messages.append(f"{where}: {error.message}" if where else error.message)
    if len(found) > MAX_ERRORS_SHOWN:
        messages.append(f"... and {len(found) - MAX_ERRORS_SHOWN} more")
    return messages


def tool_call(
    *,
    tool: Tool,
    arguments: Any,
    run_id: int | None = None,
    node_id: str = "",
    call_index: int = 0,
    timeout: float | None = None,
    record: CallRecorder | None = None,
) -> dict[str, Any]:
    """Call `tool` with `arguments` (see the module docstring for what is returned). Arguments that break the
    schema are reported in `error` and no request is made. `run_id`/`node_id`/`call_index` derive the
    Idempotency-Key; `timeout` overrides the read timeout. `record(run_id=, node_id=, call=)`, when given, is called
    right before the request is sent and returns the id of the row it wrote (`call_id` in the result); a call it
    cannot record is not sent (a transient error). Raises ToolCallError for a disabled tool."""
    if not tool.is_active:
        raise ToolCallError(f"tool {tool.name!r} is disabled")
    call: dict[str, Any] = {
        "tool": tool.name,
        "tool_id": tool.pk,
        "method": tool.method,
        "url": tool.url,
        "arguments": arguments,
        "status_code": None,
        "duration_ms": None,
        "response": "",
        "error": "",
        "note": "",
        "call_id": None,
        "result": None,
        "ok": False,
        "error_kind": "",
        "transient": False,
    }
    started = time.monotonic()
    redactor = Redactor(())
    storable = Storable()
    try:
        errors = tool_argument_errors(tool=tool, arguments=arguments)
        if errors:
            raise _ArgumentError(f"invalid arguments for tool {tool.name!r}: " + "; ".join(errors))
        secrets = secrets_decrypt(tool.secret_headers_encrypted, tool_name=tool.name)
        redactor = Redactor(secrets.values())
        url, params, headers, body = _build_request(tool, arguments)
        headers = _with_secrets(headers, secrets)
        _check_header_values(tool, headers)
        call["url"] = url
        if record is not None:
            call["call_id"] = _record_start(record, call, redactor, storable, run_id=run_id, node_id=node_id)
        response = egress.egress_request(
            method=tool.method,
            url=url,
            params=params,
            headers=headers,
            json_body=body,
            sensitive_headers=secrets.keys(),
            idempotency_key=egress.egress_idempotency_key(run_id=run_id, node_id=node_id, call_index=call_index)
            if run_id is not None
            else None,
            timeout=timeout or tool.timeout_seconds,
        )
    except _ArgumentError as exc:
        call.update(error=str(exc), error_kind=exc.kind)
    except _NotRecorded as exc:
        call.update(error=str(exc), error_kind="record", transient=True)
    except SecretsError as exc:
        call.update(error=str(exc), error_kind="secrets")
    except egress.EgressError as exc:
        call.update(error=f"tool {tool.name!r}: {exc}", error_kind=exc.kind, transient=exc.transient)
    else:
        text = response.text
        # Redacted before truncating: a cut through a secret would leave a prefix the redactor cannot see.
        call.update(
            status_code=response.status_code,
            response=_truncate(redactor.text(text)),
            result=_parse(response, text),
            ok=response.ok,
        )
        if not response.ok:
            call.update(
                error=f"tool {tool.name!r}: HTTP {response.status_code} {response.reason}".rstrip(),
                error_kind="http",
                transient=response.status_code in egress.RETRY_STATUSES,
            )
        if isinstance(call["result"], str) or UNSTORABLE_HINT_RE.search(response.content):
            call["result"] = storable.value(call["result"])
    call["duration_ms"] = round((time.monotonic() - started) * 1000)
    for key in ("url", "arguments", "response", "error", "result"):
        call[key] = redactor.value(call[key])
    for key in ("arguments", "response", "error"):
        call[key] = storable.value(call[key])
    call["note"] = storable.note
    if call["error"]:
        logger.warning("tool %s (id %s) failed: %s", tool.name, tool.pk, call["error"])
    return call


def _record_start(
    record: CallRecorder,
    call: dict[str, Any],
    redactor: Redactor,
    storable: Storable,
    *,
    run_id: int | None,
    node_id: str,
) -> int:
    shown = {
        **call,
        "url": redactor.value(call["url"]),
        "arguments": storable.value(redactor.value(call["arguments"])),
    }
    try:
        return record(run_id=run_id, node_id=node_id, call=tool_call_record(shown))
    except DatabaseError as exc:
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise _NotRecorded(
            f"tool {call['tool']!r}: the call could not be recorded before sending it, so it was not sent ({reason})"
        ) from exc


def tool_test_call(*, tool: Tool, arguments: Any) -> dict[str, Any]:
    """A call made by hand (the admin action, the API's test endpoint), recorded as a ToolCall without a run."""
    call = tool_call(tool=tool, arguments=arguments, record=tool_call_start)
    tool_call_finish(call=tool_call_record(call))
    return call


def _build_request(
    tool: Tool, arguments: dict[str, Any]
) -> tuple[str, list[tuple[str, str]], dict[str, str], dict[str, Any] | None]:
    """URL (path parameters substituted), query pairs, headers and JSON body (or None) for one call."""
    properties = (tool.parameters or {}).get("properties") or {}
    in_url = set(PATH_PARAM_RE.findall(tool.url))
    default = "body" if tool.method in BODY_METHODS else "query"
    path_values: dict[str, str] = {}
    params: list[tuple[str, str]] = []
    headers: dict[str, str] = {str(key): str(value) for key, value in (tool.headers or {}).items()}
    body: dict[str, Any] = {}
    for name, value in arguments.items():
        schema = properties.get(name)
        location = schema.get("x-in") if isinstance(schema, dict) else None
        location = location or ("path" if name in in_url else default)
        if location == "path":
            if value is None or isinstance(value, dict | list):
                raise _ArgumentError(f"path parameter {name!r} must be a string, number or boolean")
            path_values[name] = quote(_scalar_text(value), safe="")
        elif location == "query":
            params.extend(_query_pairs(name, value))
        elif location == "header":
            if argument_header_reserved(name):  # a definition saved before the check existed
                raise _ArgumentError(f"tool {tool.name!r}: {reserved_parameter_message(name)}", kind="definition")
            _set_header(headers, name, value if isinstance(value, str) else _scalar_text(value))
        else:
            body[name] = value
    missing = sorted(in_url - set(path_values))
    if missing:
        raise _ArgumentError(f"invalid arguments for tool {tool.name!r}: no value for the path parameter(s) {missing}")
    url = PATH_PARAM_RE.sub(lambda match: path_values[match.group(1)], tool.url)
    return url, params, headers, (body if body else None)


def _set_header(headers: dict[str, str], name: str, value: str) -> None:
    """Set `name`, replacing any header a server would take for the same one (see `_header_key`)."""
    key = header_key(name)
    for existing in [existing for existing in headers if header_key(existing) == key]:
        del headers[existing]
    headers[name] = value


def _with_secrets(headers: dict[str, str], secrets: Mapping[str, str]) -> dict[str, str]:
    """The request's headers with the secret ones, which replace any header of the same name: an argument can
    neither double a secret header nor stand in for it."""
    merged = dict(headers)
    for name, value in secrets.items():
        _set_header(merged, name, value)
    return merged


def _check_header_values(tool: Tool, headers: Mapping[str, str]) -> None:
    """Refuse to send a header value that could split the request or be read differently on the way (checked at
    save for the definition's own headers; arguments, and definitions saved before that, get here)."""
    for name, value in headers.items():
        problem = header_value_problem(value)
        if problem:
            raise _ArgumentError(
                f"tool {tool.name!r}: the value of header {name!r} {problem}; the request was not sent", kind="headers"
            )


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _query_pairs(name: str, value: Any) -> list[tuple[str, str]]:
    if value is None:
        return []
    if isinstance(value, list):
        return [(name, _scalar_text(item)) for item in value if item is not None]
    return [(name, _scalar_text(value))]


def _parse(response: egress.EgressResponse, text: str) -> Any:
    """The parsed JSON body when the server says it is JSON (or says nothing and it parses), else the text."""
    declared = response.headers.get("content-type")
    if response.is_json or (not declared and text.lstrip()[:1] in ("{", "[")):
        try:
            return json.loads(response.content)
        except ValueError:
            return text
    return text


def _truncate(text: str) -> str:
    limit = int(settings.FLOWNOVA_TOOL_RESPONSE_RECORD_CHARS)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... [truncated: {len(text)} characters in all]"
