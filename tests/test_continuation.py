"""Continuing a run in the process that advanced it (runs.services.continuation): control-flow nodes begun
right after the transition that queued them commits, each node still committed before its successors begin,
a fork's branches together, within a budget, and nothing lost when the process cannot go on."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from approvals.models import ApprovalRequest
from approvals.services import approval_decide
from runs import services
from runs.models import LedgerEntry, NodeRun, Run, RunEvent
from runs.services import continuation, dispatch, execute
from tests.conftest import WorkerProcess
from tests.engine_helpers import graph_of, ledger, start, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The node runs sent to the broker, recorded instead of sent: these tests begin nodes in this process."""
    jobs: list[int] = []
    monkeypatch.setattr(dispatch, "_dispatch", lambda run_id, batch: jobs.extend(job[0] for job in batch))
    return jobs


def chain(length: int, *, middle: str = "fork", data: dict[str, Any] | None = None) -> dict[str, Any]:
    ids = ["start", *(f"n{i}" for i in range(length)), "end"]
    nodes = [(node_id, middle, data or {}) for node_id in ids]
    nodes[0], nodes[-1] = ("start", "start", {}), ("end", "end", {})
    return graph_of(nodes, [(ids[i], ids[i + 1]) for i in range(len(ids) - 1)])


def fork_join(width: int) -> dict[str, Any]:
    branches = [f"b{i}" for i in range(width)]
    nodes: list[tuple[str, str, dict[str, Any]]] = [("start", "start", {}), ("fork", "fork", {})]
    nodes += [(b, "fork", {}) for b in branches]
    nodes += [("join", "join", {}), ("end", "end", {})]
    edges = [("start", "fork"), *(("fork", b) for b in branches), *((b, "join") for b in branches), ("join", "end")]
    return graph_of(nodes, edges)


def begin_here(run: Run, task_id: str = "here") -> None:
    """What a node task does with the run's first node, in this process."""
    first = NodeRun.objects.get(run=run, node_id="start")
    with services.continuing(run.pk, task_id):
        services.node_begin(run_id=run.pk, node_run_id=first.pk, task_id=task_id)


def committed_by(run: Run) -> dict[str, int]:
    """The transaction that last wrote each of the run's node rows (PostgreSQL's xmin)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT node_id, xmin::text::bigint FROM runs_noderun WHERE run_id = %s", [run.pk])
        return dict(cursor.fetchall())


@override_settings(FLOWNOVA_CONTINUE_MS=60_000)
def test_a_chain_is_continued_by_one_process_each_node_in_a_transaction_of_its_own(
    alice: User, sent: list[int]
) -> None:
    run = start(alice, chain(30), {"x": 1})
    sent.clear()  # the start node's own task
    begin_here(run)
    run.refresh_from_db()
    assert run.status == "succeeded" and run.output == {"x": 1}
    assert sent == []  # no node went through the broker
    order = ["start", *(f"n{i}" for i in range(30)), "end"]
    assert ledger(run) == [(node_id, "succeeded") for node_id in order]
    rows = dict(NodeRun.objects.filter(run=run).values_list("node_id", "task_id"))
    assert set(rows.values()) == {"here"}
    # Durable one node at a time: each node's row was committed by a transaction of its own, and each node
    # began only once its predecessor had finished.
    assert len(set(committed_by(run).values())) == len(order)
    entries = [
        (entry.started_at.timestamp(), entry.finished_at.timestamp())
        for entry in LedgerEntry.objects.filter(run=run).order_by("seq")
        if entry.started_at is not None and entry.finished_at is not None
    ]
    assert len(entries) == len(order)
    assert all(entries[i][1] <= entries[i + 1][0] for i in range(len(entries) - 1))
    seqs = list(RunEvent.objects.filter(run=run).order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1))


@override_settings(FLOWNOVA_CONTINUE_MS=60_000)
def test_a_forks_branches_begin_together_and_the_join_fires_once_with_every_arrival(
    alice: User, sent: list[int]
) -> None:
    run = start(alice, fork_join(40))
    sent.clear()
    begin_here(run)
    run.refresh_from_db()
    assert run.status == "succeeded", run.error
    assert sent == []
    statuses = dict(NodeRun.objects.filter(run=run).values_list("node_id", "status"))
    assert set(statuses.values()) == {"succeeded"} and len(statuses) == 40 + 4
    join = NodeRun.objects.get(run=run, node_id="join")
    assert len(join.arrivals) == 40  # by edge
    assert LedgerEntry.objects.filter(run=run, node_id="join").count() == 1
    # The forty branches were begun, and reached the join, in one transaction; the join after it committed.
    xmins = committed_by(run)
    assert len({xmins[f"b{i}"] for i in range(40)}) == 1
    assert xmins["join"] != xmins["b0"] and xmins["fork"] != xmins["b0"]
    times = {entry.node_id: entry for entry in LedgerEntry.objects.filter(run=run)}
    join_started = times["join"].started_at
    assert join_started is not None
    assert all((times[f"b{i}"].finished_at or join_started) <= join_started for i in range(40))


@override_settings(FLOWNOVA_CONTINUE_MS=60_000, FLOWNOVA_CONTINUE_NODES=5)
def test_past_its_budget_a_process_sends_the_next_node_through_the_broker(alice: User, sent: list[int]) -> None:
    run = start(alice, chain(12))
    sent.clear()
    begin_here(run)
    begun = NodeRun.objects.filter(run=run, status="succeeded").order_by("pk")
    assert [row.node_id for row in begun] == ["start", "n0", "n1", "n2", "n3", "n4"]
    (queued,) = NodeRun.objects.filter(run=run, status="queued")
    assert queued.node_id == "n5" and sent == [queued.pk]
    assert not queued.task_id.startswith(continuation.CONTINUED_PREFIX)  # a task of its own will claim it


@override_settings(FLOWNOVA_CONTINUE_MS=60_000)
def test_nodes_that_may_block_are_never_taken_on(alice: User, sent: list[int]) -> None:
    run = start(alice, chain(1, middle="transform", data={"expression": '{"y": 2}'}))
    sent.clear()
    begin_here(run)
    transform = NodeRun.objects.get(run=run, node_id="n0")
    assert transform.status == "queued" and sent == [transform.pk]


@override_settings(FLOWNOVA_CONTINUE_MS=60_000)
def test_nodes_a_process_took_on_and_could_not_begin_are_recovered_by_the_sweep(alice: User, sent: list[int]) -> None:
    """The process dies between the commit and the next node's beginning: the node is left queued, marked as
    taken, with no message; the sweep sends it once it has waited FLOWNOVA_RECOVER_CONTINUED_AFTER."""
    run = start(alice, chain(2))
    sent.clear()
    first = NodeRun.objects.get(run=run, node_id="start")
    with continuation.taking_on(run.pk, "dies"):  # takes nodes on, and never begins them
        services.node_begin(run_id=run.pk, node_run_id=first.pk, task_id="dies")
    orphan = NodeRun.objects.get(run=run, node_id="n0")
    assert orphan.status == "queued" and orphan.task_id == f"{continuation.CONTINUED_PREFIX}dies"
    assert sent == []
    assert services.node_runs_recover(queued_for=600, running_for=60, continued_for=600) == 0  # not yet
    assert services.node_runs_recover(queued_for=600, running_for=60, continued_for=0) == 1
    orphan.refresh_from_db()
    assert sent == [orphan.pk] and orphan.task_id == ""


@override_settings(FLOWNOVA_CONTINUE_MS=60_000)
def test_when_beginning_the_next_nodes_raises_they_go_through_the_broker(
    alice: User, sent: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    run = start(alice, fork_join(3))
    sent.clear()
    real = execute.instant_nodes_begin

    def broken(*, run_id: int, node_run_ids: list[int], task_id: str, ending: bool = False) -> list[int]:
        if len(node_run_ids) > 1:
            raise RuntimeError("a bug in beginning several nodes")
        return real(run_id=run_id, node_run_ids=node_run_ids, task_id=task_id, ending=ending)

    monkeypatch.setattr(execute, "instant_nodes_begin", broken)
    begin_here(run)
    branches = NodeRun.objects.filter(run=run, node_id__in=["b0", "b1", "b2"])
    assert {row.status for row in branches} == {"queued"}
    assert sorted(sent) == sorted(row.pk for row in branches)


@override_settings(FLOWNOVA_CONTINUE_MS=0)
def test_continuing_can_be_turned_off(alice: User, sent: list[int]) -> None:
    run = start(alice, chain(2))
    sent.clear()
    begin_here(run)
    n0 = NodeRun.objects.get(run=run, node_id="n0")
    assert n0.status == "queued" and sent == [n0.pk]


@override_settings(FLOWNOVA_CONTINUE_MS=60_000)
def test_a_decision_begins_the_control_flow_after_it_in_the_deciding_process(alice: User, sent: list[int]) -> None:
    graph = graph_of(
        [("start", "start", {}), ("ask", "user_approval", {"message": "ok?"}), ("yes", "end", {}), ("no", "end", {})],
        [("start", "ask"), ("ask", "yes", "approved"), ("ask", "no", "rejected")],
    )
    run = start(alice, graph)
    sent.clear()
    begin_here(run)
    run.refresh_from_db()
    assert run.status == "waiting"
    approval_decide(approval_id=ApprovalRequest.objects.get(run=run).pk, user=alice, decision="approved")
    run.refresh_from_db()
    assert run.status == "succeeded" and sent == []  # ended by the time the decision returned
    assert ledger(run)[-1] == ("yes", "succeeded")


@override_settings(FLOWNOVA_CONTINUE_MS=60_000)
def test_a_decision_and_the_end_after_it_settle_the_run_from_what_their_locks_read(
    alice: User, sent: list[int]
) -> None:
    """The decision locks the waiting node with the run, and the end node it continues reads the unfinished
    nodes with its lock: neither locks a node apart nor asks for the open nodes' statuses afterwards."""
    graph = graph_of(
        [("start", "start", {}), ("ask", "user_approval", {"message": "ok?"}), ("yes", "end", {}), ("no", "end", {})],
        [("start", "ask"), ("ask", "yes", "approved"), ("ask", "no", "rejected")],
    )
    run = start(alice, graph)
    begin_here(run)
    approval = ApprovalRequest.objects.get(run=run)
    with CaptureQueriesContext(connection) as queries:
        approval_decide(approval_id=approval.pk, user=alice, decision="approved")
    run.refresh_from_db()
    assert run.status == "succeeded"
    # An ORM query may go out after the transition's deferred writes, in the same statement: look inside.
    statements = [query["sql"] for query in queries.captured_queries]
    assert not [sql for sql in statements if 'SELECT DISTINCT "runs_noderun"."status"' in sql]
    assert not [sql for sql in statements if 'FROM "runs_noderun"' in sql and "FOR UPDATE" in sql]
    assert len([sql for sql in statements if sql.startswith("BEGIN")]) == 2  # the decision, then the end node
    # Who may decide an unassigned request (the run's project's runners) is read with the request itself.
    # So are whether it names users or groups, and whether the decider is among them.
    membership = [sql for sql in statements if "projects_membership" in sql]
    assert len(membership) == 1 and "FROM approvals_approvalrequest a" in membership[0]
    assert [sql for sql in statements if "approvalrequest_assignee_" in sql] == membership


@pytest.mark.worker
def test_on_the_worker_a_task_continues_the_nodes_after_its_own(alice: User, celery_worker: WorkerProcess) -> None:
    run = wait_for(start(alice, chain(60)))
    assert run.status == "succeeded", run.error
    tasks = list(NodeRun.objects.filter(run=run).values_list("task_id", flat=True))
    # A task always takes on at least the node after its own: at most one task for every two nodes.
    assert len(set(tasks)) <= (len(tasks) + 1) // 2
    assert ledger(run) == [(node_id, "succeeded") for node_id in ["start", *(f"n{i}" for i in range(60)), "end"]]


def lock_round_trips(queries: CaptureQueriesContext) -> tuple[int, int]:
    """Of the statements recorded: round trips that began with a node's locks, and COMMITs that carried the next
    node's locks (runs.writes.chain)."""
    texts = [query["sql"] for query in queries.captured_queries]
    alone = [sql for sql in texts if sql.startswith('SELECT r."id"') and "FOR UPDATE" in sql]
    carried = [sql for sql in texts if "; COMMIT; BEGIN; SELECT r." in sql]
    return len(alone), len(carried)


def continued_here(owner: User, graph: dict[str, Any], sent: list[int]) -> tuple[Run, CaptureQueriesContext]:
    """A run of `graph` whose nodes this process begins, from its start node, with the statements recorded."""
    run = start(owner, graph, {"x": 1})
    sent.clear()
    with CaptureQueriesContext(connection) as queries:
        begin_here(run)
    run.refresh_from_db()
    return run, queries


@override_settings(FLOWNOVA_CONTINUE_MS=60_000)
def test_a_continued_node_s_locks_go_out_with_the_commit_of_the_node_before_it(alice: User, sent: list[int]) -> None:
    # One round trip a node instead of two: the start node's task and the first node it continues take their
    # locks; every later node's were taken in the round trip that committed its predecessor.
    run, queries = continued_here(alice, chain(20), sent)
    assert run.status == "succeeded" and sent == []
    assert lock_round_trips(queries) == (2, 20)
    assert len(set(committed_by(run).values())) == 22  # still a transaction a node


@override_settings(FLOWNOVA_CONTINUE_MS=60_000)
def test_without_the_reliance_on_django_s_hooks_each_continued_node_takes_its_own_locks(
    alice: User, sent: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    from flownova import reliances

    applies = reliances._applies
    monkeypatch.setattr(
        reliances, "_applies", lambda reliance: reliance != reliances.DJANGO_COMMIT_HOOKS and applies(reliance)
    )
    run, queries = continued_here(alice, chain(5), sent)
    assert run.status == "succeeded" and sent == []
    assert lock_round_trips(queries) == (7, 0)


@override_settings(FLOWNOVA_CONTINUE_MS=60_000)
def test_locks_sent_with_a_commit_that_fail_leave_the_commit_standing_and_are_taken_again(
    alice: User, sent: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    from runs.writes import transition

    lock_statements = transition._lock_statements

    def failing(*args: Any, **kwargs: Any) -> list[tuple[str, list[Any]]]:
        statements = lock_statements(*args, **kwargs)
        if kwargs.get("node_ids"):  # the locks that go out with a commit
            return [("SELECT 1 / (%s - %s)", [1, 1]), *statements]
        return statements

    monkeypatch.setattr(transition, "_lock_statements", failing)
    run, queries = continued_here(alice, chain(6), sent)
    assert run.status == "succeeded" and run.output == {"x": 1} and sent == []
    order = ["start", *(f"n{i}" for i in range(6)), "end"]
    assert ledger(run) == [(node_id, "succeeded") for node_id in order]
    assert len(set(committed_by(run).values())) == len(order)
    assert lock_round_trips(queries)[0] == len(order)  # every node took its locks again
