from django.contrib import admin

from approvals.models import ApprovalRequest


@admin.register(ApprovalRequest)
class ApprovalRequestAdmin(admin.ModelAdmin):
    list_display = ("id", "run", "node_id", "status", "decision", "decided_by", "deadline", "created_at")
    list_filter = ("status", "decision", "decided_by_timeout", "created_at")
    search_fields = ("=run__id", "node_id", "message", "comment", "decided_by__username")
    date_hierarchy = "created_at"
    list_select_related = ("run", "decided_by")
    raw_id_fields = ("run",)
    filter_horizontal = ("assignee_users", "assignee_groups")
    readonly_fields = (
        "run",
        "node_id",
        "status",
        "decision",
        "decided_by",
        "decided_at",
        "decided_by_timeout",
        "edits",
        "created_at",
    )
