"""Executing the engine's own statements: bound on the server, pipelined, and prepared once they recur."""

from __future__ import annotations

import time
from functools import lru_cache
from typing import Any

import psycopg
from django.db import connection

from flownova import reliances


def server_execute(statements: list[tuple[str, list[Any]]], *, commit: bool = False) -> list[list[tuple[Any, ...]]]:
    """Execute the engine's own statements (each one returns rows) on the connection of the current transaction,
    bound on the server; returns each one's rows. Several statements, or one and the COMMIT, go out in one round
    trip (pipelined), and are recorded as one query.

    The lock and the combined write are the same few texts at every node, so psycopg prepares each on a
    connection once it has seen it `prepare_threshold` times (settings.DATABASES): PostgreSQL then no longer
    parses and plans them at every node (decision record 0004). The ORM's queries keep Django's client-side
    binding. Errors come out as Django's database exceptions, and, when Django records queries
    (DEBUG, tests), the statements are recorded as the ORM's are."""
    connection.ensure_connection()
    raw = connection.connection
    cursors = [psycopg.RawCursor(raw) for _ in statements]
    numbered = [(_numbered(sql), params) for sql, params in statements]
    started = time.monotonic()
    with connection.wrap_database_errors:
        try:
            # A transaction's first statement would cost two round trips alone: psycopg sends its BEGIN and
            # waits for the answer first. In a pipeline, the BEGIN goes out with the statement.
            begins = not raw.autocommit and raw.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
            if len(statements) == 1 and not commit and not begins:
                cursors[0].execute(*numbered[0])
            else:
                with raw.pipeline():
                    for cursor, (sql, params) in zip(cursors, numbered, strict=True):
                        cursor.execute(sql, params)
                    if commit:  # as SQL, not raw.commit(): that would wait for a second sync
                        psycopg.Cursor(raw).execute("COMMIT", prepare=False)
        except psycopg.errors.FeatureNotSupported as exc:
            if "cached plan" not in str(exc):
                raise
            # A migration changed a table under a statement this connection prepared. Django drops the
            # connection (and its prepared statements) before the next task or request, and a task retries on
            # OperationalError, so the next attempt prepares the statements anew.
            reliances.mark_connection_obsolete(connection)
            raise psycopg.OperationalError(f"the database schema changed under a prepared statement: {exc}") from exc
        results = [cursor.fetchall() for cursor in cursors]  # each statement returns rows (see the callers)
    if connection.queries_logged:
        _record_queries(raw, statements, commit, time.monotonic() - started)
    return results


def _numbered(sql: str) -> str:
    """`sql` with PostgreSQL's own placeholders ($1, $2...) for psycopg's %s, for a raw cursor, which sends the
    text as it is. psycopg parses a statement's %s placeholders at every execution unless the statement is
    short and has few (4,096 characters, 50 values), and a transition's combined write often has more: a
    fork's hundred branches took about 15 ms to parse. The engine's texts recur, so each is numbered once."""
    return _numbered_text(sql) if len(sql) <= _CACHED_LENGTH else _number(sql)


_CACHED_LENGTH = 64 * 1024  # the texts a chain's transitions repeat; a fork's batch of writes is numbered anew


def _number(sql: str) -> str:
    parts = sql.split("%s")
    if any("%" in part or part[:1].isdigit() for part in parts):
        raise ValueError(f"an engine statement may hold % only as %s placeholders: {sql[:200]}")
    numbered = [parts[0]]
    for index, part in enumerate(parts[1:], start=1):
        numbered.append(f"${index}{part}")
    return "".join(numbered)


_numbered_text = lru_cache(maxsize=512)(_number)


def _record_queries(
    raw: psycopg.Connection[Any], statements: list[tuple[str, list[Any]]], commit: bool, took: float
) -> None:
    # One entry per round trip, as when the statements were one multi-statement query.
    mogrify = psycopg.ClientCursor(raw).mogrify
    text = "; ".join([*(mogrify(sql, params) for sql, params in statements), *(["COMMIT"] if commit else [])])
    connection.queries_log.append({"sql": text, "time": f"{took:.3f}"})
