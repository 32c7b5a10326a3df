"""Fixtures for the triggers' tests: an authenticated API client per persona and a workflow with an input
schema (so a webhook body or a schedule's input can be refused)."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User

from tests.api.conftest import api  # noqa: F401 - the API tests' fixture: a client per persona
from tests.factories import make_workflow
from workflows.models import Workflow

ORDER_SCHEMA = {
    "type": "object",
    "properties": {"order": {"type": "integer"}},
    "required": ["order"],
}


def order_graph() -> dict[str, Any]:
    """start (needs an integer `order`) -> end, whose output echoes it."""
    return {
        "nodes": [
            {"id": "start", "type": "start", "data": {"input_schema": ORDER_SCHEMA}},
            {"id": "end", "type": "end", "data": {"output": {"order": "{{input.order}}"}}},
        ],
        "edges": [{"id": "e1", "source": "start", "target": "end"}],
    }


@pytest.fixture
def orders(alice: User) -> Workflow:
    return make_workflow(alice, name="Orders", graph=order_graph())
