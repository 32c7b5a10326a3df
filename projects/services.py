"""Writes to projects and their members. Every one is recorded in the audit log (`projects.audit`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db import IntegrityError, transaction

from projects.audit import AuditAction, actor_label, audit_record
from projects.models import Membership, Project, Role

if TYPE_CHECKING:
    from django.contrib.auth.models import User

__all__ = [
    "MembershipError",
    "ProjectDeleteError",
    "member_remove",
    "member_set",
    "personal_project",
    "project_create",
    "project_delete",
    "project_rename",
]


class MembershipError(ValueError):
    """A membership change that would leave the project in a state we refuse (no admin, a shared personal
    project...). The message says what."""


def personal_project(user: User) -> Project:
    """`user`'s personal project, created (with them as its admin) on first use."""
    project = Project.objects.filter(personal_of=user).first()
    if project is not None:
        return project
    try:
        with transaction.atomic():
            summary = f"{user.get_username()}'s personal project was created"
            return _project_new(name=f"{user.get_username()} (personal)", by=user, personal=True, summary=summary)
    except IntegrityError:  # created meanwhile by a concurrent first use
        return Project.objects.get(personal_of=user)


def project_create(*, name: str, by: User) -> Project:
    """A team project named `name`, with `by` as its first admin."""
    with transaction.atomic():
        return _project_new(name=name, by=by, personal=False, summary=f"{actor_label(by)} created project {name!r}")


def _project_new(*, name: str, by: User, personal: bool, summary: str) -> Project:
    project = Project.objects.create(name=name, personal_of=by if personal else None, created_by=by)
    Membership.objects.create(project=project, user=by, role=Role.ADMIN)
    changes: dict[str, Any] = {"name": name, "admin": by.get_username()}
    if personal:
        changes["personal"] = True
    audit_record(
        actor=by,
        action=AuditAction.PROJECT_CREATED,
        obj=project,
        project_id=project.pk,
        summary=summary,
        changes=changes,
    )
    return project


class ProjectDeleteError(ValueError):
    """A project that may not be deleted (a personal one, or one that still holds something). The message says
    what."""


def project_rename(*, project: Project, name: str, by: User) -> Project:
    """Rename `project` (a personal one too). The caller has checked that `by` may manage it and that `name` is
    1-200 characters."""
    old = project.name
    with transaction.atomic():
        project.name = name
        project.save(update_fields=["name"])
        if name != old:
            audit_record(
                actor=by,
                action=AuditAction.PROJECT_RENAMED,
                obj=project,
                project_id=project.pk,
                summary=f"{actor_label(by)} renamed project {old!r} to {name!r}",
                changes={"name": {"from": old, "to": name}},
            )
    return project


def project_delete(*, project: Project, by: User) -> None:
    """Delete a team project with its memberships. Refused (ProjectDeleteError) for a personal project, while it
    holds live workflows or tools, and while it keeps the history of deleted workflows' runs: deleting the
    project would take that history with it. The caller has checked that `by` may manage the project."""
    if project.is_personal:
        raise ProjectDeleteError("a personal project cannot be deleted")
    with transaction.atomic():
        locked = Project.objects.select_for_update().get(pk=project.pk)  # no workflow joins it meanwhile
        workflows = locked.workflows.filter(deleted_at__isnull=True).count()
        tools = locked.tools.count()
        if workflows or tools:
            held = " and ".join(_count(n, noun) for n, noun in ((workflows, "workflow"), (tools, "tool")) if n)
            raise ProjectDeleteError(f"the project still holds {held}: delete them first")
        runs = locked.runs.count()
        if runs:
            raise ProjectDeleteError(
                f"the project keeps the history of {_count(runs, 'run')} of its deleted workflows, "
                "which deleting it would erase"
            )
        audit_record(
            actor=by,
            action=AuditAction.PROJECT_DELETED,
            obj=locked,
            project_id=locked.pk,
            summary=f"{actor_label(by)} deleted project {locked.name!r}",
            changes={"name": locked.name},
        )
        locked.workflows.all().delete()  # deleted ones that never ran: nothing of theirs is kept
        locked.delete()


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def member_set(*, project: Project, user: User, role: Role | str, by: User) -> Membership:
    """Add `user` to `project` with `role`, or change their role. Refused (MembershipError) on a personal project,
    and when it would leave the project without an admin. The caller has checked that `by` may manage it."""
    role = Role(role)
    if project.is_personal:
        raise MembershipError("a personal project has no other members: create a project to share workflows")
    with transaction.atomic():
        locked = Project.objects.select_for_update().get(pk=project.pk)  # one membership change at a time
        membership = Membership.objects.filter(project=locked, user=user).first()
        if membership is None:
            membership = Membership.objects.create(project=locked, user=user, role=role)
            _member_audit(
                locked,
                user,
                by,
                AuditAction.MEMBER_ADDED,
                f"added {user.get_username()} as {role.value} to",
                None,
                role,
            )
            return membership
        if membership.role == role:
            return membership
        if membership.role == Role.ADMIN and role != Role.ADMIN:
            _keep_an_admin(locked, leaving=user)
        old = Role(membership.role)
        membership.role = role
        membership.save(update_fields=["role", "updated_at"])
        what = f"changed {user.get_username()}'s role from {old.value} to {role.value} in"
        _member_audit(locked, user, by, AuditAction.MEMBER_ROLE_CHANGED, what, old, role)
        return membership


def member_remove(*, project: Project, user: User, by: User) -> None:
    """Take `user` out of `project`. Refused (MembershipError) for the owner of a personal project and for the
    last admin; removing someone who is not a member does nothing. The caller has checked that `by` may manage
    the project, or is `user` leaving it."""
    if project.personal_of_id == user.pk:
        raise MembershipError("the owner of a personal project cannot leave it")
    with transaction.atomic():
        locked = Project.objects.select_for_update().get(pk=project.pk)
        membership = Membership.objects.filter(project=locked, user=user).first()
        if membership is None:
            return
        if membership.role == Role.ADMIN:
            _keep_an_admin(locked, leaving=user)
        membership.delete()
        old = Role(membership.role)
        what = "left" if by.pk == user.pk else f"removed {user.get_username()} ({old.value}) from"
        _member_audit(locked, user, by, AuditAction.MEMBER_REMOVED, what, old, None)


def _member_audit(
    project: Project, user: User, by: User, action: AuditAction, what: str, old: Role | None, new: Role | None
) -> None:
    audit_record(
        actor=by,
        action=action,
        obj=user,
        object_type="user",
        object_repr=user.get_username(),
        project_id=project.pk,
        summary=f"{actor_label(by)} {what} project {project.name!r}",
        changes={
            "user": user.get_username(),
            "user_id": user.pk,
            "old_role": old.value if old else None,
            "new_role": new.value if new else None,
        },
    )


def _keep_an_admin(project: Project, *, leaving: User) -> None:
    if not Membership.objects.filter(project=project, role=Role.ADMIN).exclude(user=leaving).exists():
        raise MembershipError(f"{leaving.get_username()} is the project's last admin: make someone else admin first")
