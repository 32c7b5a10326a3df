"""Tools: defining them (with their secret headers) and calling them.

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

import ipaddress
import json
import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from tools import egress
from tools.models import TOOL_NAME_VALIDATOR, HttpMethod, Tool, ToolCall, ToolCallState
from tools.secrets import SecretsError, secrets_decrypt, secrets_encrypt, secrets_header_names, secrets_rotate

logger = logging.getLogger(__name__)

RECORD_KEYS = (
    "tool",
    "tool_id",
    "method",
    "url",
    "arguments",
    "status_code",
    "duration_ms",
    "response",
    "error",
    "note",
    "call_id",
)
# The columns that completing a started ToolCall row writes.
FINISH_FIELDS = ("url", "arguments", "status_code", "duration_ms", "response", "error", "note", "state", "finished_at")
REDACTED = "[redacted]"
LOCATIONS = ("query", "body", "path", "header")
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
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
MAX_ERRORS_SHOWN = 20
MAX_WORKFLOWS_SHOWN = 10
# Characters that PostgreSQL stores in neither text nor jsonb: NUL, and the UTF-16 surrogates that a JSON escape
# (\ud800) can put in a Python string on their own (a valid pair decodes to one character).
UNSTORABLE_RE = re.compile("[\x00\ud800-\udfff]")
# Bytes of an answer that may decode to one of them: a raw NUL, or a JSON escape of NUL or of a surrogate.
UNSTORABLE_HINT_RE = re.compile(rb"\x00|\\u0000|\\u[dD][89a-fA-F]")


class ToolCallError(Exception):
    """A call that cannot even be attempted (the tool is disabled). Failures of an attempted call are not
    raised: `tool_call` reports them in its result's `error`."""


class ToolInUseError(Exception):
    """A tool that saved workflows still name: deleting it would fail their next runs. `workflows` lists them as
    (id, name)."""

    def __init__(self, tool_name: str, workflows: list[tuple[int, str]]) -> None:
        shown = ", ".join(f"{name!r} (id {pk})" for pk, name in workflows[:MAX_WORKFLOWS_SHOWN])
        if len(workflows) > MAX_WORKFLOWS_SHOWN:
            shown += f" and {len(workflows) - MAX_WORKFLOWS_SHOWN} more"
        count = "1 workflow" if len(workflows) == 1 else f"{len(workflows)} workflows"
        super().__init__(
            f"tool {tool_name!r} is used by {count}: {shown}; remove it from them (or disable the tool instead) "
            "before deleting it"
        )
        self.workflows = workflows


@dataclass(frozen=True)
class ToolUpdate:
    """What `tool_update` did. `secret_headers_cleared`: the URL moved to another origin and the secret headers
    entered for the old one were removed; `notice` says so in a sentence (for the API's answer and the admin)."""

    tool: Tool
    secret_headers_cleared: bool = False
    notice: str = ""


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

    if not isinstance(name, str) or not TOOL_NAME_VALIDATOR.regex.fullmatch(name):
        add("name", str(TOOL_NAME_VALIDATOR.message))
    if method not in HttpMethod.values:
        add("method", f"{method!r} is not one of {', '.join(HttpMethod.values)}")
    properties = _check_parameters(parameters, add)
    for message in _url_problems(url, properties):
        add("url", message)
    plain = _check_headers("headers", headers, add)
    secret = _check_headers("secret_headers", secret_headers, add)
    both = sorted({_header_key(key) for key in plain} & {_header_key(key) for key in secret})
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
        elif location == "header" and isinstance(key, str) and _argument_header_reserved(key):
            add("parameters", _reserved_parameter_message(key))
    return properties


def _header_key(name: str) -> str:
    """A header name as servers may compare it: case-insensitively, and `_` as `-` (CGI-style servers)."""
    return name.strip().lower().replace("_", "-")


def _argument_header_reserved(name: str) -> bool:
    key = _header_key(name)
    return key in ARGUMENT_RESERVED_HEADERS or key.startswith(ARGUMENT_RESERVED_PREFIXES)


def _reserved_parameter_message(name: str) -> str:
    return (
        f'parameter {name!r}: "x-in": "header" would set {_header_key(name)}, a reserved header (framing, '
        "credentials, proxy and forwarding headers are never taken from arguments); use a plain or secret header, "
        "or another name"
    )


def _header_value_problem(value: str) -> str | None:
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


def _check_headers(field: str, headers: Any, add: Any) -> dict[str, str]:
    if headers is None:
        return {}
    if not isinstance(headers, dict):
        add(field, "must be an object of header names to string values")
        return {}
    for key, value in headers.items():
        if not isinstance(key, str) or not HEADER_NAME_RE.fullmatch(key):
            add(field, f"{str(key)[:100]!r} is not a valid header name")
        elif _header_key(key) in CLIENT_HEADERS:
            add(field, f"{key} is set by the HTTP client and cannot be configured")
        if not isinstance(value, str):
            add(field, f"the value of {str(key)[:100]} must be a string")
        else:
            problem = _header_value_problem(value)
            if problem:
                add(field, f"the value of {str(key)[:100]} {problem}")
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
    _tool_save(tool, secret_headers=secret_headers or {})
    return tool


def tool_update(*, tool: Tool, fields: Mapping[str, Any], secret_headers: dict[str, str] | None = None) -> ToolUpdate:
    """Change the given definition `fields` of `tool`. `secret_headers`: None keeps the stored ones, a dict
    replaces them all ({} removes them). Raises ToolDefinitionError, with nothing saved, when invalid.

    Secret headers belong to the origin (scheme, host and port) they were entered for: a URL that moves to
    another origin removes them, unless this same update enters secret headers again; the answer says so. The
    URL compared with is the stored one, whatever `tool` holds (a form may have changed the instance already)."""
    editable = {"name", "description", "method", "url", "headers", "parameters", "timeout_seconds", "is_active"}
    unknown = set(fields) - editable
    if unknown:
        raise ToolDefinitionError({name: ["cannot be changed"] for name in sorted(unknown)})
    for key, value in fields.items():
        setattr(tool, key, value)
    notice = _tool_save(tool, secret_headers=secret_headers)
    return ToolUpdate(tool=tool, secret_headers_cleared=bool(notice), notice=notice)


def _tool_save(tool: Tool, *, secret_headers: dict[str, str] | None) -> str:
    """Validate and save `tool`; returns a notice when its secret headers were removed because its URL moved to
    another origin, else ""."""
    errors = tool_validate_definition(
        name=tool.name,
        method=tool.method,
        url=tool.url,
        parameters=tool.parameters,
        headers=tool.headers,
        secret_headers=secret_headers,
        timeout_seconds=tool.timeout_seconds,
    )
    if errors:
        raise ToolDefinitionError(errors)
    notice = ""
    with transaction.atomic():
        if tool.pk is not None and secret_headers is None:
            # Locked: an update racing this one cannot write back the secrets this one removes, or the reverse.
            stored = Tool.objects.select_for_update().filter(pk=tool.pk).values_list("url", "secret_headers_encrypted")
            for stored_url, stored_secrets in stored:
                tool.secret_headers_encrypted = stored_secrets  # what is stored now, not what the instance read
                if stored_secrets and tool_origin(stored_url) != tool_origin(tool.url):
                    notice = _secrets_cleared_notice(tool, stored_url, stored_secrets)
                    secret_headers = {}
        if secret_headers is None and tool.secret_headers_encrypted:
            try:
                kept = secrets_decrypt(tool.secret_headers_encrypted, tool_name=tool.name)
            except SecretsError:
                kept = {}  # unreadable secrets stay as they are until replaced; calls report it
            both = sorted({_header_key(key) for key in tool.headers} & {_header_key(key) for key in kept})
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
    return notice


def tool_origin(url: str) -> tuple[str, str, int] | None:
    """The origin of a tool URL, normalized: (scheme, host, port) in lower case, the default port written out,
    an IP address in its canonical form, a host name without its final dot. None when it cannot be parsed."""
    try:
        parsed = httpx.URL(PATH_PARAM_RE.sub("p", url))  # placeholders are in the path or query only
    except (httpx.InvalidURL, TypeError):
        return None
    scheme = parsed.scheme.lower()
    host = parsed.raw_host.decode("ascii").lower().rstrip(".")
    try:
        host = ipaddress.ip_address(host).compressed
    except ValueError:
        pass
    return scheme, host, parsed.port or {"http": 80, "https": 443}.get(scheme, 0)


def _origin_text(url: str) -> str:
    origin = tool_origin(url)
    if origin is None:
        return "an unreadable URL"
    scheme, host, port = origin
    return f"{scheme}://{f'[{host}]' if ':' in host else host}:{port}"


def _secrets_cleared_notice(tool: Tool, old_url: str, old_secrets: str) -> str:
    try:
        names = f" ({', '.join(secrets_header_names(old_secrets))})"
    except SecretsError:
        names = ""
    return (
        f"The URL of tool {tool.name!r} now points to {_origin_text(tool.url)} instead of {_origin_text(old_url)}, "
        f"so its secret headers{names} were removed: they are only ever sent to the origin they were entered for. "
        "Enter them again if the new URL should get them."
    )


def tool_workflows_using(*, tool: Tool) -> list[tuple[int, str]]:
    """(id, name) of the live workflows of the tool's owner whose saved graph names it: a `tool` node's `tool`, or
    an `agent` or `cognitive` node's `tools`. Runs look a tool up by name among the tools of the user who starts
    them, so these are the workflows whose next runs would fail without it."""
    # Imported here: workflows sits above tools (it reads the tool registry); this is the one look back.
    from workflows.models import Node

    uses = Q(type="tool", data__tool=tool.name) | Q(type__in=("agent", "cognitive"), data__tools__contains=[tool.name])
    rows = (
        Node.objects.filter(uses, workflow__owner_id=tool.owner_id, workflow__deleted_at__isnull=True)
        .values_list("workflow_id", "workflow__name")
        .distinct()
        .order_by("workflow_id")
    )
    return list(rows)


def tool_delete(*, tool: Tool) -> None:
    """Delete `tool`, unless saved workflows use it: ToolInUseError names them, and nothing is deleted. The
    records of its calls stay (with the tool's name; their link to the tool is cleared)."""
    with transaction.atomic():
        locked = Tool.objects.select_for_update().filter(pk=tool.pk).first()
        if locked is None:
            return
        using = tool_workflows_using(tool=locked)
        if using:
            raise ToolInUseError(locked.name, using)
        locked.delete()


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
    """The request cannot be built from these arguments (or this definition); nothing is sent."""

    def __init__(self, message: str, *, kind: str = "arguments") -> None:
        super().__init__(message)
        self.kind = kind


class _NotRecorded(Exception):
    """The call could not be recorded as started, so it is not sent."""


# Records a call as started right before its request goes out (`tool_call_start` is one); returns the row's id.
CallRecorder = Callable[..., int]


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


class _Storable:
    """Makes what a call record keeps storable by PostgreSQL: NUL characters and unpaired UTF-16 surrogates (in
    strings and keys) become U+FFFD. `note` says what was replaced, for the record."""

    def __init__(self) -> None:
        self.found: set[str] = set()

    def text(self, text: str) -> str:
        if not UNSTORABLE_RE.search(text):
            return text
        if "\x00" in text:
            self.found.add("NUL characters")
        if any("\ud800" <= char <= "\udfff" for char in text):
            self.found.add("unpaired UTF-16 surrogates")
        return UNSTORABLE_RE.sub("\ufffd", text)

    def value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(key) if isinstance(key, str) else key: self.value(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.value(item) for item in value]
        return value

    @property
    def note(self) -> str:
        return f"{' and '.join(sorted(self.found))} were replaced with U+FFFD" if self.found else ""


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
    redactor = _Redactor(())
    storable = _Storable()
    try:
        errors = tool_argument_errors(tool=tool, arguments=arguments)
        if errors:
            raise _ArgumentError(f"invalid arguments for tool {tool.name!r}: " + "; ".join(errors))
        secrets = secrets_decrypt(tool.secret_headers_encrypted, tool_name=tool.name)
        redactor = _Redactor(secrets.values())
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
    redactor: _Redactor,
    storable: _Storable,
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


def tool_call_record(call: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a `tool_call` result that is recorded (ledger tool_calls, ToolCall rows)."""
    return {key: call.get(key) for key in RECORD_KEYS}


def tool_call_row(
    call: Mapping[str, Any], *, run_id: int | None = None, node_id: str = "", finished_at: datetime | None = None
) -> ToolCall:
    """An unsaved ToolCall row for a call record (`tool_call_record`): `started` without `finished_at`."""
    return ToolCall(
        tool_id=call.get("tool_id"),
        tool_name=str(call.get("tool") or "")[:64],
        run_id=run_id,
        node_id=node_id[:64],
        method=str(call.get("method") or "")[:8],
        url=str(call.get("url") or "")[:2048],
        arguments=call.get("arguments") or {},
        status_code=call.get("status_code"),
        duration_ms=call.get("duration_ms"),
        response=str(call.get("response") or ""),
        error=str(call.get("error") or ""),
        note=str(call.get("note") or "")[:200],
        state=ToolCallState.STARTED if finished_at is None else ToolCallState.FINISHED,
        finished_at=finished_at,
    )


def tool_call_start(*, run_id: int | None, node_id: str, call: Mapping[str, Any]) -> int:
    """Record a call as started, right before its request goes out (a `record` for `tool_call`); returns the
    row's id, which the call's record carries as `call_id` so that its completion updates this row. Outside a
    transaction (where handlers run) the row is committed at once: a process killed mid-call leaves it behind,
    `started` and without an answer."""
    row = tool_call_row(call, run_id=run_id, node_id=node_id)
    row.save(force_insert=True)
    return row.pk


def tool_call_finish(*, call: Mapping[str, Any], finished_at: datetime | None = None) -> None:
    """Record a call's outcome: complete its started row (`call_id`), or write a finished one for a call that was
    never sent. For calls made outside a run; a node's calls are completed with its ledger entry."""
    row = tool_call_row(call, finished_at=finished_at or timezone.now())
    if call.get("call_id"):
        ToolCall.objects.filter(pk=call["call_id"]).update(**{field: getattr(row, field) for field in FINISH_FIELDS})
    else:
        row.save(force_insert=True)


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
            if _argument_header_reserved(name):  # a definition saved before the check existed
                raise _ArgumentError(f"tool {tool.name!r}: {_reserved_parameter_message(name)}", kind="definition")
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
    key = _header_key(name)
    for existing in [existing for existing in headers if _header_key(existing) == key]:
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
        problem = _header_value_problem(value)
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
