"""The `transform` node on the real worker: its result is recorded in the ledger and merged into the output;
a failing expression fails the run naming the node."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User

from runs.models import LedgerEntry, NodeRun
from tests.conftest import WorkerProcess
from tests.engine_helpers import graph_of, ledger, start, wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def worker(celery_worker: WorkerProcess) -> WorkerProcess:
    return celery_worker


def transform_chain(expression: str) -> dict[str, Any]:
    return graph_of(
        [("start", "start", {}), ("shape", "transform", {"expression": expression}), ("end", "end", {})],
        [("start", "shape"), ("shape", "end")],
    )


def test_a_transform_runs_on_the_worker_and_the_ledger_records_its_result(alice: User) -> None:
    expression = '{"total": $sum(input.items.price), "names": input.items.name, "customer": $uppercase(input.customer)}'
    run_input = {"customer": "ann", "items": [{"name": "pen", "price": 2}, {"name": "ink", "price": 3.5}]}
    run = wait_for(start(alice, transform_chain(expression), run_input))
    assert run.status == "succeeded", run.error
    assert ledger(run) == [("start", "succeeded"), ("shape", "succeeded"), ("end", "succeeded")]
    own = {"total": 5.5, "names": ["pen", "ink"], "customer": "ANN"}
    assert NodeRun.objects.get(run=run, node_id="shape").result == own
    entry = LedgerEntry.objects.get(run=run, node_id="shape")
    assert entry.node_type == "transform" and entry.input == run_input
    assert entry.output == {**run_input, **own}
    assert run.output == {**run_input, **own}


def test_a_failing_expression_fails_the_run_naming_the_node_once(alice: User) -> None:
    run = wait_for(start(alice, transform_chain('{"x": input.a + "s"}'), {"a": 1}))
    assert run.status == "failed"
    assert run.error.startswith('node "shape" (transform) failed: transform "shape": JSONata T2002: ')
    assert ledger(run) == [("start", "succeeded"), ("shape", "failed")]
    assert NodeRun.objects.get(run=run, node_id="shape").attempts == 1  # permanent: no retry


def test_a_value_that_is_not_an_object_fails_the_run_saying_what_it_was(alice: User) -> None:
    run = wait_for(start(alice, transform_chain("input.items"), {"items": [1, 2, 3]}))
    assert run.status == "failed"
    assert run.error.endswith("the expression's value must be a JSON object, not a list of 3 items")


@pytest.mark.parametrize(
    ("expression", "tier"),
    [
        ('{"tier": nodes.classify.label}', "gold"),
        ('{"tier": nodes.`classify`.label & "/" & nodes.count.n}', "gold/2"),
        ('{"tier": $join($sort($keys(nodes)), ",")}', "classify,count,start"),  # every earlier node
    ],
)
def test_an_expression_reads_the_earlier_nodes_it_names_or_all_of_them(alice: User, expression: str, tier: str) -> None:
    graph = graph_of(
        [
            ("start", "start", {}),
            ("classify", "transform", {"expression": '{"label": "gold"}'}),
            ("count", "transform", {"expression": '{"n": 2}'}),
            ("shape", "transform", {"expression": expression}),
            ("end", "end", {}),
        ],
        [("start", "classify"), ("classify", "count"), ("count", "shape"), ("shape", "end")],
    )
    run = wait_for(start(alice, graph, {"a": 1}))
    assert run.status == "succeeded", run.error
    assert run.output == {"a": 1, "label": "gold", "n": 2, "tier": tier}
