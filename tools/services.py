"""Tools: defining them (create, update, delete), and keeping their secret headers to the origin they were
entered for.

The rest of the tools app, by what a reader looks for: `tools.definitions` (what a definition may hold),
`tools.calling` (`tool_call`: building and sending a call), `tools.redaction` (what a call's record may keep),
`tools.recording` (ToolCall rows), `tools.secrets` (encryption at rest), `tools.uses` (which workflows use a
tool) and `tools.egress` (every outbound request).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction

from projects.audit import AuditAction, actor_label, audit_record
from projects.models import Project
from projects.services import personal_project
from tools.definitions import PATH_PARAM_RE, ToolDefinitionError, header_key, tool_validate_definition
from tools.models import HttpMethod, Tool
from tools.secrets import SecretsError, secrets_decrypt, secrets_encrypt, secrets_header_names, secrets_rotate
from tools.uses import tool_workflows_using

__all__ = [
    "ToolDefinitionError",
    "ToolInUseError",
    "ToolUpdate",
    "tool_create",
    "tool_delete",
    "tool_example_arguments",
    "tool_origin",
    "tool_rotate_secrets",
    "tool_secret_header_names",
    "tool_update",
]

MAX_WORKFLOWS_SHOWN = 10
# What `tool_update` may change.
EDITABLE_FIELDS = ("name", "description", "method", "url", "headers", "parameters", "timeout_seconds", "is_active")


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


def tool_create(
    *,
    owner: User,
    name: str,
    url: str,
    project: Project | None = None,
    description: str = "",
    method: str = HttpMethod.GET,
    headers: dict[str, str] | None = None,
    parameters: dict[str, Any] | None = None,
    secret_headers: dict[str, str] | None = None,
    timeout_seconds: float | None = None,
    is_active: bool = True,
    by: User | None = None,
) -> Tool:
    """Create a tool, owned by `owner`, in `project` (default: `owner`'s personal project); `by` is who creates
    it (default: `owner`; the admin creates tools for others). Raises ToolDefinitionError (nothing saved) when the
    definition is invalid or the project already has a tool of that name. The caller has checked that `owner` may
    edit the project."""
    tool = Tool(
        owner=owner,
        project=project if project is not None else personal_project(owner),
        name=name,
        description=description,
        method=method,
        url=url,
        headers=headers or {},
        parameters=parameters if parameters is not None else {"type": "object", "properties": {}},
        timeout_seconds=timeout_seconds,
        is_active=is_active,
    )
    _tool_save(tool, secret_headers=secret_headers or {}, by=by if by is not None else owner)
    return tool


def tool_update(
    *, tool: Tool, fields: Mapping[str, Any], secret_headers: dict[str, str] | None = None, by: User | None = None
) -> ToolUpdate:
    """Change the given definition `fields` of `tool`; `by` is who changes it. `secret_headers`: None keeps the
    stored ones, a dict replaces them all ({} removes them). Raises ToolDefinitionError, with nothing saved, when
    invalid.

    Secret headers belong to the origin (scheme, host and port) they were entered for: a URL that moves to
    another origin removes them, unless this same update enters secret headers again; the answer says so. The
    URL compared with is the stored one, whatever `tool` holds (a form may have changed the instance already)."""
    unknown = set(fields) - set(EDITABLE_FIELDS)
    if unknown:
        raise ToolDefinitionError({name: ["cannot be changed"] for name in sorted(unknown)})
    for key, value in fields.items():
        setattr(tool, key, value)
    notice = _tool_save(tool, secret_headers=secret_headers, by=by)
    return ToolUpdate(tool=tool, secret_headers_cleared=bool(notice), notice=notice)


def _tool_save(tool: Tool, *, secret_headers: dict[str, str] | None, by: User | None) -> str:
    """Validate and save `tool`, and record it in the audit log; returns a notice when its secret headers were
    removed because its URL moved to another origin, else ""."""
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
        # Locked: an update racing this one cannot write back the secrets this one removes, or the reverse; and
        # the audit entry compares with what is stored now, not with what the instance read.
        before = Tool.objects.select_for_update().filter(pk=tool.pk).first() if tool.pk is not None else None
        if before is not None and secret_headers is None:
            stored_url, stored_secrets = before.url, before.secret_headers_encrypted
            tool.secret_headers_encrypted = stored_secrets
            if stored_secrets and tool_origin(stored_url) != tool_origin(tool.url):
                notice = _secrets_cleared_notice(tool, stored_url, stored_secrets)
                secret_headers = {}
        if secret_headers is None and tool.secret_headers_encrypted:
            try:
                kept = secrets_decrypt(tool.secret_headers_encrypted, tool_name=tool.name)
            except SecretsError:
                kept = {}  # unreadable secrets stay as they are until replaced; calls report it
            both = sorted({header_key(key) for key in tool.headers} & {header_key(key) for key in kept})
            if both:
                errors["headers"] = [f"{', '.join(both)} is already a secret header of this tool"]
        if not errors and Tool.objects.filter(project_id=tool.project_id, name=tool.name).exclude(pk=tool.pk).exists():
            errors["name"] = [f"this project already has a tool named {tool.name!r}"]
        if errors:
            raise ToolDefinitionError(errors)
        if secret_headers is not None:
            tool.secret_headers_encrypted = secrets_encrypt(secret_headers)
        try:
            with transaction.atomic():
                tool.save()
        except IntegrityError:
            # Two saves racing for the same name: the unique constraint decides.
            raise ToolDefinitionError({"name": [f"this project already has a tool named {tool.name!r}"]}) from None
        _tool_audit(tool, before=before, secret_headers=secret_headers, by=by, moved=bool(notice))
    return notice


def _tool_audit(
    tool: Tool, *, before: Tool | None, secret_headers: dict[str, str] | None, by: User | None, moved: bool
) -> None:
    """Record a tool's creation or change: the names of the fields that changed and of the secret headers added,
    removed or replaced, never a value. A save that changed nothing is not recorded."""
    who = actor_label(by)
    if before is None:
        changes: dict[str, Any] = {"secret_headers": {"added": sorted(secret_headers or {})}} if secret_headers else {}
        summary = f"{who} created tool {tool.name!r}"
        audit_record(actor=by, action=AuditAction.TOOL_CREATED, obj=tool, summary=summary, changes=changes)
        return
    changes = {}
    fields = [field for field in EDITABLE_FIELDS if getattr(before, field) != getattr(tool, field)]
    if fields:
        changes["fields"] = fields
    if secret_headers is not None:
        secrets = _secret_names_diff(before, secret_headers)
        if secrets:
            changes["secret_headers"] = {**secrets, **({"reason": "the URL moved to another origin"} if moved else {})}
    if not changes:
        return
    what = ", ".join([*fields, *(["secret headers"] if "secret_headers" in changes else [])])
    summary = f"{who} changed tool {tool.name!r}: {what}"
    audit_record(actor=by, action=AuditAction.TOOL_CHANGED, obj=tool, summary=summary, changes=changes)


def _secret_names_diff(before: Tool, new: dict[str, str]) -> dict[str, list[str]]:
    """The names of the secret headers added, removed and replaced (a new value) by `new`; the values are compared
    here and go no further. Secrets that cannot be decrypted count as replaced, all of them."""
    if not before.secret_headers_encrypted:
        old: dict[str, str] = {}
    else:
        try:
            old = secrets_decrypt(before.secret_headers_encrypted, tool_name=before.name)
        except SecretsError:
            return {"replaced_unreadable": sorted(new)} if new else {"removed_unreadable": ["*"]}
    diff = {
        "added": sorted(set(new) - set(old)),
        "removed": sorted(set(old) - set(new)),
        "replaced": sorted(name for name in set(old) & set(new) if old[name] != new[name]),
    }
    return {key: names for key, names in diff.items() if names}


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


def tool_delete(*, tool: Tool, by: User | None = None) -> None:
    """Delete `tool`, unless saved workflows use it: ToolInUseError names them, and nothing is deleted. The
    records of its calls stay (with the tool's name; their link to the tool is cleared). `by` is who deletes it."""
    with transaction.atomic():
        locked = Tool.objects.select_for_update().filter(pk=tool.pk).first()
        if locked is None:
            return
        using = tool_workflows_using(tool=locked)
        if using:
            raise ToolInUseError(locked.name, using)
        summary = f"{actor_label(by)} deleted tool {locked.name!r}"
        audit_record(actor=by, action=AuditAction.TOOL_DELETED, obj=locked, summary=summary)
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
