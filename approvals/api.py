"""The approvals API (docs/CONTRACT.md, REST API): the requests a user may see, and deciding one.

Who sees a request: staff see all; anyone else sees the requests they are a named assignee of, those
assigned to one of their groups, and, for a request with no assignee at all, those of the workflows they own
(of the runs they own, if the workflow was deleted for good). That is who may decide it, except that a
request with `allow_self_approval` off can't be decided by the run's own starter: they see it (403 on
decide). A request nobody lets the user see is a 404.
"""

from __future__ import annotations

from typing import Any, TypeVar

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response

from approvals.models import ApprovalRequest, ApprovalStatus, Decision
from approvals.selectors import approvals_visible_to
from approvals.services import (
    ApprovalAlreadyDecided,
    ApprovalError,
    ApprovalForbidden,
    approval_can_decide,
    approval_decide,
)
from flownova.api_base import StrictFieldsMixin, error_response, query_dict
from flownova.users import signed_in_user
from runs.api import Conflict, JSONObjectField, NullableObjectField
from runs.services import RunError

__all__ = ["ApprovalSerializer", "ApprovalViewSet", "approvals_visible_to"]

_Row = TypeVar("_Row")  # what a queryset yields: DRF's filter_queryset keeps it


@extend_schema_field({"type": "array", "items": {"type": "string"}})
class AssigneesField(serializers.Field[ApprovalRequest, object, list[str], ApprovalRequest]):
    """Usernames, then group names: the names the node's `assignees` config gave."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(source="*", read_only=True, **kwargs)

    def to_representation(self, approval: ApprovalRequest) -> list[str]:
        users = sorted(user.get_username() for user in approval.assignee_users.all())
        return users + sorted(group.name for group in approval.assignee_groups.all())


class ApprovalSerializer(serializers.ModelSerializer[ApprovalRequest]):
    """An approval request: the contract's fields, then extras (what to show, the decision, may I decide)."""

    assignees = AssigneesField(help_text="Usernames and group names; empty means the workflow's owner.")
    workflow = serializers.IntegerField(source="run.workflow_id", read_only=True, allow_null=True)
    decided_by = serializers.CharField(source="decided_by.username", read_only=True, allow_null=True, default=None)
    decision = serializers.ChoiceField(choices=Decision.choices, allow_blank=True, read_only=True)
    editable_fields = serializers.ListField(
        child=serializers.CharField(), read_only=True, help_text="Fields of `data` an approver may change."
    )
    edits = NullableObjectField(
        read_only=True, help_text="The approver's changes: `{by, changes: {field: {from, to}}}`."
    )
    can_decide = serializers.SerializerMethodField(help_text="Whether you may decide it (while it is pending).")

    class Meta:
        model = ApprovalRequest
        fields = [
            "id",
            "run",
            "node_id",
            "message",
            "status",
            "assignees",
            "created_at",
            # extensions of the contract
            "workflow",
            "data",
            "deadline",
            "decision",
            "comment",
            "decided_by",
            "decided_at",
            "decided_by_timeout",
            "editable_fields",
            "edits",
            "can_decide",
        ]
        read_only_fields = fields
        # Not declared on the class, where it would read as Serializer.data to a type checker (DRF's metaclass
        # takes declared fields off the class); the model's JSONField gives the same field.
        extra_kwargs = {"data": {"help_text": "What the approver needs to see."}}

    def get_can_decide(self, approval: ApprovalRequest) -> bool:
        request = self.context.get("request")
        if request is None or approval.status != ApprovalStatus.PENDING:
            return False
        return approval_can_decide(approval=approval, user=request.user)


class ApprovalFilterSerializer(serializers.Serializer[Any]):
    """The approval list's filters (query parameters)."""

    status = serializers.ChoiceField(choices=ApprovalStatus.choices, required=False)
    run = serializers.IntegerField(required=False, min_value=1, help_text="Only the requests of this run.")


class DecisionSerializer(StrictFieldsMixin, serializers.Serializer[Any]):
    """A decision on an approval request; when approving, `edits` may change the request's editable fields."""

    decision = serializers.ChoiceField(choices=Decision.choices)
    comment = serializers.CharField(required=False, allow_blank=True, default="", max_length=10000)
    edits = JSONObjectField(
        required=False, help_text="Field -> new value, for fields listed in the request's `editable_fields`."
    )


@extend_schema(tags=["approvals"])
class ApprovalViewSet(viewsets.ReadOnlyModelViewSet[ApprovalRequest]):
    """Approval requests you may see, newest first."""

    serializer_class = ApprovalSerializer

    def get_queryset(self) -> QuerySet[ApprovalRequest]:
        if getattr(self, "swagger_fake_view", False):  # drf-spectacular reading the view: no user
            return ApprovalRequest.objects.none()
        return (
            approvals_visible_to(signed_in_user(self.request))
            .select_related("run", "run__workflow", "decided_by")
            .prefetch_related("assignee_users", "assignee_groups")
        )

    def filter_queryset(self, queryset: QuerySet[ApprovalRequest, _Row]) -> QuerySet[ApprovalRequest, _Row]:
        if self.action != "list":
            return queryset
        filters = ApprovalFilterSerializer(data=query_dict(self.request))
        filters.is_valid(raise_exception=True)
        wanted = filters.validated_data
        if "status" in wanted:
            queryset = queryset.filter(status=wanted["status"])
        if "run" in wanted:
            queryset = queryset.filter(run_id=wanted["run"])
        return queryset

    @extend_schema(parameters=[ApprovalFilterSerializer], description="Paginated; `?status=pending` for the inbox.")
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)

    @extend_schema(
        request=DecisionSerializer,
        responses={
            200: ApprovalSerializer,
            403: error_response("You may see this request but not decide it."),
            409: error_response("The request was already decided (or its run ended)."),
        },
        description="Approve or reject; the run resumes on the `approved` or `rejected` handle.",
    )
    @action(detail=True, methods=["post"], serializer_class=DecisionSerializer)
    def decide(self, request: Request, pk: str | None = None) -> Response:
        approval = self.get_object()
        body = DecisionSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            approval_decide(approval_id=approval.pk, user=signed_in_user(request), **body.validated_data)
        except ApprovalForbidden as exc:
            raise PermissionDenied(str(exc)) from None
        except ApprovalAlreadyDecided as exc:
            raise Conflict(str(exc)) from None
        except ApprovalError as exc:  # a decision or edits the request doesn't allow
            raise serializers.ValidationError(str(exc)) from None
        except RunError as exc:  # the node is no longer waiting: the run moved on without this decision
            raise Conflict(str(exc)) from None
        except ApprovalRequest.DoesNotExist:
            raise NotFound() from None
        return Response(ApprovalSerializer(self.get_queryset().get(pk=approval.pk), context={"request": request}).data)
