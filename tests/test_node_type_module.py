"""A node type is one module: tests/node_types/word_count.py, found by the registry because its package is named in
FLOWNOVA_NODE_MODULES, is in the editor's catalogue, validates, saves through the API and runs on the worker,
and nothing else in the repository names it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from nodes import get_node_type, node_catalogue, node_specs
from runs.models import LedgerEntry, Run
from tests.conftest import WorkerProcess
from tests.engine_helpers import graph_of, wait_for
from workflows.graph import validate_graph

ROOT = Path(__file__).resolve().parent.parent
CATALOGUE_KEYS = {
    "type",
    "title",
    "description",
    "icon",
    "colour",
    "group",
    "order",
    "summary",
    "output_fields",
    "handles",
    "allows_outgoing",
    "can_fail",
    "accepts_incoming",
    "data_schema",
    "side_effects",
    "uses_llm",
}


def counting_graph(text: str = "{{input.body}}") -> dict[str, Any]:
    return graph_of(
        [("start", "start", {}), ("count", "word_count", {"text": text}), ("end", "end", {})],
        [("start", "count"), ("count", "end")],
    )


def api(user: User) -> APIClient:
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


def test_the_type_is_in_the_catalogue_with_what_its_module_declares() -> None:
    entry = next(entry for entry in node_catalogue() if entry["type"] == "word_count")
    assert set(entry) == CATALOGUE_KEYS
    assert (entry["title"], entry["icon"], entry["colour"], entry["group"]) == ("Word count", "¶", "#2f9e44", "Text")
    assert entry["description"] == "Counts the words of a text, which may be a template."
    assert entry["summary"] == "{{text}}" and entry["output_fields"] == ["words"]
    assert entry["handles"] is None and entry["allows_outgoing"] and entry["accepts_incoming"]
    assert entry["can_fail"] is True  # a deployment's type has an error path unless it says otherwise
    assert entry["side_effects"] is False
    text = entry["data_schema"]["properties"]["text"]
    assert (text["title"], text["x-widget"]) == ("Text to count", "textarea")
    assert entry["data_schema"]["properties"]["retries"]["x-advanced"] is True
    assert entry["data_schema"]["required"] == ["text"]


def test_the_catalogue_is_in_palette_order_with_the_package_type_after_the_built_ins() -> None:
    order = [(entry["order"], entry["type"]) for entry in node_catalogue()]
    assert order == sorted(order)
    types = [entry["type"] for entry in node_catalogue()]
    assert types.index("word_count") > types.index("user_approval")


def test_a_workflow_using_it_validates_and_its_form_hints_do_not_change_validation() -> None:
    assert validate_graph(counting_graph(), node_specs()) == []
    empty = validate_graph(counting_graph(text=""), node_specs())
    assert [(issue.node_id, issue.field) for issue in empty] == [("count", "text")]
    broken = validate_graph(counting_graph(text="{{body}}"), node_specs())
    assert [(issue.node_id, issue.field) for issue in broken] == [("count", "text")]


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_it_saves_through_the_api_and_runs_on_the_worker(alice: User, celery_worker: WorkerProcess) -> None:
    client = api(alice)
    saved = client.post("/api/workflows/", {"name": "Count", "graph": counting_graph()}, format="json")
    assert saved.status_code == 201, saved.json()
    started = client.post(
        f"/api/workflows/{saved.json()['id']}/runs/", {"input": {"body": "one two  three\nfour"}}, format="json"
    )
    assert started.status_code == 201, started.json()
    run = wait_for(Run.objects.get(pk=started.json()["id"]))
    assert run.status == "succeeded", run.error
    assert run.output == {"body": "one two  three\nfour", "words": 4}
    entry = LedgerEntry.objects.get(run=run, node_id="count")
    assert entry.node_type == "word_count" and entry.output == run.output


def test_its_handler_fails_the_node_on_a_missing_template_path() -> None:
    from nodes.base import NodeContext, NodeError
    from nodes.spec import Node

    context = NodeContext(run_id=1, node=Node("count", "word_count", {"text": "{{input.missing}}"}, None), input={})
    with pytest.raises(NodeError, match="missing"):
        get_node_type("word_count").execute(context)


def test_nothing_outside_its_module_and_its_tests_names_it() -> None:
    found = subprocess.run(
        ["git", "grep", "-l", "word_count"], cwd=ROOT, capture_output=True, text=True, check=False
    ).stdout.split()
    assert sorted(found) == [
        "tests/browser/test_node_type_palette.py",
        "tests/node_types/word_count.py",
        "tests/test_node_type_module.py",
    ]


def test_a_node_module_that_does_not_import_stops_start_up_naming_it() -> None:
    env = {
        **os.environ,
        # flownova.settings reads the setting from the environment (tests.settings sets its own).
        "DJANGO_SETTINGS_MODULE": "flownova.settings",
        "FLOWNOVA_NODE_MODULES": "tests.node_types,tests.no_such_node_types",
    }
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "FLOWNOVA_NODE_MODULES names 'tests.no_such_node_types', which does not import" in result.stderr
