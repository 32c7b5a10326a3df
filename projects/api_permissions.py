"""The API's side of `projects.permissions`: a DRF permission that asks it for every object a view acts on.

A view lists what each of its actions needs in `project_actions` (`{"update": Action.EDIT, "cancel":
Action.RUN...}`; an action it does not list needs Action.VIEW) and, when its objects do not carry
`project_id` themselves, says where their project is with `project_of(obj)`. The view's queryset is already
narrowed to what the user may see (`visible_to`), so an outsider has had a 404; a member whose role is too low
gets a 403 naming the role the action needs.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from rest_framework import serializers
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.views import APIView

from projects.models import Project
from projects.permissions import QS, Action, require, scoped

__all__ = ["ProjectField", "ProjectFilterSerializer", "ProjectRole", "filtered_by_project", "project_unchanged"]


class ProjectRole(BasePermission):
    def has_object_permission(self, request: Request, view: APIView, obj: Any) -> bool:
        actions: dict[str, Action] = getattr(view, "project_actions", {})
        name = getattr(view, "action", None) or (request.method or "GET").lower()
        project_of = getattr(view, "project_of", None)
        project_id = project_of(obj) if project_of is not None else obj.project_id
        require(request.user, actions.get(name, Action.VIEW), project_id)
        return True


class ProjectField(serializers.PrimaryKeyRelatedField):  # type: ignore[type-arg]
    """A body's `"project": <id>`: one of the projects the requesting user belongs to (a 400 names any other).
    Whether they may create there is the view's check (`require(..., Action.EDIT, ...)`, a 403)."""

    default_error_messages = {
        **serializers.PrimaryKeyRelatedField.default_error_messages,
        "does_not_exist": "There is no project {pk_value} that you are a member of.",
    }

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("help_text", "The project it belongs to (default on create: your personal project).")
        kwargs.setdefault("required", False)
        super().__init__(**kwargs)

    def get_queryset(self) -> QuerySet[Project]:
        request = self.context.get("request")
        if request is None:
            return Project.objects.none()
        return scoped(Project.objects.all(), request.user, Action.VIEW, via="pk")


def project_unchanged(instance: Any, validated: dict[str, Any]) -> None:
    """Refuse (400) an update whose body names another project: what belongs to a project stays there."""
    project = validated.pop("project", None)
    if project is not None and project.pk != instance.project_id:
        raise serializers.ValidationError(
            {"project": [f"It belongs to project {instance.project_id} and cannot move to another project."]}
        )


class ProjectFilterSerializer(serializers.Serializer[Any]):
    """A list's `?project=<id>` filter."""

    project = serializers.IntegerField(required=False, min_value=1, help_text="Only those of this project.")


def filtered_by_project(queryset: QS, request: Request) -> QS:
    """`queryset` narrowed to `?project=<id>` when the request names one (a 400 names a bad value)."""
    query = ProjectFilterSerializer(data=request.query_params.dict())
    query.is_valid(raise_exception=True)
    project = query.validated_data.get("project")
    return queryset if project is None else queryset.filter(project_id=project)
