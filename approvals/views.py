"""The approvals inbox and deciding from a page.

The inbox lists the pending requests the user may see (`approvals_visible_to`), a page at a time, and the
last decisions they may see; the header's badge, the list and the recent decisions are parts of the same view,
picked by `HX-Target`. Deciding goes through `approval_decide` only; its refusals become messages with their
HTTP status (400 a bad decision or edit, 403 not yours to decide, 409 already decided), never a 500. A request
the user may not see is a 404 whatever they post.

Edits: when a request names `editable_fields`, its form has one `edit__<field>` input per field holding the
value as JSON. They count only when approving (the service refuses edits on a rejection, so a rejection
ignores them); a value that is not JSON, or holds what can't be stored, is refused naming its field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from approvals.models import ApprovalRequest, ApprovalStatus, Decision
from approvals.selectors import approvals_recently_decided, approvals_visible_to
from approvals.services import (
    ApprovalAlreadyDecided,
    ApprovalError,
    ApprovalForbidden,
    approval_can_decide,
    approval_decide,
)
from approvals.templatetags.approval_panel import PANEL_TEMPLATE, run_approvals_context
from flownova.jsonbody import JSONInputError, parse_json
from flownova.pages import HtmxHttpRequest, htmx_partial, pretty_json
from flownova.users import signed_in_user
from runs.models import Run
from runs.services import RunError

APPROVALS_PER_PAGE = 25
RECENT_DECISIONS = 10
EDIT_PREFIX = "edit__"

INBOX_PARTS = {
    "approvals-list": "approvals/_list.html",
    "approvals-count": "approvals/_count.html",
    "approvals-recent": "approvals/_recent.html",
}


def pending_for(request: HttpRequest) -> QuerySet[ApprovalRequest]:
    return approvals_visible_to(signed_in_user(request)).filter(status=ApprovalStatus.PENDING)


def inbox_context(
    request: HttpRequest,
    *,
    page_number: str | None = None,
    notice: dict[str, str] | None = None,
    edit_error: dict[str, Any] | None = None,
) -> dict[str, Any]:
    pending = (
        pending_for(request)
        .select_related("run", "run__workflow", "run__owner")
        .prefetch_related("assignee_users", "assignee_groups")
    )
    # get_page: a page past the end (the last request on the last page was just decided) shows the last one.
    page = Paginator(pending, APPROVALS_PER_PAGE).get_page(page_number)
    approvals = list(page.object_list)
    for approval in approvals:
        approval.can_decide = approval_can_decide(approval=approval, user=request.user)
        approval.data_json = pretty_json(approval.data)
    inbox_url = reverse("approval_inbox")
    return {
        "approvals": approvals,
        "page": page,
        "pending_count": page.paginator.count,
        # Without JavaScript a decision redirects here: back to the page of the inbox it was made on.
        "next_url": f"{inbox_url}?page={page.number}" if page.number > 1 else inbox_url,
        "notice": notice,
        "edit_error": edit_error,
        # Lazy: only the parts that show it run the query.
        "recent": approvals_recently_decided(signed_in_user(request), limit=RECENT_DECISIONS),
    }


@login_required
@require_GET
def inbox(request: HtmxHttpRequest) -> HttpResponse:
    part = INBOX_PARTS.get(request.htmx.target or "") if htmx_partial(request) else None
    if part == "approvals/_count.html":
        # The badge on every page: one COUNT, not the whole list.
        return render(request, part, {"pending_count": pending_for(request).count()})
    context = inbox_context(request, page_number=request.GET.get("page"))
    return render(request, part or "approvals/inbox.html", context)


@dataclass
class Outcome:
    status: int
    notice: dict[str, str]
    # The edit field at fault, for the form to mark: {approval, field, message}.
    edit_error: dict[str, Any] | None = field(default=None)


class EditInputError(ValueError):
    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field_name = field_name


def read_edits(request: HttpRequest) -> dict[str, Any]:
    """The posted `edit__<field>` values, each parsed as JSON. Which fields may change is the service's call."""
    edits: dict[str, Any] = {}
    for key in request.POST:
        if not key.startswith(EDIT_PREFIX):
            continue
        name, raw = key.removeprefix(EDIT_PREFIX), request.POST.get(key, "")
        if not raw.strip():
            raise EditInputError(name, f'Edit of "{name}": give a JSON value (null for none).')
        try:
            edits[name] = parse_json(raw)
        except JSONInputError as exc:
            if exc.decode_error is not None:
                reason = exc.decode_error.msg
                message = f'Edit of "{name}": not valid JSON ({reason}); text needs double quotes, e.g. "Ann".'
            else:  # JSON that can't be stored (NUL, NaN, 1e400...), or nested too deeply
                message = f'Edit of "{name}": {exc}'
            raise EditInputError(name, message) from exc
    return edits


def _decide(request: HttpRequest, approval: ApprovalRequest) -> Outcome:
    """Call the service; return the HTTP status and the message to show."""
    decision = request.POST.get("decision", "")
    comment = request.POST.get("comment", "").strip()[:10000]
    if decision not in Decision.values:
        return Outcome(400, {"level": "error", "text": "Choose approve or reject."})
    edits: dict[str, Any] = {}
    if decision == Decision.APPROVED:
        try:
            edits = read_edits(request)
        except EditInputError as exc:
            error = {"approval": approval.pk, "field": exc.field_name, "message": str(exc)}
            return Outcome(400, {"level": "error", "text": str(exc)}, error)
    try:
        approval_decide(
            approval_id=approval.pk,
            user=signed_in_user(request),
            decision=decision,
            comment=comment,
            edits=edits or None,
        )
    except ApprovalForbidden:
        return Outcome(403, {"level": "error", "text": "You may see this request but you may not decide it."})
    except ApprovalAlreadyDecided:
        approval.refresh_from_db(fields=["status", "decided_by"])
        by = f" by {approval.decided_by}" if approval.decided_by else ""
        return Outcome(409, {"level": "warning", "text": f"Already decided{by}: {approval.status}."})
    except ApprovalError as exc:  # a decision or edits the request does not allow
        return Outcome(400, {"level": "error", "text": str(exc)})
    except RunError as exc:  # the node stopped waiting: the run moved on (cancelled, failed) without us
        return Outcome(409, {"level": "warning", "text": f"The run is no longer waiting for this decision: {exc}"})
    verb = "Approved" if decision == Decision.APPROVED else "Rejected"
    edited = " with your edits" if approval_edited(approval) else ""
    return Outcome(200, {"level": "success", "text": f"{verb}{edited}: the run resumes."})


def approval_edited(approval: ApprovalRequest) -> bool:
    approval.refresh_from_db(fields=["edits"])
    return bool(approval.edits)


@login_required
@require_POST
def decide(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """Decide from the inbox or from a run page. HTMX requests get back the part they came from (the inbox
    list, or the run's approvals) with the outcome in it; plain form posts are redirected with a message, or
    shown the refusal with its status."""
    approval = get_object_or_404(approvals_visible_to(signed_in_user(request)).select_related("run"), pk=pk)
    outcome = _decide(request, approval)
    status, notice = outcome.status, outcome.notice
    if htmx_partial(request):
        if request.htmx.target == "run-approvals":
            run = Run.objects.visible_to(request.user).filter(pk=approval.run_id).first()
            if run is not None:
                context = run_approvals_context(request, run, notice=notice, edit_error=outcome.edit_error)
                return render(request, PANEL_TEMPLATE, context, status=status)
        context = inbox_context(
            request, page_number=request.POST.get("page"), notice=notice, edit_error=outcome.edit_error
        )
        # The recent decisions are swapped out of band, so a decision shows up there at once.
        return render(request, "approvals/_list.html", context | {"recent_oob": status == 200}, status=status)
    if status != 200:
        return render(request, "approvals/refused.html", {"approval": approval, "notice": notice}, status=status)
    messages.success(request, notice["text"])
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(target, {request.get_host()}, require_https=request.is_secure()):
        target = ""
    return redirect(target or "approval_inbox")
