"""Fixtures for the API tests: authenticated clients for the personas, and throttles that start afresh."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.factories import linear_graph


@pytest.fixture
def api() -> Callable[..., APIClient]:
    """api(user) -> a client sending that user's token; api() -> an anonymous client."""

    def make(user: Any = None) -> APIClient:
        client = APIClient()
        if user is not None:
            token, _ = Token.objects.get_or_create(user=user)
            client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
        return client

    return make


def approval_graph(**approval_data: Any) -> dict[str, Any]:
    """start -> ask (user_approval) -> approved: end ok / rejected: end no."""
    return {
        "nodes": [
            {"id": "start", "type": "start", "data": {}},
            {"id": "ask", "type": "user_approval", "data": {"message": "Ship {{input.order}}?", **approval_data}},
            {"id": "ok", "type": "end", "data": {"output": {"shipped": True}}},
            {"id": "no", "type": "end", "data": {"output": {"shipped": False}}},
        ],
        "edges": [
            {"id": "e1", "source": "start", "target": "ask"},
            {"id": "e2", "source": "ask", "sourceHandle": "approved", "target": "ok"},
            {"id": "e3", "source": "ask", "sourceHandle": "rejected", "target": "no"},
        ],
    }


def simple_graph() -> dict[str, Any]:
    return linear_graph()
