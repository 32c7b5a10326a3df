"""A workflow's versions in the API (docs/CONTRACT.md, Versions): the list, one version with its document, the
diff between two, and restoring one as the next version.

The workflow is looked up through `Workflow.objects.alive().visible_to(user)`, so someone outside its project
(or anyone, once it is deleted) gets 404; reading needs the viewer role, restoring the editor role
(`projects.permissions.require`, 403 naming the role). The diff itself is `workflows.versions`, pure.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, serializers
from rest_framework.exceptions import NotFound
from rest_framework.generics import get_object_or_404
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from flownova.api_base import StrictFieldsMixin, error_response, query_dict
from flownova.users import signed_in_user
from projects.permissions import Action, require
from workflows.api import WorkflowSerializer, graph_issues_refused
from workflows.models import VERSION_MESSAGE_MAX, Workflow, WorkflowVersion
from workflows.services import workflow_restore
from workflows.versions import documents_diff

__all__ = [
    "WorkflowVersionDetailView",
    "WorkflowVersionDiffView",
    "WorkflowVersionListView",
    "WorkflowVersionRestoreView",
    "version_url",
]

# The largest version number a query names: PostgreSQL's integer.
_MAX_NUMBER = 2**31 - 1


def version_url(workflow_id: int, number: int) -> str:
    """The API URL of version `number` of the workflow."""
    return reverse("api:workflow-version-detail", kwargs={"pk": workflow_id, "number": number})


def _workflow(request: Request, pk: Any) -> Workflow:
    return get_object_or_404(Workflow.objects.alive().visible_to(request.user), pk=pk)


def _version_number(raw: str) -> int:
    """The version number in a path; a 404 naming what was given when it is not one."""
    if not raw.isascii() or not raw.isdigit() or len(raw) > 9:
        raise NotFound(f"There is no version {raw!r}: versions are numbered 1, 2, 3...")
    return int(raw)


def _version(workflow: Workflow, number: int, *, named: str = "") -> WorkflowVersion:
    version = workflow.versions.select_related("author").filter(number=number).first()
    if version is None:
        label = f" (`{named}`)" if named else ""
        raise NotFound(f"Workflow {workflow.pk} has no version {number}{label}.")
    return version


class VersionSerializer(serializers.ModelSerializer[WorkflowVersion]):
    """One version, without its document."""

    author = serializers.CharField(
        source="author.username", read_only=True, allow_null=True, help_text="Who saved it; null when unknown."
    )
    current = serializers.SerializerMethodField(help_text="Whether this is the workflow's version now.")

    class Meta:
        model = WorkflowVersion
        fields = ["number", "author", "created_at", "message", "current"]
        read_only_fields = fields

    def get_current(self, version: WorkflowVersion) -> bool:
        return bool(version.number == self.context["workflow"].version)


class VersionDetailSerializer(VersionSerializer):
    """One version with the document it kept: `{name, description, graph}`."""

    document = serializers.JSONField(read_only=True, help_text="`{name, description, graph}` as that save left them.")

    class Meta(VersionSerializer.Meta):
        fields = [*VersionSerializer.Meta.fields, "document"]
        read_only_fields = fields


class DiffQuerySerializer(serializers.Serializer[Any]):
    a = serializers.IntegerField(
        required=False, min_value=1, max_value=_MAX_NUMBER, help_text="The earlier version (default: b - 1)."
    )
    b = serializers.IntegerField(
        required=False, min_value=1, max_value=_MAX_NUMBER, help_text="The later version (default: the current one)."
    )


class FieldChangeSerializer(serializers.Serializer[Any]):
    to = serializers.CharField(allow_blank=True)

    def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
        # `from` is a keyword: it cannot be a class attribute.
        return {"from": serializers.CharField(allow_blank=True), **super().get_fields()}


class ItemChangeSerializer(serializers.Serializer[Any]):
    id = serializers.CharField()
    patch = serializers.ListField(
        child=serializers.JSONField(), help_text="JSON Patch (RFC 6902) from version a's document to b's."
    )


class ItemsDiffSerializer(serializers.Serializer[Any]):
    added = serializers.ListField(child=serializers.CharField(), help_text="Ids only in version b.")
    removed = serializers.ListField(child=serializers.CharField(), help_text="Ids only in version a.")
    changed = ItemChangeSerializer(many=True, help_text="Ids in both whose document differs.")


class VersionDiffSerializer(serializers.Serializer[Any]):
    a = serializers.IntegerField()
    b = serializers.IntegerField()
    name = FieldChangeSerializer(allow_null=True, help_text="Null when the name is the same.")
    description = FieldChangeSerializer(allow_null=True, help_text="Null when the description is the same.")
    nodes = ItemsDiffSerializer()
    edges = ItemsDiffSerializer()


class RestoreSerializer(StrictFieldsMixin, serializers.Serializer[Any]):
    message = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=VERSION_MESSAGE_MAX,
        help_text='Kept on the new version (default: "Restored version n").',
    )


_ID = OpenApiParameter("id", int, OpenApiParameter.PATH, description="The workflow's id.")
_NUMBER = OpenApiParameter("number", int, OpenApiParameter.PATH, description="A version number.")


@extend_schema(tags=["workflows"])
class WorkflowVersionListView(generics.ListAPIView[WorkflowVersion]):
    """`/api/workflows/{id}/versions/`: every version of the workflow, newest first."""

    serializer_class = VersionSerializer

    def get_queryset(self) -> QuerySet[WorkflowVersion]:
        if getattr(self, "swagger_fake_view", False):
            return WorkflowVersion.objects.none()
        return self._workflow().versions.select_related("author").order_by("-number")

    def _workflow(self) -> Workflow:
        if not hasattr(self, "_found"):
            self._found = _workflow(self.request, self.kwargs["pk"])
        return self._found

    def get_serializer_context(self) -> dict[str, Any]:
        return {**super().get_serializer_context(), "workflow": self._workflow()}

    @extend_schema(parameters=[_ID], description="The workflow's versions, newest first, each without its document.")
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


@extend_schema(tags=["workflows"])
class WorkflowVersionDetailView(APIView):
    """`/api/workflows/{id}/versions/{number}/`: one version with its document."""

    @extend_schema(
        parameters=[_ID, _NUMBER],
        responses={200: VersionDetailSerializer},
        description="One version with the document that save kept; 404 naming the version if there is none.",
    )
    def get(self, request: Request, pk: str, number: str) -> Response:
        workflow = _workflow(request, pk)
        version = _version(workflow, _version_number(number))
        return Response(VersionDetailSerializer(version, context={"workflow": workflow}).data)


@extend_schema(tags=["workflows"])
class WorkflowVersionDiffView(APIView):
    """`/api/workflows/{id}/versions/diff/?a=&b=`: what changed from version a to version b."""

    @extend_schema(
        parameters=[_ID, DiffQuerySerializer],
        responses={200: VersionDiffSerializer},
        description=(
            "What changed from version `a` to version `b` (default: the current version and the one before it): "
            "the name and description, and the nodes and edges matched by id, added, removed or changed, each "
            "change as the JSON Patch from a's node (or edge) to b's. 404 naming a version that does not exist."
        ),
    )
    def get(self, request: Request, pk: str) -> Response:
        workflow = _workflow(request, pk)
        query = DiffQuerySerializer(data=query_dict(request))
        query.is_valid(raise_exception=True)
        a, b = diff_pair(workflow, query.validated_data.get("a"), query.validated_data.get("b"))
        first, second = _version(workflow, a, named="a"), _version(workflow, b, named="b")
        return Response(documents_diff(first.document, second.document, a_number=a, b_number=b))


def diff_pair(workflow: Workflow, a: int | None, b: int | None) -> tuple[int, int]:
    """The versions to compare: `b` defaults to the current one, `a` to the one before `b`. A ValidationError
    naming `a` when it is left out and `b` is the first version."""
    b = workflow.version if b is None else b
    if a is None:
        if b <= 1:
            raise serializers.ValidationError({"a": [f"Version {b} has no version before it: give `a`."]})
        a = b - 1
    return a, b


@extend_schema(tags=["workflows"])
class WorkflowVersionRestoreView(APIView):
    """`/api/workflows/{id}/versions/{number}/restore/`: save that version's document as the next version."""

    @extend_schema(
        parameters=[_ID, _NUMBER],
        request=RestoreSerializer,
        responses={
            200: WorkflowSerializer,
            400: error_response(
                "The body is not valid, or the version's graph no longer saves (it names a tool or a workflow "
                "that is gone): `graph` lists every problem.",
                validation=True,
            ),
            403: error_response("Your role in the workflow's project does not allow editing it."),
        },
        description=(
            "Save version `number`'s name, description and graph as the workflow's next version, validated as "
            'any save is; the new version\'s message is `message` (default "Restored version n"). Nothing is '
            "saved when the graph no longer validates. Needs the editor role."
        ),
    )
    def post(self, request: Request, pk: str, number: str) -> Response:
        workflow = _workflow(request, pk)
        require(request.user, Action.EDIT, workflow.project_id)
        body = RestoreSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        version = _version(workflow, _version_number(number))
        with graph_issues_refused():
            restored = workflow_restore(
                workflow=workflow,
                number=version.number,
                by=signed_in_user(request),
                message=body.validated_data.get("message", ""),
            )
        return Response(WorkflowSerializer(restored).data)
