"""The domain tables: versions, graph documents, the append-only ledger, per-run uniqueness."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.db import IntegrityError, connection, transaction

from approvals.models import ApprovalRequest
from runs.models import LedgerEntry, NodeRun, Run
from tests.factories import linear_graph, make_run, make_workflow
from workflows.models import Workflow
from workflows.services import workflow_soft_delete, workflow_update

pytestmark = pytest.mark.django_db


def test_graph_document_round_trips_through_node_and_edge_rows(alice: User) -> None:
    graph = {
        "nodes": [
            {"id": "start", "type": "start", "position": {"x": 0, "y": 0}, "data": {}},
            {
                "id": "check",
                "type": "if_else",
                "position": {"x": 200, "y": 0},
                "data": {"left": "{{input.t}}", "operator": ">", "right": "70"},
            },
            {"id": "hot", "type": "end", "data": {}},
            {"id": "cold", "type": "end", "data": {}},
        ],
        "edges": [
            {"id": "e1", "source": "start", "target": "check"},
            {"id": "e2", "source": "check", "sourceHandle": "true", "target": "hot"},
            {"id": "e3", "source": "check", "sourceHandle": "false", "target": "cold"},
        ],
    }
    workflow = make_workflow(alice, graph=graph)
    assert Workflow.objects.get(pk=workflow.pk).graph_document() == graph


def test_every_save_bumps_the_version(alice: User) -> None:
    workflow = make_workflow(alice)
    assert workflow.version == 1
    workflow = workflow_update(workflow=workflow, name="Renamed")
    assert workflow.version == 2
    workflow = workflow_update(workflow=workflow, graph=linear_graph(("a", "fork", {})))
    assert workflow.version == 3
    assert [node["id"] for node in workflow.graph_document()["nodes"]] == ["start", "a", "end"]


def test_soft_delete_hides_the_workflow_but_keeps_its_runs(alice: User) -> None:
    workflow = make_workflow(alice)
    run = make_run(workflow)
    workflow_soft_delete(workflow=workflow)
    assert not Workflow.objects.alive().filter(pk=workflow.pk).exists()
    run.refresh_from_db()
    assert run.workflow_id == workflow.pk and run.graph["nodes"]


def test_visible_to_scopes_by_owner_and_lets_staff_see_all(alice: User, mallory: User, superuser: User) -> None:
    workflow = make_workflow(alice)
    assert list(Workflow.objects.visible_to(alice)) == [workflow]
    assert list(Workflow.objects.visible_to(mallory)) == []
    assert list(Workflow.objects.visible_to(superuser)) == [workflow]


def test_ledger_entries_cannot_be_changed_by_the_model(alice: User) -> None:
    run = make_run(make_workflow(alice))
    entry = LedgerEntry.objects.create(run=run, seq=1, node_id="start", node_type="start", status="succeeded")
    entry.status = "failed"
    with pytest.raises(ValueError, match="append-only"):
        entry.save()


def test_ledger_entries_cannot_be_changed_in_the_database(alice: User) -> None:
    run = make_run(make_workflow(alice))
    LedgerEntry.objects.create(run=run, seq=1, node_id="start", node_type="start", status="succeeded")
    with pytest.raises(IntegrityError, match="append-only"), transaction.atomic():
        LedgerEntry.objects.filter(run=run).update(status="failed")
    with pytest.raises(IntegrityError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("UPDATE runs_ledgerentry SET error = 'forged' WHERE run_id = %s", [run.pk])
    assert LedgerEntry.objects.get(run=run).status == "succeeded"


def test_ledger_seq_is_unique_within_a_run(alice: User) -> None:
    run = make_run(make_workflow(alice))
    LedgerEntry.objects.create(run=run, seq=1, node_id="start", node_type="start", status="succeeded")
    with pytest.raises(IntegrityError), transaction.atomic():
        LedgerEntry.objects.create(run=run, seq=1, node_id="end", node_type="end", status="succeeded")


def test_a_node_has_one_state_row_and_one_approval_request_per_run(alice: User) -> None:
    run = make_run(make_workflow(alice))
    NodeRun.objects.create(run=run, node_id="a", node_type="fork")
    with pytest.raises(IntegrityError), transaction.atomic():
        NodeRun.objects.create(run=run, node_id="a", node_type="fork")
    ApprovalRequest.objects.create(run=run, node_id="ok")
    with pytest.raises(IntegrityError), transaction.atomic():
        ApprovalRequest.objects.create(run=run, node_id="ok")


def test_a_pending_approval_cannot_carry_a_decision_time(alice: User) -> None:
    from django.utils import timezone

    run = make_run(make_workflow(alice))
    with pytest.raises(IntegrityError), transaction.atomic():
        ApprovalRequest.objects.create(run=run, node_id="ok", status="pending", decided_at=timezone.now())


def test_every_foreign_key_of_the_run_tables_leads_an_index_and_none_has_a_redundant_one_of_its_own() -> None:
    # Lookups and cascades by run, owner and workflow need an index starting with the column; a second,
    # single-column one would only cost an entry at each of the engine's writes.
    from runs.models import Run, RunEvent

    for model in (Run, NodeRun, LedgerEntry, RunEvent):
        table = model._meta.db_table
        with connection.cursor() as cursor:
            indexes = connection.introspection.get_constraints(cursor, table).values()
        leading = [index["columns"] for index in indexes if (index["index"] or index["unique"]) and index["columns"]]
        for field in model._meta.concrete_fields:
            if not field.is_relation:
                continue
            starting = [columns for columns in leading if columns[0] == field.column]
            assert starting, f"{table}.{field.column} leads no index"
            if len(starting) > 1:
                assert [field.column] not in starting, f"{table}.{field.column} has a redundant index of its own"


@pytest.mark.django_db(transaction=True)  # TRUNCATE needs a transaction with no deferred checks pending
def test_ledger_entries_cannot_be_deleted_or_truncated_in_the_database(alice: User) -> None:
    run = make_run(make_workflow(alice))
    LedgerEntry.objects.create(run=run, seq=1, node_id="start", node_type="start", status="succeeded")
    for statement in ("DELETE FROM runs_ledgerentry", "TRUNCATE runs_ledgerentry CASCADE"):
        with pytest.raises(IntegrityError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL flownova.ledger_purge = 'off'")  # as in production (tests run with it on)
            cursor.execute(statement)
    with pytest.raises(IntegrityError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL flownova.ledger_purge = 'off'")
        run.delete()  # a run deleted by hand takes its ledger with it: refused too
    assert LedgerEntry.objects.filter(run=run).count() == 1


def test_purge_deletes_old_finished_runs_with_their_ledgers_and_nothing_else(alice: User) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from runs.services import runs_purge

    workflow = make_workflow(alice)
    old = make_run(workflow, status="succeeded")
    recent = make_run(workflow, status="failed")
    active = make_run(workflow, status="running")
    Run.objects.filter(pk=old.pk).update(finished_at=timezone.now() - timedelta(days=100))
    Run.objects.filter(pk=recent.pk).update(finished_at=timezone.now() - timedelta(days=1))
    for run in (old, recent, active):
        LedgerEntry.objects.create(run=run, seq=1, node_id="start", node_type="start", status="succeeded")
    cutoff = timezone.now() - timedelta(days=90)
    with connection.cursor() as cursor:
        cursor.execute("SET flownova.ledger_purge = 'off'")  # the command must turn it on itself
    try:
        assert runs_purge(finished_before=cutoff, dry_run=True) == 1
        assert runs_purge(finished_before=cutoff) == 1
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SET flownova.ledger_purge = 'on'")
    assert set(Run.objects.values_list("pk", flat=True)) == {recent.pk, active.pk}
    assert LedgerEntry.objects.count() == 2


# Columns a transition writes on a node's row (runs/services: claim, outcome, arrivals at a join).
NODE_STATE_COLUMNS = {
    "status", "input", "result", "output", "handle", "error", "attempts", "arrivals", "task_id",
    "queued_at", "started_at", "finished_at",
}  # fmt: skip


def test_no_index_of_a_node_row_holds_a_column_a_transition_changes() -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT i.relname, a.attname FROM pg_index x
               JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid
               JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = ANY(x.indkey)
               WHERE t.relname = 'runs_noderun'"""
        )
        indexed = cursor.fetchall()
        cursor.execute("SELECT reloptions FROM pg_class WHERE relname = 'runs_noderun'")
        (options,) = cursor.fetchone()
    assert {column for _, column in indexed} == {"id", "run_id", "node_id"}
    assert not NODE_STATE_COLUMNS & {column for _, column in indexed}
    assert "fillfactor=80" in options


def test_a_nodes_state_changes_are_written_in_place(alice: User) -> None:
    run = make_run(make_workflow(alice))
    nodes = [NodeRun.objects.create(run=run, node_id=f"n{i}", node_type="transform") for i in range(20)]
    for node in nodes:  # claimed, then finished with an output, as a transition writes them
        NodeRun.objects.filter(pk=node.pk).update(status="running", attempts=1, task_id="t")
        NodeRun.objects.filter(pk=node.pk).update(status="succeeded", output={"value": node.node_id * 20})
    with connection.cursor() as cursor:  # this transaction's own counts
        cursor.execute("SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_xact_user_tables WHERE relname = 'runs_noderun'")
        updated, in_place = cursor.fetchone()
    assert updated == 40 and in_place == 40
