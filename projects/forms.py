"""Form fields for projects: the name of a new one, and the picker a page offers when something is created in a
project (a workflow from JSON, an import)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django import forms
from django.core.exceptions import PermissionDenied

from projects.models import Project, Role
from projects.permissions import Action, require, scoped
from projects.services import personal_project

if TYPE_CHECKING:
    from django.contrib.auth.models import User

__all__ = ["MemberForm", "ProjectField", "ProjectForm", "project_field"]


class ProjectForm(forms.Form):
    name = forms.CharField(max_length=200, strip=True)


class MemberForm(forms.Form):
    user = forms.CharField(label="Username", max_length=150)
    role = forms.ChoiceField(choices=Role.choices, initial=Role.VIEWER)


class ProjectField(forms.ModelChoiceField):  # type: ignore[type-arg]
    """A project the user may take `action` in. It accepts any project the user can see and then asks
    `projects.permissions`, so a project where their role is too low is refused with the message naming the role
    it needs (and one they cannot see is "not one of the choices"). Left out, it is their personal project."""

    def __init__(self, user: User, action: Action, **kwargs: Any) -> None:
        self.user = user
        self.action = action
        super().__init__(scoped(Project.objects.all(), user, Action.VIEW, via="pk"), **kwargs)
        # Offered: the projects where they may take the action; staff, who may everywhere, are offered theirs.
        offered = scoped(Project.objects.all(), user, action, via="pk")
        if user.is_staff:
            offered = offered.filter(memberships__user=user)
        self.widget.choices = [(project.pk, project.name) for project in offered.order_by("personal_of_id", "name")]

    def clean(self, value: Any) -> Project:
        chosen: Project | None = super().clean(value)
        project = chosen if chosen is not None else personal_project(self.user)  # a form sent without the picker
        try:
            require(self.user, self.action, project.pk)
        except PermissionDenied as exc:
            raise forms.ValidationError(str(exc)) from None
        return project


def project_field(user: User, action: Action = Action.EDIT) -> ProjectField:
    """The picker for a form that creates something: the projects where `user` may take `action`, their personal
    project first and chosen."""
    return ProjectField(
        user, action, initial=personal_project(user).pk, empty_label=None, required=False, label="Project"
    )
