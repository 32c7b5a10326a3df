"""What a tool definition may hold: the checks `tool_create` and `tool_update` run before saving, and the
header rules a call applies again to what arguments add."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from tools import egress
from tools.models import TOOL_NAME_RE, TOOL_NAME_VALIDATOR, HttpMethod

LOCATIONS = ("query", "body", "path", "header")
PATH_PARAM_RE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
# RFC 9110 token characters: what a header name may be made of.
HEADER_NAME_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,100}")
# A header value may hold visible ASCII, spaces and tabs; any other control character could split the request
# (CR, LF) or be read differently by each server on the way.
HEADER_CONTROL_RE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
# Headers the HTTP client owns (framing and the connection): a tool setting them, even from its owner's plain or
# secret headers, would break the request's framing or smuggle a second one.
CLIENT_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "upgrade",
        "te",
        "trailer",
        "keep-alive",
        "proxy-connection",
        "expect",
    }
)
# Headers that arguments may not set, on top of those: values chosen by a model or a run's input must not choose
# credentials (they would sit beside the secret headers), speak for a proxy (forwarding headers are trusted by
# servers behind one), change the method or defeat the Idempotency-Key. The owner may still set these in the plain
# or secret headers.
ARGUMENT_RESERVED_HEADERS = CLIENT_HEADERS | frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "forwarded",
        "via",
        "x-real-ip",
        "x-client-ip",
        "client-ip",
        "true-client-ip",
        "x-cluster-client-ip",
        "cf-connecting-ip",
        "x-original-url",
        "x-rewrite-url",
        "x-http-method-override",
        "x-http-method",
        "x-method-override",
        "idempotency-key",
    }
)
ARGUMENT_RESERVED_PREFIXES = ("proxy-", "x-forwarded-")

AddProblem = Callable[[str, str], None]


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
    JSON Schema (Draft 2020-12) of type object whose `x-in` keywords are query, body, path or header, and whose
    header parameters do not name a header reserved to FlowNova or the owner (ARGUMENT_RESERVED_HEADERS, any
    `Proxy-*` or `X-Forwarded-*`); headers and secret headers are objects of strings with valid names that are not
    the HTTP client's own (CLIENT_HEADERS: Host, Content-Length, Transfer-Encoding, Connection...), values of
    visible ASCII, spaces and tabs, and no name is in both. Header names are compared as servers may read them:
    case-insensitively, with `_` as `-` (CGI-style servers turn both into `HTTP_CONTENT_LENGTH`)."""
    errors: dict[str, list[str]] = {}

    def add(field: str, message: str) -> None:
        errors.setdefault(field, []).append(message)

    if not isinstance(name, str) or not TOOL_NAME_RE.fullmatch(name):
        add("name", str(TOOL_NAME_VALIDATOR.message))
    if method not in HttpMethod.values:
        add("method", f"{method!r} is not one of {', '.join(HttpMethod.values)}")
    properties = _check_parameters(parameters, add)
    for message in _url_problems(url, properties):
        add("url", message)
    plain = _check_headers("headers", headers, add)
    secret = _check_headers("secret_headers", secret_headers, add)
    both = sorted({header_key(key) for key in plain} & {header_key(key) for key in secret})
    if both:
        add("secret_headers", f"{', '.join(both)} cannot be both a plain and a secret header")
    if timeout_seconds is not None and (
        isinstance(timeout_seconds, bool)
        or not isinstance(timeout_seconds, int | float)
        or not 0 < timeout_seconds <= 600
    ):
        add("timeout_seconds", "must be a number of seconds above 0 and at most 600")
    return errors


def _check_parameters(parameters: Any, add: AddProblem) -> dict[str, Any] | None:
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
        if not TOOL_NAME_RE.fullmatch(key):
            add("parameters", f"parameter name {key!r} is not an identifier (letters, digits and _)")
        location = schema.get("x-in") if isinstance(schema, dict) else None
        if location is not None and location not in LOCATIONS:
            add("parameters", f'parameter {key!r}: "x-in" must be one of {", ".join(LOCATIONS)}, not {location!r}')
        elif location == "header" and isinstance(key, str) and argument_header_reserved(key):
            add("parameters", reserved_parameter_message(key))
    return properties


def header_key(name: str) -> str:
    """A header name as servers may compare it: case-insensitively, and `_` as `-` (CGI-style servers)."""
    return name.strip().lower().replace("_", "-")


def argument_header_reserved(name: str) -> bool:
    key = header_key(name)
    return key in ARGUMENT_RESERVED_HEADERS or key.startswith(ARGUMENT_RESERVED_PREFIXES)


def reserved_parameter_message(name: str) -> str:
    return (
        f'parameter {name!r}: "x-in": "header" would set {header_key(name)}, a reserved header (framing, '
        "credentials, proxy and forwarding headers are never taken from arguments); use a plain or secret header, "
        "or another name"
    )


def header_value_problem(value: str) -> str | None:
    """Why a header value cannot be sent, or None. Never shows the value: for secret headers it is the secret."""
    found = HEADER_CONTROL_RE.search(value)
    if found:
        return f"must not contain line breaks or other control characters (it holds U+{ord(found.group()):04X})"
    if not value.isascii():
        return "must be ASCII (percent-encode other characters)"
    return None


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


def _check_headers(field: str, headers: Any, add: AddProblem) -> dict[str, str]:
    if headers is None:
        return {}
    if not isinstance(headers, dict):
        add(field, "must be an object of header names to string values")
        return {}
    for key, value in headers.items():
        if not isinstance(key, str) or not HEADER_NAME_RE.fullmatch(key):
            add(field, f"{str(key)[:100]!r} is not a valid header name")
        elif header_key(key) in CLIENT_HEADERS:
            add(field, f"{key} is set by the HTTP client and cannot be configured")
        if not isinstance(value, str):
            add(field, f"the value of {str(key)[:100]} must be a string")
        else:
            problem = header_value_problem(value)
            if problem:
                add(field, f"the value of {str(key)[:100]} {problem}")
    return {key: value for key, value in headers.items() if isinstance(key, str)}
