from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from workflows.models import Edge, Node, Workflow


class NodeInline(admin.TabularInline):
    model = Node
    extra = 0
    fields = ("order", "node_id", "type", "data", "position")


class EdgeInline(admin.TabularInline):
    model = Edge
    extra = 0
    fields = ("order", "edge_id", "source", "source_handle", "target")

    def formfield_for_foreignkey(self, db_field, request, **kwargs):  # type: ignore[no-untyped-def]
        # Offer only this workflow's nodes as edge ends.
        workflow_id = request.resolver_match.kwargs.get("object_id") if request.resolver_match else None
        if db_field.name in {"source", "target"}:
            kwargs["queryset"] = Node.objects.filter(workflow_id=workflow_id) if workflow_id else Node.objects.none()
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


@admin.register(Workflow)
class WorkflowAdmin(admin.ModelAdmin):
    list_display = ("name", "owner", "version", "node_count", "updated_at", "deleted_at")
    list_filter = (("deleted_at", admin.EmptyFieldListFilter), "owner", "updated_at")
    search_fields = ("name", "description", "owner__username")
    readonly_fields = ("version", "created_at", "updated_at")
    date_hierarchy = "updated_at"
    list_select_related = ("owner",)
    inlines = (NodeInline, EdgeInline)
    actions = ("soft_delete", "restore")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Workflow]:
        from django.db.models import Count

        return super().get_queryset(request).annotate(node_total=Count("nodes", distinct=True))

    @admin.display(description="nodes", ordering="node_total")
    def node_count(self, obj: Workflow) -> int:
        return obj.node_total  # type: ignore[attr-defined]

    @admin.action(description="Soft-delete the selected workflows (their runs are kept)")
    def soft_delete(self, request: HttpRequest, queryset: QuerySet[Workflow]) -> None:
        from django.utils import timezone

        updated = queryset.filter(deleted_at__isnull=True).update(deleted_at=timezone.now())
        self.message_user(request, f"{updated} workflow(s) soft-deleted.")

    @admin.action(description="Restore the selected soft-deleted workflows")
    def restore(self, request: HttpRequest, queryset: QuerySet[Workflow]) -> None:
        updated = queryset.filter(deleted_at__isnull=False).update(deleted_at=None)
        self.message_user(request, f"{updated} workflow(s) restored.")

    def save_model(self, request: HttpRequest, obj: Workflow, form, change: bool) -> None:  # type: ignore[no-untyped-def]
        from django.db.models import F

        if change:
            obj.version = F("version") + 1
        super().save_model(request, obj, form, change)
        obj.refresh_from_db(fields=["version"])


@admin.register(Node)
class NodeAdmin(admin.ModelAdmin):
    list_display = ("node_id", "type", "workflow")
    list_filter = ("type",)
    search_fields = ("node_id", "workflow__name")
    list_select_related = ("workflow",)
    raw_id_fields = ("workflow",)


@admin.register(Edge)
class EdgeAdmin(admin.ModelAdmin):
    list_display = ("edge_id", "workflow", "source", "source_handle", "target")
    list_filter = ("source_handle",)
    search_fields = ("edge_id", "workflow__name", "source__node_id", "target__node_id")
    list_select_related = ("workflow", "source", "target")
    raw_id_fields = ("workflow", "source", "target")
