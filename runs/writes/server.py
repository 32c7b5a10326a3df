"""Executing the engine's own statements: bound on the server, pipelined, and prepared once they recur."""

from __future__ import annotations

import logging
import time
from functools import lru_cache
from typing import Any

import psycopg
from django.db import connection

from flownova import reliances

logger = logging.getLogger(__name__)


Rows = list[tuple[Any, ...]]


def server_execute(statements: list[tuple[str, list[Any]]], *, commit: bool = False) -> list[Rows]:
    """Execute the engine's own statements (each one returns rows) on the connection of the current transaction,
    bound on the server; returns each one's rows. Several statements, or one and the COMMIT, go out in one round
    trip (pipelined), and are recorded as one query.

    The lock and the combined write are the same few texts at every node, so psycopg prepares each on a
    connection once it has seen it `prepare_threshold` times (settings.DATABASES): PostgreSQL then no longer
    parses and plans them at every node (decision record 0004). The ORM's queries keep Django's client-side
    binding. Errors come out as Django's database exceptions, and, when Django records queries
    (DEBUG, tests), the statements are recorded as the ORM's are."""
    results, _ = _execute(statements, commit=commit, then=[])
    return results


def commit_then(
    statements: list[tuple[str, list[Any]]], then: list[tuple[str, list[Any]]]
) -> tuple[list[Rows], list[Rows] | None]:
    """`server_execute(statements, commit=True)`, then a BEGIN and the `then` statements (the next transaction's
    locks), all in one round trip; returns the rows of both. The commit stands whatever `then` does: when one of
    them fails, that next transaction is rolled back and None is returned for their rows."""
    return _execute(statements, commit=True, then=then)


def _execute(
    statements: list[tuple[str, list[Any]]], *, commit: bool, then: list[tuple[str, list[Any]]]
) -> tuple[list[Rows], list[Rows] | None]:
    connection.ensure_connection()
    raw = connection.connection
    cursors = [psycopg.RawCursor(raw) for _ in statements]
    then_cursors = [psycopg.RawCursor(raw) for _ in then]
    committing: psycopg.Cursor[Any] | None = None
    failed_then: psycopg.Error | None = None
    started = time.monotonic()
    with connection.wrap_database_errors:
        try:
            # A transaction's first statement would cost two round trips alone: psycopg sends its BEGIN and
            # waits for the answer first. In a pipeline, the BEGIN goes out with the statement.
            begins = not raw.autocommit and raw.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
            if len(statements) == 1 and not commit and not begins:
                cursors[0].execute(_numbered(statements[0][0]), statements[0][1])
            else:
                with raw.pipeline():
                    for cursor, (sql, params) in zip(cursors, statements, strict=True):
                        cursor.execute(_numbered(sql), params)
                    if commit:  # as SQL, not raw.commit(): that would wait for a second sync
                        committing = psycopg.Cursor(raw)
                        committing.execute("COMMIT", prepare=False)
                    if then:  # psycopg would not begin it: it sees the transaction of before the COMMIT
                        psycopg.Cursor(raw).execute("BEGIN", prepare=False)
                        for cursor, (sql, params) in zip(then_cursors, then, strict=True):
                            cursor.execute(_numbered(sql), params)
        except psycopg.Error as exc:
            if then and _succeeded(committing):
                failed_then = exc  # the commit went through; only what followed it failed
            elif isinstance(exc, psycopg.errors.FeatureNotSupported) and "cached plan" in str(exc):
                # A migration changed a table under a statement this connection prepared. Django drops the
                # connection (and its prepared statements) before the next task or request, and a task retries
                # on OperationalError, so the next attempt prepares the statements anew.
                reliances.mark_connection_obsolete(connection)
                raise psycopg.OperationalError(
                    f"the database schema changed under a prepared statement: {exc}"
                ) from exc
            else:
                raise
        results = [cursor.fetchall() for cursor in cursors]  # each statement returns rows (see the callers)
        then_results = None
        if failed_then is not None:
            logger.warning("the next transition's locks, sent with a commit, failed (taken again): %s", failed_then)
            raw.rollback()
        elif then:
            then_results = [cursor.fetchall() for cursor in then_cursors]
    if connection.queries_logged:
        _record_queries(raw, statements, commit, then, time.monotonic() - started)
    return results, then_results


def _succeeded(cursor: psycopg.Cursor[Any] | None) -> bool:
    result = cursor.pgresult if cursor is not None else None
    return result is not None and result.status == psycopg.pq.ExecStatus.COMMAND_OK


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
    raw: psycopg.Connection[Any],
    statements: list[tuple[str, list[Any]]],
    commit: bool,
    then: list[tuple[str, list[Any]]],
    took: float,
) -> None:
    # One entry per round trip, as when the statements were one multi-statement query.
    mogrify = psycopg.ClientCursor(raw).mogrify
    parts = [mogrify(sql, params) for sql, params in statements]
    parts += ["COMMIT"] if commit else []
    parts += ["BEGIN", *(mogrify(sql, params) for sql, params in then)] if then else []
    text = "; ".join(parts)
    connection.queries_log.append({"sql": text, "time": f"{took:.3f}"})
