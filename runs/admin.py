from django.contrib import admin
from django.http import HttpRequest

from runs.models import LedgerEntry, NodeRun, Run, RunEvent


class ReadOnlyAdminMixin:
    """Records the engine writes: visible to operators, never edited by hand."""

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class NodeRunInline(ReadOnlyAdminMixin, admin.TabularInline[NodeRun, Run]):
    model = NodeRun
    extra = 0
    fields = ("node_id", "node_type", "status", "handle", "attempts", "started_at", "finished_at", "error")
    readonly_fields = fields
    can_delete = False


class LedgerInline(ReadOnlyAdminMixin, admin.TabularInline[LedgerEntry, Run]):
    model = LedgerEntry
    extra = 0
    fields = ("seq", "node_id", "node_type", "status", "duration_ms", "error")
    readonly_fields = fields
    can_delete = False
    ordering = ("seq",)


@admin.register(Run)
class RunAdmin(ReadOnlyAdminMixin, admin.ModelAdmin[Run]):
    list_display = (
        "id",
        "workflow_name",
        "workflow_version",
        "project",
        "owner",
        "status",
        "created_at",
        "finished_at",
    )
    list_filter = ("status", "created_at")
    search_fields = ("=id", "workflow_name", "owner__username", "error")
    date_hierarchy = "created_at"
    list_select_related = ("owner", "project")
    raw_id_fields = ("workflow", "project", "parent", "source_run")
    inlines = (NodeRunInline, LedgerInline)


@admin.register(NodeRun)
class NodeRunAdmin(ReadOnlyAdminMixin, admin.ModelAdmin[NodeRun]):
    list_display = ("run", "node_id", "node_type", "status", "attempts", "started_at", "finished_at")
    list_filter = ("status", "node_type")
    search_fields = ("=run__id", "node_id")
    raw_id_fields = ("run",)


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin[LedgerEntry]):
    list_display = ("run", "seq", "node_id", "node_type", "status", "duration_ms", "reused", "finished_at")
    list_filter = ("status", "node_type", "reused")
    search_fields = ("=run__id", "node_id", "error")
    raw_id_fields = ("run",)

    def has_delete_permission(self, request: HttpRequest, obj: LedgerEntry | None = None) -> bool:
        return False


@admin.register(RunEvent)
class RunEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin[RunEvent]):
    list_display = ("run", "seq", "type", "node_id", "ts")
    list_filter = ("type",)
    search_fields = ("=run__id", "node_id")
    raw_id_fields = ("run",)
