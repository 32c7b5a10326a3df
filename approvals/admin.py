from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from approvals.models import ApprovalRequest, ApprovalStatus
from approvals.services import ApprovalAlreadyDecided, ApprovalError, approval_decide
from flownova.users import signed_in_user


@admin.register(ApprovalRequest)
class ApprovalRequestAdmin(admin.ModelAdmin[ApprovalRequest]):
    list_display = ("id", "run", "node_id", "message", "status", "decision", "decided_by", "deadline", "created_at")
    list_filter = ("status", "decision", "decided_by_timeout", "created_at")
    search_fields = ("=run__id", "node_id", "message", "comment", "decided_by__username")
    date_hierarchy = "created_at"
    list_select_related = ("run", "decided_by")
    raw_id_fields = ("run",)
    filter_horizontal = ("assignee_users", "assignee_groups")
    readonly_fields = (
        "run",
        "node_id",
        "message",
        "data",
        "status",
        "decision",
        "comment",
        "decided_by",
        "decided_at",
        "decided_by_timeout",
        "deadline_timer_sent",
        "edits",
        "created_at",
    )
    actions = ("approve", "reject")

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False  # requests are opened by runs, never by hand

    @admin.action(description="Approve the selected pending requests…")
    def approve(self, request: HttpRequest, queryset: QuerySet[ApprovalRequest]) -> HttpResponse | None:
        return self.decide(request, queryset, "approved")

    @admin.action(description="Reject the selected pending requests…")
    def reject(self, request: HttpRequest, queryset: QuerySet[ApprovalRequest]) -> HttpResponse | None:
        return self.decide(request, queryset, "rejected")

    def decide(self, request: HttpRequest, queryset: QuerySet[ApprovalRequest], decision: str) -> HttpResponse | None:
        """First a page that shows the requests and asks for a comment, then the decisions, each through the
        same service as the inbox and the API (so permissions and the single-winner rule hold here too)."""
        pending = queryset.filter(status=ApprovalStatus.PENDING)
        if "apply" not in request.POST:
            context = {
                **self.admin_site.each_context(request),
                "title": "Approve the selected requests" if decision == "approved" else "Reject the selected requests",
                "decision": decision,
                "action": "approve" if decision == "approved" else "reject",
                "requests": pending.select_related("run"),
                "skipped": queryset.count() - pending.count(),
                "opts": self.model._meta,
                "action_checkbox_name": ACTION_CHECKBOX_NAME,
            }
            return TemplateResponse(request, "admin/approvals/approvalrequest/decide.html", context)
        comment = request.POST.get("comment", "")
        user = signed_in_user(request)
        done, refused = 0, []
        for approval in pending:
            try:
                approval_decide(approval_id=approval.pk, user=user, decision=decision, comment=comment)
                done += 1
            except ApprovalAlreadyDecided:
                refused.append(f"{approval.pk} (decided meanwhile)")
            except ApprovalError as exc:
                refused.append(f"{approval.pk} ({exc})")
        self.message_user(request, f"{done} request(s) {decision}.", messages.SUCCESS)
        if refused:
            self.message_user(request, f"Not decided: {', '.join(refused)}", messages.WARNING)
        return None
