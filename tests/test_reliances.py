"""The engine's reliances on library internals (flownova.reliances): each applies only to a checked version."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from importlib import metadata
from typing import Any

import pytest

from flownova import reliances


@pytest.fixture
def unchecked_psycopg(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every reliance sees an installed version it was never checked against."""
    monkeypatch.setattr(metadata, "version", lambda name: "99.0")  # the module reliances reads versions from
    reliances._applies.cache_clear()
    yield
    reliances._applies.cache_clear()


def test_every_reliance_was_checked_against_the_installed_version() -> None:
    # An upgrade of one of these libraries fails here: check the reliance against the new version (see the
    # decision record), then add it to `checked`, or remove the reliance.
    assert reliances.unchecked() == []


def test_an_unchecked_version_turns_every_reliance_off_and_says_so(
    unchecked_psycopg: None, caplog: pytest.LogCaptureFixture
) -> None:
    problems = reliances.unchecked()
    assert len(problems) == len(reliances.RELIANCES)
    assert all("99.0 is not a version it was checked against" in problem for problem in problems)
    with caplog.at_level(logging.WARNING, logger="flownova.reliances"):
        reliances.activate()
    assert sum("private library internals" in record.message for record in caplog.records) == len(problems)

    class Connection:
        pass

    connection = Connection()
    reliances.mark_connection_obsolete(connection)
    assert not hasattr(connection, "close_at")
    assert reliances.guard_detached_redis_channels() is False

    class Layer:  # has the internals, but they are not trusted at this version: every group gets the events
        def _group_key(self, name: str) -> str:
            raise AssertionError("read although unchecked")

        def consistent_hash(self, name: str) -> int:
            return 0

        def connection(self, index: int) -> Any:
            raise AssertionError("read although unchecked")

    assert asyncio.run(reliances.watched_groups(Layer(), ["run.1", "run.2"])) == ["run.1", "run.2"]


def test_with_a_checked_version_a_connection_is_marked_obsolete() -> None:
    class Connection:
        close_at: float  # Django's connection attribute; unset until marked

    connection = Connection()
    reliances.mark_connection_obsolete(connection)
    assert isinstance(connection.close_at, float)
