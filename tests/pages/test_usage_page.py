"""The usage page sums what the ledger holds, for the user's own runs only."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client

from workflows.models import Workflow

pytestmark = pytest.mark.django_db


def test_the_usage_page_sums_the_ledger(client: Client, alice: User, usage_ledger: tuple[Workflow, Workflow]) -> None:
    client.force_login(alice)
    page = client.get("/usage/")
    assert page.status_code == 200
    rows = {row["workflow_name"]: row for row in page.context["summary"]["results"]}
    assert rows["Support"]["total_tokens"] == 180 and rows["Triage"]["total_tokens"] == 35
    html = page.content.decode()
    assert "Support" in html and "0.003000" in html and "Hers" not in html
    by_model = client.get("/usage/", {"group_by": "model"}).content.decode()
    assert "openai/local-llama" in by_model and "Total" in by_model


def test_the_usage_page_needs_a_login(client: Client) -> None:
    response = client.get("/usage/")
    assert response.status_code == 302 and "/login/" in response["Location"]
