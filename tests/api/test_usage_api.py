"""GET /api/usage/: tokens and cost from the ledger, per workflow, model and day, scoped to the user."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from rest_framework.test import APIClient

from runs.models import LedgerEntry
from tests.factories import make_run, make_workflow

pytestmark = pytest.mark.django_db


def entry(run, seq: int, day: int, **usage: object) -> None:  # type: ignore[no-untyped-def]
    when = datetime(2026, 11, day, 12, tzinfo=UTC)
    LedgerEntry.objects.create(
        run=run,
        seq=seq,
        node_id=f"n{seq}",
        node_type="agent",
        status="succeeded",
        started_at=when,
        finished_at=when,
        llm_usage={"calls": 1, "total_tokens": usage["prompt_tokens"] + usage["completion_tokens"], **usage},
    )


@pytest.fixture
def ledger(alice, mallory):  # type: ignore[no-untyped-def]
    support, triage = make_workflow(alice, name="Support"), make_workflow(alice, name="Triage")
    first, second = make_run(support), make_run(triage)
    entry(first, 1, 20, model="openai/gpt-4o-mini", prompt_tokens=100, completion_tokens=20, cost_usd=0.002)
    entry(first, 2, 21, model="openai/gpt-4o-mini", prompt_tokens=50, completion_tokens=10, cost_usd=0.001)
    entry(second, 1, 21, model="openai/local-llama", prompt_tokens=30, completion_tokens=5, cost_usd=None)
    entry(make_run(make_workflow(mallory, name="Hers")), 1, 21, model="x", prompt_tokens=999, completion_tokens=1)
    return support, triage


def get(user, **params: str):  # type: ignore[no-untyped-def]
    client = APIClient()
    client.force_authenticate(user)
    return client.get("/api/usage/", params)


def test_usage_per_workflow_sums_the_ledger(alice, ledger) -> None:  # type: ignore[no-untyped-def]
    body = get(alice).json()
    rows = {row["workflow_name"]: row for row in body["results"]}
    assert rows["Support"]["prompt_tokens"] == 150 and rows["Support"]["completion_tokens"] == 30
    assert rows["Support"]["cost_usd"] == pytest.approx(0.003) and rows["Support"]["unpriced_entries"] == 0
    # A model LiteLLM cannot price has no cost, counted apart rather than as zero.
    assert rows["Triage"]["cost_usd"] is None and rows["Triage"]["unpriced_entries"] == 1
    assert body["total"]["total_tokens"] == 215 and body["total"]["calls"] == 3


def test_usage_per_model_and_per_day(alice, ledger) -> None:  # type: ignore[no-untyped-def]
    models = {row["model"]: row["total_tokens"] for row in get(alice, group_by="model").json()["results"]}
    assert models == {"openai/gpt-4o-mini": 180, "openai/local-llama": 35}
    days = {row["day"]: row["calls"] for row in get(alice, group_by="day").json()["results"]}
    assert days == {"2026-11-20": 1, "2026-11-21": 2}
    since = get(alice, group_by="day", since="2026-11-21").json()
    assert [row["day"] for row in since["results"]] == ["2026-11-21"]


def test_usage_is_scoped_and_validated(alice, mallory, ledger) -> None:  # type: ignore[no-untyped-def]
    hers = get(mallory).json()
    assert [row["workflow_name"] for row in hers["results"]] == ["Hers"]
    bad = get(alice, group_by="tool")
    assert bad.status_code == 400 and "group_by" in bad.json()
    assert APIClient().get("/api/usage/").status_code == 401
