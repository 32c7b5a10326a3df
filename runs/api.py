"""The runs API (docs/CONTRACT.md, REST API): starting a run, the list with filters, detail, ledger, cancel,
re-run, resume.

A run is started from its workflow, `POST /api/workflows/{id}/runs/` (`WorkflowRunStartView`, routed next to
the workflows in flownova/api_urls.py). Every queryset is `Run.objects.visible_to(user)`: another user's run is
a 404. Every start counts against the run-start rate limit (`runs.ratelimit`): past it, a 429 with
`Retry-After`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from django.db.models import QuerySet
from django.utils.http import urlencode
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import APIException, NotFound, Throttled
from rest_framework.generics import GenericAPIView
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from flownova.api_base import StrictFieldsMixin, error_response, query_dict
from flownova.users import signed_in_user
from projects.api_permissions import ProjectRole
from projects.permissions import Action
from runs.history import run_trace, runs_compare
from runs.models import LedgerEntry, Run, RunStatus, RunTrigger
from runs.ratelimit import RunRateLimited
from runs.services import RunFinishedError, RunInputError, run_cancel, run_resume, run_start
from runs.usage import usage_summary
from workflows.models import Workflow
from workflows.versions_api import version_url

__all__ = ["Conflict", "RunSerializer", "RunStartSerializer", "RunViewSet", "UsageView", "WorkflowRunStartView"]

_Row = TypeVar("_Row")  # what a queryset yields: DRF's filter_queryset keeps it

LEDGER_DEFAULT_LIMIT = 500
LEDGER_MAX_LIMIT = 1000


class Conflict(APIException):
    """409: the object's state forbids the request (a run already ended, an approval already decided)."""

    status_code = status.HTTP_409_CONFLICT
    default_detail = "The request conflicts with the current state of the object."
    default_code = "conflict"


@extend_schema_field({"type": "object", "additionalProperties": True})
class JSONObjectField(serializers.JSONField):
    """A JSON object (not a list or a scalar)."""

    default_error_messages = {"not_object": "Must be a JSON object, not {kind}."}

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, dict):
            self.fail("not_object", kind=type(data).__name__)
        return super().to_internal_value(data)


@extend_schema_field({"type": "object", "additionalProperties": True, "nullable": True})
class NullableObjectField(serializers.JSONField):
    pass


_TRIGGER_SCHEMA = {
    "type": "object",
    "properties": {
        "type": {
            "type": "string",
            "enum": list(RunTrigger.values),
            "description": (
                "manual: a page's run form or the run_workflow command; api: POST /api/workflows/{id}/runs/; "
                "webhook, schedule: a trigger; rerun, resume: from an earlier run (`source_run`); child: a "
                "cognitive node's generated workflow (`parent`)."
            ),
        },
        "id": {"type": "integer", "description": "The trigger's id, for `webhook` and `schedule`."},
    },
    "required": ["type"],
}


@extend_schema_field(_TRIGGER_SCHEMA)
class TriggerField(serializers.JSONField):
    """How a run started (`Run.trigger`), read-only."""


@extend_schema_field({**_TRIGGER_SCHEMA, "nullable": True})
class NullableTriggerField(serializers.JSONField):
    """A ledger entry's `trigger`: the run's on its first entry, else null."""


class RunSerializer(serializers.ModelSerializer[Run]):
    """A run: the contract's fields, then extras (who started it, which version ran, where it came from)."""

    input = JSONObjectField(read_only=True)
    output = NullableObjectField(read_only=True, help_text="The `end` node's output; null until it succeeds.")
    owner = serializers.CharField(source="owner.username", read_only=True, help_text="Who started the run.")
    trigger = TriggerField(read_only=True, help_text="How the run started.")
    workflow_version_url = serializers.SerializerMethodField(
        help_text="The API URL of the workflow version the run executed; null when the workflow is gone."
    )

    class Meta:
        model = Run
        fields = [
            "id",
            "workflow",
            "status",
            "input",
            "output",
            "error",
            "created_at",
            "started_at",
            "finished_at",
            # extensions of the contract
            "workflow_name",
            "workflow_version",
            "owner",
            "project",
            "source_run",
            "parent",
            "parent_node_id",
            "updated_at",
            "trigger",
            "workflow_version_url",
        ]
        read_only_fields = fields
        extra_kwargs = {
            "workflow": {"help_text": "The workflow's id; null if it was deleted for good."},
            "source_run": {"help_text": "The run this one re-runs, if any."},
            "parent": {"help_text": "For a cognitive node's generated workflow: the run holding the node."},
        }

    def get_workflow_version_url(self, run: Run) -> str | None:
        workflow = run.workflow
        if workflow is None or workflow.is_deleted:
            return None
        url = version_url(workflow.pk, run.workflow_version)
        request = self.context.get("request")
        return request.build_absolute_uri(url) if request is not None else url


class RunStartSerializer(StrictFieldsMixin, serializers.Serializer[Any]):
    """What starts a run: its input."""

    input = JSONObjectField(
        required=False,
        default=dict,
        help_text="The run's input, checked against the start node's `input_schema`; `{}` when left out.",
    )


class RunFilterSerializer(serializers.Serializer[Any]):
    """The run list's filters (query parameters)."""

    workflow = serializers.IntegerField(required=False, min_value=1, help_text="Only runs of this workflow.")
    project = serializers.IntegerField(required=False, min_value=1, help_text="Only runs of this project.")
    status = serializers.ChoiceField(choices=RunStatus.choices, required=False)
    created_after = serializers.DateTimeField(required=False, help_text="ISO 8601; runs created at or after.")
    created_before = serializers.DateTimeField(required=False, help_text="ISO 8601; runs created before.")
    trigger = serializers.ChoiceField(
        choices=RunTrigger.values, required=False, help_text="Only runs that started this way (`trigger.type`)."
    )
    trigger_id = serializers.IntegerField(
        required=False, min_value=1, help_text="Only runs started by this trigger (`trigger.id`: webhook, schedule)."
    )


class LedgerEntrySerializer(serializers.ModelSerializer[LedgerEntry]):
    """One node execution (docs/CONTRACT.md, Ledger), then extras: the attempt number, and whether a resumed run
    reused this node's recorded result."""

    input = NullableObjectField(read_only=True)
    output = NullableObjectField(read_only=True)
    tool_calls = serializers.ListField(child=serializers.JSONField(), read_only=True)
    llm_usage = NullableObjectField(read_only=True, help_text="Tokens and cost where an LLM was called.")
    trigger = NullableTriggerField(
        read_only=True, help_text="How the run started, on its first entry (`seq` 1); null on every other."
    )

    class Meta:
        model = LedgerEntry
        fields = [
            "seq",
            "node_id",
            "node_type",
            "status",
            "input",
            "output",
            "error",
            "started_at",
            "finished_at",
            "duration_ms",
            "tool_calls",
            "llm_usage",
            # extensions of the contract
            "attempt",
            "reused",
            "trigger",
        ]
        read_only_fields = fields


class LedgerQuerySerializer(serializers.Serializer[Any]):
    """The ledger's paging parameters."""

    after = serializers.IntegerField(
        required=False, default=0, min_value=0, help_text="Only entries with a greater `seq` (for the next page)."
    )
    limit = serializers.IntegerField(
        required=False, default=LEDGER_DEFAULT_LIMIT, min_value=1, max_value=LEDGER_MAX_LIMIT
    )


@contextmanager
def run_start_limited() -> Iterator[None]:
    """Around a run start: past the rate limit, the API's 429 with `Retry-After`, as a DRF throttle answers."""
    try:
        yield
    except RunRateLimited as exc:
        raise Throttled(wait=exc.wait) from None


_RUN_START_RESPONSES = {
    201: RunSerializer,
    400: error_response("The input is not valid: `input` lists every problem.", validation=True),
    429: error_response("Too many run starts; `Retry-After` says how many seconds to wait."),
}


@extend_schema(tags=["workflows"])
class WorkflowRunStartView(GenericAPIView[Workflow]):
    """Starts a run of a workflow whose project you may run in (the runner role or above; staff: any); a workflow
    of a project you are not a member of, or a deleted one, is a 404."""

    serializer_class = RunStartSerializer
    permission_classes = [IsAuthenticated, ProjectRole]
    project_actions = {"post": Action.RUN}

    def get_queryset(self) -> QuerySet[Workflow]:
        if getattr(self, "swagger_fake_view", False):  # drf-spectacular reading the view: no user
            return Workflow.objects.none()
        return Workflow.objects.alive().visible_to(self.request.user)

    @extend_schema(
        request=RunStartSerializer,
        responses=_RUN_START_RESPONSES,
        description="Start a run of the workflow's current graph. Rate-limited per user (FLOWNOVA_RUN_START_RATE).",
    )
    def post(self, request: Request, pk: str | None = None) -> Response:
        workflow = self.get_object()
        body = RunStartSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            with run_start_limited():
                run = run_start(
                    workflow=workflow,
                    input=body.validated_data["input"],
                    user=signed_in_user(request),
                    trigger={"type": RunTrigger.API.value},
                )
        except RunInputError as exc:
            raise serializers.ValidationError({"input": exc.errors}) from None
        return Response(RunSerializer(run).data, status=status.HTTP_201_CREATED)


_NOT_YOURS = "Runs of projects you are not a member of are not found (404), unless you are staff."


VERSION_CHOICES = [("same", "the graph version the run executed"), ("current", "the workflow as it is now")]


class RerunSerializer(StrictFieldsMixin, serializers.Serializer[Any]):
    version = serializers.ChoiceField(choices=VERSION_CHOICES, default="same")


class ResumeSerializer(StrictFieldsMixin, serializers.Serializer[Any]):
    node_id = serializers.RegexField(r"^[A-Za-z0-9_-]{1,64}$", help_text="The node to execute from.")
    version = serializers.ChoiceField(choices=VERSION_CHOICES, default="same")
    input = JSONObjectField(required=False, help_text="The input for `node_id` (default: as recorded).")
    reexecute = serializers.ListField(
        child=serializers.RegexField(r"^[A-Za-z0-9_-]{1,64}$"),
        default=list,
        max_length=500,
        help_text="Earlier nodes to execute again instead of reusing their recorded result.",
    )


class ResumedSerializer(RunSerializer):
    reused = serializers.ListField(child=serializers.CharField(), read_only=True)
    warnings = serializers.ListField(child=serializers.CharField(), read_only=True)

    class Meta(RunSerializer.Meta):
        fields = [*RunSerializer.Meta.fields, "reused", "warnings"]


class TraceStepSerializer(serializers.Serializer[Any]):
    seq = serializers.IntegerField()
    node_id = serializers.CharField()
    node_type = serializers.CharField()
    status = serializers.CharField()
    attempt = serializers.IntegerField()
    reused = serializers.BooleanField()
    input = serializers.JSONField(allow_null=True)
    output = serializers.JSONField(allow_null=True)
    error = serializers.CharField(allow_blank=True)
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    tool_calls = serializers.JSONField()
    llm_usage = serializers.JSONField(allow_null=True)


class TraceSerializer(serializers.Serializer[Any]):
    run = serializers.IntegerField()
    workflow = serializers.IntegerField(allow_null=True)
    workflow_name = serializers.CharField(allow_blank=True)
    workflow_version = serializers.IntegerField()
    status = serializers.CharField()
    graph = serializers.JSONField()
    path = serializers.ListField(child=serializers.CharField())
    steps = TraceStepSerializer(many=True)
    children = serializers.ListField(child=serializers.IntegerField())


class CompareQuerySerializer(serializers.Serializer[Any]):
    a = serializers.IntegerField(min_value=1, help_text="The first run.")
    b = serializers.IntegerField(min_value=1, help_text="The second run.")


class NodeComparisonSerializer(serializers.Serializer[Any]):
    node_id = serializers.CharField()
    node_type = serializers.CharField()
    status = serializers.ListField(child=serializers.CharField(allow_null=True))
    reused = serializers.ListField(child=serializers.BooleanField())
    changed = serializers.BooleanField()
    output_diff = serializers.ListField(child=serializers.JSONField(), help_text="JSON Patch (RFC 6902)")


class CompareSerializer(serializers.Serializer[Any]):
    runs = serializers.ListField(child=serializers.IntegerField())
    status = serializers.ListField(child=serializers.CharField())
    output_diff = serializers.ListField(child=serializers.JSONField())
    nodes = NodeComparisonSerializer(many=True)


@extend_schema(tags=["runs"])
class RunViewSet(viewsets.ReadOnlyModelViewSet[Run]):
    """The runs of your projects (staff: every run), newest first. Cancelling, re-running and resuming need the
    runner role in the run's project."""

    serializer_class = RunSerializer
    permission_classes = [IsAuthenticated, ProjectRole]
    project_actions = {"cancel": Action.RUN, "rerun": Action.RUN, "resume": Action.RUN}

    def get_queryset(self) -> QuerySet[Run]:
        if getattr(self, "swagger_fake_view", False):  # drf-spectacular reading the view: no user
            return Run.objects.none()
        return Run.objects.visible_to(self.request.user).select_related("owner", "workflow")

    def filter_queryset(self, queryset: QuerySet[Run, _Row]) -> QuerySet[Run, _Row]:
        if self.action != "list":
            return queryset
        filters = RunFilterSerializer(data=query_dict(self.request))
        filters.is_valid(raise_exception=True)
        wanted = filters.validated_data
        if "workflow" in wanted:
            queryset = queryset.filter(workflow_id=wanted["workflow"])
        if "project" in wanted:
            queryset = queryset.filter(project_id=wanted["project"])
        if "status" in wanted:
            queryset = queryset.filter(status=wanted["status"])
        if "created_after" in wanted:
            queryset = queryset.filter(created_at__gte=wanted["created_after"])
        if "created_before" in wanted:
            queryset = queryset.filter(created_at__lt=wanted["created_before"])
        if "trigger" in wanted:
            queryset = queryset.filter(trigger__type=wanted["trigger"])
        if "trigger_id" in wanted:
            queryset = queryset.filter(trigger__id=wanted["trigger_id"])
        return queryset

    @extend_schema(
        parameters=[RunFilterSerializer],
        description="Paginated; filter by workflow, status, date and how the runs started (`trigger`, `trigger_id`).",
    )
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)

    @extend_schema(description=f"The run. {_NOT_YOURS}")
    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().retrieve(request, *args, **kwargs)

    @extend_schema(
        parameters=[LedgerQuerySerializer],
        responses={200: LedgerEntrySerializer(many=True)},
        description=(
            "The run's ledger: one entry per node execution, in `seq` order. The answer is a plain list, as the "
            f"contract says, of at most `limit` entries (default {LEDGER_DEFAULT_LIMIT}); when more follow, a "
            '`Link: <...?after=N>; rel="next"` header gives the next page\'s URL.'
        ),
    )
    @action(detail=True, methods=["get"], pagination_class=None)
    def ledger(self, request: Request, pk: str | None = None) -> Response:
        run = self.get_object()
        query = LedgerQuerySerializer(data=query_dict(request))
        query.is_valid(raise_exception=True)
        after, limit = query.validated_data["after"], query.validated_data["limit"]
        entries = list(LedgerEntry.objects.filter(run=run, seq__gt=after).order_by("seq")[: limit + 1])
        headers = {}
        if len(entries) > limit:
            entries = entries[:limit]
            next_query = urlencode({"after": entries[-1].seq, "limit": limit})
            headers["Link"] = f'<{request.build_absolute_uri(request.path)}?{next_query}>; rel="next"'
        return Response(LedgerEntrySerializer(entries, many=True).data, headers=headers)

    @extend_schema(
        request=None,
        responses={200: RunSerializer, 409: error_response("The run already ended.")},
        description="Stop the run: no new node starts (a node already executing finishes, its successors don't).",
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str | None = None) -> Response:
        run = self.get_object()
        try:
            run_cancel(run=run, user=signed_in_user(request))
        except RunFinishedError as exc:
            raise Conflict(str(exc)) from None
        return Response(RunSerializer(self.get_queryset().get(pk=run.pk)).data)

    @extend_schema(
        request=RerunSerializer,
        responses={
            201: RunSerializer,
            409: error_response("The workflow was deleted, or the run's input is not valid for that version."),
            429: error_response("Too many run starts; `Retry-After` says how many seconds to wait."),
        },
        description=(
            "Start a new run with the same input: of the same workflow version this run executed (`version`: "
            '"same", the default) or of the workflow as it is now ("current"). The new run\'s `source_run` is '
            "this run. Counts against the run-start rate limit."
        ),
    )
    @action(detail=True, methods=["post"])
    def rerun(self, request: Request, pk: str | None = None) -> Response:
        run = self.get_object()
        body = RerunSerializer(data=request.data or {})
        body.is_valid(raise_exception=True)
        workflow = self.live_workflow(run)
        snapshot = run if body.validated_data["version"] == "same" else None
        try:
            with run_start_limited():
                new_run = run_start(
                    workflow=workflow,
                    input=run.input,
                    user=signed_in_user(request),
                    source_run=run,
                    snapshot=snapshot,
                    trigger={"type": RunTrigger.RERUN.value},
                )
        except RunInputError as exc:
            raise Conflict(
                {
                    "detail": f"Run {run.pk}'s input is not valid for that version of the workflow: {exc}",
                    "input": exc.errors,
                }
            ) from None
        return Response(RunSerializer(new_run).data, status=status.HTTP_201_CREATED)

    def live_workflow(self, run: Run) -> Workflow:
        if run.parent_id is not None:
            # Its graph was designed inside the parent's node; on its own it has no workflow version to run.
            raise Conflict(
                f"Run {run.pk} is the workflow that node {run.parent_node_id!r} of run {run.parent_id} designed; "
                f"replay run {run.parent_id} instead (resume it from node {run.parent_node_id!r})."
            )
        workflow = None
        if run.workflow_id is not None:  # None: the workflow was deleted for good
            workflow = Workflow.objects.alive().visible_to(self.request.user).filter(pk=run.workflow_id).first()
        if workflow is None:
            raise Conflict(f"The workflow of run {run.pk} was deleted, so the run can't be repeated.")
        return workflow

    @extend_schema(
        request=ResumeSerializer,
        responses={
            201: ResumedSerializer,
            400: error_response("The node is not in the workflow, or the body is not valid."),
            409: error_response("The workflow was deleted."),
            429: error_response("Too many run starts; `Retry-After` says how many seconds to wait."),
        },
        description=(
            "Start a new run from `node_id`: every node that finished before it in this run is reused (its "
            "recorded result is copied, marked `reused` in the ledger, and no LLM or tool call is repeated), and "
            'execution goes on from `node_id`, with `input` for that node if given. `version`: "same" (this '
            'run\'s graph) or "current" (the workflow as it is now, e.g. after fixing a failed node). Nodes that '
            "act on the world (tools, agents) are reused too unless named in `reexecute`; `warnings` lists them."
        ),
    )
    @action(detail=True, methods=["post"])
    def resume(self, request: Request, pk: str | None = None) -> Response:
        run = self.get_object()
        body = ResumeSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        self.live_workflow(run)
        wanted = body.validated_data
        try:
            with run_start_limited():
                resumed = run_resume(
                    source=run,
                    node_id=wanted["node_id"],
                    user=signed_in_user(request),
                    current_version=wanted["version"] == "current",
                    input=wanted.get("input"),
                    reexecute=frozenset(wanted["reexecute"]),
                )
        except RunInputError as exc:
            raise serializers.ValidationError({"node_id": exc.errors}) from None
        data = {**RunSerializer(resumed.run).data, "reused": resumed.reused, "warnings": resumed.warnings}
        return Response(data, status=status.HTTP_201_CREATED)

    @extend_schema(
        responses={200: TraceSerializer},
        description=(
            "The path the run took and the data at every step, rebuilt from the ledger alone, with the graph "
            "snapshot it executed: it works after the workflow was edited or deleted."
        ),
    )
    @action(detail=True, methods=["get"])
    def trace(self, request: Request, pk: str | None = None) -> Response:
        return Response(run_trace(self.get_object()))

    @extend_schema(
        parameters=[CompareQuerySerializer],
        responses={200: CompareSerializer, 404: error_response("Either run does not exist or is not yours.")},
        description="Compare two runs you can see, node by node: statuses and the JSON Patch between outputs.",
    )
    @action(detail=False, methods=["get"], pagination_class=None)
    def compare(self, request: Request) -> Response:
        query = CompareQuerySerializer(data=query_dict(request))
        query.is_valid(raise_exception=True)
        runs = self.get_queryset()
        first = runs.filter(pk=query.validated_data["a"]).first()
        second = runs.filter(pk=query.validated_data["b"]).first()
        if first is None or second is None:
            raise NotFound("No such run.")
        return Response(runs_compare(first, second))


class UsageQuerySerializer(serializers.Serializer[Any]):
    group_by = serializers.ChoiceField(choices=["workflow", "model", "day"], default="workflow")
    since = serializers.DateField(required=False, help_text="First day (ISO 8601), inclusive.")
    until = serializers.DateField(required=False, help_text="Last day (ISO 8601), inclusive.")


class UsageRowSerializer(serializers.Serializer[Any]):
    workflow_id = serializers.IntegerField(required=False, allow_null=True)
    workflow_name = serializers.CharField(required=False)
    model = serializers.CharField(required=False, allow_null=True)
    day = serializers.DateField(required=False, allow_null=True)
    calls = serializers.IntegerField()
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    total_tokens = serializers.IntegerField()
    cost_usd = serializers.FloatField(allow_null=True, help_text="null when no call in the group had a price")
    unpriced_entries = serializers.IntegerField(help_text="entries whose model LiteLLM could not price")


class UsageSerializer(serializers.Serializer[Any]):
    group_by = serializers.CharField()
    results = UsageRowSerializer(many=True)
    total = UsageRowSerializer()


class UsageView(APIView):
    """LLM tokens and cost from the ledger, per workflow, model or day, over the runs the user may see."""

    @extend_schema(parameters=[UsageQuerySerializer], responses={200: UsageSerializer})
    def get(self, request: Request) -> Response:
        query = UsageQuerySerializer(data=query_dict(request))
        query.is_valid(raise_exception=True)
        return Response(usage_summary(user=request.user, **query.validated_data))
