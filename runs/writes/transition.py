"""Transitions: every change to a run, made in one transaction holding the run's row lock.

Rows of the engine's tables are written inside a transition only through it: `tx.save(row, *fields)` updates,
`tx.insert(rows)` inserts, `tx.save_run(*fields)` marks fields of the locked run, and `tx.emit(event)` records
an event. Within `run_transition` those writes are deferred and go out as one statement of data-modifying CTEs
right before the transaction's next query (so that every read sees them) or when the transition ends, with
the COMMIT in the same round trip: a chain node's transition costs three round trips (begin, lock, write and
commit), not one per row. The ORM still reads freely; an ORM write to one of those tables inside a transition
is refused (`TransitionWriteError`), so no row is ever written two ways. A new run is the one exception: the
ORM creates it, since its id is needed at once.

Events emitted in a transition get the run's next `seq` numbers, are stored with the transition's other
writes and are published (`runs.writes.publish`) only once the transaction has committed: a transaction that
rolls back publishes nothing and leaves no number used.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NamedTuple

from django.db import connection, models, transaction
from django.utils import timezone

from flownova import reliances
from runs.events import STREAMED_TYPES, Event
from runs.models import UNFINISHED_NODE_STATUSES, LedgerEntry, NodeRun, Run, RunEvent
from runs.writes import chain as chains
from runs.writes.publish import publisher
from runs.writes.server import Rows, commit_then, server_execute
from runs.writes.sql import (
    concrete_fields,
    from_row,
    insert_many_sql,
    insert_params,
    insert_sql,
    select_sql,
    update_many_sql,
    update_sql,
)
from tools.models import ToolCall

# What a transition reads of the run it locks: the snapshot is parsed once per process, and the JSON input
# and output are loaded on the rare occasions they are needed. `trigger` is needed only for a run's first
# ledger entry, but it is a few bytes: reading it with every lock costs microseconds per node, where reading
# it apart at the first entry would cost a round trip per run.
TRANSITION_FIELDS = (
    "id",
    "workflow_id",
    "parent_id",
    "parent_node_id",
    "owner_id",
    "project_id",
    "status",
    "started_at",
    "finished_at",
    "last_event_seq",
    "last_ledger_seq",
    "trigger",
)
NODE_RUN_COLUMNS = tuple(field.name for field in NodeRun._meta.concrete_fields)


class Write(NamedTuple):
    """A data-modifying statement of a transition. `on_rows` receives what its RETURNING clause returned.
    Writes of the same `shape` (an UPDATE of the same fields, or an INSERT without RETURNING, of one model) may
    go out as one statement of several `rows` (each row's params): a fork's hundred branches, begun in one
    transition, are then a few statements instead of hundreds."""

    sql: str
    params: list[Any]
    on_rows: Callable[[list[dict[str, Any]]], None] | None = None
    shape: tuple[str, type[models.Model], tuple[str, ...]] | None = None
    rows: tuple[list[Any], ...] = ()


class TransitionWriteError(RuntimeError):
    """An ORM write to an engine table inside a transition: write through the transition instead."""


# Tables whose rows a transition writes itself. The quoted name is how Django's SQL names them.
_OWN_TABLES = tuple(f'"{model._meta.db_table}"' for model in (NodeRun, LedgerEntry, RunEvent, ToolCall, Run))
_NEW_RUN = f'INSERT INTO "{Run._meta.db_table}"'


def _refuse_orm_write(sql: str) -> None:
    head = sql[:7].upper()
    if not head.startswith(("UPDATE", "INSERT", "DELETE")):
        return
    if sql.startswith(_NEW_RUN):
        return
    statement = sql[:120]
    for table in _OWN_TABLES:
        if table in statement:
            raise TransitionWriteError(
                f"write {table} rows inside a transition with tx.save / tx.insert, not the ORM: {statement}"
            )


class Transition:
    """One change to one run, made while holding its row lock. `run` is the locked row."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.node_run: NodeRun | None = None  # locked with the run when the transition was asked to
        self.node_runs: list[NodeRun] = []  # likewise, when it was asked for several (in id order)
        self.pending_rows: dict[str, NodeRun] | None = None  # likewise
        # Status of each of the run's unfinished nodes, read with the locks (see `run_transition`).
        self.unfinished: dict[str, str] | None = None
        self.read_rows: list[Rows] = []  # the rows of run_transition's `read` statements
        # Nodes this process will begin once the transition commits (runs.services.continuation): in a chain,
        # their locks go out with the COMMIT (runs.writes.chain).
        self.next_lock: tuple[list[str], tuple[str, ...], bool] | None = None
        self.events: list[RunEvent] = []
        self._dirty: set[str] = set()
        self._counters: set[str] = set()  # seq counters: written, but not a change anyone sees
        self._writes: list[Write] = []
        self._deferring = False  # set by run_transition, which flushes deferred writes before each query

    # --- what changes -------------------------------------------------------------------------------------

    def emit(self, event: Event) -> RunEvent:
        return self._record_event(event.type, event.node_id, event.data())

    def emit_streamed(self, type: str, node_id: str, data: dict[str, Any]) -> RunEvent:
        """An event a node sent while it executed (streamed text, a tool call), with data of its own making."""
        if type not in STREAMED_TYPES:
            raise ValueError(f"a node may send only {', '.join(sorted(STREAMED_TYPES))} events, not {type!r}")
        return self._record_event(type, node_id, data)

    def _record_event(self, type: str, node_id: str, data: dict[str, Any]) -> RunEvent:
        self.run.last_event_seq += 1
        event = RunEvent(
            run=self.run, seq=self.run.last_event_seq, type=type, node_id=node_id, data=data, ts=timezone.now()
        )
        self.events.append(event)
        return event

    def save_run(self, *fields: str) -> None:
        """Mark fields of the locked run changed; they are written with one UPDATE when the transition ends."""
        self._dirty.update(fields)

    def save(self, row: models.Model, *fields: str) -> None:
        """Update `fields` of an existing row (auto_now fields are refreshed) with the transition's writes."""
        sql, params = update_sql(row, fields)
        self._write(Write(sql, params, shape=("update", type(row), fields), rows=(params,)))

    def insert(self, rows: Sequence[models.Model], *, ids: bool = True, match: str = "") -> None:
        """Insert new rows of one model with the transition's writes. With `ids`, each row gets its id once the
        write has run (before the transition ends, and before any later query in it); several rows then need
        `match`, a field unique among them that pairs each returned id with its row."""
        if not rows:
            return
        model = type(rows[0])
        if not ids:
            columns = tuple(_columns(model))
            params = insert_params(rows, columns)
            sql, flat = insert_many_sql(model, columns, params)
            self._write(Write(sql, flat, shape=("insert", model, columns), rows=tuple(params)))
            return
        if len(rows) > 1 and not match:
            raise ValueError("inserting several rows with their ids needs `match`")
        key = match or model._meta.pk.name
        by_key = {getattr(row, match): row for row in rows} if match else {None: rows[0]}

        def created(returned: list[dict[str, Any]]) -> None:
            for values in returned:
                row = by_key[values[key]] if match else rows[0]
                row.pk, row._state.adding = values["id"], False

        sql, params = insert_sql(rows, _columns(model), returning=("id", key) if match else ("id",))
        self._write(Write(sql, params, on_rows=created))

    def lock_next(self, node_ids: list[str], node_fields: tuple[str, ...], lock_pending: bool) -> None:
        """The nodes of `node_ids` are begun by this process right after this transition commits, in a transition
        of their own that locks their `node_fields` (and the pending rows, with `lock_pending`)."""
        self.next_lock = (sorted(node_ids), node_fields, lock_pending)

    def next_ledger_seq(self) -> int:
        self.run.last_ledger_seq += 1
        self._counters.add("last_ledger_seq")
        return self.run.last_ledger_seq

    # --- how it is written --------------------------------------------------------------------------------

    def _write(self, write: Write) -> None:
        """Queue a data-modifying statement. Within `run_transition` it is deferred (see the module's
        docstring); else it runs at once."""
        self._writes.append(write)
        if not self._deferring:
            self.flush()

    def flush(self, *, commit: bool = False, then: list[tuple[str, list[Any]]] | None = None) -> list[Rows] | None:
        """Send the deferred writes now; with `commit`, and the COMMIT of the transaction in the same round
        trip (psycopg's and Django's own commit then find it done and only run the on-commit hooks). `then`:
        statements of the next transaction, sent after the COMMIT (runs.writes.chain); returns their rows,
        or None when they failed (the commit stands)."""
        writes, self._writes = _merged(self._writes), []
        if then:
            results, then_rows = commit_then([_combined(writes)] if writes else [], then)
            if writes:
                _deliver(writes, results[0])
            return then_rows
        if writes:
            (rows,) = server_execute([_combined(writes)], commit=commit)
            _deliver(writes, rows)
        return None

    def flush_before_query(self, execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        """A database execute wrapper: deferred writes go out first, so that the query sees them, in the same
        round trip (Django's cursor binds on the client, which lets one call carry several statements)."""
        _refuse_orm_write(sql)
        writes, self._writes = _merged(self._writes), []
        if not writes:
            return execute(sql, params, many, context)
        write_sql, write_params = _combined(writes)
        if many or len(write_params) > INLINE_PARAMS:
            # Apart, bound on the server: Django's cursor binds on the client, and psycopg would parse and quote
            # a fork's hundreds of values (tens of milliseconds) to save a round trip.
            (rows,) = server_execute([(write_sql, write_params)])
            _deliver(writes, rows)
            return execute(sql, params, many, context)
        query = sql if params is not None else sql.replace("%", "%%")  # no parameters: % was not a placeholder
        result = execute(f"{write_sql}; {query}", [*write_params, *(params or ())], many, context)
        raw = context["cursor"].cursor
        _deliver(writes, raw.fetchall())
        raw.nextset()  # the caller reads the query's own result
        return result

    def finish(self, *, commit: bool = False, then: list[tuple[str, list[Any]]] | None = None) -> list[Rows] | None:
        """Write the transition's events and run changes; publish the events after commit. `commit` says the
        transition owns the transaction, which may then be committed with the last write; `then`, see flush."""
        fields = set(self._dirty)
        if fields:
            fields.add("updated_at")
        if self.events:
            self._counters.add("last_event_seq")
        fields |= self._counters
        if fields:
            self._write(Write(*update_sql(self.run, sorted(fields))))
        if self.events:
            self.insert(self.events, ids=False)
        then_rows = self.flush(commit=commit, then=then)
        if self.events:
            messages = [event.as_message() for event in self.events]
            if self.run.parent_id:  # a cognitive node's child run: its parent's watchers see it too
                link = {"parent_run_id": self.run.parent_id, "parent_node_id": self.run.parent_node_id}
                messages = [{**message, **link} for message in messages]
            workflow_id = self.run.workflow_id
            transaction.on_commit(lambda: publisher.publish(messages, workflow_id=workflow_id))
        return then_rows


# Deferred writes with more values than this go out before a query in a round trip of their own.
INLINE_PARAMS = 200

_COLUMNS: dict[type[models.Model], list[str]] = {}


def _columns(model: type[models.Model]) -> list[str]:
    if model not in _COLUMNS:
        _COLUMNS[model] = concrete_fields(model)
    return _COLUMNS[model]


def _merged(writes: list[Write]) -> list[Write]:
    """The writes, those of one shape as one statement, where the first of them was. Of several updates of the
    same fields of one row (a join's row, at each branch's arrival), the last is kept: PostgreSQL updates a
    row once per statement, so each would otherwise have been a statement of its own, one of which wins."""
    if len(writes) < 2:
        return writes
    merged: list[Write | _Group] = []
    groups: dict[tuple[str, type[models.Model], tuple[str, ...]], _Group] = {}
    for write in writes:
        if write.shape is None:
            merged.append(write)
            continue
        group = groups.get(write.shape)
        if group is None:
            group = groups[write.shape] = _Group(write)
            merged.append(group)
        else:
            group.add(write)
    return [item.write() if isinstance(item, _Group) else item for item in merged]


class _Group:
    """Writes of one shape, to go out as one statement."""

    def __init__(self, first: Write) -> None:
        self.first = first
        self.updates = first.shape is not None and first.shape[0] == "update"
        self.rows: dict[Any, list[Any]] = {}  # an update's rows by primary key (its last param); else by position
        self.added = 0
        self.add(first)

    def add(self, write: Write) -> None:
        self.added += 1
        for row in write.rows:
            self.rows[row[-1] if self.updates else len(self.rows)] = row

    def write(self) -> Write:
        if self.added == 1:
            return self.first  # the same text as alone, and the same prepared statement
        kind, model, fields = self.first.shape or ("", models.Model, ())
        rows = list(self.rows.values())
        if kind == "update":
            return Write(*update_many_sql(model, fields, rows))
        return Write(*insert_many_sql(model, fields, rows))


def _combined(writes: list[Write]) -> tuple[str, list[Any]]:
    """The writes as one statement of data-modifying CTEs, whose result rows are (write index, returned row)."""
    ctes = ", ".join(f"w{i} AS ({write.sql})" for i, write in enumerate(writes))
    wanted = [i for i, write in enumerate(writes) if write.on_rows is not None]
    results = " UNION ALL ".join(f"SELECT {i}, row_to_json(w{i})::text FROM w{i}" for i in wanted)  # noqa: S608
    return f"WITH {ctes} {results or 'SELECT NULL, NULL'}", [p for write in writes for p in write.params]


def _deliver(writes: list[Write], rows: list[tuple[Any, ...]]) -> None:
    for i, write in enumerate(writes):
        if write.on_rows is not None:
            write.on_rows([json.loads(row) for index, row in rows if index == i])


@contextmanager
def run_transition(
    run_id: int,
    *,
    node_run_id: int | None = None,
    node_run_ids: Sequence[int] = (),
    node_id: str | None = None,
    node_fields: tuple[str, ...] = ("id",),
    lock_pending: bool = False,
    read: Sequence[tuple[str, list[Any]]] = (),
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
    points settles a run only at its ends, where one more query costs less than this read at every node.

    `read`: statements (each returning rows) sent in the same round trip, after the locks, as `tx.read_rows`
    (each one's rows): rows that change only under the run's lock read as locked as the run's own.

    With `node_run_ids` instead, those of the run's nodes are locked (in id order), as `tx.node_runs`: nodes a
    fork queued together, begun in one transition (runs.services.continuation). With `node_id`, the run's node
    of that id is locked as with `node_run_id` (a decision knows the node, not its row)."""
    chain = chains.link(run_id)
    owns_transaction = chain is not None or not connection.in_atomic_block
    reads = list(read)
    # In a chain, Django's atomic block is the chain's; this transition's is begun and committed on the server.
    with transaction.atomic(savepoint=False) if chain is not None else transaction.atomic(), _open(chain):
        prelocked = chain.take(run_id, node_fields, lock_pending) if chain is not None and node_run_ids else None
        locked: Locked | None = None
        read_rows: list[Rows] = []
        if prelocked is not None and sorted(row.pk for row in prelocked.locked[1]) == sorted(node_run_ids):
            locked = prelocked.locked  # read with the locks that went out with the last node's COMMIT
            if reads:
                read_rows = server_execute(reads)
        elif node_run_id is not None or node_run_ids or node_id is not None:
            ids = [node_run_id] if node_run_id is not None else node_run_ids
            locked, read_rows = _lock_with_nodes(
                run_id, node_fields, lock_pending, reads, node_run_ids=ids, node_id="" if ids else node_id or ""
            )
        if locked is None:
            run, read_rows = _lock_run(run_id, reads)
            tx = Transition(run)
        else:
            run, node_runs, pending, unfinished = locked
            tx = Transition(run)
            tx.node_runs, tx.pending_rows, tx.unfinished = node_runs, pending, unfinished
            tx.node_run = node_runs[0] if node_run_id is not None or node_id is not None else None
        tx.read_rows = read_rows
        with connection.execute_wrapper(tx.flush_before_query):
            tx._deferring = True
            yield tx
            if chain is None or tx.next_lock is None:
                tx.finish(commit=owns_transaction)
            else:
                node_ids, fields, pending_too = tx.next_lock
                then = _lock_statements(run_id, fields, pending_too, node_ids=node_ids)
                then_rows = tx.finish(commit=True, then=then)
                if then_rows is not None:
                    locked_next = _locked(then_rows, fields, pending_too)
                    if locked_next is not None:
                        chain.prelocked = chains.Prelocked(run_id, fields, pending_too, locked_next)
    if chain is not None:
        reliances.run_commit_hooks(connection)  # committed on the server: what waited for it goes now


@contextmanager
def _open(chain: chains.Chain | None) -> Iterator[None]:
    if chain is None:
        yield
        return
    chain.depth += 1
    try:
        yield
    finally:
        chain.depth -= 1


def _lock_run(run_id: int, reads: list[tuple[str, list[Any]]]) -> tuple[Run, list[Rows]]:
    """The run, locked, by the engine's own prepared statement (its transaction's BEGIN pipelined with it), and
    the rows of `reads`. Raises Run.DoesNotExist, as the ORM's get() would."""
    sql = f"SELECT {select_sql(Run, TRANSITION_FIELDS, 'r')} FROM runs_run r WHERE r.id = %s FOR UPDATE"  # noqa: S608
    rows, *read_rows = server_execute([(sql, [run_id]), *reads])
    if not rows:
        raise Run.DoesNotExist(f"run {run_id} does not exist")
    run: Run = from_row(Run, TRANSITION_FIELDS, rows[0])
    return run, read_rows


# The run, the nodes locked with it, its pending rows and its unfinished nodes' statuses (see run_transition).
Locked = tuple[Run, list[NodeRun], dict[str, NodeRun] | None, dict[str, str] | None]


def _lock_with_nodes(
    run_id: int,
    node_fields: tuple[str, ...],
    lock_pending: bool,
    reads: list[tuple[str, list[Any]]],
    *,
    node_run_ids: Sequence[int] = (),
    node_id: str = "",
) -> tuple[Locked | None, list[Rows]]:
    """The run and its nodes (those of `node_run_ids` it has, or its node `node_id`), locked, with the pending
    rows and unfinished statuses if `lock_pending`, and the rows of `reads`; None when the run has none of
    those nodes."""
    statements = _lock_statements(run_id, node_fields, lock_pending, node_run_ids=node_run_ids, node_id=node_id)
    results = server_execute([*statements, *reads])
    return _locked(results[: len(statements)], node_fields, lock_pending), results[len(statements) :]


def _lock_statements(
    run_id: int,
    node_fields: tuple[str, ...],
    lock_pending: bool,
    *,
    node_run_ids: Sequence[int] = (),
    node_id: str = "",
    node_ids: Sequence[str] = (),
) -> list[tuple[str, list[Any]]]:
    """The statements that lock the run with its nodes (by row ids, by a node id, or by node ids), then its
    pending rows and read its unfinished nodes' statuses if `lock_pending`."""
    # PostgreSQL locks the rows of a result in the order of FROM: the run, then the nodes; pending rows after.
    # Each later statement reads a snapshot taken once the first one holds the run's lock: it sees every change
    # committed by the transitions that held the lock before.
    columns = f"{select_sql(Run, TRANSITION_FIELDS, 'r')}, {select_sql(NodeRun, node_fields, 'n')}"
    sql = f"SELECT {columns} FROM runs_run r JOIN runs_noderun n ON n.run_id = r.id WHERE r.id = %s"  # noqa: S608
    statements: list[tuple[str, list[Any]]]
    if node_id:
        statements = [(f"{sql} AND n.node_id = %s FOR UPDATE", [run_id, node_id])]
    elif node_ids:
        statements = [(f"{sql} AND n.node_id = ANY(%s) ORDER BY n.id FOR UPDATE", [run_id, list(node_ids)])]
    elif len(node_run_ids) == 1:  # the statement of every node's transition: one text, prepared once
        statements = [(f"{sql} AND n.id = %s FOR UPDATE", [run_id, node_run_ids[0]])]
    else:
        statements = [(f"{sql} AND n.id = ANY(%s) ORDER BY n.id FOR UPDATE", [run_id, sorted(node_run_ids)])]
    if lock_pending:
        pending = f"SELECT {select_sql(NodeRun, NODE_RUN_COLUMNS, 'p')} FROM runs_noderun p"  # noqa: S608
        statements.append((f"{pending} WHERE p.run_id = %s AND p.status = 'pending' FOR UPDATE", [run_id]))
        unfinished = f"SELECT node_id, status FROM runs_noderun WHERE run_id = %s AND status IN ({_UNFINISHED})"  # noqa: S608
        statements.append((unfinished, [run_id]))
    return statements


def _locked(results: list[Rows], node_fields: tuple[str, ...], lock_pending: bool) -> Locked | None:
    """What the `_lock_statements` read, as model instances; None when no node was locked."""
    if not results[0]:
        return None
    pending_rows, unfinished_statuses = None, None
    if lock_pending:
        rows = [from_row(NodeRun, NODE_RUN_COLUMNS, values) for values in results[1]]
        pending_rows = {row.node_id: row for row in rows}
        unfinished_statuses = {node_id: status for node_id, status in results[2]}
    split = len(TRANSITION_FIELDS)  # select_sql reads every named field once
    run = from_row(Run, TRANSITION_FIELDS, results[0][0][:split])
    node_runs = [from_row(NodeRun, node_fields, row[split:]) for row in results[0]]
    return run, node_runs, pending_rows, unfinished_statuses


# Constants of ours, written into the statement so that it is the same text (and prepared plan) for every run.
_UNFINISHED = ", ".join(f"'{status.value}'" for status in UNFINISHED_NODE_STATUSES)
