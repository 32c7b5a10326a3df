"""A start node's `sample_input`: the run form starts filled in with it, and a sample that its own input schema
refuses is a 400 naming the field when the graph is saved."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from tests.factories import make_workflow

pytestmark = pytest.mark.django_db

SCHEMA = {
    "type": "object",
    "required": ["city"],
    "properties": {
        "city": {"type": "string"},
        "days": {"type": "integer"},
        "units": {"type": "string", "enum": ["metric", "imperial"]},
        "alerts": {"type": "boolean"},
    },
}


def graph_with(start_data: dict[str, Any]) -> dict[str, Any]:
    return {
        "nodes": [{"id": "start", "type": "start", "data": start_data}, {"id": "end", "type": "end", "data": {}}],
        "edges": [{"id": "e0", "source": "start", "target": "end"}],
    }


def test_the_run_form_fields_start_with_the_sample_input(client: Client, alice: User) -> None:
    sample = {"city": "Lyon", "days": 3, "units": "imperial", "alerts": True}
    workflow = make_workflow(alice, graph=graph_with({"input_schema": SCHEMA, "sample_input": sample}))
    client.force_login(alice)
    response = client.get(reverse("workflow_detail", args=[workflow.pk]))
    assert response.status_code == 200
    form = response.context["input_form"]
    assert {name: form[name].value() for name in form.fields} == {
        "input__city": "Lyon",
        "input__days": 3,
        "input__units": '"imperial"',
        "input__alerts": True,
    }
    html = response.content.decode()
    assert 'value="Lyon"' in html and 'value="3"' in html
    # The JSON form beside the fields holds the same sample.
    assert json.loads(response.context["input_json"]) == sample


def test_the_json_run_form_starts_with_the_sample_input(client: Client, alice: User) -> None:
    sample = {"order": {"items": [{"sku": "A-1", "quantity": 2}]}}
    workflow = make_workflow(alice, graph=graph_with({"sample_input": sample}))
    client.force_login(alice)
    response = client.get(reverse("workflow_detail", args=[workflow.pk]))
    assert response.context["input_form"] is None
    assert json.loads(response.context["input_json"]) == sample
    assert "&quot;sku&quot;: &quot;A-1&quot;" in response.content.decode()


def test_without_a_sample_the_run_form_starts_empty(client: Client, alice: User) -> None:
    workflow = make_workflow(alice, graph=graph_with({"input_schema": SCHEMA}))
    client.force_login(alice)
    response = client.get(reverse("workflow_detail", args=[workflow.pk]))
    assert response.context["input_json"] == "{}"
    assert response.context["input_form"]["input__city"].value() is None


def test_a_sample_input_the_schema_refuses_is_a_400_naming_the_field(client: Client, alice: User) -> None:
    client.force_login(alice)
    graph = graph_with({"input_schema": SCHEMA, "sample_input": {"days": "three"}})
    response = client.post("/api/workflows/", {"name": "Bad sample", "graph": graph}, content_type="application/json")
    assert response.status_code == 400
    issues = response.json()["graph"]
    assert {(issue["node_id"], issue.get("field")) for issue in issues} == {("start", "sample_input")}
    messages = sorted(issue["message"] for issue in issues)
    assert any("'city' is a required property" in message for message in messages), messages
    assert any("'three' is not of type 'integer' (at days)" in message for message in messages), messages


def test_the_sample_input_is_exported_and_imported_with_the_graph(client: Client, alice: User) -> None:
    sample = {"city": "Oslo"}
    workflow = make_workflow(alice, graph=graph_with({"input_schema": SCHEMA, "sample_input": sample}))
    client.force_login(alice)
    exported = client.get(reverse("workflow_export", args=[workflow.pk])).json()
    imported = client.post("/api/workflows/import/", exported, content_type="application/json")
    assert imported.status_code == 201, imported.json()
    start = next(node for node in imported.json()["graph"]["nodes"] if node["type"] == "start")
    assert start["data"]["sample_input"] == sample
