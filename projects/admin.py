"""Projects, their members and the audit log in the admin (staff only, like the whole admin). Members are shown,
not edited: they are managed on the project's page or through the API, whose services refuse what would leave
a project without an admin and record every change in the audit log."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from projects.models import AuditEntry, Membership, Project


class MembershipInline(admin.TabularInline[Membership, Project]):
    model = Membership
    extra = 0
    raw_id_fields = ("user",)
    fields = ("user", "role", "created_at", "updated_at")
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin[Project]):
    list_display = ("name", "personal_of", "created_by", "created_at")
    search_fields = ("name", "personal_of__username", "memberships__user__username")
    list_select_related = ("personal_of", "created_by")
    raw_id_fields = ("personal_of", "created_by")
    readonly_fields = ("created_at",)
    inlines = (MembershipInline,)


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
