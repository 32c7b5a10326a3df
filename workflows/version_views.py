"""A workflow's versions on its pages: the "Versions" section of the workflow's page (loaded by htmx; a page of
its own without JavaScript), the diff between two versions with the graph drawn and coloured, and restoring a
version.

Scoped like every workflow page: someone outside the workflow's project gets 404; restoring needs the editor
role (`projects.permissions.require`: 403), and its buttons are shown only to those who have it.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods

from flownova.pages import HtmxHttpRequest, htmx_partial, pretty_json
from flownova.users import signed_in_user
from nodes import node_catalogue
from projects.permissions import Action, allowed, require
from workflows.models import Workflow, WorkflowVersion
from workflows.services import GraphError, workflow_restore
from workflows.versions import diff_canvas, documents_diff, readable_ops
from workflows.views import visible_workflows

# How many versions the section lists, newest first (the API pages through all of them).
SECTION_VERSIONS = 50


def _number(raw: str | None) -> int | None:
    """A version number from a query parameter; None when it is not one."""
    if raw is None or not raw.isdigit() or len(raw) > 9 or int(raw) < 1:
        return None
    return int(raw)


def versions_context(request: HtmxHttpRequest, workflow: Workflow) -> dict[str, Any]:
    versions = list(workflow.versions.select_related("author").order_by("-number")[:SECTION_VERSIONS])
    return {
        "workflow": workflow,
        "versions": versions,
        "total": workflow.versions.count(),
        "shown": SECTION_VERSIONS,
        "highlight": _number(request.GET.get("version")),
        "can_edit": allowed(request.user, Action.EDIT, workflow.project_id),
    }


@login_required
@require_GET
def workflow_versions(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """The Versions section (for htmx), or the same list as a page of its own."""
    workflow = get_object_or_404(visible_workflows(request), pk=pk)
    template = "workflows/_versions.html" if htmx_partial(request) else "workflows/versions.html"
    return render(request, template, versions_context(request, workflow))


def _diff_error(request: HtmxHttpRequest, workflow: Workflow, error: str, status: int) -> HttpResponse:
    return render(request, "workflows/version_diff.html", {"workflow": workflow, "error": error}, status=status)


@login_required
@require_GET
def workflow_version_diff(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """What changed from version `a` to version `b` (default: the current version and the one before it), as
    lists with each change's JSON Patch, and on the canvas: added nodes green, removed red, changed amber."""
    workflow = get_object_or_404(visible_workflows(request), pk=pk)
    wanted: dict[str, int | None] = {}
    for name in ("a", "b"):
        raw = request.GET.get(name)
        wanted[name] = _number(raw)
        if raw is not None and wanted[name] is None:
            return _diff_error(request, workflow, f"`{name}` must be a version number (1 or more), not “{raw}”.", 400)
    b = wanted["b"] or workflow.version
    a = wanted["a"] or b - 1
    if a < 1:
        return _diff_error(request, workflow, f"Version {b} has no version before it: choose `a`.", 400)
    found = {
        version.number: version
        for version in WorkflowVersion.objects.filter(workflow=workflow, number__in=[a, b]).select_related("author")
    }
    for name, number in (("a", a), ("b", b)):
        if number not in found:
            return _diff_error(request, workflow, f"This workflow has no version {number} (`{name}`).", 404)
    first, second = found[a], found[b]
    diff = documents_diff(first.document, second.document, a_number=a, b_number=b)
    return render(
        request,
        "workflows/version_diff.html",
        {
            "workflow": workflow,
            "first": first,
            "second": second,
            "diff": diff,
            "nodes": _changes(first.document, second.document, diff, "nodes"),
            "edges": _changes(first.document, second.document, diff, "edges"),
            "canvas": diff_canvas(first.document, second.document, diff),
            "catalogue": node_catalogue(),
            "can_edit": allowed(request.user, Action.EDIT, workflow.project_id),
        },
    )


def _changes(a: dict[str, Any], b: dict[str, Any], diff: dict[str, Any], kind: str) -> dict[str, Any]:
    """The nodes (or edges) added, removed and changed, for the page: each with its document or readable patch."""
    old = {item["id"]: item for item in (a.get("graph") or {}).get(kind, [])}
    new = {item["id"]: item for item in (b.get("graph") or {}).get(kind, [])}
    return {
        "added": [{"id": i, "json": pretty_json(new[i])} for i in diff[kind]["added"]],
        "removed": [{"id": i, "json": pretty_json(old[i])} for i in diff[kind]["removed"]],
        "changed": [
            {"id": change["id"], "ops": readable_ops(old[change["id"]], change["patch"]), "patch": change["patch"]}
            for change in diff[kind]["changed"]
        ],
        "count": sum(len(diff[kind][mark]) for mark in ("added", "removed", "changed")),
    }


@login_required
@require_http_methods(["GET", "POST"])
def workflow_version_restore(request: HtmxHttpRequest, pk: int, number: int) -> HttpResponse:
    """GET: a page asking to confirm (the button's way without JavaScript; with it, hx-confirm asks). POST: the
    version's document saved as the workflow's next version, then back to the workflow's page."""
    workflow = get_object_or_404(visible_workflows(request), pk=pk)
    require(request.user, Action.EDIT, workflow.project_id)
    version = workflow.versions.filter(number=number).select_related("author").first()
    if version is None:
        raise Http404(f"This workflow has no version {number}.")
    if request.method == "GET":
        return render(request, "workflows/confirm_restore.html", {"workflow": workflow, "version": version})
    try:
        restored = workflow_restore(workflow=workflow, number=number, by=signed_in_user(request))
    except GraphError as exc:
        problems = "; ".join(issue.message for issue in exc.issues)
        messages.error(request, f"Version {number} cannot be restored: {problems}")
    else:
        messages.success(request, f"Restored version {number} as version {restored.version}.")
    target = reverse("workflow_detail", args=[workflow.pk])
    if request.htmx:
        response = HttpResponse(status=204)
        response["HX-Redirect"] = target
        return response
    return redirect(target)
