"""Tools: defining them (with their secret headers) and calling them.

`tool_call` is what a `tool` node, an agent and the admin's or API's test call use. It validates the arguments
against the tool's JSON Schema before anything leaves, builds the request (path, query, body and header
placement), adds the decrypted secret headers, sends it through `tools.egress`, and returns one dict: the keys
of a ToolCall record (`RECORD_KEYS`, what NodeResult.tool_calls carries) plus `result` (the parsed answer),
`ok`, `error_kind` and `transient`. It never raises for a failed call: the failure is in `error`.

Secret header values never leave this module in clear: they are replaced by "[redacted]" in everything
returned, recorded or logged (the recorded answer and parsed result too, in case a server echoes them).
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote

import httpx
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from tools import egress
from tools.models import TOOL_NAME_VALIDATOR, HttpMethod, Tool, ToolCall
from tools.secrets import SecretsError, secrets_decrypt, secrets_encrypt, secrets_header_names, secrets_rotate

logger = logging.getLogger(__name__)

RECORD_KEYS = ("tool", "tool_id", "method", "url", "arguments", "status_code", "duration_ms", "response", "error")
REDACTED = "[redacted]"
LOCATIONS = ("query", "body", "path", "header")
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
PATH_PARAM_RE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
# RFC 9110 token characters: what a header name may be made of.
HEADER_NAME_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,100}")
# Headers the HTTP client owns: a tool setting them would break framing or the address check's assumptions.
RESERVED_HEADERS = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", "upgrade", "te", "trailer", "keep-alive"}
)
MAX_ERRORS_SHOWN = 20


class ToolCallError(Exception):
    """A call that cannot even be attempted (the tool is disabled). Failures of an attempted call are not
    raised: `tool_call` reports them in its result's `error`."""


class ToolDefinitionError(ValueError):
    """A tool definition that cannot be saved; `errors` maps each field to what is wrong with it."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("; ".join(f"{name}: {' '.join(messages)}" for name, messages in errors.items()))
        self.errors = errors


# --- definitions ------------------------------------------------------------------------------------------------


def tool_validate_definition(
    *,
    name: Any,
    method: Any,
    url: Any,
    parameters: Any,
    headers: Any = None,
    secret_headers: Any = None,
    timeout_seconds: Any = None,
) -> dict[str, list[str]]:
    """Every problem with a tool definition, by field ({} when it is valid). Checks: the name is an identifier;
    the method is one of GET, POST, PUT, PATCH, DELETE; the URL is http(s) with a literal host, no credentials
    and `{param}` placeholders (in its path or query only) that `parameters` declares; `parameters` is a valid
    JSON Schema (Draft 2020-12) of type object whose `x-in` keywords are query, body, path or header; headers
    and secret headers are objects of strings with valid, non-reserved names, and no name is in both."""
    errors: dict[str, list[str]] = {}

    def add(field: str, message: str) -> None:
        errors.setdefault(field, []).append(message)

    if not isinstance(name, str) or not TOOL_NAME_VALIDATOR.regex.fullmatch(name):
        add("name", str(TOOL_NAME_VALIDATOR.message))
    if method not in HttpMethod.values:
        add("method", f"{method!r} is not one of {', '.join(HttpMethod.values)}")
    properties = _check_parameters(parameters, add)
    for message in _url_problems(url, properties):
        add("url", message)
    plain = _check_headers("headers", headers, add)
    secret = _check_headers("secret_headers", secret_headers, add)
    both = sorted({key.lower() for key in plain} & {key.lower() for key in secret})
    if both:
        add("secret_headers", f"{', '.join(both)} cannot be both a plain and a secret header")
    if timeout_seconds is not None and (
        isinstance(timeout_seconds, bool)
        or not isinstance(timeout_seconds, int | float)
        or not 0 < timeout_seconds <= 600
    ):
        add("timeout_seconds", "must be a number of seconds above 0 and at most 600")
    return errors


def _check_parameters(parameters: Any, add: Any) -> dict[str, Any] | None:
    if not isinstance(parameters, dict):
        add("parameters", "must be a JSON Schema object")
        return None
    try:
        Draft202012Validator.check_schema(parameters)
    except SchemaError as exc:
        where = "/".join(map(str, exc.absolute_path))
        add("parameters", f"not a valid JSON Schema{f' at {where}' if where else ''}: {exc.message}")
        return None
    if parameters.get("type") != "object":
        add("parameters", 'must be a schema of "type": "object" (the arguments are an object)')
    properties = parameters.get("properties", {})
    if not isinstance(properties, dict):
        return None
    for key, schema in properties.items():
        if not TOOL_NAME_VALIDATOR.regex.fullmatch(key):
            add("parameters", f"parameter name {key!r} is not an identifier (letters, digits and _)")
        location = schema.get("x-in") if isinstance(schema, dict) else None
        if location is not None and location not in LOCATIONS:
            add("parameters", f'parameter {key!r}: "x-in" must be one of {", ".join(LOCATIONS)}, not {location!r}')
    return properties


def _url_problems(url: Any, properties: dict[str, Any] | None) -> list[str]:
    if not isinstance(url, str) or not url.strip():
        return ["a URL is required"]
    if len(url) > 2048:
        return ["at most 2048 characters"]
    names = PATH_PARAM_RE.findall(url)
    # Each placeholder becomes a harmless literal so that the rest of the URL can be parsed as it is.
    stripped = PATH_PARAM_RE.sub("p", url)
    problems = []
    if "{" in stripped or "}" in stripped:
        problems.append("braces must enclose a parameter name, as in /items/{item_id}")
    authority = url.split("://", 1)[-1].split("/", 1)[0].split("?", 1)[0]
    if PATH_PARAM_RE.search(authority):
        # Arguments must not choose where a request goes.
        return [*problems, "parameters may appear in the path and query only, not in the host or port"]
    try:
        parsed = httpx.URL(stripped)
    except httpx.InvalidURL as exc:
        return [*problems, f"not a valid URL: {exc}"]
    if parsed.scheme not in egress.ALLOWED_SCHEMES:
        problems.append("must start with http:// or https://")
    if not parsed.host:
        problems.append("has no host")
    if parsed.userinfo:
        problems.append("must not hold credentials; put them in a secret header")
    if parsed.fragment:
        problems.append("must not have a #fragment")
    declared = properties if properties is not None else {}
    for name in dict.fromkeys(names):
        if properties is not None and name not in declared:
            problems.append(f"{{{name}}} is not a parameter: add it to the parameters' properties")
        elif isinstance(declared.get(name), dict) and declared[name].get("x-in", "path") != "path":
            problems.append(f'{{{name}}} is in the URL but its "x-in" says {declared[name]["x-in"]!r}')
    for key, schema in declared.items():
        if isinstance(schema, dict) and schema.get("x-in") == "path" and key not in names:
            problems.append(f'parameter {key!r} has "x-in": "path" but the URL has no {{{key}}}')
    return problems


def _check_headers(field: str, headers: Any, add: Any) -> dict[str, str]:
    if headers is None:
        return {}
    if not isinstance(headers, dict):
        add(field, "must be an object of header names to string values")
        return {}
    for key, value in headers.items():
        if not isinstance(key, str) or not HEADER_NAME_RE.fullmatch(key):
            add(field, f"{str(key)[:100]!r} is not a valid header name")
        elif key.lower() in RESERVED_HEADERS:
            add(field, f"{key} is set by the HTTP client and cannot be configured")
        if not isinstance(value, str):
            add(field, f"the value of {str(key)[:100]} must be a string")
        elif "\r" in value or "\n" in value or "\0" in value:
            # The value is never shown: for secret headers it is the secret.
            add(field, f"the value of {str(key)[:100]} must not contain line breaks")
    return {key: value for key, value in headers.items() if isinstance(key, str)}


def tool_create(
    *,
    owner: AbstractBaseUser,
    name: str,
    url: str,
    description: str = "",
    method: str = HttpMethod.GET,
    headers: dict[str, str] | None = None,
    parameters: dict[str, Any] | None = None,
    secret_headers: dict[str, str] | None = None,
    timeout_seconds: float | None = None,
    is_active: bool = True,
) -> Tool:
    """Create a tool for `owner`. Raises ToolDefinitionError (nothing saved) when the definition is invalid or
    the owner already has a tool of that name."""
    tool = Tool(
        owner=owner,
        name=name,
        description=description,
        method=method,
        url=url,
        headers=headers or {},
        parameters=parameters if parameters is not None else {"type": "object", "properties": {}},
        timeout_seconds=timeout_seconds,
        is_active=is_active,
    )
    return _tool_save(tool, secret_headers=secret_headers or {})


def tool_update(*, tool: Tool, fields: Mapping[str, Any], secret_headers: dict[str, str] | None = None) -> Tool:
    """Change the given definition `fields` of `tool`. `secret_headers`: None keeps the stored ones, a dict
    replaces them all ({} removes them). Raises ToolDefinitionError, with nothing saved, when invalid."""
    editable = {"name", "description", "method", "url", "headers", "parameters", "timeout_seconds", "is_active"}
    unknown = set(fields) - editable
    if unknown:
        raise ToolDefinitionError({name: ["cannot be changed"] for name in sorted(unknown)})
    for key, value in fields.items():
        setattr(tool, key, value)
    return _tool_save(tool, secret_headers=secret_headers)


def _tool_save(tool: Tool, *, secret_headers: dict[str, str] | None) -> Tool:
    errors = tool_validate_definition(
        name=tool.name,
        method=tool.method,
        url=tool.url,
        parameters=tool.parameters,
        headers=tool.headers,
        secret_headers=secret_headers,
        timeout_seconds=tool.timeout_seconds,
    )
    if not errors and secret_headers is None and tool.secret_headers_encrypted:
        try:
            stored = secrets_decrypt(tool.secret_headers_encrypted, tool_name=tool.name)
        except SecretsError:
            stored = {}  # unreadable secrets stay as they are until replaced; calls report it
        both = sorted({key.lower() for key in tool.headers} & {key.lower() for key in stored})
        if both:
            errors["headers"] = [f"{', '.join(both)} is already a secret header of this tool"]
    if not errors and Tool.objects.filter(owner_id=tool.owner_id, name=tool.name).exclude(pk=tool.pk).exists():
        errors["name"] = [f"you already have a tool named {tool.name!r}"]
    if errors:
        raise ToolDefinitionError(errors)
    if secret_headers is not None:
        tool.secret_headers_encrypted = secrets_encrypt(secret_headers)
    try:
        with transaction.atomic():
            tool.save()
    except IntegrityError:
        # Two saves racing for the same name: the unique constraint decides.
        raise ToolDefinitionError({"name": [f"you already have a tool named {tool.name!r}"]}) from None
    return tool


def tool_rotate_secrets(*, tool_id: int) -> bool:
    """Re-encrypt one tool's secret headers with the newest key; returns whether it had any. Raises SecretsError
    (naming the tool) when no configured key opens them. Locks the row so that an edit made meanwhile is not
    overwritten with the older secrets."""
    with transaction.atomic():
        tool = Tool.objects.select_for_update().only("id", "name", "secret_headers_encrypted").get(pk=tool_id)
        if not tool.secret_headers_encrypted:
            return False
        tool.secret_headers_encrypted = secrets_rotate(tool.secret_headers_encrypted, tool_name=tool.name)
        tool.save(update_fields=["secret_headers_encrypted"])
    return True


def tool_secret_header_names(*, tool: Tool) -> list[str] | None:
    """The names of the tool's secret headers ([] when it has none), or None when the stored secrets cannot be
    decrypted with the configured keys."""
    try:
        return secrets_header_names(tool.secret_headers_encrypted, tool_name=tool.name)
    except SecretsError:
        return None


def tool_example_arguments(*, tool: Tool) -> dict[str, Any]:
    """Arguments for a test call, from the schema: its first object in `examples`, else each property's first
    `examples` entry, `example` or `default`. Properties with none are left out."""
    schema = tool.parameters if isinstance(tool.parameters, dict) else {}
    examples = schema.get("examples")
    if isinstance(examples, list) and examples and isinstance(examples[0], dict):
        return dict(examples[0])
    arguments: dict[str, Any] = {}
    for name, prop in (schema.get("properties") or {}).items():
        if not isinstance(prop, dict):
            continue
        if isinstance(prop.get("examples"), list) and prop["examples"]:
            arguments[name] = prop["examples"][0]
        elif "example" in prop:
            arguments[name] = prop["example"]
        elif "default" in prop:
            arguments[name] = prop["default"]
    return arguments


# --- calling ------------------------------------------------------------------------------------------------------


class _ArgumentError(Exception):
    pass


class _Redactor:
    """Replaces secret header values (and the credential part of `Scheme credential` values) in text."""

    def __init__(self, secrets: Iterable[str]) -> None:
        values = set()
        for secret in secrets:
            if secret:
                values.add(secret)
                # "Bearer abc123": a server echoing only the credential must not show it either.
                credential = secret.partition(" ")[2].strip()
                if len(credential) >= 4:
                    values.add(credential)
        # Longest first, so that a value containing another is replaced whole.
        self._values = sorted(values, key=len, reverse=True)

    def text(self, text: str) -> str:
        for value in self._values:
            if value in text:
                text = text.replace(value, REDACTED)
        return text

    def value(self, value: Any) -> Any:
        if not self._values:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(str(key)): self.value(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.value(item) for item in value]
        return value


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
) -> dict[str, Any]:
    """Call `tool` with `arguments` (see the module docstring for what is returned). Arguments that break the
    schema are reported in `error` and no request is made. `run_id`/`node_id`/`call_index` derive the
    Idempotency-Key; `timeout` overrides the read timeout. Raises ToolCallError for a disabled tool."""
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
        "result": None,
        "ok": False,
        "error_kind": "",
        "transient": False,
    }
    started = time.monotonic()
    redactor = _Redactor(())
    try:
        errors = tool_argument_errors(tool=tool, arguments=arguments)
        if errors:
            raise _ArgumentError(f"invalid arguments for tool {tool.name!r}: " + "; ".join(errors))
        secrets = secrets_decrypt(tool.secret_headers_encrypted, tool_name=tool.name)
        redactor = _Redactor(secrets.values())
        url, params, headers, body = _build_request(tool, arguments)
        call["url"] = url
        response = egress.egress_request(
            method=tool.method,
            url=url,
            params=params,
            headers={**headers, **secrets},
            json_body=body,
            sensitive_headers=secrets.keys(),
            idempotency_key=egress.egress_idempotency_key(run_id=run_id, node_id=node_id, call_index=call_index)
            if run_id is not None
            else None,
            timeout=timeout or tool.timeout_seconds,
        )
    except _ArgumentError as exc:
        call.update(error=str(exc), error_kind="arguments")
    except SecretsError as exc:
        call.update(error=str(exc), error_kind="secrets")
    except egress.EgressError as exc:
        call.update(error=f"tool {tool.name!r}: {exc}", error_kind=exc.kind, transient=exc.transient)
    else:
        # Redacted before truncating: a cut through a secret would leave a prefix the redactor cannot see.
        call.update(
            status_code=response.status_code,
            response=_truncate(redactor.text(response.text)),
            result=_parse(response),
            ok=response.ok,
        )
        if not response.ok:
            call.update(
                error=f"tool {tool.name!r}: HTTP {response.status_code} {response.reason}".rstrip(),
                error_kind="http",
                transient=response.status_code in egress.RETRY_STATUSES,
            )
    call["duration_ms"] = round((time.monotonic() - started) * 1000)
    for key in ("url", "arguments", "response", "error", "result"):
        call[key] = redactor.value(call[key])
    if call["error"]:
        logger.warning("tool %s (id %s) failed: %s", tool.name, tool.pk, call["error"])
    return call


def tool_call_record(call: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a `tool_call` result that is recorded (ledger tool_calls, ToolCall rows)."""
    return {key: call.get(key) for key in RECORD_KEYS}


def tool_test_call(*, tool: Tool, arguments: Any) -> dict[str, Any]:
    """A call made by hand (the admin action, the API's test endpoint), recorded as a ToolCall without a run."""
    call = tool_call(tool=tool, arguments=arguments)
    record = tool_call_record(call)
    ToolCall.objects.create(
        tool=tool,
        tool_name=tool.name[:64],
        method=record["method"],
        url=str(record["url"])[:2048],
        arguments=record["arguments"] if isinstance(record["arguments"], dict) else {"value": record["arguments"]},
        status_code=record["status_code"],
        duration_ms=record["duration_ms"],
        response=record["response"],
        error=record["error"],
    )
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
            text = value if isinstance(value, str) else _scalar_text(value)
            if any(char in text for char in "\r\n\0"):
                raise _ArgumentError(f"header parameter {name!r} must not contain line breaks")
            headers[name] = text
        else:
            body[name] = value
    missing = sorted(in_url - set(path_values))
    if missing:
        raise _ArgumentError(f"invalid arguments for tool {tool.name!r}: no value for the path parameter(s) {missing}")
    url = PATH_PARAM_RE.sub(lambda match: path_values[match.group(1)], tool.url)
    return url, params, headers, (body if body else None)


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


def _parse(response: egress.EgressResponse) -> Any:
    """The parsed JSON body when the server says it is JSON (or says nothing and it parses), else the text."""
    text = response.text
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
