"""`{% can "edit" workflow.project_id as may_edit %}`: whether the signed-in user may take an action in a project,
so a page shows only the controls that will work (the views check again: hiding is not the permission).

The user's roles are read once per request, whatever the number of rows a page asks about."""

from __future__ import annotations

from typing import Any

from django import template

from projects.permissions import Action, grants, roles_by_project

register = template.Library()


@register.simple_tag(takes_context=True)
def can(context: dict[str, Any], action: str, project_id: int | None) -> bool:
    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or project_id is None:
        return False
    if user.is_staff:
        return True
    roles = getattr(request, "_flownova_project_roles", None)
    if roles is None:
        roles = roles_by_project(user)
        request._flownova_project_roles = roles  # type: ignore[union-attr]
    return grants(roles.get(project_id), Action[action.upper()])
