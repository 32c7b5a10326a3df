"""Workflow versions: every save keeps its document, in the save's transaction; PostgreSQL refuses to change a
kept one; the migration keeps the current version of every workflow that existed before."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor

from tests.factories import linear_graph, make_workflow
from tests.migration_helpers import migrated_back_to
from workflows.models import WorkflowVersion
from workflows.services import GraphError, workflow_update


@pytest.mark.django_db
def test_create_keeps_version_one_with_its_document_and_author(alice: User) -> None:
    workflow = make_workflow(alice, name="Invoices", graph=linear_graph())
    version = WorkflowVersion.objects.get(workflow=workflow)
    assert (version.number, version.author) == (1, alice)
    assert version.document == workflow.document()
    assert workflow.version_document(1) == workflow.document()
    assert workflow.version_document(2) is None


@pytest.mark.django_db
def test_every_update_keeps_a_new_version_and_the_old_ones_stay(alice: User, superuser: User) -> None:
    workflow = make_workflow(alice, name="Invoices", graph=linear_graph())
    first = workflow.document()
    workflow = workflow_update(workflow=workflow, name="Bills")
    workflow = workflow_update(workflow=workflow, graph=linear_graph(("step", "fork", {})), by=superuser)
    assert list(WorkflowVersion.objects.filter(workflow=workflow).values_list("number", flat=True)) == [3, 2, 1]
    assert workflow.version_document(1) == first
    assert workflow.version_document(2) == {**first, "name": "Bills"}
    assert workflow.version_document(3) == workflow.document()
    third = workflow.version_document(3) or {}
    assert [node["id"] for node in third["graph"]["nodes"]] == ["start", "step", "end"]
    authors = dict(WorkflowVersion.objects.filter(workflow=workflow).values_list("number", "author__username"))
    assert authors == {1: "alice", 2: "alice", 3: superuser.username}


@pytest.mark.django_db
def test_a_refused_save_keeps_no_version(alice: User) -> None:
    workflow = make_workflow(alice, graph=linear_graph())
    with pytest.raises(GraphError):
        workflow_update(workflow=workflow, graph={"nodes": []})
    assert list(WorkflowVersion.objects.filter(workflow=workflow).values_list("number", flat=True)) == [1]


@pytest.mark.django_db
def test_postgresql_refuses_to_change_a_kept_version(alice: User) -> None:
    workflow = make_workflow(alice, graph=linear_graph())
    for change in ({"document": {"name": "forged"}}, {"number": 7}):
        with pytest.raises(IntegrityError, match="append-only"), transaction.atomic():
            WorkflowVersion.objects.filter(workflow=workflow).update(**change)
    assert workflow.version_document(1) == workflow.document()


@pytest.mark.django_db
def test_postgresql_refuses_to_change_the_message_of_a_version_without_an_author(alice: User) -> None:
    workflow = make_workflow(alice, graph=linear_graph())
    workflow_update(workflow=workflow, name="Edited", by=None, message="kept")
    WorkflowVersion.objects.filter(workflow=workflow).update(author=None)  # as deleting the author does
    with pytest.raises(IntegrityError, match="append-only"), transaction.atomic():
        WorkflowVersion.objects.filter(workflow=workflow, number=2).update(message="forged")
    assert WorkflowVersion.objects.get(workflow=workflow, number=2).message == "kept"


@pytest.mark.django_db
def test_deleting_a_versions_author_leaves_the_version_without_one(alice: User, make_user: Any) -> None:
    editor = make_user("editor", staff=True)
    workflow = make_workflow(alice, graph=linear_graph())
    workflow_update(workflow=workflow, name="Edited", by=editor)
    editor.delete()
    version = WorkflowVersion.objects.get(workflow=workflow, number=2)
    assert version.author is None and version.document["name"] == "Edited"


# --- the migration ------------------------------------------------------------------------------------------------

BEFORE = ("workflows", "0001_initial")


@pytest.fixture
def migrated_back() -> Iterator[Any]:
    """The database as it was before versions were kept; migrated forward again afterwards, whatever happens."""
    with migrated_back_to(BEFORE) as apps:
        yield apps


@pytest.mark.django_db(transaction=True)
def test_the_migration_keeps_the_current_version_of_every_workflow(alice: User, migrated_back: Any) -> None:
    OldWorkflow = migrated_back.get_model("workflows", "Workflow")
    OldNode = migrated_back.get_model("workflows", "Node")
    OldEdge = migrated_back.get_model("workflows", "Edge")
    edited = OldWorkflow.objects.create(owner_id=alice.pk, name="Edited", description="twice", version=3)
    start = OldNode.objects.create(workflow=edited, node_id="start", type="start", data={}, order=0)
    end = OldNode.objects.create(
        workflow=edited, node_id="end", type="end", data={"output": {"a": 1}}, position={"x": 1, "y": 2}, order=1
    )
    OldEdge.objects.create(workflow=edited, edge_id="e1", source=start, target=end, source_handle="", order=0)
    empty = OldWorkflow.objects.create(owner_id=alice.pk, name="Empty")

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())

    kept = {(row.workflow_id, row.number): row for row in WorkflowVersion.objects.all()}
    assert set(kept) == {(edited.pk, 3), (empty.pk, 1)}
    assert kept[(edited.pk, 3)].author is None
    assert kept[(edited.pk, 3)].document == {
        "name": "Edited",
        "description": "twice",
        "graph": {
            "nodes": [
                {"id": "start", "type": "start", "data": {}},
                {"id": "end", "type": "end", "position": {"x": 1, "y": 2}, "data": {"output": {"a": 1}}},
            ],
            "edges": [{"id": "e1", "source": "start", "target": "end"}],
        },
    }
    from workflows.models import Workflow

    assert kept[(edited.pk, 3)].document == Workflow.objects.get(pk=edited.pk).document()

    # And back: the versions go with their table; forward again, they are written once more.
    executor = MigrationExecutor(connection)
    executor.migrate([BEFORE])
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
    assert set(WorkflowVersion.objects.values_list("workflow_id", "number")) == {(edited.pk, 3), (empty.pk, 1)}
