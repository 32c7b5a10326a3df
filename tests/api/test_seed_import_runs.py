"""Seed documents imported through the API and the import page, then run on the worker as they were meant to.

The pure conversion is tested in test_importing.py; here the importing user's tools come from the database
and the imported workflows run for real (LLM calls go to the suite's scripted server).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from projects.services import personal_project
from runs.models import Run
from tests.api.seed_sample import SEED_EXPORT
from tests.conftest import WorkerProcess
from tests.engine_helpers import wait_for
from tests.llm_server import Answer, ScriptedLLM
from tools.models import Tool
from workflows.models import Workflow

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

VERDICT = {"type": "object", "properties": {"decision": {"enum": ["review", "pay"]}}, "required": ["decision"]}


@pytest.fixture(autouse=True)
def worker(celery_worker: WorkerProcess) -> WorkerProcess:
    return celery_worker


def register_tool(owner: User, name: str) -> Tool:
    return Tool.objects.create(
        owner=owner,
        project=personal_project(owner),
        name=name,
        description="Looks an order up.",
        url="http://127.0.0.1:9/orders/{id}",
        parameters={"type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"]},
    )


def triage_export(model: str) -> dict[str, Any]:
    """An original FlowNova export whose agent uses every field that format names differently from ours."""

    def node(node_id: str, seed_type: str, **config: object) -> dict[str, Any]:
        return {"id": node_id, "type": "custom", "data": {"type": seed_type, "label": node_id, "config": config}}

    return {
        "id": "wf_77",
        "name": "Refund triage",
        "tools": [{"id": "tool_5e1", "name": "order_lookup", "url": "https://seed.example/orders"}],
        "nodes": [
            node("start", "start"),
            node("check", "ifElse", lhs="{{input.amount}}", condition="greater_than", rhs="100"),
            node(
                "triage",
                "agent",
                llm_model=model,
                user_prompt="Refund of {{input.lhs_value}} (limit {{input.rhs_value}}): review or pay?",
                structured_output=True,
                structured_output_schema=json.dumps(VERDICT),
                tools=["tool_5e1"],
            ),
            node("decided", "end", output={"decision": "{{input.decision}}", "amount": "{{input.lhs_value}}"}),
            node("small", "end", output={"decision": "pay"}),
        ],
        "edges": [
            {"id": "e1", "source": "start", "target": "check", "source_handle": None},
            {"id": "e2", "source": "check", "target": "triage", "source_handle": "true"},
            {"id": "e3", "source": "check", "target": "small", "source_handle": "false"},
            {"id": "e4", "source": "triage", "target": "decided", "source_handle": None, "target_handle": "in"},
        ],
    }


def test_a_seed_agent_imports_with_its_model_schema_tools_and_fields_and_runs(
    api: Callable[..., APIClient], alice: User, llm_server: ScriptedLLM
) -> None:
    register_tool(alice, "order_lookup")
    model = llm_server.model(Answer(content='{"decision": "review"}'))
    client = api(alice)
    response = client.post("/api/workflows/import/", triage_export(model), format="json")
    assert response.status_code == 201, response.json()
    nodes = {node["id"]: node["data"] for node in response.json()["graph"]["nodes"]}
    assert nodes["triage"] == {
        "label": "triage",
        "model": model,
        "user_prompt": "Refund of {{input.left_value}} (limit {{input.right_value}}): review or pay?",
        "output_schema": VERDICT,
        "tools": ["order_lookup"],
    }

    started = client.post(f"/api/workflows/{response.json()['id']}/runs/", {"input": {"amount": 150}}, format="json")
    assert started.status_code == 201, started.json()
    run = wait_for(Run.objects.get(pk=started.json()["id"]))
    assert run.status == "succeeded", run.error
    assert run.output == {"decision": "review", "amount": 150}
    [request] = llm_server.requests(model)
    assert request["messages"][-1]["content"] == "Refund of 150 (limit 100): review or pay?"
    assert [tool["function"]["name"] for tool in request["tools"]] == ["order_lookup"]


def test_a_seed_tool_id_that_names_none_of_the_importers_tools_is_refused(
    api: Callable[..., APIClient], alice: User, mallory: User
) -> None:
    register_tool(mallory, "order_lookup")  # somebody else's tool of that name does not count
    response = api(alice).post("/api/workflows/import/", triage_export("openai/any"), format="json")
    assert response.status_code == 400
    [issue] = response.json()["graph"]
    assert issue["node_id"] == "triage" and issue["field"] == "tools"
    assert issue["message"].startswith(
        'node "triage": tools: "tool_5e1" (named "order_lookup" in the document) is not the id or name of one of '
        "your tools"
    )
    assert not Workflow.objects.exists()


def test_the_import_page_resolves_seed_tools_the_same_way(client: Client, alice: User) -> None:
    client.force_login(alice)
    upload = json.dumps(triage_export("openai/any")).encode()
    refused = client.post(reverse("workflow_import"), {"file": SimpleUploadedFile("seed.json", upload)})
    assert refused.status_code == 400
    assert [(issue["node_id"], issue["field"]) for issue in refused.context["issues"]] == [("triage", "tools")]
    register_tool(alice, "order_lookup")
    imported = client.post(reverse("workflow_import"), {"file": SimpleUploadedFile("seed.json", upload)})
    assert imported.status_code == 302
    graph = Workflow.objects.get(name="Refund triage").graph_document()
    data = next(node["data"] for node in graph["nodes"] if node["id"] == "triage")
    assert isinstance(data, dict) and data["tools"] == ["order_lookup"]


def test_the_whole_seed_sample_imports_and_runs_both_ways(api: Callable[..., APIClient], alice: User) -> None:
    client = api(alice)
    response = client.post("/api/workflows/import/", copy.deepcopy(SEED_EXPORT), format="json")
    assert response.status_code == 201, response.json()
    runs_url = f"/api/workflows/{response.json()['id']}/runs/"

    small = wait_for(Run.objects.get(pk=client.post(runs_url, {"input": {"amount": 40}}, format="json").json()["id"]))
    assert small.status == "succeeded" and small.output == {"refunded": True}

    large_input = {"amount": 500, "customer": "Ann"}
    large = Run.objects.get(pk=client.post(runs_url, {"input": large_input}, format="json").json()["id"])
    wait_for(large, "waiting")
    [approval] = client.get("/api/approvals/").json()["results"]
    assert approval["message"] == "Refund 500 to Ann?"
    decided = client.post(f"/api/approvals/{approval['id']}/decide/", {"decision": "rejected"}, format="json")
    assert decided.status_code == 200, decided.json()
    assert wait_for(large).output == {"refunded": False}
