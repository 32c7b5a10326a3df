"""A pool of database connections as the I/O worker's threads use it (FLOWNOVA_DB_POOL_SIZE): a connection given
back while a node waits on the network, and taken again to record it, keeps the statements prepared on it
(decision 0004)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from django.db import connection
from django.db.backends.postgresql.base import DatabaseWrapper

from flownova import deadline

pytestmark = pytest.mark.django_db


@pytest.fixture
def pooled(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A connection of the test database from a pool of one, as the settings make it for the I/O worker; it
    stands for the thread's connection in flownova.deadline."""
    settings = dict(connection.settings_dict)
    settings.update(CONN_MAX_AGE=0, CONN_HEALTH_CHECKS=True)
    settings["OPTIONS"] = {**settings["OPTIONS"], "pool": {"min_size": 1, "max_size": 1, "timeout": 5}}
    wrapper = DatabaseWrapper(settings, alias="pooled-test")
    monkeypatch.setattr(deadline, "connection", wrapper)
    yield wrapper
    wrapper.close()
    wrapper.close_pool()  # type: ignore[attr-defined]  # Django 5.1's pool; django-stubs lacks it


def prepared(wrapper: Any) -> set[str]:
    with wrapper.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        return {row[0] for row in cursor.fetchall()}


def test_a_connection_given_back_before_a_wait_keeps_its_prepared_statements(pooled: Any) -> None:
    threshold = pooled.settings_dict["OPTIONS"]["prepare_threshold"]
    if threshold is None:
        pytest.skip("FLOWNOVA_DB_PREPARE_THRESHOLD=off")
    statement = "SELECT %s::int + 1 AS pooled_probe"
    pooled.ensure_connection()
    raw = pooled.connection
    assert raw.prepare_threshold == threshold
    for value in range(threshold + 1):
        with psycopg.Cursor(raw) as cursor:  # bound on the server, as runs/writes/server.py does
            cursor.execute(statement, [value])
    assert any("pooled_probe" in text for text in prepared(pooled))

    deadline.release_connection()  # what a thread does before it waits on a model or a tool
    assert pooled.connection is None
    assert pooled.pool.get_stats()["pool_available"] == 1

    pooled.ensure_connection()  # the next query takes a connection again: the same one, with what it prepared
    assert pooled.connection is raw
    assert any("pooled_probe" in text for text in prepared(pooled))
