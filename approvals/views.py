"""The approvals inbox (issue 6) and deciding from a page.

The inbox lists the pending requests the user may see (`approvals_visible_to`); the header's badge and the
list are parts of the same view, picked by `HX-Target`. Deciding goes through `approval_decide` only; its
refusals become messages with their HTTP status (403 not yours to decide, 409 already decided), never a 500.
A request the user may not see is a 404 whatever they post.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from approvals.models import ApprovalRequest, ApprovalStatus, Decision
from approvals.selectors import approvals_visible_to
from approvals.services import (
    ApprovalAlreadyDecided,
    ApprovalError,
    ApprovalForbidden,
    approval_can_decide,
    approval_decide,
)
from runs.models import Run
from runs.services import RunError
from runs.views import run_context
from workflows.views import htmx_partial, pretty_json

INBOX_PARTS = {
    "approvals-list": "approvals/_list.html",
    "approvals-count": "approvals/_count.html",
}


def pending_for(request: HttpRequest) -> QuerySet[ApprovalRequest]:
    return approvals_visible_to(request.user).filter(status=ApprovalStatus.PENDING)


def inbox_context(request: HttpRequest, *, notice: dict[str, str] | None = None) -> dict[str, Any]:
    pending = list(
        pending_for(request)
        .select_related("run", "run__workflow", "run__owner")
        .prefetch_related("assignee_users", "assignee_groups")
    )
    for approval in pending:
        approval.can_decide = approval_can_decide(approval=approval, user=request.user)
        approval.data_json = pretty_json(approval.data)
    return {"approvals": pending, "pending_count": len(pending), "notice": notice}


@login_required
@require_GET
def inbox(request: HttpRequest) -> HttpResponse:
    part = INBOX_PARTS.get(request.htmx.target or "") if htmx_partial(request) else None
    if part == "approvals/_count.html":
        # The badge on every page: one COUNT, not the whole list.
        return render(request, part, {"pending_count": pending_for(request).count()})
    return render(request, part or "approvals/inbox.html", inbox_context(request))


def _decide(request: HttpRequest, approval: ApprovalRequest) -> tuple[int, dict[str, str]]:
    """Call the service; return the HTTP status and the message to show."""
    decision = request.POST.get("decision", "")
    comment = request.POST.get("comment", "").strip()[:10000]
    if decision not in Decision.values:
        return 400, {"level": "error", "text": "Choose approve or reject."}
    try:
        approval_decide(approval_id=approval.pk, user=request.user, decision=decision, comment=comment)
    except ApprovalForbidden:
        return 403, {"level": "error", "text": "You may see this request but you may not decide it."}
    except ApprovalAlreadyDecided:
        approval.refresh_from_db(fields=["status", "decided_by"])
        by = f" by {approval.decided_by}" if approval.decided_by else ""
        return 409, {"level": "warning", "text": f"Already decided{by}: {approval.status}."}
    except ApprovalError as exc:  # a decision or edits the request does not allow
        return 400, {"level": "error", "text": str(exc)}
    except RunError as exc:  # the node stopped waiting: the run moved on (cancelled, failed) without us
        return 409, {"level": "warning", "text": f"The run is no longer waiting for this decision: {exc}"}
    verb = "Approved" if decision == Decision.APPROVED else "Rejected"
    return 200, {"level": "success", "text": f"{verb}: the run resumes."}


@login_required
@require_POST
def decide(request: HttpRequest, pk: int) -> HttpResponse:
    """Decide from the inbox or from a run page. HTMX requests get back the part they came from (the inbox
    list, or the run's approvals) with the outcome in it; plain form posts are redirected with a message, or
    shown the refusal with its status."""
    approval = get_object_or_404(approvals_visible_to(request.user).select_related("run"), pk=pk)
    status, notice = _decide(request, approval)
    if htmx_partial(request):
        if request.htmx.target == "run-approvals":
            run = Run.objects.visible_to(request.user).filter(pk=approval.run_id).first()
            if run is not None:
                context = run_context(request, run) | {"notice": notice}
                return render(request, "runs/_approvals.html", context, status=status)
        return render(request, "approvals/_list.html", inbox_context(request, notice=notice), status=status)
    if status != 200:
        return render(request, "approvals/refused.html", {"approval": approval, "notice": notice}, status=status)
    messages.success(request, notice["text"])
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(target, {request.get_host()}, require_https=request.is_secure()):
        target = ""
    return redirect(target or "approval_inbox")
