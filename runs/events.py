"""Run events (docs/CONTRACT.md, Events): how a transition records them, and the one publisher that sends them.

Every change to a run happens inside `run_transition`: one transaction holding the run's row lock. Events
emitted there get the run's next `seq` numbers, are stored with one INSERT at the end of the transition, and
are published to the run's and the workflow's Channels groups only once the transaction has committed. A
transaction that rolls back publishes nothing and leaves no number used.

Publishing happens on a background thread with its own event loop (one per process), so a worker does not
pay for the Channels layer's round trips on the node's critical path, and the layer's Redis connections are
reused instead of being opened per call. Order within a process is kept; across processes, consumers fill any
gap from the stored events (see `runs.consumers`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from typing import Any

import psycopg
from django.db import connection, transaction
from django.utils import timezone

from runs.models import (
    UNFINISHED_NODE_STATUSES,
    NodeRun,
    Run,
    RunEvent,
    concrete_fields,
    from_row,
    insert_sql,
    select_sql,
    update_sql,
)

logger = logging.getLogger(__name__)

EVENT_TYPES = frozenset(
    {
        "run_started",
        "node_started",
        "node_completed",
        "node_failed",
        "node_skipped",  # an extension of the contract: a node on a path not taken
        "child_run_started",  # an extension: a cognitive node started its generated workflow
        "tool_call",
        "llm_token",
        "approval_needed",
        "approval_decided",
        "run_waiting",
        "run_succeeded",
        "run_failed",
        "run_cancelled",
    }
)

# Channels handler name: a message {"type": "run.events", "events": [...]} calls `run_events` on consumers.
# One message carries every event of one transition, or of several when they queued up together (events of
# several runs, each marked with its run_id), so a transition costs at most one group_send per group.
CONSUMER_MESSAGE_TYPE = "run.events"


def run_group(run_id: int) -> str:
    return f"run.{run_id}"


def workflow_group(workflow_id: int) -> str:
    return f"workflow.{workflow_id}"


# Every approval_needed / approval_decided event also goes to this group, for inbox pages: their consumers
# decide per user what to show (see approvals.selectors for who may see a request).
APPROVALS_GROUP = "approvals"
APPROVAL_EVENTS = frozenset({"approval_needed", "approval_decided"})


TRANSITION_FIELDS = (
    "id",
    "workflow_id",
    "parent_id",
    "parent_node_id",
    "owner_id",
    "status",
    "started_at",
    "finished_at",
    "last_event_seq",
    "last_ledger_seq",
)


EVENT_FIELDS = concrete_fields(RunEvent)


class Transition:
    """One change to one run, made while holding its row lock. `run` is the locked row."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.node_run: NodeRun | None = None  # locked with the run when the transition was asked to
        self.pending_rows: dict[str, NodeRun] | None = None  # likewise
        # Status of each of the run's unfinished nodes, read with the locks (see `run_transition`).
        self.unfinished: dict[str, str] | None = None
        self.events: list[RunEvent] = []
        self._dirty: set[str] = set()
        self._counters: set[str] = set()  # seq counters: written, but not a change anyone sees
        self._writes: list[Write] = []
        self._deferring = False  # set by run_transition, which flushes deferred writes before each query

    def emit(self, type: str, node_id: str = "", data: dict[str, Any] | None = None) -> RunEvent:
        if type not in EVENT_TYPES:
            raise ValueError(f"unknown event type {type!r}")
        self.run.last_event_seq += 1
        event = RunEvent(
            run=self.run, seq=self.run.last_event_seq, type=type, node_id=node_id, data=data or {}, ts=timezone.now()
        )
        self.events.append(event)
        return event

    def save_run(self, *fields: str) -> None:
        """Mark run fields changed; they are written with one UPDATE when the transition ends."""
        self._dirty.update(fields)

    def next_ledger_seq(self) -> int:
        self.run.last_ledger_seq += 1
        self._counters.add("last_ledger_seq")
        return self.run.last_ledger_seq

    def write(self, sql: str, params: list[Any], on_rows: Callable[[list[dict[str, Any]]], None] | None = None) -> None:
        """Execute a data-modifying statement of this transition. Within `run_transition` it is deferred: the
        writes queued go out as one statement (data-modifying CTEs) right before the transaction's next query,
        so that every read sees them, or when the transition ends. `on_rows` receives what the statement's
        RETURNING clause returned, as dicts, once it has run."""
        self._writes.append((sql, params, on_rows))
        if not self._deferring:
            self.flush()

    def flush(self, *, commit: bool = False) -> None:
        """Send the deferred writes now; with `commit`, and the COMMIT of the transaction in the same round
        trip (psycopg's and Django's own commit then find it done and only run the on-commit hooks). The
        statement is bound on the server, and prepared once it recurs (see `server_execute`)."""
        writes, self._writes = self._writes, []
        if writes:
            (rows,) = server_execute([_combined(writes)], commit=commit)
            _deliver(writes, rows)

    def flush_before_query(self, execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        """A database execute wrapper: deferred writes go out first, so that the query sees them, in the same
        round trip (Django's cursor binds on the client, which lets one call carry several statements)."""
        writes, self._writes = self._writes, []
        if not writes:
            return execute(sql, params, many, context)
        if many:
            self._writes = writes
            self.flush()
            return execute(sql, params, many, context)
        write_sql, write_params = _combined(writes)
        query = sql if params is not None else sql.replace("%", "%%")  # no parameters: % was not a placeholder
        result = execute(f"{write_sql}; {query}", [*write_params, *(params or ())], many, context)
        raw = context["cursor"].cursor
        _deliver(writes, raw.fetchall())
        raw.nextset()  # the caller reads the query's own result
        return result

    def finish(self, *, commit: bool = False) -> None:
        """Write the transition's events and run changes; publish the events after commit. `commit` says the
        transition owns the transaction, which may then be committed with the last write."""
        fields = set(self._dirty)
        if fields:
            fields.add("updated_at")
        if self.events:
            self._counters.add("last_event_seq")
        fields |= self._counters
        if fields:
            self.write(*update_sql(self.run, sorted(fields)))
        if self.events:
            self.write(*insert_sql(self.events, EVENT_FIELDS))
        self.flush(commit=commit)
        if self.events:
            messages = [event.as_message() for event in self.events]
            if self.run.parent_id:  # a cognitive node's child run: its parent's watchers see it too
                link = {"parent_run_id": self.run.parent_id, "parent_node_id": self.run.parent_node_id}
                messages = [{**message, **link} for message in messages]
            workflow_id = self.run.workflow_id
            transaction.on_commit(lambda: publisher.publish(messages, workflow_id=workflow_id))


Write = tuple[str, list[Any], Callable[[list[dict[str, Any]]], None] | None]


def _combined(writes: list[Write]) -> tuple[str, list[Any]]:
    """The writes as one statement of data-modifying CTEs, whose result rows are (write index, returned row)."""
    ctes = ", ".join(f"w{i} AS ({sql})" for i, (sql, _, _) in enumerate(writes))
    wanted = [i for i, (_, _, on_rows) in enumerate(writes) if on_rows is not None]
    results = " UNION ALL ".join(f"SELECT {i}, row_to_json(w{i})::text FROM w{i}" for i in wanted)  # noqa: S608
    return f"WITH {ctes} {results or 'SELECT NULL, NULL'}", [p for _, params, _ in writes for p in params]


def _deliver(writes: list[Write], rows: list[tuple[Any, ...]]) -> None:
    for i, (_, _, on_rows) in enumerate(writes):
        if on_rows is not None:
            on_rows([json.loads(row) for index, row in rows if index == i])


@contextmanager
def run_transition(
    run_id: int, *, node_run_id: int | None = None, node_fields: tuple[str, ...] = ("id",), lock_pending: bool = False
) -> Iterator[Transition]:
    """Lock the run and yield a Transition; on a clean exit its events and run changes are written and, after
    commit, published. Nest inside a caller's `transaction.atomic()` freely: publishing waits for the outer
    commit.

    With `node_run_id`, that node's row (its `node_fields`) is locked too, in the same round trip and after the
    run's (the lock order everywhere), as `tx.node_run`: None when the run has no such node. With
    `lock_pending` as well (the graph has merge points), so are the run's pending nodes (merge points some
    branches reached), as `tx.pending_rows`, and the status of each of its unfinished nodes is read, as
    `tx.unfinished`: node states change only under the run's lock, so that stays true for the whole transition
    but for the transition's own changes (whoever settles the run from it applies those). A graph without merge
    points settles a run only at its ends, where one more query costs less than this read at every node."""
    owns_transaction = not connection.in_atomic_block
    with transaction.atomic():
        node_run, pending, unfinished = None, None, None
        if node_run_id is not None:
            run, node_run, pending, unfinished = _lock_with_node(run_id, node_run_id, node_fields, lock_pending)
        if node_run is None:
            # Only the columns a transition reads: the snapshot is parsed once per process, and the JSON input
            # and output are loaded on the rare occasions they are needed.
            run = Run.objects.select_for_update().only(*TRANSITION_FIELDS).get(pk=run_id)
        tx = Transition(run)
        if node_run is not None:
            tx.node_run, tx.pending_rows, tx.unfinished = node_run, pending, unfinished
        # A chain node's transition then costs three round trips (begin, lock, write + commit), not one per row.
        with connection.execute_wrapper(tx.flush_before_query):
            tx._deferring = True
            yield tx
            tx.finish(commit=owns_transaction)


NODE_RUN_COLUMNS = tuple(field.name for field in NodeRun._meta.concrete_fields)


def _lock_with_node(
    run_id: int, node_run_id: int, node_fields: tuple[str, ...], lock_pending: bool
) -> tuple[Run | None, NodeRun | None, dict[str, NodeRun] | None, dict[str, str] | None]:
    # PostgreSQL locks the rows of a result in the order of FROM: the run, then the node; pending rows after.
    # Each later statement reads a snapshot taken once the first one holds the run's lock: it sees every change
    # committed by the transitions that held the lock before.
    columns = f"{select_sql(Run, TRANSITION_FIELDS, 'r')}, {select_sql(NodeRun, node_fields, 'n')}"
    sql = f"SELECT {columns} FROM runs_run r JOIN runs_noderun n ON n.run_id = r.id WHERE r.id = %s AND n.id = %s"  # noqa: S608
    statements = [(f"{sql} FOR UPDATE", [run_id, node_run_id])]
    if lock_pending:
        pending = f"SELECT {select_sql(NodeRun, NODE_RUN_COLUMNS, 'p')} FROM runs_noderun p"  # noqa: S608
        statements.append((f"{pending} WHERE p.run_id = %s AND p.status = 'pending' FOR UPDATE", [run_id]))
        unfinished = f"SELECT node_id, status FROM runs_noderun WHERE run_id = %s AND status IN ({_UNFINISHED})"  # noqa: S608
        statements.append((unfinished, [run_id]))
    results = server_execute(statements)
    if not results[0]:
        return None, None, None, None
    pending_rows, unfinished_statuses = None, None
    if lock_pending:
        rows = [from_row(NodeRun, NODE_RUN_COLUMNS, values) for values in results[1]]
        pending_rows = {row.node_id: row for row in rows}
        unfinished_statuses = dict(results[2])
    row = results[0][0]
    split = len(TRANSITION_FIELDS)  # select_sql reads every named field once
    run, node_run = from_row(Run, TRANSITION_FIELDS, row[:split]), from_row(NodeRun, node_fields, row[split:])
    return run, node_run, pending_rows, unfinished_statuses


# Constants of ours, written into the statement so that it is the same text (and prepared plan) for every run.
_UNFINISHED = ", ".join(f"'{status.value}'" for status in UNFINISHED_NODE_STATUSES)


def server_execute(statements: list[tuple[str, list[Any]]], *, commit: bool = False) -> list[list[tuple[Any, ...]]]:
    """Execute the engine's own statements (each one returns rows) on the connection of the current transaction,
    bound on the server; returns each one's rows. Several statements, or one and the COMMIT, go out in one round
    trip (pipelined), and are recorded as one query.

    The lock and the combined write are the same few texts at every node, so psycopg prepares each on a
    connection once it has seen it `prepare_threshold` times (settings.DATABASES): PostgreSQL then no longer
    parses and plans them at every node, which was a third of its CPU per node. The ORM's queries keep Django's
    client-side binding. Errors come out as Django's database exceptions, and, when Django records queries
    (DEBUG, tests), the statements are recorded as the ORM's are."""
    connection.ensure_connection()
    raw = connection.connection
    cursors = [psycopg.Cursor(raw) for _ in statements]
    started = time.monotonic()
    with connection.wrap_database_errors:
        try:
            if len(statements) == 1 and not commit:
                cursors[0].execute(*statements[0])
            else:
                with raw.pipeline():
                    for cursor, (sql, params) in zip(cursors, statements, strict=True):
                        cursor.execute(sql, params)
                    if commit:  # as SQL, not raw.commit(): that would wait for a second sync
                        psycopg.Cursor(raw).execute("COMMIT", prepare=False)
        except psycopg.errors.FeatureNotSupported as exc:
            if "cached plan" not in str(exc):
                raise
            # A migration changed a table under a statement this connection prepared. Django drops the
            # connection (and its prepared statements) before the next task or request, and a task retries on
            # OperationalError, so the next attempt prepares the statements anew.
            connection.close_at = time.monotonic()
            raise psycopg.OperationalError(f"the database schema changed under a prepared statement: {exc}") from exc
        results = [cursor.fetchall() for cursor in cursors]  # each statement returns rows (see the callers)
    if connection.queries_logged:
        _record_queries(raw, statements, commit, time.monotonic() - started)
    return results


def _record_queries(
    raw: psycopg.Connection[Any], statements: list[tuple[str, list[Any]]], commit: bool, took: float
) -> None:
    # One entry per round trip, as when the statements were one multi-statement query.
    mogrify = psycopg.ClientCursor(raw).mogrify
    text = "; ".join([*(mogrify(sql, params) for sql, params in statements), *(["COMMIT"] if commit else [])])
    connection.queries_log.append({"sql": text, "time": f"{took:.3f}"})


class Publisher:
    """Sends batches of stored events to Channels groups from a background event loop, in submission order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[tuple[list[dict[str, Any]], int | None, Future[None] | None]] | None = None

    def _ensure_started(self) -> asyncio.AbstractEventLoop:
        # After a fork (Celery's prefork pool) the parent's thread does not exist in the child: start anew.
        if self._pid == os.getpid() and self._loop is not None:
            return self._loop
        with self._lock:
            if self._pid != os.getpid() or self._loop is None:
                loop = asyncio.new_event_loop()
                ready = threading.Event()
                thread = threading.Thread(target=self._run, args=(loop, ready), name="flownova-events", daemon=True)
                thread.start()
                ready.wait()
                self._loop, self._pid = loop, os.getpid()
        return self._loop

    def _run(self, loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        self._queue = asyncio.Queue()
        loop.create_task(self._drain())
        loop.call_soon(ready.set)
        loop.run_forever()

    async def _drain(self) -> None:
        from channels.layers import get_channel_layer

        assert self._queue is not None
        while True:
            batch = [await self._queue.get()]
            # What queued up while the last batch was being sent goes out together: one group_send per group
            # (each costs several Redis round trips) instead of one per transition, when the engine is busy.
            while not self._queue.empty() and len(batch) < MAX_BATCH:
                batch.append(self._queue.get_nowait())
            layer = get_channel_layer()
            groups = _by_group(batch)
            try:
                watched = await _watched(layer, list(groups))
            except Exception:
                logger.exception("checking who watches %d groups failed; sending to all", len(groups))
                watched = list(groups)
            for group in watched:
                events = groups[group]
                try:
                    await layer.group_send(group, {"type": CONSUMER_MESSAGE_TYPE, "events": events})
                except Exception:
                    logger.exception("publishing %d run events to %s failed", len(events), group)
            for _, _, done in batch:
                if done is not None:
                    done.set_result(None)

    def publish(self, messages: list[dict[str, Any]], *, workflow_id: int | None) -> None:
        """Queue stored events of one run for sending. Call only after the transaction that stored them
        committed."""
        self._submit(messages, workflow_id, None)

    def flush(self, timeout: float = 5.0) -> None:
        """Wait until everything queued so far has been sent (process shutdown, tests)."""
        if self._loop is None or self._pid != os.getpid():
            return
        done: Future[None] = Future()
        self._submit([], None, done)
        done.result(timeout=timeout)

    def _submit(self, messages: list[dict[str, Any]], workflow_id: int | None, done: Future[None] | None) -> None:
        loop = self._ensure_started()
        item = (messages, workflow_id, done)
        loop.call_soon_threadsafe(lambda: self._queue.put_nowait(item))  # type: ignore[union-attr]


publisher = Publisher()

# Transitions whose events one group_send may carry at most.
MAX_BATCH = 100


async def _watched(layer: Any, groups: list[str]) -> list[str]:
    """The groups that have members, asked with one pipelined Redis round trip per Redis host.

    channels_redis's group_send costs two round trips per group even when the group is empty, as it is most of
    the time (nobody has the run's page or stream open): that was more CPU than the engine's whole transition.
    Skipping an empty group loses nothing: a client joins its group before it replays the stored events, and
    these are stored (they are published after commit), so one that joins just after this check gets them from
    the replay, exactly as if it had joined just after group_send's own look-up. Other channel layers (the
    in-memory one) are sent everything."""
    if not hasattr(layer, "_group_key") or not hasattr(layer, "consistent_hash"):
        return groups
    by_host: dict[int, list[str]] = {}
    for group in groups:
        by_host.setdefault(layer.consistent_hash(group), []).append(group)
    watched = []
    for index, names in by_host.items():
        pipe = layer.connection(index).pipeline(transaction=False)
        for name in names:
            pipe.zcard(layer._group_key(name))
        members = await pipe.execute()
        watched += [name for name, count in zip(names, members, strict=True) if count]
    return [group for group in groups if group in watched]  # in the order given


def _by_group(batch: list[tuple[list[dict[str, Any]], int | None, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Each group's events, in submission order: a run's events stay in seq order in every group."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for messages, workflow_id, _ in batch:
        if not messages:
            continue
        first = messages[0]
        targets = [run_group(int(first["run_id"]))]
        if first.get("parent_run_id"):
            targets.append(run_group(int(first["parent_run_id"])))
        if workflow_id is not None:
            targets.append(workflow_group(workflow_id))
        for group in targets:
            groups.setdefault(group, []).extend(messages)
        approvals = [message for message in messages if message["type"] in APPROVAL_EVENTS]
        if approvals:
            groups.setdefault(APPROVALS_GROUP, []).extend(approvals)
    return groups
