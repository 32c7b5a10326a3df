from __future__ import annotations

from typing import TypedDict

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django_stubs_ext import WithAnnotations

from flownova.users import signed_in_user
from workflows.models import Edge, Node, Workflow
from workflows.services import workflow_soft_delete, workflow_undelete, workflow_update


class _NodeTotal(TypedDict):
    node_total: int  # WorkflowAdmin.get_queryset's annotation


class GraphViewOnlyMixin:
    """The graph is shown in the admin but edited through the API or the editor, where it is validated as a
    whole (a single edited edge could leave an invalid graph behind)."""

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class NodeInline(GraphViewOnlyMixin, admin.TabularInline[Node, Workflow]):
    model = Node
    extra = 0
    can_delete = False
    fields = ("order", "node_id", "type", "data", "position")
    readonly_fields = fields


class EdgeInline(GraphViewOnlyMixin, admin.TabularInline[Edge, Workflow]):
    model = Edge
    extra = 0
    can_delete = False
    fields = ("order", "edge_id", "source", "source_handle", "target")
    readonly_fields = fields


@admin.register(Workflow)
class WorkflowAdmin(admin.ModelAdmin[Workflow]):
    list_display = ("name", "project", "owner", "version", "node_count", "updated_at", "deleted_at")
    list_filter = (("deleted_at", admin.EmptyFieldListFilter), "project", "owner", "updated_at")
    search_fields = ("name", "description", "owner__username", "project__name")
    # Only the name and description are edited here; a workflow stays in its project, and deleting or bringing
    # one back is an action of the list.
    readonly_fields = ("project", "owner", "version", "deleted_at", "created_at", "updated_at")
    date_hierarchy = "updated_at"
    list_select_related = ("owner", "project")
    inlines = (NodeInline, EdgeInline)
    actions = ("soft_delete", "restore")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Workflow]:
        from django.db.models import Count

        return super().get_queryset(request).annotate(node_total=Count("nodes", distinct=True))

    @admin.display(description="nodes", ordering="node_total")
    def node_count(self, obj: WithAnnotations[Workflow, _NodeTotal]) -> int:
        return obj.node_total

    @admin.action(description="Soft-delete the selected workflows (their runs are kept)")
    def soft_delete(self, request: HttpRequest, queryset: QuerySet[Workflow]) -> None:
        by = signed_in_user(request)
        updated = sum(workflow_soft_delete(workflow=workflow, by=by) for workflow in queryset)
        self.message_user(request, f"{updated} workflow(s) soft-deleted.")

    @admin.action(description="Restore the selected soft-deleted workflows")
    def restore(self, request: HttpRequest, queryset: QuerySet[Workflow]) -> None:
        by = signed_in_user(request)
        updated = sum(workflow_undelete(workflow=workflow, by=by) for workflow in queryset)
        self.message_user(request, f"{updated} workflow(s) restored.")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # a workflow is drawn in the editor or posted to the API, which check its graph

    def save_model(self, request: HttpRequest, obj: Workflow, form: forms.ModelForm[Workflow], change: bool) -> None:
        # Through the service, like the API: the version goes up, its document is kept, the change is audited.
        saved = workflow_update(
            workflow=obj,
            name=obj.name,
            description=obj.description,
            by=signed_in_user(request),
            message="Changed in the admin",
        )
        obj.version, obj.updated_at = saved.version, saved.updated_at


@admin.register(Node)
class NodeAdmin(GraphViewOnlyMixin, admin.ModelAdmin[Node]):
    list_display = ("node_id", "type", "workflow")
    list_filter = ("type",)
    search_fields = ("node_id", "workflow__name")
    list_select_related = ("workflow",)
    raw_id_fields = ("workflow",)


@admin.register(Edge)
class EdgeAdmin(GraphViewOnlyMixin, admin.ModelAdmin[Edge]):
    list_display = ("edge_id", "workflow", "source", "source_handle", "target")
    list_filter = ("source_handle",)
    search_fields = ("edge_id", "workflow__name", "source__node_id", "target__node_id")
    list_select_related = ("workflow", "source", "target")
    raw_id_fields = ("workflow", "source", "target")
