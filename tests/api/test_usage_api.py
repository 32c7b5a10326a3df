"""GET /api/usage/: tokens and cost from the ledger, per workflow, model and day, scoped to the user."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from workflows.models import Workflow

if TYPE_CHECKING:
    from rest_framework.response import _MonkeyPatchedResponse

pytestmark = pytest.mark.django_db


def get(user: User, **params: str) -> _MonkeyPatchedResponse:
    client = APIClient()
    client.force_authenticate(user)
    return client.get("/api/usage/", params)


def test_usage_per_workflow_sums_the_ledger(alice: User, usage_ledger: tuple[Workflow, Workflow]) -> None:
    body = get(alice).json()
    rows = {row["workflow_name"]: row for row in body["results"]}
    assert rows["Support"]["prompt_tokens"] == 150 and rows["Support"]["completion_tokens"] == 30
    assert rows["Support"]["cost_usd"] == pytest.approx(0.003) and rows["Support"]["unpriced_entries"] == 0
    # A model LiteLLM cannot price has no cost, counted apart rather than as zero.
    assert rows["Triage"]["cost_usd"] is None and rows["Triage"]["unpriced_entries"] == 1
    assert body["total"]["total_tokens"] == 215 and body["total"]["calls"] == 3


def test_usage_per_model_and_per_day(alice: User, usage_ledger: tuple[Workflow, Workflow]) -> None:
    models = {row["model"]: row["total_tokens"] for row in get(alice, group_by="model").json()["results"]}
    assert models == {"openai/gpt-4o-mini": 180, "openai/local-llama": 35}
    days = {row["day"]: row["calls"] for row in get(alice, group_by="day").json()["results"]}
    assert days == {"2026-11-20": 1, "2026-11-21": 2}
    since = get(alice, group_by="day", since="2026-11-21").json()
    assert [row["day"] for row in since["results"]] == ["2026-11-21"]


def test_usage_is_scoped_and_validated(alice: User, mallory: User, usage_ledger: tuple[Workflow, Workflow]) -> None:
    hers = get(mallory).json()
    assert [row["workflow_name"] for row in hers["results"]] == ["Hers"]
    bad = get(alice, group_by="tool")
    assert bad.status_code == 400 and "group_by" in bad.json()
    assert APIClient().get("/api/usage/").status_code == 401
