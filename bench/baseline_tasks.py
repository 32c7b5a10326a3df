"""The bare Celery baseline the engine is measured against: a self-dispatching chain of tasks, each of which
writes one PostgreSQL row and enqueues the next. No graph, no ledger, no events: the floor of "one Celery task
per step with durable state"."""

from __future__ import annotations

from celery import shared_task
from django.db import connection, transaction

TABLE = "bench_baseline_step"


def create_table() -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TABLE IF NOT EXISTS {TABLE} (chain text NOT NULL, step int NOT NULL, "
            "at timestamptz NOT NULL DEFAULT clock_timestamp(), PRIMARY KEY (chain, step))"
        )
        cursor.execute(f"TRUNCATE {TABLE}")


@shared_task(name="bench.baseline_step")
def baseline_step(chain: str, step: int, length: int) -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {TABLE} (chain, step) VALUES (%s, %s)", [chain, step])  # noqa: S608
    if step + 1 < length:
        baseline_step.delay(chain, step + 1, length)
