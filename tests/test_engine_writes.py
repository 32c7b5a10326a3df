"""How the engine writes a transition: few statements, reads that see deferred writes, events sent in batches.

Nodes are executed here by calling the service in-process (the dispatch is captured instead of sent), so the
statements a transition costs can be counted exactly.
"""

from __future__ import annotations

import warnings
from datetime import datetime
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.contrib.auth.models import User
from django.db import DataError, IntegrityError, connection, transaction
from django.db.models import CharField, DateTimeField, ForeignKey, IntegerField, Model, TextField
from django.test.utils import CaptureQueriesContext
from psycopg.types.json import Jsonb

from flownova import reliances
from runs import services
from runs.events import APPROVALS_GROUP, RunWaiting, run_group, workflow_group
from runs.models import LedgerEntry, NodeRun, Run, RunEvent
from runs.services import dispatch
from runs.services.advance import node_runs_save
from runs.writes import publisher, run_transition
from runs.writes.publish import Publisher, _by_group
from runs.writes.server import _numbered, _numbered_text
from runs.writes.sql import _adapters
from tests.engine_helpers import graph_of, start

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def dispatched(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """(run id, node run id) of every node the engine dispatches, instead of sending them to Celery."""
    jobs: list[tuple[int, int]] = []
    monkeypatch.setattr(dispatch, "_dispatch", lambda run_id, batch: jobs.extend((run_id, pk) for pk, *_ in batch))
    return jobs


def run_all(jobs: list[tuple[int, int]], limit: int | None = None) -> list[int]:
    """Execute the dispatched nodes one by one (the first `limit` of them, else until none is left); returns how
    many statements each one's transition took."""
    counts: list[int] = []
    while jobs and (limit is None or len(counts) < limit):
        run_id, node_run_id = jobs.pop(0)
        with CaptureQueriesContext(connection) as queries:
            services.node_begin(run_id=run_id, node_run_id=node_run_id, task_id="test")
        counts.append(len(queries.captured_queries))
    return counts


def chain(length: int) -> dict[str, Any]:
    ids = ["start", *[f"n{i}" for i in range(length)], "end"]
    nodes: list[tuple[str, str, dict[str, Any]]] = [(node_id, "fork", {}) for node_id in ids]
    nodes[0], nodes[-1] = ("start", "start", {}), ("end", "end", {})
    return graph_of(nodes, [(ids[i], ids[i + 1]) for i in range(len(ids) - 1)])


def test_a_chain_node_costs_four_statements_begin_lock_write_commit(
    alice: User, dispatched: list[tuple[int, int]]
) -> None:
    run = start(alice, chain(5), {"x": 1})
    counts = run_all(dispatched)
    run.refresh_from_db()
    assert run.status == "succeeded" and run.output == {"x": 1}
    assert counts[:-1] == [4] * 6  # the end node also settles the run
    assert list(LedgerEntry.objects.filter(run=run).values_list("seq", flat=True)) == list(range(1, 8))
    seqs = list(RunEvent.objects.filter(run=run).values_list("seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1))


def test_a_fork_creates_its_branches_in_one_statement_each_with_its_own_id(
    alice: User, dispatched: list[tuple[int, int]]
) -> None:
    branches = [f"b{i}" for i in range(30)]
    nodes: list[tuple[str, str, dict[str, Any]]] = [
        ("start", "start", {}),
        ("fork", "fork", {}),
        *[(b, "fork", {}) for b in branches],
    ]
    nodes += [("join", "join", {}), ("end", "end", {})]
    edges = [("start", "fork"), *[("fork", b) for b in branches], *[(b, "join") for b in branches], ("join", "end")]
    run = start(alice, graph_of(nodes, edges))
    run_all(dispatched, limit=2)  # start, then the fork, which dispatches every branch
    by_id = dict(NodeRun.objects.filter(run=run).values_list("pk", "node_id"))
    assert sorted(by_id[pk] for _, pk in dispatched) == sorted(branches)
    run_all(dispatched)
    run.refresh_from_db()
    assert run.status == "succeeded"
    assert NodeRun.objects.get(run=run, node_id="join").status == "succeeded"
    assert LedgerEntry.objects.filter(run=run, node_id="join").count() == 1


def test_reads_within_a_transition_see_its_deferred_writes(alice: User, dispatched: list[tuple[int, int]]) -> None:
    run = start(alice, chain(1))
    with run_transition(run.pk) as tx:
        row = NodeRun.objects.get(run=run, node_id="start")
        row.status = "cancelled"
        node_runs_save(tx, [NodeRun(run=run, node_id="n0", node_type="fork", status="queued")])
        tx.save(row, "status")
        assert NodeRun.objects.get(run=run, node_id="start").status == "cancelled"
        assert NodeRun.objects.filter(run=run, node_id="n0").exists()


def test_a_transition_that_fails_leaves_none_of_its_deferred_writes(
    alice: User, dispatched: list[tuple[int, int]]
) -> None:
    run = start(alice, chain(1))
    with pytest.raises(RuntimeError), run_transition(run.pk) as tx:
        node_runs_save(tx, [NodeRun(run=run, node_id="n0", node_type="fork", status="queued")])
        raise RuntimeError("boom")
    assert not NodeRun.objects.filter(run=run, node_id="n0").exists()


def test_a_combined_write_that_fails_raises_django_s_error_and_rolls_back_with_the_connection_still_usable(
    alice: User, dispatched: list[tuple[int, int]]
) -> None:
    # The engine's statements bypass Django's cursor (they are bound on the server and pipelined with COMMIT);
    # their errors must still be Django's, so that tasks retry on OperationalError and callers catch IntegrityError.
    run = start(alice, chain(1))
    events = RunEvent.objects.filter(run=run).count()
    with pytest.raises(IntegrityError), run_transition(run.pk) as tx:
        tx.emit(RunWaiting())
        node_runs_save(tx, [NodeRun(run=run, node_id="start", node_type="start", status="queued")])
    assert not connection.in_atomic_block
    assert RunEvent.objects.filter(run=run).count() == events  # the event went out with the failed write
    assert NodeRun.objects.filter(run=run, node_id="start").count() == 1
    with run_transition(run.pk) as tx:
        tx.emit(RunWaiting())
    assert RunEvent.objects.filter(run=run).count() == events + 1


def event(run_id: int, seq: int, type: str = "node_started", **data: Any) -> dict[str, Any]:
    return {"type": type, "run_id": run_id, "seq": seq, "ts": "", "node_id": None, "data": data}


def test_events_queued_together_go_to_each_group_once_in_order() -> None:
    first, second, third = [event(1, 1), event(1, 2)], [event(2, 1)], [event(1, 3, "approval_needed", approval_id=5)]
    groups = _by_group([(first, 7, None), (second, 7, None), ([], None, None), (third, 7, None)])
    assert groups == {
        "run.1": [*first, *third],
        "run.2": second,
        "workflow.7": [*first, *second, *third],
        APPROVALS_GROUP: third,
    }


def test_a_transition_commits_with_its_last_write_only_when_it_owns_the_transaction(
    alice: User, dispatched: list[tuple[int, int]]
) -> None:
    run = start(alice, chain(1))
    events = RunEvent.objects.filter(run=run).count()
    with pytest.raises(RuntimeError), transaction.atomic():
        with run_transition(run.pk) as tx:
            tx.emit(RunWaiting())
        raise RuntimeError("the caller's transaction rolls back")
    assert RunEvent.objects.filter(run=run).count() == events
    with run_transition(run.pk) as tx:
        tx.emit(RunWaiting())
    assert not connection.in_atomic_block
    assert RunEvent.objects.filter(run=run).count() == events + 1


def test_a_branch_arriving_at_a_join_and_the_end_of_a_run_cost_what_a_chain_node_costs(
    alice: User, dispatched: list[tuple[int, int]]
) -> None:
    # Whether the run goes on, waits or is done is decided from the node statuses read with the lock, so a
    # branch arrival, which queues behind every other arrival at the same join, pays no extra round trip.
    branches = [f"b{i}" for i in range(5)]
    nodes: list[tuple[str, str, dict[str, Any]]] = [
        ("start", "start", {}),
        ("fork", "fork", {}),
        *[(b, "fork", {}) for b in branches],
    ]
    nodes += [("join", "join", {}), ("end", "end", {})]
    edges = [("start", "fork"), *[("fork", b) for b in branches], *[(b, "join") for b in branches], ("join", "end")]
    run = start(alice, graph_of(nodes, edges))
    counts = run_all(dispatched)
    # start, fork, each branch (the last also reads the others' outputs: the join's input), the join (which reads
    # them as its `branches`), end
    assert counts == [4, 4, *[4] * (len(branches) - 1), 5, 5, 4], counts
    run.refresh_from_db()
    assert run.status == "succeeded" and run.finished_at is not None
    assert RunEvent.objects.filter(run=run, type="run_succeeded").count() == 1


def test_a_run_settled_from_the_statuses_read_with_the_lock_still_waits_for_a_person(
    alice: User, dispatched: list[tuple[int, int]]
) -> None:
    nodes: list[tuple[str, str, dict[str, Any]]] = [
        ("start", "start", {}),
        ("fork", "fork", {}),
        ("ask", "user_approval", {"message": "ok?"}),
    ]
    nodes += [("quick", "fork", {}), ("join", "join", {}), ("end", "end", {})]
    edges = [("start", "fork"), ("fork", "ask"), ("fork", "quick"), ("ask", "join", "approved"), ("quick", "join")]
    run = start(alice, graph_of(nodes, [*edges, ("join", "end")]))
    run_all(dispatched)
    run.refresh_from_db()
    assert run.status == "waiting"
    assert NodeRun.objects.get(run=run, node_id="join").status == "pending"
    assert RunEvent.objects.filter(run=run, type="run_waiting").count() == 1


def chain_with_prepared_statements(user: User, jobs: list[tuple[int, int]]) -> Run:
    """A run of a chain far enough along that this connection has prepared its lock and write statements."""
    threshold = settings.DATABASES["default"]["OPTIONS"]["prepare_threshold"]
    if threshold is None:
        pytest.skip("FLOWNOVA_DB_PREPARE_THRESHOLD=off")
    run = start(user, chain(12))
    # psycopg prepares a statement at its next execution once it has run `prepare_threshold` times; the first
    # node (start) also starts the run, so its write differs.
    run_all(jobs, limit=threshold + 2)
    return run


def prepared_statements() -> dict[str, int]:
    """This connection's prepared statements: the start of each one's text -> how many times it ran."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement, generic_plans + custom_plans FROM pg_prepared_statements")
        return {statement[:40]: runs for statement, runs in cursor.fetchall()}


def test_a_chain_node_s_lock_and_write_are_prepared_on_the_server_and_parsed_once_per_process(
    alice: User, dispatched: list[tuple[int, int]]
) -> None:
    # PostgreSQL parsing and planning the same two statements at every node was a third of its CPU per node;
    # psycopg splitting the write around its placeholders again at every node (it caches only short queries
    # with few values) was a sixth of the engine's: the engine numbers its statements itself, once a text.
    run = chain_with_prepared_statements(alice, dispatched)
    before = prepared_statements()
    lock = next(text for text in before if text.startswith('SELECT r."id"'))
    write = next(text for text in before if text.startswith("WITH w0 AS (UPDATE"))
    numbered = _numbered_text.cache_info()
    run_all(dispatched, limit=4)  # four more chain nodes: the same statements as the last ones
    after = prepared_statements()
    assert after[lock] == before[lock] + 4 and after[write] == before[write] + 4
    assert _numbered_text.cache_info().misses == numbered.misses
    run_all(dispatched)
    run.refresh_from_db()
    assert run.status == "succeeded"


def test_a_migration_under_a_prepared_statement_fails_the_transition_retryably_and_a_new_connection_prepares_anew(
    alice: User, dispatched: list[tuple[int, int]]
) -> None:
    import psycopg
    from django.db import OperationalError, close_old_connections

    run = chain_with_prepared_statements(alice, dispatched)
    params = connection.get_connection_params()
    other = {key: params[key] for key in ("dbname", "user", "host", "port", "password") if params.get(key)}

    def alter(length: int) -> None:  # as a deployment's migration would, from another connection
        with psycopg.connect(**other, autocommit=True) as admin:
            admin.execute(f"ALTER TABLE runs_noderun ALTER COLUMN task_id TYPE varchar({length})")

    alter(300)
    try:
        with pytest.raises(OperationalError, match="schema changed under a prepared statement"):
            services.node_begin(run_id=run.pk, node_run_id=dispatched[0][1], task_id="test")
        close_old_connections()  # what happens before the task's retry
        run_all(dispatched)
    finally:
        close_old_connections()
        alter(255)
    run.refresh_from_db()
    assert run.status == "succeeded"
    assert list(LedgerEntry.objects.filter(run=run).values_list("seq", flat=True)) == list(range(1, 15))


def test_events_are_sent_only_to_the_groups_someone_watches(
    alice: User, dispatched: list[tuple[int, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    # group_send costs Redis round trips even for an empty group; a run nobody watches is the common case.
    layer = get_channel_layer()
    assert layer is not None
    sent: list[str] = []
    group_send = layer.group_send

    async def recording(group: str, message: dict[str, Any]) -> None:
        sent.append(group)
        await group_send(group, message)

    monkeypatch.setattr(layer, "group_send", recording)
    run = start(alice, chain(2))
    run_all(dispatched, limit=1)
    publisher.flush()
    assert sent == []  # nobody watches the run or its workflow

    async def watch() -> str:
        channel = await layer.new_channel()
        await layer.group_add(run_group(run.pk), channel)
        return channel

    channel = async_to_sync(watch)()
    run_all(dispatched)
    publisher.flush()
    assert run.workflow_id is not None
    assert set(sent) == {run_group(run.pk)} and workflow_group(run.workflow_id) not in sent
    message = async_to_sync(layer.receive)(channel)
    assert message["events"][0]["run_id"] == run.pk and message["events"][0]["type"] == "node_started"


def test_an_orm_write_to_an_engine_table_inside_a_transition_is_refused(
    alice: User, dispatched: list[tuple[int, int]]
) -> None:
    from runs.writes import TransitionWriteError

    run = start(alice, chain(1))
    with pytest.raises(TransitionWriteError, match="runs_noderun"), run_transition(run.pk) as tx:
        NodeRun.objects.filter(run=run).update(status="cancelled")
    with pytest.raises(TransitionWriteError, match="runs_runevent"), run_transition(run.pk) as tx:
        RunEvent.objects.filter(run=run).delete()
    assert not NodeRun.objects.filter(run=run, status="cancelled").exists()
    with run_transition(run.pk) as tx:  # through the transition, the same change goes out
        row = NodeRun.objects.get(run=run, node_id="start")
        row.status = "cancelled"
        tx.save(row, "status")
    assert NodeRun.objects.get(run=run, node_id="start").status == "cancelled"


def fork_join(width: int) -> dict[str, Any]:
    branches = [f"b{i}" for i in range(width)]
    nodes: list[tuple[str, str, dict[str, Any]]] = [("start", "start", {}), ("fork", "fork", {})]
    nodes += [*[(b, "fork", {}) for b in branches], ("join", "join", {}), ("end", "end", {})]
    edges = [("start", "fork"), *[("fork", b) for b in branches], *[(b, "join") for b in branches], ("join", "end")]
    return graph_of(nodes, edges)


def test_a_fork_s_branches_begun_together_write_one_statement_per_kind_of_row(
    alice: User, dispatched: list[tuple[int, int]], settings: Any
) -> None:
    # Continued in one process, a fork's branches are begun in one transition. Their node rows, ledger entries
    # and the join's row go out as one UPDATE or INSERT each, not one per branch: PostgreSQL planned hundreds of
    # data-modifying CTEs for a fork of 100.
    settings.FLOWNOVA_CONTINUE_MS, settings.FLOWNOVA_CONTINUE_NODES = 60_000, 1000
    run = start(alice, fork_join(40))
    run_id, node_run_id = dispatched.pop(0)
    with CaptureQueriesContext(connection) as queries, services.continuing(run_id, "test"):
        services.node_begin(run_id=run_id, node_run_id=node_run_id, task_id="test")
    run.refresh_from_db()
    assert run.status == "succeeded" and not dispatched
    join = NodeRun.objects.get(run=run, node_id="join")
    assert join.status == "succeeded" and len(join.arrivals) == 40  # every arrival, recorded by the last update
    assert LedgerEntry.objects.filter(run=run, node_id="join").count() == 1
    assert list(LedgerEntry.objects.filter(run=run).values_list("seq", flat=True)) == list(range(1, 45))
    writes = [query["sql"] for query in queries.captured_queries if "AS (UPDATE" in query["sql"]]
    assert max(write.count(" AS (") for write in writes) <= 8, "a write of one CTE per branch"
    branches = next(write for write in writes if write.count('UPDATE "runs_noderun"') and "FROM (VALUES" in write)
    assert branches.count('INSERT INTO "runs_ledgerentry"') == 1


def finished_chain(owner: User, length: int, dispatched: list[tuple[int, int]]) -> tuple[Run, list[NodeRun]]:
    """A run of a chain, run to its end, and its node rows."""
    run = start(owner, chain(length))
    run_all(dispatched)
    return run, list(NodeRun.objects.filter(run=run).order_by("pk"))


def test_updates_of_one_shape_go_out_together_and_a_row_updated_twice_ends_with_its_last_values(
    alice: User, dispatched: list[tuple[int, int]]
) -> None:
    run, rows = finished_chain(alice, 3, dispatched)
    with CaptureQueriesContext(connection) as queries, run_transition(run.pk) as tx:
        for row in rows:
            row.error = f"first {row.node_id}"
            tx.save(row, "error")
        rows[0].error = "last"
        tx.save(rows[0], "error")
    (write,) = [query["sql"] for query in queries.captured_queries if "runs_noderun" in query["sql"]]
    assert write.count('UPDATE "runs_noderun"') == 1
    errors = dict(NodeRun.objects.filter(run=run).values_list("node_id", "error"))
    assert errors == {rows[0].node_id: "last", **{row.node_id: f"first {row.node_id}" for row in rows[1:]}}
    with run_transition(run.pk) as tx:  # one row alone, twice: still its last values
        rows[1].error = "before"
        tx.save(rows[1], "error")
        rows[1].error = "after"
        tx.save(rows[1], "error")
    assert NodeRun.objects.get(pk=rows[1].pk).error == "after"


def test_a_value_too_long_for_its_column_fails_in_a_combined_update_as_in_a_plain_one(
    alice: User, dispatched: list[tuple[int, int]]
) -> None:
    # The combined UPDATE types its values; a cast to varchar(n) would cut a long value silently.
    run, rows = finished_chain(alice, 2, dispatched)
    with pytest.raises(DataError, match="too long"), run_transition(run.pk) as tx:
        for row in rows:
            row.handle = "h" * 65
            tx.save(row, "handle")
    assert set(NodeRun.objects.filter(run=run).values_list("handle", flat=True)) <= {None, ""}


def test_engine_statements_are_numbered_for_the_server_once_and_refuse_a_stray_percent() -> None:
    assert (
        _numbered("SELECT %s, x FROM t WHERE a = %s AND b IN (%s)") == "SELECT $1, x FROM t WHERE a = $2 AND b IN ($3)"
    )
    assert _numbered("SELECT 1") == "SELECT 1"
    with pytest.raises(ValueError, match="placeholders"):
        _numbered("SELECT %s FROM t WHERE name LIKE 'a%'")


def test_events_of_transitions_committed_close_together_are_sent_as_one_batch(
    alice: User, dispatched: list[tuple[int, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each sending asks Redis who watches; a chain continued in one process would otherwise pay that per node.
    checks: list[list[str]] = []
    watched_groups = reliances.watched_groups

    async def counting(layer: Any, groups: list[str]) -> list[str]:
        checks.append(list(groups))
        return await watched_groups(layer, groups)

    monkeypatch.setattr(reliances, "watched_groups", counting)
    monkeypatch.setattr(settings, "FLOWNOVA_EVENTS_GATHER_MS", 200)
    fresh = Publisher()
    for seq in range(1, 11):
        fresh.publish([event(7, seq)], workflow_id=None)
    fresh.flush()
    assert checks == [["run.7"]]


def comparable(value: Any) -> Any:
    return ("jsonb", value.obj) if isinstance(value, Jsonb) else (type(value), value)


@pytest.mark.parametrize("model", [Run, NodeRun, LedgerEntry, RunEvent])
def test_the_engine_adapts_each_value_as_the_orm_would_save_it(
    alice: User, dispatched: list[tuple[int, int]], model: type[Model]
) -> None:
    # The engine reads plain values straight from the instance instead of through Django's field methods.
    run = start(alice, fork_join(3), {"x": 1, "when": "now"})
    run_all(dispatched)
    lookup: dict[str, Any] = {"pk": run.pk} if model is Run else {"run": run}
    instances = list(model._default_manager.filter(**lookup))
    odd = model(**({} if model is Run else {"run": run}))  # values Django would convert, on an unsaved row
    for field in model._meta.concrete_fields:
        if isinstance(field, CharField | TextField):
            setattr(odd, field.attname, 42)
        elif isinstance(field, IntegerField | ForeignKey) and not field.primary_key:
            setattr(odd, field.attname, True)
        elif isinstance(field, DateTimeField):
            setattr(odd, field.attname, datetime(2026, 1, 1, 12, 0))  # naive: Django makes it aware
    columns = tuple(field for field in model._meta.concrete_fields if not getattr(field, "auto_now", False))
    for adding in (True, False):
        columns_now = tuple(field for field in columns if not (adding and getattr(field, "auto_now_add", False)))
        adapters = _adapters(columns_now, adding)
        for instance in [*instances, odd]:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # the naive datetime
                ours = [comparable(adapt(instance)) for adapt in adapters]
                theirs = [comparable(f.get_db_prep_save(f.pre_save(instance, adding), connection)) for f in columns_now]
            assert ours == theirs, (model.__name__, instance.pk)
