"""Workflow pages: the list (create, duplicate, delete, import, export) and a workflow's page with its run form.

Every page is scoped like the API: `Workflow.objects.alive().visible_to(user)`, so another user's workflow
(or a deleted one) is a 404 and staff see everything. Writes go through `workflows.services` and
`runs.services`; a view only turns their errors into messages next to the form.
"""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import OuterRef, QuerySet, Subquery
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.text import slugify
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from flownova.api_base import run_start_wait
from flownova.jsonbody import JSONInputError, parse_json
from nodes import node_catalogue
from runs.models import Run
from runs.services import RunInputError, run_start
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


def htmx_partial(request: HttpRequest) -> bool:
    """Whether to answer with a fragment (netbox's pattern): an HTMX request that is not a boosted navigation,
    which needs the whole page."""
    return bool(request.htmx) and not request.htmx.boosted


def visible_workflows(request: HttpRequest) -> QuerySet[Workflow]:
    return Workflow.objects.alive().visible_to(request.user).select_related("owner")


def too_many_runs(wait: int) -> str:
    return f"You have started too many runs just now: try again in {wait} s."


def pretty_json(value: Any) -> str:
    """JSON for people to read in a <pre>; the template escapes it."""
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False, default=str)


def graph_issue_list(exc: GraphError) -> list[dict[str, str]]:
    return [issue.as_dict() for issue in exc.issues]


# --- the list ------------------------------------------------------------------------------------------------


@login_required
@require_GET
def workflow_list(request: HttpRequest) -> HttpResponse:
    last_run = Run.objects.filter(workflow=OuterRef("pk")).order_by("-created_at", "-id").values("status")[:1]
    workflows = visible_workflows(request).annotate(last_run_status=Subquery(last_run))
    return render(request, "workflows/list.html", {"workflows": workflows, "import_form": ImportForm()})


class WorkflowForm(forms.Form):
    name = forms.CharField(max_length=200)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    graph = forms.CharField(
        label="Graph (JSON)",
        widget=forms.Textarea(attrs={"rows": 18, "spellcheck": "false", "class": "code"}),
        help_text='The contract\'s graph: {"nodes": [...], "edges": [...]}.',
    )

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
        form = WorkflowForm(request.POST)
        if form.is_valid():
            try:
                workflow = workflow_create(
                    owner=request.user,
                    name=form.cleaned_data["name"],
                    description=form.cleaned_data["description"],
                    graph=form.cleaned_data["graph"],
                )
            except GraphError as exc:
                issues = graph_issue_list(exc)
            else:
                messages.success(request, f"Created “{workflow.name}”.")
                return redirect("workflow_detail", pk=workflow.pk)
    else:
        form = WorkflowForm(initial={"graph": json.dumps(STARTER_GRAPH, indent=2)})
    status = 400 if request.method == "POST" else 200
    return render(request, "workflows/form.html", {"form": form, "issues": issues}, status=status)


@login_required
@require_POST
def workflow_duplicate(request: HttpRequest, pk: int) -> HttpResponse:
    original = get_object_or_404(visible_workflows(request), pk=pk)
    # The copy belongs to whoever duplicates it (staff copying someone's workflow get their own).
    copy = workflow_create(
        owner=request.user,
        name=f"{original.name} (copy)"[:200],
        description=original.description,
        graph=original.graph_document(),
    )
    messages.success(request, f"Duplicated “{original.name}” as “{copy.name}”.")
    return redirect("workflow_list")


@login_required
@require_http_methods(["GET", "POST"])
def workflow_delete(request: HttpRequest, pk: int) -> HttpResponse:
    workflow = get_object_or_404(visible_workflows(request), pk=pk)
    if request.method == "POST":
        workflow_soft_delete(workflow=workflow)
        messages.success(request, f"Deleted “{workflow.name}”. Its runs keep their history.")
        return redirect("workflow_list")
    return render(request, "workflows/confirm_delete.html", {"workflow": workflow})


class ImportForm(forms.Form):
    file = forms.FileField(label="Workflow JSON file", widget=forms.ClearableFileInput(attrs={"accept": ".json"}))


@login_required
@require_POST
def workflow_import(request: HttpRequest) -> HttpResponse:
    """The API's import, from an uploaded file: our document or the original FlowNova export, converted and
    validated the same way."""
    form = ImportForm(request.POST, request.FILES)
    errors: list[str] = []
    issues: list[dict[str, str]] = []
    if not form.is_valid():
        errors = [str(error) for error in form.errors.get("file", ["Choose a file."])]
    elif form.cleaned_data["file"].size > MAX_IMPORT_BYTES:
        errors = [f"The file is larger than {MAX_IMPORT_BYTES // 1024 // 1024} MB."]
    else:
        try:
            tool_names = Tool.objects.filter(owner=request.user, is_active=True).values_list("name", flat=True)
            document = import_document(parse_json(form.cleaned_data["file"].read()), tool_names=tool_names)
            if len(document["name"]) > 200:
                raise DocumentError({"name": ["the name is longer than 200 characters"]})
            workflow = workflow_create(owner=request.user, **document)
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


# --- the editor ----------------------------------------------------------------------------------------------


def editor_context(request: HttpRequest, workflow: Workflow | None) -> dict[str, Any]:
    """What the React Flow editor reads from the page: the workflow, the node type catalogue and the tools its
    owner registered. It saves through the REST API (session auth + CSRF), which validates on the server."""
    owner = workflow.owner if workflow else request.user
    tools = list(Tool.objects.filter(owner=owner).order_by("name").values("name", "description"))
    if workflow is None:
        document = {"id": None, "name": "Untitled workflow", "description": "", "version": None, "graph": STARTER_GRAPH}
        api_url = reverse("api:workflow-list")
    else:
        document = {
            "id": workflow.pk,
            "name": workflow.name,
            "description": workflow.description,
            "version": workflow.version,
            "graph": workflow.graph_document(),
        }
        api_url = reverse("api:workflow-detail", args=[workflow.pk])
    return {
        "workflow": workflow,
        "editor_workflow": document,
        "catalogue": node_catalogue(),
        "tools": tools,
        "api_url": api_url,
        "edit_url": reverse("workflow_edit", args=[0]).replace("/0/", "/__id__/"),
    }


@login_required
@require_GET
def workflow_new(request: HttpRequest) -> HttpResponse:
    return render(request, "workflows/editor.html", editor_context(request, None))


@login_required
@require_GET
def workflow_edit(request: HttpRequest, pk: int) -> HttpResponse:
    workflow = get_object_or_404(visible_workflows(request), pk=pk)
    return render(request, "workflows/editor.html", editor_context(request, workflow))


# --- a workflow's page and its run form -----------------------------------------------------------------------

_SIMPLE_TYPES = {"string", "integer", "number", "boolean"}
# What a choice field cleans to when nothing is chosen: not None or "", which an enum may offer as values.
_NOTHING_CHOSEN = object()


def _simple_type(prop: object) -> str | None:
    """The type a form field can stand for: one of _SIMPLE_TYPES, alone or with "null" (["string", "null"]:
    a blank field leaves the key out, which such a schema accepts as well)."""
    if not isinstance(prop, dict):
        return None
    kind = prop.get("type")
    if isinstance(kind, list):
        others = [item for item in kind if item != "null"]
        kind = others[0] if len(others) == 1 else None
    return kind if isinstance(kind, str) and kind in _SIMPLE_TYPES else None


def simple_input_schema(graph: dict[str, Any]) -> dict[str, Any] | None:
    """The start node's `input_schema` when a form can stand for it: an object whose properties are all
    strings, numbers, integers or booleans (optionally with an `enum`). Anything richer is edited as JSON."""
    start = next((node for node in graph.get("nodes", []) if node.get("type") == "start"), None)
    schema = (start or {}).get("data", {}).get("input_schema")
    if not isinstance(schema, dict) or schema.get("type") != "object":
        return None
    properties = schema.get("properties")
    if not isinstance(properties, dict) or not properties:
        return None
    if not all(_simple_type(p) for p in properties.values()):
        return None
    return schema


def input_form_class(schema: dict[str, Any]) -> type[forms.Form]:
    """A form with one field per property; values are converted to the schema's types, and the schema itself
    is still checked by run_start (so `minimum`, `pattern`... are reported as its errors)."""
    required = set(schema.get("required") or [])
    fields: dict[str, forms.Field] = {}
    for name, prop in schema["properties"].items():
        kind = _simple_type(prop)
        options: dict[str, Any] = {
            "label": prop.get("title") or name,
            "help_text": prop.get("description", ""),
            "required": name in required and kind != "boolean",
        }
        if "default" in prop:
            options["initial"] = prop["default"]
        if isinstance(prop.get("enum"), list):
            # Text as it is; anything else (and "") as JSON, so true, null and "" read as the schema writes them.
            choices = [
                (json.dumps(value), value if isinstance(value, str) and value else json.dumps(value))
                for value in prop["enum"]
            ]
            if not options["required"]:
                choices.insert(0, ("", "—"))
            if "initial" in options:
                options["initial"] = json.dumps(options["initial"])
            field: forms.Field = forms.TypedChoiceField(
                choices=choices, coerce=json.loads, empty_value=_NOTHING_CHOSEN, **options
            )
        elif kind == "boolean":
            field = forms.BooleanField(**options)
        elif kind == "integer":
            field = forms.IntegerField(**options)
        elif kind == "number":
            field = forms.FloatField(**options)
        else:
            field = forms.CharField(**options)
        fields[f"input__{name}"] = field
    return type("RunInputForm", (forms.Form,), fields)


def input_from_form(form: forms.Form) -> dict[str, Any]:
    """The run input: optional fields left blank are left out (not sent as "" or null, which the schema's type
    may refuse), so "not required" means what it says and a template can give a default for them. A checkbox
    is never blank: unticked, it is false."""
    run_input: dict[str, Any] = {}
    for name, value in form.cleaned_data.items():
        field = form.fields[name]
        if isinstance(field, forms.TypedChoiceField):
            blank = value is _NOTHING_CHOSEN  # a chosen null or "" is a value
        else:
            blank = value is None or value == ""
        if blank:
            continue
        if isinstance(field, forms.FloatField) and isinstance(value, float) and value.is_integer():
            value = int(value)  # a "number" typed as 12 stays 12, not 12.0 (in templates too)
        run_input[name.removeprefix("input__")] = value
    return run_input


def read_run_input(request: HttpRequest, input_form: forms.Form | None, mode: str) -> tuple[Any, list[str]]:
    """The run input the form was filled in with, or the reasons it can't be read."""
    if mode == "fields" and input_form is not None:
        if input_form.is_valid():
            return input_from_form(input_form), []
        return None, ["Some fields are not valid; see the messages next to them."]
    try:
        return parse_json(request.POST.get("input_json") or "{}"), []
    except JSONInputError as exc:
        syntax = exc.decode_error is not None
        return None, [f"The input is not valid JSON: {exc.message}" if syntax else f"The input can't be used: {exc}"]


@login_required
@require_http_methods(["GET", "POST"])
def workflow_detail(request: HttpRequest, pk: int) -> HttpResponse:
    workflow = get_object_or_404(visible_workflows(request), pk=pk)
    graph = workflow.graph_document()
    schema = simple_input_schema(graph)
    posted = request.method == "POST"
    mode = request.POST.get("input_mode") or ("fields" if schema else "json")
    input_form = None
    if schema:
        input_form = input_form_class(schema)(request.POST if posted and mode == "fields" else None)
    run_errors: list[str] = []
    throttled = posted and (wait := run_start_wait(request)) is not None
    if throttled:
        run_errors = [too_many_runs(wait)]
    elif posted:
        run_input, run_errors = read_run_input(request, input_form, mode)
        if not run_errors:
            try:
                run = run_start(workflow=workflow, input=run_input, user=request.user)
            except RunInputError as exc:
                run_errors = exc.errors
            else:
                return redirect("run_detail", pk=run.pk)
    context = {
        "workflow": workflow,
        "graph": graph,
        "graph_json": pretty_json(graph),
        "catalogue": node_catalogue(),
        "nodes": [
            {**node, "data_json": pretty_json(node["data"]) if node.get("data") else ""} for node in graph["nodes"]
        ],
        "input_form": input_form,
        "input_mode": mode,
        "input_json": request.POST.get("input_json", "{}") if posted else "{}",
        "run_errors": run_errors,
        "recent_runs": Run.objects.visible_to(request.user).filter(workflow=workflow)[:5],
    }
    return render(request, "workflows/detail.html", context, status=429 if throttled else 400 if run_errors else 200)
