"""The run page's approvals panel: the run's requests the user may see, each with its decide form when it is
theirs to decide, and how many more wait on other people.

The approvals app draws it, so runs (below approvals) knows nothing of approvals: the run page's part
`runs/_approvals.html` only calls `{% run_approvals run %}`, and deciding from the run page
(`approvals.views.decide`) answers with the panel redrawn.
"""

from __future__ import annotations

from typing import Any

from django import template
from django.http import HttpRequest

from approvals.models import ApprovalRequest, ApprovalStatus
from approvals.selectors import approvals_visible_to
from approvals.services import approval_can_decide
from flownova.pages import pretty_json
from flownova.users import signed_in_user
from runs.models import Run

register = template.Library()

PANEL_TEMPLATE = "approvals/_run_panel.html"


def run_approvals_context(
    request: HttpRequest,
    run: Run,
    *,
    notice: dict[str, str] | None = None,
    edit_error: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """What the panel shows of `run` to `request.user`; `notice` and `edit_error` are the outcome of a decision
    just made from the panel."""
    approvals = list(
        approvals_visible_to(signed_in_user(request))
        .filter(run=run)
        .select_related("run", "run__workflow", "decided_by")
        .prefetch_related("assignee_users", "assignee_groups")
        .order_by("created_at", "id")
    )
    for approval in approvals:
        approval.can_decide = approval.status == ApprovalStatus.PENDING and approval_can_decide(
            approval=approval, user=request.user
        )
        approval.data_json = pretty_json(approval.data)
    # Requests assigned to others are theirs to see; the run's viewer still learns that the run waits on them.
    others_waiting = (
        ApprovalRequest.objects.filter(run=run, status=ApprovalStatus.PENDING)
        .exclude(pk__in=[approval.pk for approval in approvals])
        .count()
    )
    return {
        # An inclusion tag's template gets only what the tag returns: the decide form needs the request.
        "request": request,
        "run": run,
        "approvals": approvals,
        "others_waiting": others_waiting,
        "notice": notice,
        "edit_error": edit_error,
    }


@register.inclusion_tag(PANEL_TEMPLATE, takes_context=True)
def run_approvals(context: template.Context, run: Run) -> dict[str, Any]:
    """`{% run_approvals run %}`: the panel, for the user of the page's request."""
    return run_approvals_context(
        context["request"], run, notice=context.get("notice"), edit_error=context.get("edit_error")
    )
