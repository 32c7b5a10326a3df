"""The run form's optional fields: a blank one is left out of the input (a template default then fills it),
and what is filled in keeps the schema's type."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from runs.models import Run
from tests.conftest import WorkerProcess
from tests.engine_helpers import wait_for
from tests.factories import make_workflow
from workflows.models import Workflow

if TYPE_CHECKING:
    from django.test.client import _MonkeyPatchedWSGIResponse

pytestmark = pytest.mark.django_db


def form_graph(
    properties: dict[str, Any], output: dict[str, Any] | None = None, required: list[str] | None = None
) -> dict[str, Any]:
    schema = {"type": "object", "properties": properties, "required": required or []}
    return {
        "nodes": [
            {"id": "start", "type": "start", "data": {"input_schema": schema}},
            {"id": "greet", "type": "end", "data": {"output": output} if output else {}},
        ],
        "edges": [{"id": "e0", "source": "start", "target": "greet"}],
    }


def post_fields(client: Client, workflow: Workflow, **fields: str) -> _MonkeyPatchedWSGIResponse:
    data = {"input_mode": "fields", **{f"input__{name}": value for name, value in fields.items()}}
    return client.post(reverse("workflow_detail", args=[workflow.pk]), data)


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_blank_optional_field_is_left_out_and_a_template_default_stands_in(
    client: Client, alice: User, celery_worker: WorkerProcess
) -> None:
    properties = {"order": {"type": "integer"}, "customer": {"type": "string"}, "note": {"type": "string"}}
    output = {
        "greeting": 'Hello {{input.customer ?? "guest"}}, order {{input.order}}',
        "note": "{{input.note ?? null}}",
    }
    workflow = make_workflow(alice, graph=form_graph(properties, output, required=["order"]))
    client.force_login(alice)
    response = post_fields(client, workflow, order="7", customer="", note="   ")
    assert response.status_code == 302
    run = wait_for(Run.objects.get())
    assert run.input == {"order": 7}
    assert run.status == "succeeded", run.error
    assert run.output == {"greeting": "Hello guest, order 7", "note": None}


def test_an_enum_value_that_looks_blank_is_kept_when_chosen(client: Client, alice: User) -> None:
    properties = {"tier": {"type": "string", "enum": ["", "gold"]}, "vip": {"type": "boolean", "enum": [True, False]}}
    workflow = make_workflow(alice, graph=form_graph(properties))
    client.force_login(alice)
    page = client.get(reverse("workflow_detail", args=[workflow.pk])).content.decode()
    assert '<option value="&quot;&quot;">&quot;&quot;</option>' in page  # the empty string, shown as one
    assert '<option value="true">true</option>' in page  # JSON, as the schema writes it
    assert post_fields(client, workflow, tier='""', vip="false").status_code == 302
    assert Run.objects.get().input == {"tier": "", "vip": False}
    Run.objects.all().delete()
    assert post_fields(client, workflow, tier="", vip="").status_code == 302  # "—": nothing chosen
    assert Run.objects.get().input == {}


def test_a_nullable_simple_type_gets_a_field_and_a_blank_one_is_left_out(client: Client, alice: User) -> None:
    properties = {"nickname": {"type": ["string", "null"]}, "age": {"type": ["null", "integer"]}}
    workflow = make_workflow(alice, graph=form_graph(properties))
    client.force_login(alice)
    page = client.get(reverse("workflow_detail", args=[workflow.pk]))
    assert page.status_code == 200
    assert 'id="id_input__nickname"' in page.content.decode() and 'id="id_input__age"' in page.content.decode()
    assert post_fields(client, workflow, nickname="", age="41").status_code == 302
    assert Run.objects.get().input == {"age": 41}


@pytest.mark.parametrize("kind", [["string", "integer"], ["string", "number", "null"], ["object", "null"], "array"])
def test_a_type_a_field_cannot_stand_for_falls_back_to_json(client: Client, alice: User, kind: object) -> None:
    workflow = make_workflow(alice, graph=form_graph({"a": {"type": kind}}))
    client.force_login(alice)
    page = client.get(reverse("workflow_detail", args=[workflow.pk]))
    assert page.status_code == 200
    assert 'id="run-form-fields"' not in page.content.decode()


def test_a_whole_number_in_a_number_field_stays_a_whole_number(client: Client, alice: User) -> None:
    workflow = make_workflow(alice, graph=form_graph({"amount": {"type": "number"}, "rate": {"type": "number"}}))
    client.force_login(alice)
    assert post_fields(client, workflow, amount="12", rate="2.5").status_code == 302
    run_input = Run.objects.get().input
    assert run_input == {"amount": 12, "rate": 2.5}
    assert type(run_input["amount"]) is int  # so "{{input.amount}}" reads 12, not 12.0
