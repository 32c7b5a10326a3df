"""Fixtures for the triggers' tests: an authenticated API client per persona and a workflow with an input
schema (so a webhook body or a schedule's input can be refused)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

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
def api() -> Callable[..., APIClient]:
    def make(user: User | None = None) -> APIClient:
        client = APIClient()
        if user is not None:
            token, _ = Token.objects.get_or_create(user=user)
            client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
        return client

    return make


@pytest.fixture
def orders(alice: User) -> Workflow:
    return make_workflow(alice, name="Orders", graph=order_graph())
