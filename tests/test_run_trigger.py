"""Every run records how it started (`Run.trigger`), its `run_started` event says so, its first ledger entry
carries it, and the run list filters on it; existing runs are given theirs by the migration."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from pytest_django import Settings
from rest_framework.test import APIClient

from runs.models import LedgerEntry, Run, RunEvent, RunTrigger
from runs.ratelimit import RunRateLimited
from runs.services import run_start
from tests.conftest import WorkerProcess
from tests.engine_helpers import graph_of, start, wait_for
from tests.factories import linear_graph, make_run, make_workflow
from tests.llm_server import Answer, ScriptedLLM
from tests.migration_helpers import migrated_back_to

CHAIN = linear_graph(("prep", "fork", {}), ("check", "fork", {}))


def api(user: User) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def first_event(run: Run) -> dict[str, Any]:
    event = RunEvent.objects.get(run=run, seq=1)
    assert event.type == "run_started"
    return event.data


def entry_triggers(run: Run) -> list[tuple[int, dict[str, Any] | None]]:
    return list(LedgerEntry.objects.filter(run=run).order_by("seq").values_list("seq", "trigger"))


# --- each way of starting a run records its own ---------------------------------------------------------------


@pytest.mark.django_db
def test_a_run_started_from_the_api_records_api(alice: User) -> None:
    workflow = make_workflow(alice)
    response = api(alice).post(f"/api/workflows/{workflow.pk}/runs/", {"input": {}}, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["trigger"] == {"type": "api"}
    run = Run.objects.get(pk=response.json()["id"])
    assert run.trigger == {"type": "api"}
    assert first_event(run) == {"workflow_id": workflow.pk, "version": workflow.version, "trigger": {"type": "api"}}


@pytest.mark.django_db
def test_a_run_started_from_the_workflow_page_records_manual(alice: User, client: Client) -> None:
    workflow = make_workflow(alice)
    client.force_login(alice)
    response = client.post(reverse("workflow_detail", args=[workflow.pk]), {"input_mode": "json", "input_json": "{}"})
    assert response.status_code == 302
    run = Run.objects.get(workflow=workflow)
    assert run.trigger == {"type": "manual"}
    assert first_event(run)["trigger"] == {"type": "manual"}


@pytest.mark.django_db
@pytest.mark.parametrize("version", ["same", "current"])
def test_a_rerun_from_the_api_records_rerun_whichever_version_it_runs(alice: User, version: str) -> None:
    source = run_start(workflow=make_workflow(alice), input={}, user=alice)
    response = api(alice).post(f"/api/runs/{source.pk}/rerun/", {"version": version}, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["trigger"] == {"type": "rerun"} and response.json()["source_run"] == source.pk
    assert first_event(Run.objects.get(pk=response.json()["id"]))["trigger"] == {"type": "rerun"}


@pytest.mark.django_db
def test_a_rerun_from_the_run_page_records_rerun(alice: User, client: Client) -> None:
    source = run_start(workflow=make_workflow(alice), input={}, user=alice)
    client.force_login(alice)
    response = client.post(reverse("run_rerun", args=[source.pk]), {"version": "current"})
    assert response.status_code == 302
    assert Run.objects.get(source_run=source).trigger == {"type": "rerun"}


@pytest.mark.django_db
def test_run_start_defaults_to_rerun_for_a_rerun_and_api_otherwise(alice: User) -> None:
    workflow = make_workflow(alice)
    first = run_start(workflow=workflow, input={}, user=alice)
    assert first.trigger == {"type": "api"}
    assert run_start(workflow=workflow, input={}, user=alice, snapshot=first).trigger == {"type": "rerun"}
    assert run_start(workflow=workflow, input={}, user=alice, source_run=first).trigger == {"type": "rerun"}


@pytest.mark.django_db
def test_a_webhook_or_schedule_trigger_keeps_its_id(alice: User) -> None:
    workflow = make_workflow(alice)
    run = run_start(workflow=workflow, input={}, user=alice, trigger={"type": "webhook", "id": 7})
    assert Run.objects.get(pk=run.pk).trigger == {"type": "webhook", "id": 7}
    assert first_event(run)["trigger"] == {"type": "webhook", "id": 7}
    run = run_start(workflow=workflow, input={}, user=alice, trigger={"type": RunTrigger.SCHEDULE, "id": 8})
    assert json.loads(json.dumps(Run.objects.get(pk=run.pk).trigger)) == {"type": "schedule", "id": 8}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("trigger", "message"),
    [
        ({"type": "cron"}, "trigger type must be one of"),
        ({}, "trigger type must be one of"),
        ({"type": "webhook"}, "a webhook trigger needs its id"),
        ({"type": "schedule", "id": "8"}, "a schedule trigger needs its id"),
        ({"type": "schedule", "id": True}, "a schedule trigger needs its id"),
    ],
)
def test_run_start_refuses_a_trigger_that_is_not_one(alice: User, trigger: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        run_start(workflow=make_workflow(alice), input={}, user=alice, trigger=trigger)
    assert not Run.objects.exists()


@pytest.mark.django_db
def test_a_start_that_limits_itself_is_not_counted_against_the_user_s_rate(alice: User, settings: Settings) -> None:
    settings.FLOWNOVA_RUN_START_RATE = "1/min"
    workflow = make_workflow(alice)
    run_start(workflow=workflow, input={}, user=alice)
    for trigger_id in (1, 2):  # neither refused, nor counted
        run_start(
            workflow=workflow,
            input={},
            user=alice,
            trigger={"type": "webhook", "id": trigger_id},
            user_rate_limit=False,
        )
    with pytest.raises(RunRateLimited):
        run_start(workflow=workflow, input={}, user=alice)
    assert Run.objects.count() == 3


# --- the run list's filters -------------------------------------------------------------------------------------


@pytest.fixture
def started(alice: User, mallory: User) -> dict[str, Run]:
    workflow = make_workflow(alice)
    runs = {
        "api": make_run(workflow),
        "manual": make_run(workflow, trigger={"type": "manual"}),
        "hook7": make_run(workflow, trigger={"type": "webhook", "id": 7}),
        "hook8": make_run(workflow, trigger={"type": "webhook", "id": 8}),
        "schedule7": make_run(workflow, trigger={"type": "schedule", "id": 7}),
    }
    make_run(make_workflow(mallory), trigger={"type": "webhook", "id": 7})  # not alice's
    return runs


def listed(user: User, query: str) -> list[int]:
    response = api(user).get(f"/api/runs/?{query}")
    assert response.status_code == 200, response.json()
    return sorted(run["id"] for run in response.json()["results"])


@pytest.mark.django_db
def test_the_run_list_filters_by_trigger_type_and_trigger_id(alice: User, started: dict[str, Run]) -> None:
    assert listed(alice, "trigger=webhook") == sorted([started["hook7"].pk, started["hook8"].pk])
    assert listed(alice, "trigger=api") == [started["api"].pk]
    assert listed(alice, "trigger_id=7") == sorted([started["hook7"].pk, started["schedule7"].pk])
    assert listed(alice, "trigger=webhook&trigger_id=7") == [started["hook7"].pk]
    assert listed(alice, "trigger=rerun") == []
    results = api(alice).get("/api/runs/?trigger=manual").json()["results"]
    assert [run["trigger"] for run in results] == [{"type": "manual"}]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("query", "field"), [("trigger=cron", "trigger"), ("trigger=", "trigger"), ("trigger_id=x", "trigger_id")]
)
def test_a_bad_trigger_filter_is_a_400_naming_it(alice: User, query: str, field: str) -> None:
    response = api(alice).get(f"/api/runs/?{query}")
    assert response.status_code == 400
    assert field in response.json()


# --- the pages --------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_history_pages_show_and_filter_how_each_run_started(
    alice: User, client: Client, started: dict[str, Run]
) -> None:
    client.force_login(alice)
    page = client.get(reverse("run_list")).content.decode()
    for label in ("API", "manual", "webhook", "schedule"):
        assert f'<td class="run-trigger">{label}' in page
    assert '<select name="trigger" id="id_trigger">' in page
    workflow = started["api"].workflow
    assert workflow is not None
    filtered = client.get(reverse("workflow_runs", args=[workflow.pk]), {"trigger": "webhook"}).content.decode()
    assert f"#{started['hook7'].pk}<" in filtered and f"#{started['hook8'].pk}<" in filtered
    assert f"#{started['api'].pk}<" not in filtered and f"#{started['manual'].pk}<" not in filtered
    assert '<option value="webhook" selected>' in filtered


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("trigger", "shown"),
    [
        ({"type": "rerun"}, "re-run"),
        ({"type": "resume"}, "resume"),
        ({"type": "child"}, "child"),
        ({"type": "webhook", "id": 7}, 'webhook <span class="muted small">#7</span>'),
    ],
)
def test_the_run_page_shows_how_the_run_started(
    alice: User, client: Client, trigger: dict[str, Any], shown: str
) -> None:
    run = make_run(make_workflow(alice), trigger=trigger)
    client.force_login(alice)
    page = client.get(reverse("run_detail", args=[run.pk])).content.decode()
    assert f'<dd id="run-trigger">{shown}</dd>' in page


# --- on the worker: the ledger's first entry, resume, the command, child runs ---------------------------------------


@pytest.fixture
def worker(celery_worker: WorkerProcess) -> WorkerProcess:
    return celery_worker


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_the_first_ledger_entry_carries_the_trigger_and_no_other_does(alice: User, worker: WorkerProcess) -> None:
    run = wait_for(
        run_start(
            workflow=make_workflow(alice, graph=CHAIN), input={}, user=alice, trigger={"type": "webhook", "id": 3}
        )
    )
    assert run.status == "succeeded", run.error
    assert entry_triggers(run) == [(1, {"type": "webhook", "id": 3}), (2, None), (3, None), (4, None)]
    ledger = api(alice).get(f"/api/runs/{run.pk}/ledger/").json()
    assert [entry["trigger"] for entry in ledger] == [{"type": "webhook", "id": 3}, None, None, None]


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_resumed_run_records_resume_on_its_reused_first_entry(alice: User, worker: WorkerProcess) -> None:
    source = wait_for(start(alice, CHAIN))
    response = api(alice).post(f"/api/runs/{source.pk}/resume/", {"node_id": "check"}, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["trigger"] == {"type": "resume"}
    run = wait_for(Run.objects.get(pk=response.json()["id"]))
    assert run.status == "succeeded", run.error
    assert run.trigger == {"type": "resume"}
    assert first_event(run)["trigger"] == {"type": "resume"} and first_event(run)["resumed_from"] == source.pk
    first = LedgerEntry.objects.get(run=run, seq=1)
    assert first.reused and first.trigger == {"type": "resume"}
    assert [trigger for _, trigger in entry_triggers(run)[1:]] == [None, None, None]
    # Resumed at its start node, nothing is reused: the start node's own entry says so.
    response = api(alice).post(f"/api/runs/{source.pk}/resume/", {"node_id": "start"}, format="json")
    assert response.status_code == 201, response.json()
    again = wait_for(Run.objects.get(pk=response.json()["id"]))
    assert entry_triggers(again)[0] == (1, {"type": "resume"})


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_the_run_workflow_command_records_manual(alice: User, worker: WorkerProcess, tmp_path: Path) -> None:
    document = tmp_path / "chain.json"
    document.write_text(json.dumps({"name": "From the command", "graph": CHAIN}))
    with pytest.raises(SystemExit) as ended:
        call_command("run_workflow", str(document), user=alice.username, timeout=30)
    assert ended.value.code == 0
    run = Run.objects.get(workflow__name="From the command")
    assert run.trigger == {"type": "manual"}
    assert entry_triggers(run)[0] == (1, {"type": "manual"})


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_cognitive_node_s_child_run_records_child(
    alice: User, worker: WorkerProcess, llm_server: ScriptedLLM
) -> None:
    design = graph_of([("start", "start", {}), ("done", "end", {"output": {"ok": True}})], [("start", "done")])
    model = llm_server.model(Answer(content=json.dumps({"reasoning": "trivial", "graph": design})))
    graph = linear_graph(("think", "cognitive", {"model": model, "instruction": "Do nothing."}))
    run = wait_for(start(alice, graph))
    assert run.status == "succeeded", run.error
    assert run.trigger == {"type": "api"}
    child = Run.objects.get(parent=run)
    assert child.trigger == {"type": "child"}
    assert first_event(child) == {"parent_run_id": run.pk, "parent_node_id": "think", "trigger": {"type": "child"}}
    assert entry_triggers(child) == [(1, {"type": "child"}), (2, None)]


# --- the migration ------------------------------------------------------------------------------------------------

BEFORE = ("runs", "0006_ledger_refuse_delete")


@pytest.fixture
def migrated_back() -> Iterator[Any]:
    """The database as it was before runs had triggers (the apps as they were then); migrated forward again
    afterwards, whatever happens."""
    with migrated_back_to(BEFORE) as apps:
        yield apps


@pytest.mark.django_db(transaction=True)
def test_the_migration_gives_existing_runs_the_trigger_their_rows_tell(alice: User, migrated_back: Any) -> None:
    OldRun = migrated_back.get_model("runs", "Run")
    OldEvent = migrated_back.get_model("runs", "RunEvent")
    OldEntry = migrated_back.get_model("runs", "LedgerEntry")

    def old_run(**fields: Any) -> Any:
        return OldRun.objects.create(workflow_name="Old", graph=linear_graph(), owner_id=alice.pk, **fields)

    plain = old_run()
    rerun = old_run(source_run=plain)
    resumed = old_run(source_run=plain)
    orphan_resumed = old_run()  # its source run was deleted for good: the event still tells
    child = old_run(parent=plain, parent_node_id="think")
    now = timezone.now()
    OldEvent.objects.create(run=plain, seq=1, type="run_started", data={"workflow_id": None, "version": 1}, ts=now)
    for run in (resumed, orphan_resumed):
        data = {"workflow_id": None, "resumed_from": plain.pk, "node_id": "end"}
        OldEvent.objects.create(run=run, seq=1, type="run_started", data=data, ts=now)
    OldEntry.objects.create(run=plain, seq=1, node_id="start", node_type="start", status="succeeded")

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())

    triggers = dict(Run.objects.values_list("pk", "trigger"))
    assert triggers == {
        plain.pk: {"type": "api"},
        rerun.pk: {"type": "rerun"},
        resumed.pk: {"type": "resume"},
        orphan_resumed.pk: {"type": "resume"},
        child.pk: {"type": "child"},
    }
    assert entry_triggers(Run.objects.get(pk=plain.pk)) == [(1, None)]  # the ledger was not rewritten
