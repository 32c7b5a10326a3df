"""The migration that brings projects in, run on a database filled with the schema as it was before them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from projects.models import Membership, Project, Role
from runs.models import Run
from tests.factories import linear_graph
from tests.migration_helpers import migrated_back_to
from tools.models import Tool
from workflows.models import Workflow

pytestmark = pytest.mark.django_db(transaction=True)

# The schema as it was before projects: the last migration of each app that gained a project.
BEFORE = (
    ("workflows", "0003_workflow_versions_backfill"),
    ("tools", "0002_toolcall_state_note"),
    ("runs", "0008_child_batches"),
)


@pytest.fixture
def old_apps() -> Iterator[Any]:
    with migrated_back_to(*BEFORE) as apps:
        yield apps


def test_existing_workflows_tools_and_runs_move_into_their_owners_personal_projects(
    old_apps: Any, make_user: Any
) -> None:
    alice, bob, carol = make_user("alice"), make_user("bob"), make_user("carol")
    OldWorkflow = old_apps.get_model("workflows", "Workflow")
    OldTool = old_apps.get_model("tools", "Tool")
    OldRun = old_apps.get_model("runs", "Run")
    shipping = OldWorkflow.objects.create(owner_id=alice.pk, name="Shipping")
    billing = OldWorkflow.objects.create(owner_id=alice.pk, name="Billing")
    OldTool.objects.create(owner_id=alice.pk, name="lookup", description="", url="http://127.0.0.1:9/")
    OldTool.objects.create(owner_id=bob.pk, name="lookup", description="", url="http://127.0.0.1:9/")
    # bob ran alice's workflow (as staff could); the run goes where the workflow goes.
    of_shipping = OldRun.objects.create(workflow_id=shipping.pk, owner_id=bob.pk, graph=linear_graph())
    # A run whose workflow was deleted for good goes to its owner's personal project.
    orphan = OldRun.objects.create(workflow_id=None, owner_id=bob.pk, graph=linear_graph())

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())

    alices = Project.objects.get(personal_of=alice)
    bobs = Project.objects.get(personal_of=bob)
    assert not Project.objects.filter(personal_of=carol).exists()  # no data: made on first use, not here
    assert list(Membership.objects.filter(project=alices).values_list("user__username", "role")) == [
        ("alice", Role.ADMIN)
    ]
    assert list(Membership.objects.filter(project=bobs).values_list("user__username", "role")) == [("bob", Role.ADMIN)]
    assert set(Workflow.objects.values_list("pk", "project_id")) == {(shipping.pk, alices.pk), (billing.pk, alices.pk)}
    assert set(Tool.objects.values_list("owner__username", "project_id")) == {("alice", alices.pk), ("bob", bobs.pk)}
    assert Run.objects.get(pk=of_shipping.pk).project_id == alices.pk
    assert Run.objects.get(pk=orphan.pk).project_id == bobs.pk
    # What each of them could see before, they see now; nothing of the other's.
    assert set(Workflow.objects.visible_to(alice).values_list("name", flat=True)) == {"Shipping", "Billing"}
    assert not Workflow.objects.visible_to(bob).exists()
    assert set(Run.objects.visible_to(bob)) == {Run.objects.get(pk=orphan.pk)}
