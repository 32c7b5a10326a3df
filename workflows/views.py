"""Workflow pages: create, duplicate, delete, import, export, the editor, and what the list and a workflow's
page show of the workflow.

The list and a workflow's page also show runs (the last run, the run form, recent runs), so `runs.views` and
`runs.start_views` serve them, with the context built here (`workflow_list_context`, `workflow_page_context`):
workflows sits below runs and never imports it.

Every page is scoped like the API: `Workflow.objects.alive().visible_to(user)`, so another project's workflow
(or a deleted one) is a 404 and staff see everything. Writes go through `workflows.services`; a view only turns
their errors into messages next to the form.
"""

from __future__ import annotations

import json
import os
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.text import slugify
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from flownova.jsonbody import JSONInputError, parse_json
from flownova.llm_config import EXAMPLE, VARIABLE, model_for_server, provider_configured
from flownova.pages import pretty_json
from flownova.users import signed_in_user
from nodes import node_catalogue, node_types
from projects.forms import project_field
from projects.models import Project
from projects.permissions import Action, allowed, require, scoped
from projects.services import personal_project
from tools.models import Tool
from workflows.importing import DocumentError, import_document
from workflows.models import Workflow
from workflows.services import GraphError, workflow_create, workflow_soft_delete

# What the create form starts with: the smallest graph that validates, so a new user sees the shape.
STARTER_GRAPH: dict[str, Any] = {
    "nodes": [
        {"id": "start", "type": "start", "position": {"x": 0, "y": 0}, "data": {}},
        {"id": "end", "type": "end", "position": {"x": 240, "y": 0}, "data": {}},
    ],
    "edges": [{"id": "e1", "source": "start", "target": "end"}],
}
# An import is one JSON document; anything bigger is not a workflow someone wrote.
MAX_IMPORT_BYTES = 2 * 1024 * 1024


def visible_workflows(request: HttpRequest) -> QuerySet[Workflow]:
    return Workflow.objects.alive().visible_to(request.user).select_related("owner", "project")


def graph_issue_list(exc: GraphError) -> list[dict[str, str]]:
    return [issue.as_dict() for issue in exc.issues]


# --- the list ------------------------------------------------------------------------------------------------


def workflow_list_context(request: HttpRequest) -> dict[str, Any]:
    """What `workflows/list.html` needs but the runs of each workflow (`runs.views.workflow_list` adds them)."""
    return {"workflows": visible_workflows(request), "import_form": ImportForm(user=signed_in_user(request))}


class WorkflowForm(forms.Form):
    """A new workflow from JSON, in a project where the user may edit (their personal one by default)."""

    name = forms.CharField(max_length=200)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    graph = forms.CharField(
        label="Graph (JSON)",
        widget=forms.Textarea(attrs={"rows": 18, "spellcheck": "false", "class": "code"}),
        help_text='The contract\'s graph: {"nodes": [...], "edges": [...]}.',
    )

    def __init__(self, *args: Any, user: User, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["project"] = project_field(user)
        self.order_fields(["project"])

    def clean_graph(self) -> Any:
        try:
            return parse_json(self.cleaned_data["graph"])
        except JSONInputError as exc:
            raise forms.ValidationError(str(exc)) from None


@login_required
@require_http_methods(["GET", "POST"])
def workflow_create_view(request: HttpRequest) -> HttpResponse:
    issues: list[dict[str, str]] = []
    if request.method == "POST":
        form = WorkflowForm(request.POST, user=signed_in_user(request))
        if form.is_valid():
            try:
                workflow = workflow_create(
                    owner=signed_in_user(request),
                    name=form.cleaned_data["name"],
                    description=form.cleaned_data["description"],
                    graph=form.cleaned_data["graph"],
                    project=form.cleaned_data["project"],
                )
            except GraphError as exc:
                issues = graph_issue_list(exc)
            else:
                messages.success(request, f"Created “{workflow.name}”.")
                return redirect("workflow_detail", pk=workflow.pk)
    else:
        form = WorkflowForm(initial={"graph": json.dumps(STARTER_GRAPH, indent=2)}, user=signed_in_user(request))
    status = 400 if request.method == "POST" else 200
    return render(request, "workflows/form.html", {"form": form, "issues": issues}, status=status)


@login_required
@require_POST
def workflow_duplicate(request: HttpRequest, pk: int) -> HttpResponse:
    original = get_object_or_404(visible_workflows(request), pk=pk)
    user = signed_in_user(request)
    # The copy is created by whoever duplicates it, in the original's project if they may edit there (else in
    # their personal project), and checked as theirs: a sub-workflow they cannot run makes the copy invalid,
    # and nothing is created.
    project = original.project if allowed(user, Action.EDIT, original.project_id) else None
    try:
        copy = workflow_create(
            owner=user,
            project=project,
            name=f"{original.name} (copy)"[:200],
            description=original.description,
            graph=original.graph_document(),
        )
    except GraphError as exc:
        problems = "; ".join(issue["message"] for issue in graph_issue_list(exc))
        messages.error(request, f"“{original.name}” cannot be duplicated as yours: {problems}")
        return redirect("workflow_list")
    messages.success(request, f"Duplicated “{original.name}” as “{copy.name}”.")
    return redirect("workflow_list")


@login_required
@require_http_methods(["GET", "POST"])
def workflow_delete(request: HttpRequest, pk: int) -> HttpResponse:
    workflow = get_object_or_404(visible_workflows(request), pk=pk)
    require(request.user, Action.MANAGE, workflow.project_id)
    if request.method == "POST":
        workflow_soft_delete(workflow=workflow, by=signed_in_user(request))
        messages.success(request, f"Deleted “{workflow.name}”. Its runs keep their history.")
        return redirect("workflow_list")
    return render(request, "workflows/confirm_delete.html", {"workflow": workflow})


class ImportForm(forms.Form):
    """A workflow file to import into a project where the user may edit (their personal one by default)."""

    file = forms.FileField(label="Workflow JSON file", widget=forms.ClearableFileInput(attrs={"accept": ".json"}))

    def __init__(self, *args: Any, user: User, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["project"] = project_field(user)


@login_required
@require_POST
def workflow_import(request: HttpRequest) -> HttpResponse:
    """The API's import, from an uploaded file: our document or the original FlowNova export, converted and
    validated the same way."""
    form = ImportForm(request.POST, request.FILES, user=signed_in_user(request))
    errors: list[str] = []
    issues: list[dict[str, str]] = []
    if not form.is_valid():
        errors = [str(error) for error in form.errors.get("file", [])]
        errors += [f"Project: {error}" for error in form.errors.get("project", [])]
        errors = errors or ["Choose a file."]
    elif form.cleaned_data["file"].size > MAX_IMPORT_BYTES:
        errors = [f"The file is larger than {MAX_IMPORT_BYTES // 1024 // 1024} MB."]
    else:
        user = signed_in_user(request)
        try:
            project = form.cleaned_data["project"]
            tool_names = Tool.objects.filter(project=project, is_active=True).values_list("name", flat=True)
            document = import_document(parse_json(form.cleaned_data["file"].read()), tool_names=tool_names)
            if len(document["name"]) > 200:
                raise DocumentError({"name": ["the name is longer than 200 characters"]})
            workflow = workflow_create(owner=user, project=project, **document)
        except JSONInputError as exc:
            syntax = exc.decode_error is not None
            errors = [f"The file is not valid JSON: {exc.message}" if syntax else f"The file can't be imported: {exc}"]
        except DocumentError as exc:
            for key, problems in exc.errors.items():
                for problem in problems:
                    if isinstance(problem, dict):
                        issues.append(problem)
                    else:
                        errors.append(f"{key}: {problem}")
        except GraphError as exc:
            issues = graph_issue_list(exc)
        else:
            messages.success(request, f"Imported “{workflow.name}”.")
            return redirect("workflow_detail", pk=workflow.pk)
    context = {"import_form": form, "errors": errors, "issues": issues}
    return render(request, "workflows/import_failed.html", context, status=400)


@login_required
@require_GET
def workflow_export(request: HttpRequest, pk: int) -> HttpResponse:
    workflow = get_object_or_404(visible_workflows(request), pk=pk)
    response = JsonResponse(workflow.document(), json_dumps_params={"indent": 2})
    filename = f"{slugify(workflow.name) or 'workflow'}-v{workflow.version}.json"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


# --- the LLM provider notice ---------------------------------------------------------------------------------


def llm_notice(graph: dict[str, Any], *, editor: bool) -> dict[str, Any] | None:
    """What the editor and the run form say, before anything runs, when LLM nodes would fail for want of a
    provider: the models with none configured and the nodes that use them. The editor speaks of the default
    model too (a node added there uses it); the run form only of the workflow's own LLM nodes."""
    server = settings.FLOWNOVA_LLM_SERVER
    default = settings.FLOWNOVA_DEFAULT_MODEL
    llm_types = {name for name, node_type in node_types().items() if node_type.uses_llm}
    uses: dict[str, list[str]] = {}
    for node in graph.get("nodes", []):
        if node.get("type") in llm_types:
            named = (node.get("data") or {}).get("model")
            model = named.strip() if isinstance(named, str) and named.strip() else default
            uses.setdefault(model_for_server(model, server), []).append(str(node["id"]))
    if editor:
        uses.setdefault(model_for_server(default, server), [])
    missing = {
        model: ids
        for model, ids in uses.items()
        if provider_configured(model, server=server, environ=os.environ) is False
    }
    if not missing:
        return None
    return {
        "models": sorted(missing),
        "nodes": sorted(node_id for ids in missing.values() for node_id in ids),
        "variable": VARIABLE,
        "example": EXAMPLE,
    }


# --- the editor ----------------------------------------------------------------------------------------------


def editor_context(
    request: HttpRequest, workflow: Workflow | None, *, project: Project | None = None
) -> dict[str, Any]:
    """What the React Flow editor reads from the page: the workflow, the node type catalogue and the tools of its
    project (a new workflow's: `project`, else the user's personal one). It saves through the REST API (session
    auth + CSRF), which validates on the server."""
    if workflow is not None:
        project = workflow.project
    elif project is None:
        project = personal_project(signed_in_user(request))
    tools = list(Tool.objects.filter(project=project).order_by("name").values("name", "description"))
    document: dict[str, object]
    graph: dict[str, Any]
    if workflow is None:
        graph = STARTER_GRAPH
        document = {"id": None, "name": "Untitled workflow", "description": "", "version": None, "graph": graph}
        api_url = reverse("api:workflow-list")
    else:
        graph = workflow.graph_document()
        document = {
            "id": workflow.pk,
            "name": workflow.name,
            "description": workflow.description,
            "version": workflow.version,
            "graph": graph,
        }
        api_url = reverse("api:workflow-detail", args=[workflow.pk])
    return {
        "workflow": workflow,
        "project": project,
        "editor_workflow": document,
        "catalogue": node_catalogue(),
        "llm_notice": llm_notice(graph, editor=True),
        "tools": tools,
        "api_url": api_url,
        "edit_url": reverse("workflow_edit", args=[0]).replace("/0/", "/__id__/"),
    }


@login_required
@require_GET
def workflow_new(request: HttpRequest) -> HttpResponse:
    """The editor for a new workflow, in the project `?project=` names (one where the user may edit; a project
    they are not in is a 404, one where they may not edit a 403), else in their personal project."""
    project = None
    raw = request.GET.get("project", "")
    if raw:
        if not raw.isdigit():
            raise Http404("project: not a project id")
        project = get_object_or_404(scoped(Project.objects.all(), request.user, via="pk"), pk=int(raw))
        require(request.user, Action.EDIT, project.pk)
    return render(request, "workflows/editor.html", editor_context(request, None, project=project))


@login_required
@require_GET
def workflow_edit(request: HttpRequest, pk: int) -> HttpResponse:
    workflow = get_object_or_404(visible_workflows(request), pk=pk)
    require(request.user, Action.EDIT, workflow.project_id)
    return render(request, "workflows/editor.html", editor_context(request, workflow))


# --- a workflow's page ----------------------------------------------------------------------------------------


def workflow_page_context(workflow: Workflow) -> dict[str, Any]:
    """What `workflows/detail.html` shows of the workflow; `runs.start_views.workflow_detail` adds the run form
    and the recent runs."""
    graph = workflow.graph_document()
    return {
        "workflow": workflow,
        "graph": graph,
        "graph_json": pretty_json(graph),
        "catalogue": node_catalogue(),
        "llm_notice": llm_notice(graph, editor=False),
        "nodes": [
            {**node, "data_json": pretty_json(node["data"]) if node.get("data") else ""} for node in graph["nodes"]
        ],
    }
