"""Template defaults and missing-path messages in real runs, on the worker."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User

from nodes import node_specs
from runs.models import LedgerEntry
from tests.conftest import WorkerProcess
from tests.engine_helpers import graph_of, start, wait_for
from workflows.graph import validate_graph

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

SCHEMA = {"type": "object", "properties": {"order": {"type": "integer"}, "customer": {"type": "string"}}}


@pytest.fixture(autouse=True)
def worker(celery_worker: WorkerProcess) -> WorkerProcess:
    return celery_worker


def greeting_flow(greeting: str) -> dict[str, Any]:
    # The if/else adds its own fields to what the end node gets, as any earlier node does.
    return graph_of(
        [
            ("start", "start", {"input_schema": SCHEMA}),
            ("big", "if_else", {"left": "{{input.order}}", "operator": ">", "right": 10}),
            ("greet", "end", {"output": {"greeting": greeting}}),
        ],
        [("start", "big"), ("big", "greet", "true"), ("big", "greet", "false")],
    )


def test_an_optional_field_left_out_takes_the_default(alice: User) -> None:
    flow = greeting_flow('Hello {{input.customer ?? "guest"}}, order {{input.order ?? 0}}')
    assert wait_for(start(alice, flow, {"order": 12})).output == {"greeting": "Hello guest, order 12"}
    assert wait_for(start(alice, flow, {"order": 3, "customer": "Ann"})).output == {"greeting": "Hello Ann, order 3"}
    whole = wait_for(start(alice, greeting_flow("{{input.customer ?? null}}"), {"order": 1}))
    assert whole.status == "succeeded" and whole.output == {"greeting": None}


def test_a_missing_field_without_a_default_names_the_node_whose_input_it_looked_in(alice: User) -> None:
    run = wait_for(start(alice, greeting_flow("Hello {{input.customer}}"), {"order": 12}))
    assert run.status == "failed"
    message = (
        'template {{input.customer}}: the input of node "greet" has no key "customer" '
        "(its input has: order, operator, condition, left_value, right_value); "
        'if it is optional, give a default: {{input.customer ?? "..."}}'
    )
    assert run.error == f'node "greet" (end) failed: {message}'
    assert LedgerEntry.objects.get(run=run, node_id="greet").error == message


def test_a_malformed_default_is_refused_when_the_graph_is_checked() -> None:
    issues = validate_graph(greeting_flow("Hello {{input.customer ?? guest}}"), node_specs())
    assert [(issue.node_id, issue.field) for issue in issues] == [("greet", "output")]
    assert issues[0].message.startswith(
        'node "greet": data.output: greeting: template {{input.customer ?? guest}}: the default after "??" must'
    )
