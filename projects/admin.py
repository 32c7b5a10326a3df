from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from projects.models import AuditEntry


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin[AuditEntry]):
    """The audit log, to read: entries are written by the services and refused change or deletion by PostgreSQL
    (projects migration 0003), so the admin offers neither."""

    list_display = ("created_at", "actor_name", "action", "object_type", "object_id", "object_repr", "project_id")
    list_filter = ("action", "object_type")
    search_fields = ("summary", "object_repr", "actor_name")
    date_hierarchy = "created_at"
    readonly_fields = [field.name for field in AuditEntry._meta.fields]
    actions = None

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
