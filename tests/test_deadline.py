"""A node's deadline (flownova/deadline.py): what remains of it bounds each wait of the egress client, which
raises DeadlineExceeded, Celery's soft time limit exception, once it has passed."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from celery.exceptions import SoftTimeLimitExceeded
from pytest_django import Settings

from flownova import deadline
from tests.tools.servers import LocalServer, Reply
from tools.egress import EgressError, egress_request


@pytest.fixture
def slow_server(settings: Settings) -> Iterator[LocalServer]:
    settings.FLOWNOVA_EGRESS_ALLOWLIST = ["127.0.0.1"]
    server = LocalServer(lambda request, count: Reply(body={"late": True}, delay=5))
    yield server
    server.close()


def test_without_a_deadline_a_timeout_is_kept() -> None:
    assert deadline.remaining() is None
    assert deadline.bounded(30.0) == 30.0
    deadline.check()


def test_a_deadline_cuts_timeouts_to_what_remains_and_only_narrows() -> None:
    with deadline.node_deadline(2):
        assert 1.5 < deadline.bounded(30.0) <= 2
        assert deadline.bounded(30.0, whole=True) == 2.0
        assert deadline.bounded(0.5) == 0.5
        with deadline.node_deadline(60):  # a nested, longer limit does not extend the node's
            assert deadline.bounded(30.0) <= 2
    assert deadline.remaining() is None


def test_past_the_deadline_waits_are_refused_as_a_soft_time_limit() -> None:
    with deadline.node_deadline(0.01):
        time.sleep(0.02)
        assert deadline.passed()
        with pytest.raises(SoftTimeLimitExceeded):
            deadline.bounded(30.0)
        with pytest.raises(deadline.DeadlineExceeded):
            deadline.check()


def test_an_egress_call_ends_at_the_nodes_deadline(slow_server: LocalServer) -> None:
    began = time.monotonic()
    with deadline.node_deadline(0.5), pytest.raises(deadline.DeadlineExceeded):
        egress_request(method="GET", url=f"{slow_server.url}/slow", timeout=30)
    assert time.monotonic() - began < 2
    assert len(slow_server.received) == 1  # its own retries stopped at the deadline too


def test_an_egress_call_keeps_its_own_timeout_within_the_deadline(slow_server: LocalServer, settings: Settings) -> None:
    settings.FLOWNOVA_EGRESS_RETRIES = 0
    with deadline.node_deadline(30), pytest.raises(EgressError) as raised:
        egress_request(method="GET", url=f"{slow_server.url}/slow", timeout=0.3)
    assert not isinstance(raised.value, SoftTimeLimitExceeded)
    assert raised.value.kind == "timeout"
