"""Run pages: history (per workflow and all of a user's runs), the live run page, and the workflow list with
each workflow's last run.

The run page is one view: a full page, or, for HTMX requests, only the part named by `HX-Target` (node
states, ledger, summary, approvals), which the browser re-fetches whenever the run's WebSocket reports an
event. Its approvals panel is the approvals app's (`{% run_approvals run %}`, in runs/_approvals.html): runs
never imports approvals. Another user's run is a 404; staff see every run.
"""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import OuterRef, QuerySet, Subquery
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.dateparse import parse_date
from django.utils.http import urlencode
from django.views.decorators.http import require_GET, require_POST

from flownova.pages import HtmxHttpRequest, htmx_partial, pretty_json
from flownova.users import signed_in_user
from nodes import node_catalogue
from projects.models import Project
from projects.permissions import Action, require, scoped
from runs.models import ACTIVE_RUN_STATUSES, ChildBatch, LedgerEntry, NodeRun, Run, RunStatus, RunTrigger
from runs.replay_views import replay_context
from runs.services import RunFinishedError, run_cancel
from runs.usage import GROUPS, usage_summary
from workflows.models import Workflow
from workflows.views import workflow_list_context

RUNS_PER_PAGE = 50
# HX-Target (an element id on the run page) -> the template that renders only that element.
RUN_PARTS = {
    "run-summary": "runs/_summary.html",
    "run-nodes": "runs/_nodes.html",
    "run-ledger": "runs/_ledger.html",
    "run-approvals": "runs/_approvals.html",
}


def visible_runs(request: HttpRequest) -> QuerySet[Run]:
    return Run.objects.visible_to(request.user).select_related("owner", "workflow", "parent", "project")


def _history(request: HtmxHttpRequest, runs: QuerySet[Run], context: dict[str, Any]) -> HttpResponse:
    # An unknown filter value shows every run, as "All" would: these are links and menus, not an API.
    status = request.GET.get("status", "")
    if status in RunStatus.values:
        runs = runs.filter(status=status)
    else:
        status = ""
    trigger = request.GET.get("trigger", "")
    if trigger in RunTrigger.values:
        runs = runs.filter(trigger__type=trigger)
    else:
        trigger = ""
    page = Paginator(runs, RUNS_PER_PAGE).get_page(request.GET.get("page"))
    context |= {
        "page": page,
        "runs": page.object_list,
        "status": status,
        "statuses": RunStatus.choices,
        "trigger": trigger,
        "triggers": RunTrigger.choices,
        # The filters again, for the pager's links.
        "filter_query": urlencode({key: value for key, value in (("status", status), ("trigger", trigger)) if value}),
    }
    template = "runs/_table.html" if htmx_partial(request) else "runs/list.html"
    return render(request, template, context)


@login_required
@require_GET
def run_list(request: HtmxHttpRequest) -> HttpResponse:
    return _history(request, visible_runs(request), {"workflow": None})


@login_required
@require_GET
def workflow_runs(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    workflow = get_object_or_404(Workflow.objects.alive().visible_to(request.user), pk=pk)
    # Visible runs of a visible workflow: staff see everyone's runs of it, an owner their own.
    return _history(request, visible_runs(request).filter(workflow=workflow), {"workflow": workflow})


@login_required
@require_GET
def workflow_list(request: HttpRequest) -> HttpResponse:
    """The workflow list (`workflows.views.workflow_list_context`), with the status of each workflow's last run,
    and, with `?project=`, only that project's. An unknown project shows every workflow, as "All" would."""
    context = workflow_list_context(request)
    projects = scoped(Project.objects.all(), request.user, Action.VIEW, via="pk").order_by("personal_of_id", "name")
    raw = request.GET.get("project", "")
    chosen = projects.filter(pk=int(raw)).first() if raw.isdigit() and len(raw) < 19 else None
    if chosen is not None:
        context["workflows"] = context["workflows"].filter(project=chosen)
    context |= {"projects": projects, "project": chosen}
    last_run = Run.objects.filter(workflow=OuterRef("pk")).order_by("-created_at", "-id").values("status")[:1]
    context["workflows"] = context["workflows"].annotate(last_run_status=Subquery(last_run))
    return render(request, "workflows/list.html", context)


def run_context(request: HttpRequest, run: Run) -> dict[str, Any]:
    return {
        "run": run,
        "input_json": pretty_json(run.input),
        "output_json": pretty_json(run.output) if run.output is not None else "",
        "is_active": run.status in ACTIVE_RUN_STATUSES,
        "node_runs": run.node_runs.all(),
        "ledger": run.ledger.defer("traceback").order_by("seq"),
        "children": visible_runs(request).filter(parent=run).order_by("created_at", "id"),
    }


@login_required
@require_GET
def run_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(visible_runs(request), pk=pk)
    context = run_context(request, run)
    part = RUN_PARTS.get(request.htmx.target or "") if htmx_partial(request) else None
    if part is None:  # the canvas and the replay actions are drawn once, not with every live refresh of a part
        context |= {
            "catalogue": node_catalogue(),
            "canvas": {"run_id": run.pk, "graph": run.graph, "nodes": node_states(run)},
            **replay_context(request, run),
        }
    return render(request, part or "runs/detail.html", context)


@login_required
@require_GET
def ledger_entry(request: HtmxHttpRequest, pk: int, seq: int) -> HttpResponse:
    run = get_object_or_404(visible_runs(request), pk=pk)
    entry = get_object_or_404(LedgerEntry.objects.filter(run=run), seq=seq)
    template = "runs/_entry.html" if htmx_partial(request) else "runs/entry.html"
    shown = _entry_sections(entry)
    return render(request, template, {"run": run, "entry": entry, "sections": shown})


class MapProgress(TypedDict):
    done: int
    total: int
    failed: int


class NodeState(TypedDict):
    status: str
    handle: str
    attempts: int
    progress: NotRequired[MapProgress]


def node_states(run: Run) -> dict[str, NodeState]:
    """Each reached node's state, as the run canvas colours it (and the handle it chose, for the path); for a
    map node, how many of its items ended (the canvas also learns it from `map_progress` events, but a page
    opened late may have missed those)."""
    rows = NodeRun.objects.filter(run=run).values("node_id", "status", "handle", "attempts")
    states: dict[str, NodeState] = {
        row["node_id"]: {"status": row["status"], "handle": row["handle"], "attempts": row["attempts"]} for row in rows
    }
    batches = ChildBatch.objects.filter(node_run__run=run, node_run__node_type="map")
    for node_id, done, total, failed in batches.values_list("node_run__node_id", "done", "total", "failed"):
        if node_id in states:
            states[node_id]["progress"] = {"done": done, "total": total, "failed": failed}
    return states


@login_required
@require_GET
def run_states(request: HttpRequest, pk: int) -> JsonResponse:
    """The run canvas re-reads this after each burst of events: the server's states are the truth."""
    run = get_object_or_404(visible_runs(request), pk=pk)
    return JsonResponse({"run_id": run.pk, "status": run.status, "nodes": node_states(run)})


def _entry_sections(entry: LedgerEntry) -> list[tuple[str, str]]:
    sections = [
        ("Input", entry.input),
        ("Output", entry.output),
        ("Tool calls", entry.tool_calls or None),
        ("LLM usage", entry.llm_usage),
    ]
    return [(label, pretty_json(value)) for label, value in sections if value is not None]


@login_required
@require_GET
def run_node_detail(request: HtmxHttpRequest, pk: int, node_id: str) -> HttpResponse:
    """One node of a run, as the canvas shows it when clicked: its state, and every ledger entry it has
    (attempts, input, output, tool calls, usage, error); for a cognitive node, the workflow it designed."""
    run = get_object_or_404(visible_runs(request), pk=pk)
    node = next((n for n in run.graph.get("nodes", []) if n.get("id") == node_id), None)
    if node is None:
        raise Http404(f"run {run.pk} has no node {node_id!r}")
    node_run = NodeRun.objects.filter(run=run, node_id=node_id).first()
    child_runs = visible_runs(request).filter(parent=run, parent_node_id=node_id).order_by("created_at", "id")
    latest_child = child_runs.last()
    entries = [
        {"entry": entry, "sections": _entry_sections(entry)}
        for entry in LedgerEntry.objects.filter(run=run, node_id=node_id).order_by("seq")
    ]
    context = {
        "run": run,
        "node": node,
        "node_run": node_run,
        "config_json": pretty_json(node.get("data") or {}),
        "entries": entries,
        "catalogue": node_catalogue(),
        "child_runs": child_runs,
        # What a node that starts a run of its own (a cognitive node's design) had that run execute.
        "designed_graph": latest_child.graph if latest_child else None,
    }
    template = "runs/_node_detail.html" if htmx_partial(request) else "runs/node.html"
    return render(request, template, context)


@login_required
@require_POST
def run_cancel_view(request: HttpRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(visible_runs(request), pk=pk)
    require(request.user, Action.RUN, run.project_id)
    try:
        run_cancel(run=run, user=signed_in_user(request))
    except RunFinishedError:
        run.refresh_from_db(fields=["status"])
        messages.warning(request, f"The run had already ended ({run.status}); nothing was cancelled.")
    else:
        messages.success(request, "Run cancelled: no new node will start.")
    return redirect("run_detail", pk=run.pk)


@require_GET
@login_required
def usage(request: HttpRequest) -> HttpResponse:
    """LLM tokens and cost per workflow, model or day, summed from the ledger of the runs the user may see."""
    group_by = request.GET.get("group_by", "workflow")
    if group_by not in GROUPS:
        group_by = "workflow"
    since = parse_date(request.GET.get("since") or "") if request.GET.get("since") else None
    until = parse_date(request.GET.get("until") or "") if request.GET.get("until") else None
    summary = usage_summary(user=request.user, group_by=group_by, since=since, until=until)
    context = {"summary": summary, "group_by": group_by, "groups": GROUPS, "since": since, "until": until}
    return render(request, "runs/usage.html", context)
