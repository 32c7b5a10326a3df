from django.contrib import admin

from tools.models import Tool, ToolCall


@admin.register(Tool)
class ToolAdmin(admin.ModelAdmin):
    list_display = ("name", "owner", "method", "url", "is_active", "has_secret_headers", "updated_at")
    list_filter = ("method", "is_active")
    search_fields = ("name", "description", "url", "owner__username")
    list_select_related = ("owner",)
    readonly_fields = ("created_at", "updated_at")

    @admin.display(boolean=True, description="secrets")
    def has_secret_headers(self, obj: Tool) -> bool:
        return obj.has_secret_headers


@admin.register(ToolCall)
class ToolCallAdmin(admin.ModelAdmin):
    list_display = ("tool_name", "method", "status_code", "duration_ms", "run", "node_id", "created_at")
    list_filter = ("method", "status_code")
    search_fields = ("tool_name", "url", "node_id", "=run__id", "error")
    date_hierarchy = "created_at"
    raw_id_fields = ("tool", "run")

    def has_add_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False
