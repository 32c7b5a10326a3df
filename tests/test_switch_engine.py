"""The `switch` node on the real stack (PostgreSQL, Redis, the suite's Celery worker): the run follows the first
matching case, the other branches are skipped, and the ledger records which case was taken."""

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


CASES = [
    {"id": "refund", "operator": "==", "right": "refund"},
    {"id": "billing", "operator": "contains", "right": "{{input.billing_word}}"},
]
ENDS = {"refund": "refunds", "billing": "invoices", "default": "triage"}


def routed(edges: list[tuple[str, ...]] | None = None) -> dict[str, Any]:
    """start -> route (a switch on input.topic) -> one end per handle."""
    return graph_of(
        [
            ("start", "start", {}),
            ("route", "switch", {"value": "{{input.topic}}", "cases": CASES}),
            *((end, "end", {"output": {"queue": end, "case": "{{nodes.route.case}}"}}) for end in ENDS.values()),
        ],
        [("start", "route"), *(edges or [("route", end, handle) for handle, end in ENDS.items()])],
    )


@pytest.mark.parametrize(
    ("topic", "case"),
    [("refund", "refund"), ("my invoice is wrong", "billing"), ("where is my parcel", "default")],
)
def test_a_switch_takes_the_first_matching_case_and_skips_the_other_branches(
    alice: User, topic: str, case: str
) -> None:
    run = wait_for(start(alice, routed(), {"topic": topic, "billing_word": "invoice"}))
    assert run.status == "succeeded", run.error
    assert run.output == {"queue": ENDS[case], "case": case}
    route = NodeRun.objects.get(run=run, node_id="route")
    assert route.handle == case and route.result == {"case": case}
    assert ledger(run) == [("start", "succeeded"), ("route", "succeeded"), (ENDS[case], "succeeded")]
    entry = LedgerEntry.objects.get(run=run, node_id="route")
    assert entry.output == {"topic": topic, "billing_word": "invoice", "case": case}
    for other in set(ENDS.values()) - {ENDS[case]}:
        assert NodeRun.objects.get(run=run, node_id=other).status == "skipped"


def test_a_case_taken_without_an_edge_ends_the_run_saying_no_end_was_reached(alice: User) -> None:
    graph = routed([("route", "refunds", "refund"), ("route", "triage", "default")])
    graph["nodes"] = [node for node in graph["nodes"] if node["id"] != "invoices"]
    run = wait_for(start(alice, graph, {"topic": "invoice 7", "billing_word": "invoice"}))
    assert run.status == "failed"
    assert run.error == "the run stopped without reaching an end node"
    assert NodeRun.objects.get(run=run, node_id="route").handle == "billing"
    assert {NodeRun.objects.get(run=run, node_id=end).status for end in ("refunds", "triage")} == {"skipped"}


def test_a_case_that_cannot_be_compared_fails_the_run_naming_the_case(alice: User) -> None:
    graph = routed()
    graph["nodes"][1]["data"]["cases"] = [{"id": "big", "operator": ">", "right": 100}]
    graph["edges"] = [edge for edge in graph["edges"] if edge.get("sourceHandle") in (None, "default")]
    graph["edges"].append({"id": "big", "source": "route", "target": "refunds", "sourceHandle": "big"})
    graph["nodes"] = [node for node in graph["nodes"] if node["id"] != "invoices"]
    run = wait_for(start(alice, graph, {"topic": "a word"}))
    assert run.status == "failed"
    assert "route" in (run.error or "") and "case 'big' (cases.0): can't compare" in (run.error or "")
