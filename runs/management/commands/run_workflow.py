"""Run a workflow file with an input and print its events as they happen, one JSON object per line.

    python manage.py run_workflow workflows/examples/support_router.json --input '{"ticket": {"priority": 3}}'

The workflow is saved for the user (created, or updated when one of the same name exists), a run starts on
the Celery workers (its trigger is `manual`, as from a page), and the command follows the run's stored events
until the run ends. Exit status: 0 when the run succeeded, 1 when it failed or was cancelled, 2 for bad
arguments, 3 on --timeout.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from flownova.celery import app as celery_app
from runs.models import FINAL_RUN_STATUSES, Run, RunEvent, RunStatus, RunTrigger
from runs.services import RunInputError, run_start
from workflows.forms import sample_input
from workflows.graph import GraphError
from workflows.models import Workflow
from workflows.services import workflow_create, workflow_update

POLL_SECONDS = 0.05


def sample_of(document: dict[str, Any]) -> dict[str, Any]:
    graph = document["graph"] if isinstance(document["graph"], dict) else {}
    return sample_input(graph) or {}


class Command(BaseCommand):
    help = "Run a workflow file with an input and print the run's events as they happen."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="A workflow document (contract JSON: name, description, graph).")
        parser.add_argument(
            "--input", default=None, help="The run input as JSON (default: the start node's sample_input, else {})."
        )
        parser.add_argument("--user", default="demo", help="Who owns the workflow and the run (default demo).")
        parser.add_argument("--timeout", type=float, default=0, help="Give up after this many seconds (0: never).")

    def handle(self, *args: Any, **options: Any) -> None:
        document = self.read_document(options["file"])
        try:
            run_input = json.loads(options["input"]) if options["input"] is not None else sample_of(document)
        except ValueError as exc:
            raise CommandError(f"--input is not JSON: {exc}") from exc
        user = get_user_model().objects.filter(username=options["user"]).first()
        if user is None:
            raise CommandError(f"no user named {options['user']!r} (create one, or run `manage.py demo_setup`)")
        if not celery_app.control.ping(timeout=1, limit=1):
            self.stderr.write("warning: no Celery worker answered; the run will wait until one starts")
        try:
            workflow = self.save_workflow(user, document, default_name=Path(options["file"]).stem)
            run = run_start(workflow=workflow, input=run_input, user=user, trigger={"type": RunTrigger.MANUAL.value})
        except GraphError as exc:
            issues = "\n".join(f"  - {issue.message}" for issue in exc.issues)
            raise CommandError(f"the workflow is not valid:\n{issues}") from None
        except RunInputError as exc:
            errors = "\n".join(f"  - {error}" for error in exc.errors)
            raise CommandError(f"the input is not valid:\n{errors}") from None
        self.follow(run, timeout=options["timeout"])

    def read_document(self, path: str) -> dict[str, Any]:
        try:
            document = json.loads(Path(path).read_text())
        except OSError as exc:
            raise CommandError(f"cannot read {path}: {exc.strerror}") from exc
        except ValueError as exc:
            raise CommandError(f"{path} is not JSON: {exc}") from exc
        if not isinstance(document, dict) or "graph" not in document:
            raise CommandError(f"{path} is not a workflow document: it needs a 'graph' (and a 'name')")
        return document

    def save_workflow(self, user: Any, document: dict[str, Any], *, default_name: str) -> Workflow:
        name = str(document.get("name") or default_name)
        existing = Workflow.objects.alive().filter(owner=user, name=name).first()
        description = str(document.get("description", ""))
        if existing is None:
            return workflow_create(owner=user, name=name, description=description, graph=document["graph"])
        return workflow_update(workflow=existing, description=description, graph=document["graph"])

    def follow(self, run: Run, *, timeout: float) -> None:
        deadline = time.monotonic() + timeout if timeout else None
        after = 0
        while True:
            for event in RunEvent.objects.filter(run=run, seq__gt=after).order_by("seq"):
                self.stdout.write(json.dumps(event.as_message(), default=str))
                self.stdout.flush()
                after = event.seq
            status = Run.objects.values_list("status", flat=True).get(pk=run.pk)
            if status in FINAL_RUN_STATUSES and not RunEvent.objects.filter(run=run, seq__gt=after).exists():
                sys.exit(0 if status == RunStatus.SUCCEEDED else 1)
            if deadline is not None and time.monotonic() > deadline:
                self.stderr.write(f"run {run.pk} is still {status} after {timeout} s")
                sys.exit(3)
            time.sleep(POLL_SECONDS)
