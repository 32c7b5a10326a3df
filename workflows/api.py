"""The workflows API (docs/CONTRACT.md, REST API): CRUD with the graph, import and export. (Starting a run,
`POST /api/workflows/{id}/runs/`, is the runs API's: `runs.api.WorkflowRunStartView`.)

Every queryset is `Workflow.objects.alive().visible_to(user)`: a workflow of a project the user is not a member
of, or a deleted one, is a 404; what a member may do with it is their role's (`projects.api_permissions`).
Writes go through `workflows.services`; the graph is validated as it is read from the body, so one 400 lists
every problem of the body at once, the graph's issues each naming its node or edge.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field, extend_schema_view
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ErrorDetail
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from flownova.api_base import StrictFieldsMixin
from flownova.users import signed_in_user
from projects.api_permissions import (
    ProjectField,
    ProjectFilterSerializer,
    ProjectRole,
    filtered_by_project,
    project_unchanged,
)
from projects.permissions import Action, creating_in
from tools.models import Tool
from workflows.importing import DocumentError, import_document
from workflows.models import VERSION_MESSAGE_MAX, Workflow
from workflows.services import (
    GraphError,
    WorkflowSaveContext,
    graph_normalize,
    workflow_create,
    workflow_soft_delete,
    workflow_update,
)

_Row = TypeVar("_Row")  # what a queryset yields: DRF's filter_queryset keeps it

__all__ = ["WorkflowSerializer", "WorkflowViewSet"]

_NODE_SCHEMA = {
    "type": "object",
    "description": "A node: `data` is its config, checked against its type (see docs/CONTRACT.md, Node types).",
    "properties": {
        "id": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"},
        "type": {
            "type": "string",
            "description": "A registered type: start, end, if_else, switch, transform, fork, join, user_approval, "
            "agent, guardrails, cognitive, tool, subworkflow, and any a deployment adds (FLOWNOVA_NODE_MODULES)",
        },
        "position": {
            "type": "object",
            "properties": {"x": {"type": "number"}, "y": {"type": "number"}},
            "required": ["x", "y"],
        },
        "data": {"type": "object", "additionalProperties": True},
    },
    "required": ["id", "type"],
}
_EDGE_SCHEMA = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "minLength": 1, "maxLength": 200, "description": "Assigned when left out."},
        "source": {"type": "string", "description": "A node id."},
        "target": {"type": "string", "description": "A node id."},
        "sourceHandle": {"type": "string", "maxLength": 64, "description": "The branch label."},
    },
    "required": ["source", "target"],
}
GRAPH_SCHEMA = {
    "type": "object",
    "description": (
        "React Flow's shape (see docs/CONTRACT.md). A valid graph has exactly one `start`, at least one `end`, "
        "no dangling edges, every node reachable from `start`, no cycles, and each node's `data` valid for its "
        "type. Stored normalised: unknown keys on nodes and edges are dropped, every edge gets an id."
    ),
    "properties": {
        "nodes": {"type": "array", "items": _NODE_SCHEMA},
        "edges": {"type": "array", "items": _EDGE_SCHEMA},
    },
    "required": ["nodes"],
}
_GRAPH_ISSUE_SCHEMA = {
    "type": "object",
    "properties": {
        "message": {"type": "string"},
        "node_id": {"type": "string"},
        "edge_id": {"type": "string"},
        "field": {"type": "string", "description": "A dotted path inside the node's `data`."},
    },
    "required": ["message"],
}
WORKFLOW_ERROR_SCHEMA = {
    "type": "object",
    "description": (
        "Invalid input: `detail` names every field at fault; `graph` lists every problem with the graph, each "
        "naming the node and/or edge at fault; other fields map to lists of messages."
    ),
    "properties": {
        "detail": {"type": "string"},
        "graph": {"type": "array", "items": _GRAPH_ISSUE_SCHEMA},
    },
    "required": ["detail"],
}
_INVALID_WORKFLOW = OpenApiResponse(
    response=WORKFLOW_ERROR_SCHEMA, description="Invalid input; graph problems name the node or edge at fault."
)


@extend_schema_field(GRAPH_SCHEMA)
class GraphField(serializers.JSONField):
    """The workflow's graph: read from its rows, validated and normalised on the way in."""

    def get_attribute(self, instance: Workflow) -> dict[str, Any]:
        return instance.graph_document()

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        value = super().to_internal_value(data)
        try:
            return graph_normalize(value)
        except GraphError as exc:
            raise serializers.ValidationError([issue.as_dict() for issue in exc.issues]) from None


class WorkflowSummarySerializer(serializers.ModelSerializer[Workflow]):
    """A workflow in a list: everything but its graph (GET the workflow for that)."""

    owner = serializers.CharField(source="owner.username", read_only=True)
    project = ProjectField()

    class Meta:
        model = Workflow
        fields = ["id", "name", "description", "version", "project", "owner", "created_at", "updated_at"]
        read_only_fields = ["id", "version", "owner", "created_at", "updated_at"]
        extra_kwargs = {"version": {"help_text": "Goes up by one on every save."}}


class WorkflowSerializer(StrictFieldsMixin, WorkflowSummarySerializer):
    """A workflow with its graph. Writable: `name`, `description`, `graph`, `project` on create (one you may edit;
    default: your personal project), and the write-only `message` of the version the save creates; anything else
    in a body is a 400."""

    graph = GraphField()
    message = serializers.CharField(
        write_only=True,
        required=False,
        allow_blank=True,
        max_length=VERSION_MESSAGE_MAX,
        help_text="What this save changed, kept on the version it creates (GET /api/workflows/{id}/versions/).",
    )

    class Meta(WorkflowSummarySerializer.Meta):
        fields = [*WorkflowSummarySerializer.Meta.fields, "graph", "message"]

    def to_internal_value(self, data: Any) -> Any:
        try:
            return super().to_internal_value(data)
        except serializers.ValidationError as exc:
            # "This field is required." and the like become issues too, so `graph` always lists objects.
            if isinstance(exc.detail, dict) and "graph" in exc.detail:
                exc.detail["graph"] = [
                    item if isinstance(item, dict) else {"message": ErrorDetail(f"graph: {item}", code=_code(item))}
                    for item in exc.detail["graph"]
                ]
            raise


@contextmanager
def graph_issues_refused() -> Iterator[None]:
    """A graph refused when it is saved (a node type's save hook: a subworkflow naming a workflow the user may
    not run, a cycle of workflows) answers 400 with its issues under `graph`, as validation's do."""
    try:
        yield
    except GraphError as exc:
        raise serializers.ValidationError({"graph": [issue.as_dict() for issue in exc.issues]}) from None


def _code(detail: object) -> str | None:
    return detail.code if isinstance(detail, ErrorDetail) else None


class WorkflowDocumentSerializer(serializers.Serializer[Any]):
    """The contract's workflow document: what export writes and import reads."""

    name = serializers.CharField()
    description = serializers.CharField(allow_blank=True)
    graph = GraphField()


class WorkflowImportSerializer(serializers.Serializer[Any]):
    """A workflow document: ours (`{name, description, graph}`, as export writes it) or the original FlowNova
    export (nodes with `data.type`, edges with `source_handle`...: see docs/CONTRACT.md, Import formats).
    Other top-level keys are ignored."""

    # For the schema: what a document in our format holds. Reading is `to_internal_value`'s.
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True)
    graph = GraphField()

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        try:
            # An original FlowNova export's tool ids must resolve to the importing user's tools (the view names them).
            document = import_document(data, tool_names=self.context.get("tool_names", ()))
        except DocumentError as exc:
            raise serializers.ValidationError(exc.errors) from None
        workflow = WorkflowSerializer(data=document)
        workflow.is_valid(raise_exception=True)
        return dict(workflow.validated_data)


class ImportTargetSerializer(serializers.Serializer[Any]):
    """An import's `"project"`, read apart from the document (which ignores keys it does not know)."""

    project = ProjectField()


class GraphCheckSerializer(StrictFieldsMixin, serializers.Serializer[Any]):
    """A graph to check without saving it (the editor checks before it saves)."""

    graph = serializers.JSONField(help_text="The contract's graph document: `{nodes, edges}`.")
    workflow = serializers.IntegerField(
        required=False,
        min_value=1,
        help_text="The workflow being edited, if it is saved already: a sub-workflow calling it back is a cycle.",
    )


class GraphIssueSerializer(serializers.Serializer[Any]):
    message = serializers.CharField()
    node_id = serializers.CharField(required=False)
    edge_id = serializers.CharField(required=False)
    field = serializers.CharField(required=False, help_text="A dotted path inside the node's `data`.")


class GraphCheckResultSerializer(serializers.Serializer[Any]):
    valid = serializers.BooleanField()
    issues = GraphIssueSerializer(many=True, help_text="Every problem, each naming its node or edge; empty if valid.")


@extend_schema(tags=["workflows"])
@extend_schema_view(
    list=extend_schema(
        description="The workflows of your projects (staff: all), most recently edited first, without graphs.",
        parameters=[ProjectFilterSerializer],
    ),
    create=extend_schema(responses={201: WorkflowSerializer, 400: _INVALID_WORKFLOW}),
    update=extend_schema(responses={200: WorkflowSerializer, 400: _INVALID_WORKFLOW}),
    partial_update=extend_schema(responses={200: WorkflowSerializer, 400: _INVALID_WORKFLOW}),
    destroy=extend_schema(description="Soft delete: the workflow disappears, its runs keep their history."),
)
class WorkflowViewSet(viewsets.ModelViewSet[Workflow]):
    serializer_class = WorkflowSerializer
    permission_classes = [IsAuthenticated, ProjectRole]
    project_actions = {
        "update": Action.EDIT,
        "partial_update": Action.EDIT,
        "destroy": Action.MANAGE,
    }

    def get_queryset(self) -> QuerySet[Workflow]:
        if getattr(self, "swagger_fake_view", False):  # drf-spectacular reading the view: no user
            return Workflow.objects.none()
        return Workflow.objects.alive().visible_to(self.request.user).select_related("owner")

    def filter_queryset(self, queryset: QuerySet[Workflow, _Row]) -> QuerySet[Workflow, _Row]:
        if self.action == "list":
            return filtered_by_project(queryset, self.request)
        return queryset

    def get_serializer_class(self) -> type[serializers.BaseSerializer[Workflow]]:
        if self.action == "list":
            return WorkflowSummarySerializer
        return super().get_serializer_class()

    def perform_create(self, serializer: serializers.BaseSerializer[Workflow]) -> None:
        user = signed_in_user(self.request)
        fields = dict(serializer.validated_data)
        fields["project"] = creating_in(user, fields.get("project"))
        with graph_issues_refused():
            serializer.instance = workflow_create(owner=user, **fields)

    def perform_update(self, serializer: serializers.BaseSerializer[Workflow]) -> None:
        # An update's serializer holds the workflow get_object found.
        assert serializer.instance is not None
        fields = dict(serializer.validated_data)
        project_unchanged(serializer.instance, fields)
        with graph_issues_refused():
            serializer.instance = workflow_update(
                workflow=serializer.instance, by=signed_in_user(self.request), **fields
            )

    def perform_destroy(self, instance: Workflow) -> None:
        workflow_soft_delete(workflow=instance, by=signed_in_user(self.request))

    @extend_schema(
        responses={200: WorkflowDocumentSerializer},
        description="The workflow as the contract's document `{name, description, graph}`; import reads it back.",
    )
    @action(detail=True, methods=["get"], serializer_class=WorkflowDocumentSerializer)
    def export(self, request: Request, pk: str | None = None) -> Response:
        return Response(self.get_object().document())

    @extend_schema(
        request=GraphCheckSerializer,
        responses={200: GraphCheckResultSerializer},
        description=(
            "Check a graph as saving would, without saving anything. Answers 200 with `valid` and every issue, "
            "so a client can mark the nodes and edges at fault; saving an invalid graph is still a 400."
        ),
    )
    @action(detail=False, methods=["post"], url_path="validate", serializer_class=GraphCheckSerializer)
    def validate_graph(self, request: Request) -> Response:
        body = GraphCheckSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        # As the signed-in user would save it: the node types' save hooks check what they may reach (the
        # workflows a sub-workflow calls, and whether those call this one back).
        editing = body.validated_data.get("workflow")
        if editing is not None and not self.get_queryset().filter(pk=editing).exists():
            editing = None  # not one of yours: nothing to check it against
        saving = WorkflowSaveContext(user=signed_in_user(request), workflow_id=editing)
        try:
            graph_normalize(body.validated_data["graph"], saving=saving)
        except GraphError as exc:
            return Response({"valid": False, "issues": [issue.as_dict() for issue in exc.issues]})
        return Response({"valid": True, "issues": []})

    @extend_schema(
        request=WorkflowImportSerializer,
        responses={201: WorkflowSerializer, 400: _INVALID_WORKFLOW},
        description=(
            "Create a workflow from a document: ours, or the original FlowNova export, converted to ours. "
            "Importing an export gives a workflow whose export is equal to it."
        ),
    )
    @action(detail=False, methods=["post"], url_path="import", serializer_class=WorkflowImportSerializer)
    def import_(self, request: Request) -> Response:
        user = signed_in_user(request)
        data = request.data
        target = {}
        if isinstance(data, Mapping) and "project" in data:
            target = {"project": data["project"]}
            data = {key: value for key, value in data.items() if key != "project"}
        where = ImportTargetSerializer(data=target, context={"request": request})
        where.is_valid(raise_exception=True)
        project = creating_in(user, where.validated_data.get("project"))
        tool_names = Tool.objects.filter(project=project, is_active=True).values_list("name", flat=True)
        body = WorkflowImportSerializer(data=data, context={"tool_names": tool_names})
        body.is_valid(raise_exception=True)
        with graph_issues_refused():
            workflow = workflow_create(owner=user, project=project, **body.validated_data)
        return Response(WorkflowSerializer(workflow).data, status=status.HTTP_201_CREATED)
