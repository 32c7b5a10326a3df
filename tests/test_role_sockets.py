"""The live streams and project roles: every member watches the project's runs, nobody acts through a socket,
and someone outside the project is refused."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from django.contrib.auth.models import User
from rest_framework.authtoken.models import Token

from projects.models import Role
from projects.services import member_set, project_create
from runs.models import Run, RunStatus
from tests.factories import linear_graph, make_run
from tests.test_channels import connect, emit
from workflows.services import workflow_create

pytestmark = pytest.mark.django_db(transaction=True)


def team_run(make_user: Callable[..., User]) -> tuple[Run, dict[str, str]]:
    """A run of a team project's workflow, and a token for each of: its viewer, and mallory (outside it)."""
    admin, viewer, outsider = make_user("ada"), make_user("vic"), make_user("mallory")
    project = project_create(name="Payroll team", by=admin)
    member_set(project=project, user=viewer, role=Role.VIEWER, by=admin)
    workflow = workflow_create(owner=admin, project=project, name="Payroll", graph=linear_graph())
    tokens = {user.username: Token.objects.create(user=user).key for user in (viewer, outsider)}
    return make_run(workflow, status=RunStatus.RUNNING), tokens


def test_a_viewer_watches_a_run_live_and_what_it_sends_changes_nothing(make_user: Callable[..., User]) -> None:
    run, tokens = team_run(make_user)

    async def scenario() -> list[dict[str, Any]]:
        communicator = connect(f"/ws/runs/{run.pk}/", token=tokens["vic"])
        assert (await communicator.connect())[0]
        # A client cannot act through the stream: a command is ignored, whoever sends it.
        await communicator.send_json_to({"type": "cancel", "run_id": run.pk})
        await communicator.send_json_to({"action": "decide", "decision": "approved"})
        await database_sync_to_async(emit)(run, "node_started", "start")
        received = [await communicator.receive_json_from(timeout=5)]
        assert await communicator.receive_nothing(timeout=0.3)
        await communicator.disconnect()
        return received

    received = async_to_sync(scenario)()
    assert [(event["type"], event["node_id"]) for event in received] == [("node_started", "start")]
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING


def test_a_viewer_watches_the_workflow_stream_too(make_user: Callable[..., User]) -> None:
    run, tokens = team_run(make_user)

    async def scenario() -> bool:
        communicator = connect(f"/ws/workflows/{run.workflow_id}/", token=tokens["vic"])
        connected, _ = await communicator.connect()
        await communicator.disconnect()
        return connected

    assert async_to_sync(scenario)() is True


@pytest.mark.parametrize("stream", ["runs", "workflows"])
def test_someone_outside_the_project_is_refused(stream: str, make_user: Callable[..., User]) -> None:
    run, tokens = team_run(make_user)
    target = run.pk if stream == "runs" else run.workflow_id

    async def scenario() -> bool:
        communicator = connect(f"/ws/{stream}/{target}/", token=tokens["mallory"])
        connected, _ = await communicator.connect()
        await communicator.disconnect()
        return connected

    assert async_to_sync(scenario)() is False
