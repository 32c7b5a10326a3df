"""Testing a data migration: the database migrated back to before it, with the apps as they were then."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import connection
from django.db.migrations.executor import MigrationExecutor


@contextmanager
def migrated_back_to(*targets: tuple[str, str]) -> Iterator[Any]:
    """The database as it was at `targets` (app, migration), and the apps as they were then; migrated forward to
    the latest migrations again afterwards, whatever happens."""
    executor = MigrationExecutor(connection)
    executor.migrate(list(targets))
    try:
        yield executor.loader.project_state(list(targets)).apps
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
