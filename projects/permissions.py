"""Who may do what: the one place that decides every check on a project's contents.

The API, the pages, the WebSocket consumers, the admin and the engine's own checks (a subworkflow the run's
owner may run) all ask this module; none compares roles itself.

Roles are ordered, each allowing what the one before it does and more:

| action   | least role | what it covers                                                             |
|----------|------------|----------------------------------------------------------------------------|
| `VIEW`   | viewer     | see workflows, their versions, runs, ledgers, tools (never a secret's value)|
| `RUN`    | runner     | start, cancel, re-run and resume runs; decide unassigned approvals          |
| `EDIT`   | editor     | create and change workflows, tools and triggers; restore a version         |
| `MANAGE` | admin      | delete them; manage the project's members; read its audit log               |

Staff users act as an admin of every project. Someone who is not a member (and not staff) cannot see the
project at all: its contents answer 404 to them, as another user's did before projects existed. A member whose
role is too low for an action gets 403, with a message naming the role it needs.

Why our own module rather than django-guardian or django-rules: the rule is one lookup (the user's role in the
object's project) and an order of four roles; guardian keeps a permission row per object and user, which
would have to be rewritten for every workflow whenever a member is added, and rules would wrap the same
lookup in predicates while the querysets (what a user may list) still had to be written by hand here.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Any, TypeVar

from django.core.exceptions import PermissionDenied
from django.db.models import OuterRef, QuerySet, Subquery

from projects.models import Membership, Project, Role

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User

__all__ = [
    "Action",
    "allowed",
    "creating_in",
    "grants",
    "least_role",
    "project_ids",
    "require",
    "role_in",
    "role_subquery",
    "roles_by_project",
    "scoped",
]

_RANK = {Role.VIEWER: 1, Role.RUNNER: 2, Role.EDITOR: 3, Role.ADMIN: 4}


class Action(enum.Enum):
    VIEW = Role.VIEWER
    RUN = Role.RUNNER
    EDIT = Role.EDITOR
    MANAGE = Role.ADMIN


_WHAT = {
    Action.VIEW: "seeing this project's contents",
    Action.RUN: "starting, cancelling, re-running and resuming runs",
    Action.EDIT: "changing workflows, tools and triggers",
    Action.MANAGE: "deleting, managing members and reading the audit log",
}

QS = TypeVar("QS", bound="QuerySet[Any]")


def least_role(action: Action) -> Role:
    return Role(action.value)


def grants(role: str | None, action: Action) -> bool:
    """Whether `role` (None: no role) allows `action`."""
    return role is not None and _RANK[Role(role)] >= _RANK[least_role(action)]


def role_in(user: User | AnonymousUser, project_id: int | None) -> Role | None:
    """`user`'s role in the project: admin for staff, None for someone outside it (or signed out)."""
    if not user.is_authenticated or project_id is None:
        return None
    if user.is_staff:
        return Role.ADMIN
    role = Membership.objects.filter(project_id=project_id, user_id=user.pk).values_list("role", flat=True).first()
    return Role(role) if role else None


def roles_by_project(user: User | AnonymousUser) -> dict[int, Role]:
    """Every project `user` belongs to, with their role in it (staff: only their memberships)."""
    if not user.is_authenticated:
        return {}
    return {pk: Role(role) for pk, role in Membership.objects.filter(user_id=user.pk).values_list("project_id", "role")}


def role_subquery(user: User | AnonymousUser, project_path: str) -> Subquery:
    """`user`'s role in the project that `project_path` (a field path of the queryset being annotated) names, as
    a subquery: a hot path reads the role with the row it needs anyway, instead of asking `role_in` apart, and
    hands it to `grants`. Staff are not special here: check `is_staff` first."""
    if not user.is_authenticated:
        return Subquery(Membership.objects.none().values("role")[:1])
    memberships = Membership.objects.filter(project_id=OuterRef(project_path), user_id=user.pk)
    return Subquery(memberships.values("role")[:1])


def allowed(user: User | AnonymousUser, action: Action, project_id: int | None) -> bool:
    return grants(role_in(user, project_id), action)


def require(user: User | AnonymousUser, action: Action, project_id: int | None) -> None:
    """Raise PermissionDenied (403) unless `user` may take `action` in the project. Callers look the object up
    through `scoped(..., Action.VIEW)` first, so someone outside the project has had their 404 already."""
    role = role_in(user, project_id)
    if grants(role, action):
        return
    needed = least_role(action).value
    if role is None:
        raise PermissionDenied(f"you are not a member of this project; {_WHAT[action]} needs the {needed} role")
    raise PermissionDenied(f"your role in this project is {role.value}; {_WHAT[action]} needs the {needed} role")


def project_ids(user: User | AnonymousUser, action: Action = Action.VIEW) -> QuerySet[Project, Any] | None:
    """The projects in which `user` may take `action`, as a subquery of ids; None for staff (every project)."""
    if user.is_authenticated and user.is_staff:
        return None
    roles = [role for role in Role if grants(role, action)]
    if not user.is_authenticated:
        return Project.objects.none().values("pk")
    return Project.objects.filter(memberships__user_id=user.pk, memberships__role__in=roles).values("pk")


def scoped(queryset: QS, user: User | AnonymousUser, action: Action = Action.VIEW, *, via: str = "project") -> QS:
    """`queryset` narrowed to the rows whose project (reached through the field path `via`) lets `user` take
    `action`."""
    ids = project_ids(user, action)
    if ids is None:
        return queryset
    return queryset.filter(**{f"{via}__in": ids})


def creating_in(user: User, project: Project | None) -> Project:
    """Where something `user` creates goes: `project`, where they must be allowed to edit (PermissionDenied
    otherwise), or, given none, their personal project (created on first use)."""
    from projects.services import personal_project

    if project is None:
        return personal_project(user)
    require(user, Action.EDIT, project.pk)
    return project
