"""Replay pages: run again (same or current version), resume from a node, and compare two runs.

They call the same services as the API (`run_start(snapshot=...)`, `run_resume`, `runs_compare`) and are
scoped like every run page: `Run.objects.visible_to(user)`, so another project's run is a 404, and need the
runner role in the run's project (`projects.permissions`). The run page
shows the actions through `runs/_replay.html`, whose context comes from `replay_context`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from flownova.jsonbody import JSONInputError, parse_json
from flownova.pages import HtmxHttpRequest, htmx_partial, pretty_json, too_many_runs
from flownova.users import signed_in_user
from nodes import get_node_type, node_catalogue, node_specs
from projects.permissions import Action, require
from runs.history import last_entries, runs_compare
from runs.models import Run, RunTrigger
from runs.ratelimit import RunRateLimited
from runs.services import (
    RunInputError,
    run_graph,
    run_resume,
    run_resume_reused,
    run_resume_unreachable,
    run_start,
)
from workflows.graph import Graph, GraphError, parse_graph
from workflows.models import Workflow
from workflows.versions import readable_ops

COMPARE_CHOICES = 20  # recent runs of the same workflow offered by the run page's compare form
REEXECUTE_PREFIX = "side_effect_"  # radio group per side-effect node: "reuse" or "reexecute"
# HX-Target (an element id on the resume page) -> the template that renders only its content.
RESUME_PARTS = {
    "replay-node-input": "runs/_replay_node_input.html",
    "replay-side-effects": "runs/_replay_side_effects.html",
}


def visible_runs(request: HttpRequest) -> QuerySet[Run]:
    # Not runs.views.visible_runs: runs.views will import replay_context from here, and must not go in a circle.
    return Run.objects.visible_to(request.user).select_related("owner", "workflow")


# --- the run page's part ------------------------------------------------------------------------------------


def live_workflow(request: HttpRequest, run: Run) -> Workflow | None:
    """The run's workflow if it can still be run: not deleted, and visible to the user (as the API checks)."""
    if run.workflow_id is None or run.parent_id is not None:  # a child run is replayed through its parent
        return None
    return Workflow.objects.alive().visible_to(request.user).filter(pk=run.workflow_id).first()


def not_replayable(run: Run) -> str:
    """Why a run without a live workflow can't be run again or resumed, in the words the pages show."""
    if run.parent_id is not None:
        return (
            f"Run {run.pk} is the workflow that node “{run.parent_node_id}” of run {run.parent_id} designed: "
            f"replay run {run.parent_id} instead, resuming from “{run.parent_node_id}”."
        )
    return f"The workflow of run {run.pk} was deleted, so the run can't be run again or resumed."


def replay_context(request: HttpRequest, run: Run) -> dict[str, Any]:
    """What `runs/_replay.html` needs besides `run`; every key starts with `replay_`."""
    workflow = live_workflow(request, run)
    others: list[Run] = []
    if run.workflow_id is not None:  # a workflow deleted for good leaves nothing to group its runs by
        others = list(
            Run.objects.visible_to(request.user)
            .filter(workflow_id=run.workflow_id, parent__isnull=run.parent_id is None)
            .exclude(pk=run.pk)
            .only("pk", "status", "created_at", "workflow_version")[:COMPARE_CHOICES]
        )
    return {
        "replay_workflow": workflow,
        "replay_can_run_current": workflow is not None and workflow.version != run.workflow_version,
        "replay_compare_runs": others,
    }


# --- run again -----------------------------------------------------------------------------------------------


@login_required
@require_POST
def run_rerun(request: HttpRequest, pk: int) -> HttpResponse:
    """A new run with the same input, of the version this run executed ("same") or of the workflow now."""
    run = get_object_or_404(visible_runs(request), pk=pk)
    require(request.user, Action.RUN, run.project_id)
    version = request.POST.get("version", "same")
    if version not in ("same", "current"):
        return HttpResponse("version must be “same” or “current”.", status=400, content_type="text/plain")
    workflow = live_workflow(request, run)
    if workflow is None:
        messages.error(request, not_replayable(run))
        return redirect("run_detail", pk=run.pk)
    snapshot = run if version == "same" else None
    try:
        new_run = run_start(
            workflow=workflow,
            input=run.input,
            user=signed_in_user(request),
            source_run=run,
            snapshot=snapshot,
            trigger={"type": RunTrigger.RERUN.value},
        )
    except RunRateLimited as exc:
        messages.error(request, too_many_runs(exc.wait))
        return redirect("run_detail", pk=run.pk)
    except RunInputError as exc:
        # The input was valid for the version it ran on; the current version may expect other fields.
        messages.error(request, f"This run's input is not valid for that version of the workflow: {exc}")
        return redirect("run_detail", pk=run.pk)
    return redirect("run_detail", pk=new_run.pk)


# --- resume from a node --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeChoice:
    node_id: str
    node_type: str
    status: str  # the node's state in the run, or "not reached"

    @property
    def label(self) -> str:
        return f"{self.node_id} ({self.node_type}) — {self.status}"


@dataclass(frozen=True)
class ResumePlan:
    """What resuming from a node would do, as `run_resume` decides it: the recorded results it reuses, and
    those of them that act on the world (tools, agents), which the person may choose to execute again."""

    node_id: str
    reused: list[str]
    side_effects: list[NodeChoice]


def node_choices(run: Run) -> list[NodeChoice]:
    """The run's nodes in graph order, each with the state it reached."""
    states = dict(run.node_runs.values_list("node_id", "status"))
    try:
        graph = run_graph(run.pk)
    except GraphError:  # a node type since removed from the deployment: the document's order still lists them
        nodes = [(node["id"], node["type"]) for node in run.graph.get("nodes", [])]
    else:
        # A node the recorded path skips can't be resumed from (the resumed run would skip it too).
        unreachable = run_resume_unreachable(source=run, graph=graph)
        order = graph.topological_order()
        nodes = [(node_id, graph.node(node_id).type) for node_id in order if node_id not in unreachable]
    return [NodeChoice(node_id, node_type, states.get(node_id, "not reached")) for node_id, node_type in nodes]


def default_node(choices: list[NodeChoice]) -> str:
    """Where a person most likely wants to resume: the failed node, else the first that did not succeed."""
    failed = [choice.node_id for choice in choices if choice.status == "failed"]
    unfinished = [choice.node_id for choice in choices if choice.status != "succeeded"]
    return (failed or unfinished or [choices[0].node_id])[0]


class ResumeRefused(Exception):
    """Why a resume can't start, and the form field it belongs next to."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def resume_graph(request: HttpRequest, run: Run, *, node_id: str, current: bool) -> Graph:
    """The graph a resumed run would execute, holding `node_id`."""
    workflow = live_workflow(request, run)
    if workflow is None:
        raise ResumeRefused("version", not_replayable(run))
    try:
        graph = parse_graph(workflow.graph_document(), node_specs()) if current else run_graph(run.pk)
    except GraphError as exc:
        raise ResumeRefused("version", f"That version of the workflow can't run: {exc}") from exc
    if node_id not in graph.nodes:
        raise ResumeRefused("node_id", f"Node “{node_id}” is not in the workflow as it is now.")
    return graph


def _upstream(graph: Graph, node_id: str) -> set[str]:
    seen: set[str] = set()
    stack = [node_id]
    while stack:
        for edge in graph.incoming(stack.pop()):
            if edge.source not in seen:
                seen.add(edge.source)
                stack.append(edge.source)
    return seen


def resume_plan(run: Run, graph: Graph, node_id: str) -> ResumePlan:
    """What resuming `run` at `node_id` on `graph` reuses, and which of those nodes act on the world."""
    reused = run_resume_reused(source=run, graph=graph, node_id=node_id)
    effects = [
        NodeChoice(node, graph.node(node).type, "succeeded")
        for node in reused
        if get_node_type(graph.node(node).type).side_effects
    ]
    return ResumePlan(node_id=node_id, reused=reused, side_effects=effects)


class ResumeForm(forms.Form):
    node_id = forms.ChoiceField(
        label="Resume from node", widget=forms.Select(attrs={"aria-describedby": "resume-node-hint"})
    )
    version = forms.ChoiceField(label="Workflow version", widget=forms.RadioSelect)
    input = forms.CharField(
        label="Input for the node (JSON)",
        required=False,
        widget=forms.Textarea(attrs={"rows": 10, "class": "code", "spellcheck": "false"}),
        help_text="Prefilled with what the node received in this run. Edit it to try the node with other data; "
        "leave it as recorded to let the new run pass the node its input as usual.",
    )

    def __init__(self, *args: Any, run: Run, choices: list[NodeChoice], workflow: Workflow | None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        node_field, version_field = self.fields["node_id"], self.fields["version"]
        assert isinstance(node_field, forms.ChoiceField) and isinstance(version_field, forms.ChoiceField)  # as declared
        node_field.choices = [(choice.node_id, choice.label) for choice in choices]
        now = f"v{workflow.version}" if workflow else "deleted"
        version_field.choices = [
            ("same", f"The version this run executed (v{run.workflow_version})"),
            ("current", f"The workflow as it is now ({now})"),
        ]

    def clean_input(self) -> dict[str, Any] | None:
        text = self.cleaned_data["input"].strip()
        if not text:
            return None
        try:
            value = parse_json(text)
        except JSONInputError as exc:
            if (error := exc.decode_error) is not None:
                where = f"(line {error.lineno}, column {error.colno})"
                raise forms.ValidationError(f"Input is not valid JSON: {error.msg} {where}.") from None
            raise forms.ValidationError(f"Input can't be used: {exc}") from None
        if not isinstance(value, dict):
            raise forms.ValidationError(f"Input must be a JSON object, not {type(value).__name__}.")
        return value


def posted_reexecute(data: QueryDict) -> frozenset[str]:
    """Nodes whose side-effect choice is "re-execute" (radio groups named side_effect_<node id>)."""
    return frozenset(
        key.removeprefix(REEXECUTE_PREFIX)
        for key, value in data.items()
        if key.startswith(REEXECUTE_PREFIX) and value == "reexecute"
    )


def _selected(data: QueryDict, choices: list[NodeChoice]) -> tuple[str, str]:
    """The node and version a GET asks about (the HTMX previews), falling back to the defaults."""
    node_id = data.get("node_id", "")
    if node_id not in {choice.node_id for choice in choices}:
        node_id = default_node(choices)
    version = data.get("version", "same")
    if version not in ("same", "current"):
        version = "same"
    return node_id, version


def _preview(request: HttpRequest, run: Run, node_id: str, version: str) -> tuple[ResumePlan | None, str]:
    try:
        graph = resume_graph(request, run, node_id=node_id, current=version == "current")
    except ResumeRefused as exc:
        return None, str(exc)
    return resume_plan(run, graph, node_id), ""


def _start_resume(
    request: HttpRequest, run: Run, form: ResumeForm, reexecute: frozenset[str], recorded: dict[str, Any]
) -> Run:
    """Start the resumed run from a valid form; ResumeRefused says why not, RunRateLimited that the user started
    too many runs just now (and nothing is started)."""
    node_id, current = form.cleaned_data["node_id"], form.cleaned_data["version"] == "current"
    graph = resume_graph(request, run, node_id=node_id, current=current)
    edited = form.cleaned_data["input"]
    if edited == recorded.get(node_id):
        edited = None  # unchanged: the node gets what the reused results give it, as in any run
    feeding = sorted(reexecute & _upstream(graph, node_id))
    if edited is not None and feeding:
        # The node would then wait for those nodes' new outputs, and run_resume would drop the edit unsaid.
        raise ResumeRefused(
            "input", f"Input can't be edited while re-executing {', '.join(feeding)}, which feed the node."
        )
    try:
        resumed = run_resume(
            source=run,
            node_id=node_id,
            user=signed_in_user(request),
            current_version=current,
            input=edited,
            reexecute=reexecute,
        )
    except RunInputError as exc:
        raise ResumeRefused("__all__", str(exc)) from None
    return resumed.run


@login_required
@require_http_methods(["GET", "POST"])
def run_resume_view(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """GET: the form (or, for HTMX, the part that depends on the chosen node); POST: start the new run."""
    run = get_object_or_404(visible_runs(request), pk=pk)
    require(request.user, Action.RUN, run.project_id)
    choices = node_choices(run)
    workflow = live_workflow(request, run)
    recorded = {node: entry.input for node, entry in last_entries(run).items()}
    reexecute: frozenset[str] = frozenset()
    if request.method == "POST":
        form = ResumeForm(request.POST, run=run, choices=choices, workflow=workflow)
        reexecute = posted_reexecute(request.POST)
        started, status = _resume_posted(request, run, form, reexecute, recorded)
        if started is not None:
            messages.success(request, f"Run #{started.pk} resumes run #{run.pk} from node “{form['node_id'].value()}”.")
            return redirect("run_detail", pk=started.pk)
        node_id, version = _selected(request.POST, choices)
    else:
        status = 200
        node_id, version = _selected(request.GET, choices)
        initial = {"node_id": node_id, "version": version, "input": _json_or_blank(recorded.get(node_id))}
        form = ResumeForm(initial=initial, run=run, choices=choices, workflow=workflow)
    plan, plan_error = _preview(request, run, node_id, version)
    context = {
        "run": run,
        "form": form,
        "plan": plan,
        "plan_error": plan_error,
        "reexecute": reexecute,
        "reexecute_prefix": REEXECUTE_PREFIX,
    }
    part = RESUME_PARTS.get(request.htmx.target or "") if htmx_partial(request) else None
    return render(request, part or "runs/resume.html", context, status=status)


def _resume_posted(
    request: HttpRequest, run: Run, form: ResumeForm, reexecute: frozenset[str], recorded: dict[str, Any]
) -> tuple[Run | None, int]:
    """The started run, or None with the reasons on the form and the status to answer with (429 when the user
    started too many runs just now, as everywhere else; else 400)."""
    if not form.is_valid():
        return None, 400
    try:
        return _start_resume(request, run, form, reexecute, recorded), 400
    except RunRateLimited as exc:
        form.add_error(None, too_many_runs(exc.wait))
        return None, 429
    except ResumeRefused as exc:
        form.add_error(None if exc.field == "__all__" else exc.field, str(exc))
        return None, 400


def _json_or_blank(value: Any) -> str:
    return "" if value is None else pretty_json(value)


# --- compare -------------------------------------------------------------------------------------------------


def _run_id(data: QueryDict, key: str) -> int | None:
    value = data.get(key, "")
    return int(value) if value.isdigit() and int(value) > 0 else None


def compare_data(first: Run, comparison: dict[str, Any]) -> dict[str, Any]:
    """What the compare canvas draws: run a's graph, and each node's status in both runs."""
    nodes = comparison["nodes"]
    return {
        "graph": first.graph,
        "changed": [node["node_id"] for node in nodes if node["changed"] or node["status"][0] != node["status"][1]],
        "a": {node["node_id"]: node["status"][0] for node in nodes if node["status"][0] is not None},
        "b": {node["node_id"]: node["status"][1] for node in nodes if node["status"][1] is not None},
    }


@login_required
@require_GET
def run_compare(request: HttpRequest) -> HttpResponse:
    """Two runs side by side, node by node: status in each and what changed in the node's output."""
    a, b = _run_id(request.GET, "a"), _run_id(request.GET, "b")
    if a is None or b is None:
        error = "Choose two runs to compare: a and b must be run numbers."
        return render(request, "runs/compare.html", {"error": error}, status=400)
    first = get_object_or_404(visible_runs(request), pk=a)
    second = get_object_or_404(visible_runs(request), pk=b)
    comparison = runs_compare(first, second)
    before = {node: entry.output or {} for node, entry in last_entries(first).items()}
    for node in comparison["nodes"]:
        node["status_changed"] = node["status"][0] != node["status"][1]
        node["ops"] = readable_ops(before.get(node["node_id"], {}), node["output_diff"])
    context = {
        "first": first,
        "second": second,
        "comparison": comparison,
        "output_ops": readable_ops(first.output or {}, comparison["output_diff"]),
        "compare_data": compare_data(first, comparison),
        "catalogue": node_catalogue(),
    }
    return render(request, "runs/compare.html", context)
