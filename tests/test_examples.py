"""The example workflows (workflows/examples/): each one is a valid workflow with a description and a sample
input, they load into an account once however often demo_setup runs, and every one that needs no outside
network (no HTTP tool, no LLM) runs its sample input to success on the real worker. Those that do need it are
only validated here: tests never reach past loopback."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command

from approvals.models import ApprovalRequest
from approvals.services import approval_decide
from runs.models import Run
from runs.services import run_start
from tests.engine_helpers import wait_for
from tools.models import Tool
from workflows.demo import ExampleError, examples, examples_load
from workflows.models import Workflow

NETWORK_TYPES = {"tool", "agent", "guardrails", "cognitive"}
EXAMPLES = examples()
BY_NAME = {example.name: example for example in EXAMPLES}


def needs_network(name: str) -> bool:
    example = BY_NAME[name]
    if any(node["type"] in NETWORK_TYPES for node in example.document["graph"]["nodes"]):
        return True
    return any(needs_network(ref) for ref in example.references())


def start_data(document: dict[str, Any]) -> dict[str, Any]:
    start = next(node for node in document["graph"]["nodes"] if node["type"] == "start")
    data: dict[str, Any] = start["data"]
    return data


def test_there_are_examples_of_every_kind_of_node() -> None:
    assert len(EXAMPLES) >= 8
    used = {node["type"] for example in EXAMPLES for node in example.document["graph"]["nodes"]}
    assert used >= {
        "if_else", "switch", "transform", "fork", "join", "user_approval", "agent", "guardrails", "cognitive",
        "tool", "map",
    }  # fmt: skip
    assert any(
        edge.get("sourceHandle") == "error" for example in EXAMPLES for edge in example.document["graph"]["edges"]
    )
    for example in EXAMPLES:
        assert example.document["description"].strip(), example.name
        assert isinstance(start_data(example.document).get("sample_input"), dict), example.name


@pytest.mark.django_db
def test_every_example_loads_valid_and_only_once(alice: User) -> None:
    loaded = examples_load(owner=alice)
    assert sorted(loaded) == sorted(BY_NAME)
    workflows = Workflow.objects.filter(owner=alice)
    assert workflows.count() == len(EXAMPLES)
    tools = {example_tool["name"] for example in EXAMPLES for example_tool in example.tools}
    assert set(Tool.objects.filter(owner=alice).values_list("name", flat=True)) == tools

    assert examples_load(owner=alice) == []
    assert Workflow.objects.filter(owner=alice).count() == len(EXAMPLES)
    assert Tool.objects.filter(owner=alice).count() == len(tools)
    # The map runs the copy of the child example in this account, named by its id.
    lead_scoring = workflows.get(name="Lead scoring (map over a subworkflow)")
    score_each: dict[str, Any] = next(
        node for node in lead_scoring.graph_document()["nodes"] if node["id"] == "score_each"
    )
    assert score_each["data"]["workflow"] == workflows.get(name="Score a lead").pk


@pytest.mark.django_db
def test_an_example_loads_beside_a_tool_of_the_same_name_the_user_has(alice: User) -> None:
    from tools.services import tool_create

    mine = tool_create(owner=alice, name="current_weather", url="https://weather.example.com/now")
    examples_load(owner=alice)
    assert Tool.objects.get(owner=alice, name="current_weather").url == mine.url


def test_an_example_running_one_no_file_defines_is_named(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text(
        '{"name": "A", "graph": {"nodes": [{"id": "m", "type": "map", "data": {"workflow": "Missing"}}]}}'
    )
    with pytest.raises(ExampleError, match=re.escape("a.json runs the example 'Missing', which no file defines")):
        examples(tmp_path)


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("name", sorted(name for name in BY_NAME if not needs_network(name)))
def test_an_example_without_network_runs_its_sample_to_success(name: str, alice: User, celery_worker: Any) -> None:
    examples_load(owner=alice)
    workflow = Workflow.objects.get(owner=alice, name=name)
    run = run_start(workflow=workflow, input=start_data(BY_NAME[name].document)["sample_input"], user=alice)
    run = wait_for(run, "succeeded", "waiting", timeout=60)
    while run.status == "waiting":
        approval = ApprovalRequest.objects.get(run=run, status="pending")
        approval_decide(approval_id=approval.pk, user=alice, decision="approved", comment="looks right")
        run = wait_for(run, "succeeded", "waiting", timeout=60)
    assert run.status == "succeeded", run.error
    assert run.output


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_the_examples_outputs_say_what_they_computed(alice: User, celery_worker: Any) -> None:
    examples_load(owner=alice)

    def run_sample(name: str, **overrides: Any) -> Run:
        sample = {**start_data(BY_NAME[name].document)["sample_input"], **overrides}
        return wait_for(run_start(workflow=Workflow.objects.get(owner=alice, name=name), input=sample, user=alice))

    scoring = run_sample("Lead scoring (map over a subworkflow)")
    assert scoring.status == "succeeded", scoring.error
    assert scoring.output is not None
    assert scoring.output["shortlist"] == ["Nordlys AS", "Brightwave GmbH"]
    assert scoring.output["failed"] == 0

    pricing = run_sample("Order pricing (transform, switch, error path)")
    assert pricing.status == "succeeded", pricing.error
    assert pricing.output is not None
    assert pricing.output["tier"] == "large"
    assert pricing.output["subtotal"] == 1597.6
    assert pricing.output["total"] == round(1597.6 * 0.9, 2)

    broken = run_sample("Order pricing (transform, switch, error path)", order={"customer": "X", "items": [
        {"sku": "A", "quantity": "two", "unit_price": 3}]})  # fmt: skip
    assert broken.status == "succeeded", broken.error
    assert broken.output is not None
    assert broken.output["status"] == "invalid order"
    assert broken.output["error"]


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_run_workflow_runs_an_example_file_with_its_sample_input(
    alice: User, celery_worker: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    example = BY_NAME["Parallel checks"]
    with pytest.raises(SystemExit) as ended:
        call_command("run_workflow", str(example.path), user=alice.username, timeout=30)
    assert ended.value.code == 0, capsys.readouterr().err
    run = Run.objects.get(workflow__name="Parallel checks")
    assert run.input == start_data(example.document)["sample_input"]
    assert run.output == {"big_amount": True, "domestic": True}
