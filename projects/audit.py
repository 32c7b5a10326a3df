"""The audit log of configuration changes: who changed which workflow, tool, trigger, project or member, and
who decided which approval.

Services record their changes here (never the views), inside the transaction that makes the change, so the
API, the pages, the admin and the commands are all covered, and an entry exists exactly when its change was
committed. An entry says what changed, never a secret's value: a tool's entry names its changed fields and the
names of the secret headers added, removed or replaced.

A service that writes inside a run's transition (an approval's decision) builds the entry with `audit_entry`
and inserts it with the transition's own writes (`tx.insert`), which costs no round trip of its own.

The table refuses UPDATE, DELETE and TRUNCATE in PostgreSQL itself (projects migration 0003); `audit_purge`,
behind `manage.py purge_audit`, is the one way to remove old entries.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import TYPE_CHECKING, Any, Required, TypedDict, Unpack

from django.db import connection, models, transaction
from django.db.models import QuerySet

from projects.models import AuditAction, AuditEntry
from projects.permissions import Action, require, role_in, scoped

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User

__all__ = [
    "OBJECT_TYPES",
    "AuditAction",
    "AuditEntry",
    "AuditNotFound",
    "actor_label",
    "audit_entries",
    "audit_entry",
    "audit_object_parse",
    "audit_purge",
    "audit_record",
]

# What an entry's `object_type` may be: a member's entries are about the user.
OBJECT_TYPES = ("approval", "project", "tool", "trigger", "user", "workflow")
_OBJECT = re.compile(r"([a-z_]{1,40}):([0-9]{1,18})")


class AuditNotFound(Exception):
    """The project asked for is not one the user belongs to (404, as for anything of a project not theirs)."""


def actor_label(actor: User | AnonymousUser | None) -> str:
    """How a summary names whoever made a change: their username, or "FlowNova" for the system itself (a
    deadline, a command run without a user)."""
    if actor is None or not actor.is_authenticated:
        return "FlowNova"
    return actor.get_username()


def audit_entry(
    *,
    actor: User | AnonymousUser | None,
    action: AuditAction | str,
    summary: str,
    obj: models.Model | None = None,
    object_type: str = "",
    object_id: int | None = None,
    object_repr: str = "",
    project_id: int | None = None,
    changes: dict[str, Any] | None = None,
) -> AuditEntry:
    """An unsaved entry. With `obj`, the object's type (its model's name), id, name and project are taken from
    it unless given; `project_id` is otherwise needed for anyone but staff to see the entry."""
    if obj is not None:
        object_type = object_type or obj._meta.model_name or ""
        object_id = object_id if object_id is not None else obj.pk
        object_repr = object_repr or str(getattr(obj, "name", "") or obj)
        if project_id is None:
            project_id = getattr(obj, "project_id", None)
    if not object_type:
        raise ValueError("an audit entry needs `obj` or `object_type`")
    user = actor if actor is not None and actor.is_authenticated else None
    return AuditEntry(
        actor_id=user.pk if user is not None else None,
        actor_name=user.get_username() if user is not None else "",
        project_id=project_id,
        action=AuditAction(action),
        object_type=object_type,
        object_id=object_id,
        object_repr=object_repr[: AuditEntry._meta.get_field("object_repr").max_length or 300],
        summary=summary,
        changes=changes or {},
    )


class EntryFields(TypedDict, total=False):
    """`audit_entry`'s arguments."""

    actor: Required[User | AnonymousUser | None]
    action: Required[AuditAction | str]
    summary: Required[str]
    obj: models.Model | None
    object_type: str
    object_id: int | None
    object_repr: str
    project_id: int | None
    changes: dict[str, Any] | None


def audit_record(**fields: Unpack[EntryFields]) -> AuditEntry:
    """Record a change (see `audit_entry`). Call it inside the transaction that makes the change, so that the
    entry is committed with it or not at all; outside one it raises RuntimeError."""
    if not connection.in_atomic_block:
        raise RuntimeError("audit_record must be called inside the transaction of the change it records")
    entry = audit_entry(**fields)
    entry.save(force_insert=True)
    return entry


def audit_purge(*, created_before: datetime, dry_run: bool = False) -> int:
    """Delete the entries written before `created_before`; returns how many (would) go. The table refuses
    DELETE unless the transaction says it purges (projects migration 0003): this is the one place that does."""
    old = AuditEntry.objects.filter(created_at__lt=created_before)
    if dry_run:
        return old.count()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL flownova.audit_purge = 'on'")
        count, _ = old.delete()
    return count


# --- reading ----------------------------------------------------------------------------------------------------


def audit_object_parse(text: str) -> tuple[str, int]:
    """`"workflow:12"` as ("workflow", 12); ValueError saying what is wrong otherwise."""
    match = _OBJECT.fullmatch(text.strip())
    if match is None:
        raise ValueError(f'{text!r} is not an object: write it as "<type>:<id>", as "workflow:12"')
    if match[1] not in OBJECT_TYPES:
        raise ValueError(f"{match[1]!r} is not an object type: one of {', '.join(OBJECT_TYPES)}")
    return match[1], int(match[2])


def audit_entries(
    *,
    user: User | AnonymousUser,
    project: int | None = None,
    object: tuple[str, int] | None = None,
    action: str | None = None,
    actor: int | None = None,
) -> QuerySet[AuditEntry]:
    """The entries `user` may read (those of the projects they manage; staff: every one), newest first, narrowed
    by the filters. A `project` the user is not a member of raises AuditNotFound; one whose role is too low,
    PermissionDenied (403) with the role it needs."""
    entries = scoped(AuditEntry.objects.all(), user, Action.MANAGE)
    if project is not None:
        if role_in(user, project) is None:
            raise AuditNotFound(f"there is no project {project}, or you are not a member of it")
        require(user, Action.MANAGE, project)
        entries = entries.filter(project_id=project)
    if object is not None:
        entries = entries.filter(object_type=object[0], object_id=object[1])
    if action:
        entries = entries.filter(action=action)
    if actor is not None:
        entries = entries.filter(actor_id=actor)
    return entries.order_by("-created_at", "-id")
