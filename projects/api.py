"""The projects API (docs/CONTRACT.md, Projects): `/api/projects/`, `/api/projects/{id}/` and a project's members,
`/api/projects/{id}/members/`.

Every check asks `projects.permissions`: a project is looked up among those the user may see (someone outside it
gets 404), then `require` answers 403 to a member whose role is too low. Writes go through `projects.services`,
whose refusals (a personal project, the last admin, a project that still holds workflows) answer 409 with their
message. Any call creates the user's personal project on first use.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.db.models import Count, OuterRef, QuerySet, Subquery
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from flownova.api_base import StrictFieldsMixin, error_response
from flownova.users import signed_in_user
from projects.models import Membership, Project, Role
from projects.permissions import Action, require, scoped
from projects.services import (
    MembershipError,
    ProjectDeleteError,
    member_remove,
    member_set,
    personal_project,
    project_create,
    project_delete,
    project_rename,
)

__all__ = ["ProjectViewSet"]

ROLES = ", ".join(role.value for role in Role)


class ProjectSerializer(StrictFieldsMixin, serializers.ModelSerializer[Project]):
    """A project. Writable: `name` (1-200 characters, stripped); anything else in a body is a 400."""

    personal = serializers.BooleanField(source="is_personal", read_only=True, help_text="A user's own project.")
    role = serializers.SerializerMethodField(help_text="Your role in the project (staff: admin).")
    member_count = serializers.SerializerMethodField()

    class Meta:
        model = Project
        fields = ["id", "name", "personal", "role", "created_at", "member_count"]
        read_only_fields = ["id", "created_at"]

    def get_role(self, project: Project) -> str | None:
        user = self.context["request"].user
        if user.is_staff:
            return Role.ADMIN.value
        return getattr(project, "my_role", None)

    def get_member_count(self, project: Project) -> int:
        return int(getattr(project, "member_total", 0))


class MemberSerializer(serializers.ModelSerializer[Membership]):
    """A member of a project."""

    user = serializers.CharField(source="user.username", help_text="The member's username.")
    added_at = serializers.DateTimeField(source="created_at")

    class Meta:
        model = Membership
        fields = ["user", "role", "added_at"]


class MemberSetSerializer(StrictFieldsMixin, serializers.Serializer[Any]):
    """Add someone to the project, or change their role."""

    user = serializers.CharField(max_length=150, help_text="A username.")
    role = serializers.ChoiceField(
        choices=Role.choices, error_messages={"invalid_choice": f'"{{input}}" is not a role: use one of {ROLES}.'}
    )

    def validate_user(self, value: str) -> User:
        user = User.objects.filter(username=value, is_active=True).first()
        if user is None:
            raise serializers.ValidationError(f"there is no user named {value!r}")
        return user


class MemberRemoveSerializer(StrictFieldsMixin, serializers.Serializer[Any]):
    """Take someone out of the project (or leave it: your own username)."""

    user = serializers.CharField(max_length=150, help_text="A username.")


_REFUSED = error_response("Your role in the project does not allow it; `detail` names the role it needs.")


@extend_schema(tags=["projects"])
@extend_schema_view(
    list=extend_schema(
        description="The projects you are a member of (staff: all), your personal project first, then by name. "
        "Your personal project is created on first use."
    ),
    create=extend_schema(description="Create a team project; you are its admin."),
    partial_update=extend_schema(
        description="Rename the project (admin).", responses={200: ProjectSerializer, 403: _REFUSED}
    ),
    destroy=extend_schema(
        description="Delete the project and its memberships (admin). Refused for a personal project, and while it "
        "holds workflows or tools, or keeps the history of runs.",
        responses={204: None, 403: _REFUSED, 409: error_response("The project may not be deleted; `detail` says why.")},
    ),
)
class ProjectViewSet(viewsets.ModelViewSet[Project]):
    serializer_class = ProjectSerializer
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)  # authenticates: the user is signed in from here on
        personal_project(signed_in_user(request))

    def get_queryset(self) -> QuerySet[Project]:
        if getattr(self, "swagger_fake_view", False):  # drf-spectacular reading the view: no user
            return Project.objects.none()
        user = signed_in_user(self.request)
        mine = Membership.objects.filter(project=OuterRef("pk"), user_id=user.pk).values("role")[:1]
        return (
            scoped(Project.objects.all(), user, Action.VIEW, via="pk")
            .annotate(my_role=Subquery(mine), member_total=Count("memberships", distinct=True))
            .order_by("personal_of_id", "name", "id")  # nulls last: a user's own project first
        )

    def _answer(self, project: Project, code: int = status.HTTP_200_OK) -> Response:
        fresh = self.get_queryset().get(pk=project.pk)
        return Response(self.get_serializer(fresh).data, status=code)

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        body = self.get_serializer(data=request.data)
        body.is_valid(raise_exception=True)
        project = project_create(name=body.validated_data["name"], by=signed_in_user(request))
        return self._answer(project, status.HTTP_201_CREATED)

    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        project = self.get_object()
        require(request.user, Action.MANAGE, project.pk)
        body = self.get_serializer(project, data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        if "name" in body.validated_data:
            project_rename(project=project, name=body.validated_data["name"], by=signed_in_user(request))
        return self._answer(project)

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        project = self.get_object()
        require(request.user, Action.MANAGE, project.pk)
        try:
            project_delete(project=project, by=signed_in_user(request))
        except ProjectDeleteError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        return Response(status=status.HTTP_204_NO_CONTENT)

    # --- members -------------------------------------------------------------------------------------------

    def _members(self, project: Project) -> Response:
        members = Membership.objects.filter(project=project).select_related("user").order_by("user__username")
        return Response(MemberSerializer(members, many=True).data)

    def _remove(self, request: Request, project: Project, username: str) -> Response:
        """Remove `username` from `project`: an admin may remove anyone, a member themself."""
        if username != request.user.get_username():
            require(request.user, Action.MANAGE, project.pk)
        membership = Membership.objects.filter(project=project, user__username=username).select_related("user")
        found = membership.first()
        if found is None:
            return Response(
                {"detail": f"{username!r} is not a member of this project."}, status=status.HTTP_404_NOT_FOUND
            )
        try:
            member_remove(project=project, user=found.user, by=signed_in_user(request))
        except MembershipError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        methods=["GET"],
        responses={200: MemberSerializer(many=True)},
        description="The project's members with their roles, by username.",
    )
    @extend_schema(
        methods=["POST"],
        request=MemberSetSerializer,
        responses={
            200: OpenApiResponse(MemberSerializer, description="The member's role changed."),
            201: OpenApiResponse(MemberSerializer, description="Added."),
            403: _REFUSED,
            409: error_response("Refused: a personal project has no other members, or the last admin would go."),
        },
        description=f"Add a member with a role, or change a member's role (admin). Roles: {ROLES}.",
    )
    @extend_schema(
        methods=["DELETE"],
        request=MemberRemoveSerializer,
        responses={204: None, 403: _REFUSED, 409: error_response("Refused: the last admin, or a personal project.")},
        description="Take `user` out of the project (admin), or leave it (your own username). Also "
        "`DELETE /api/projects/{id}/members/{username}/`.",
    )
    @action(detail=True, methods=["get", "post", "delete"], serializer_class=MemberSetSerializer)
    def members(self, request: Request, pk: str | None = None) -> Response:
        project = self.get_object()
        if request.method == "GET":
            return self._members(project)
        if request.method == "DELETE":
            removal = MemberRemoveSerializer(data=request.data)
            removal.is_valid(raise_exception=True)
            return self._remove(request, project, removal.validated_data["user"])
        require(request.user, Action.MANAGE, project.pk)
        body = MemberSetSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        user: User = body.validated_data["user"]
        existed = Membership.objects.filter(project=project, user=user).exists()
        try:
            membership = member_set(
                project=project, user=user, role=body.validated_data["role"], by=signed_in_user(request)
            )
        except MembershipError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        code = status.HTTP_200_OK if existed else status.HTTP_201_CREATED
        return Response(MemberSerializer(membership).data, status=code)

    @extend_schema(
        operation_id="projects_member_destroy",
        request=None,
        responses={204: None, 403: _REFUSED, 409: error_response("Refused: the last admin, or a personal project.")},
        description="Take the member out of the project (admin), or leave it (your own username).",
    )
    @action(detail=True, methods=["delete"], url_path=r"members/(?P<username>[^/]+)", url_name="member")
    def member(self, request: Request, pk: str | None = None, username: str = "") -> Response:
        return self._remove(request, self.get_object(), username)
