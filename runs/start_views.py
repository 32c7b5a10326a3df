"""A workflow's page, with its run form: starting a run from a page.

The page shows the workflow (`workflows.views.workflow_page_context`) and, served from here because runs sits
above workflows, the run form and the workflow's recent runs. The form is built from the start node's
`input_schema` when a form can stand for it (`workflows.forms`), else the input is given as JSON; both start
filled in with the start node's `sample_input`. Starting goes through `run_start`, with a `manual` trigger;
its refusals (invalid input, too many runs just now) become messages next to the form, with their HTTP status.
"""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods

from flownova.jsonbody import JSONInputError, parse_json
from flownova.pages import too_many_runs
from flownova.users import signed_in_user
from projects.permissions import Action, require
from runs.models import Run, RunTrigger
from runs.ratelimit import RunRateLimited
from runs.services import RunInputError, run_start
from workflows.forms import input_form_class, input_form_initial, input_from_form, sample_input, simple_input_schema
from workflows.views import visible_workflows, workflow_page_context

RECENT_RUNS = 5


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
    if request.method == "POST":
        require(request.user, Action.RUN, workflow.project_id)
    context = workflow_page_context(workflow)
    schema = simple_input_schema(context["graph"])
    sample = sample_input(context["graph"])
    posted = request.method == "POST"
    mode = request.POST.get("input_mode") or ("fields" if schema else "json")
    input_form = None
    if schema:
        input_form = input_form_class(schema)(
            request.POST if posted and mode == "fields" else None, initial=input_form_initial(schema, sample)
        )
    run_errors: list[str] = []
    status = 200
    if posted:
        run_input, run_errors = read_run_input(request, input_form, mode)
        status = 400  # unless the run starts
        if not run_errors:
            try:
                run = run_start(
                    workflow=workflow,
                    input=run_input,
                    user=signed_in_user(request),
                    trigger={"type": RunTrigger.MANUAL.value},
                )
            except RunRateLimited as exc:
                run_errors, status = [too_many_runs(exc.wait)], 429
            except RunInputError as exc:
                run_errors = exc.errors
            else:
                return redirect("run_detail", pk=run.pk)
    context |= {
        "input_form": input_form,
        "input_mode": mode,
        "input_json": request.POST.get("input_json", "{}") if posted else json.dumps(sample or {}, indent=2),
        "run_errors": run_errors,
        "recent_runs": Run.objects.visible_to(request.user).filter(workflow=workflow)[:RECENT_RUNS],
    }
    return render(request, "workflows/detail.html", context, status=status)
