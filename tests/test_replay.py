"""Replay and time travel: re-run, resume from a node (reusing recorded results), compare, reconstruct."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from runs.models import LedgerEntry, Run
from tests.conftest import WorkerProcess
from tests.engine_helpers import graph_of, ledger, start, wait_for
from tests.llm_server import Answer, ScriptedLLM
from workflows.models import Workflow
from workflows.services import workflow_update

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def worker(celery_worker: WorkerProcess) -> WorkerProcess:
    return celery_worker


def api(user: User) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def reused(run: Run) -> list[tuple[str, bool]]:
    return list(LedgerEntry.objects.filter(run=run).order_by("seq").values_list("node_id", "reused"))


def test_resume_from_the_middle_reuses_earlier_agents_without_calling_the_model(
    alice: User, llm_server: ScriptedLLM
) -> None:
    research = llm_server.model(Answer(content="facts"))
    write = llm_server.model(Answer(content="draft one"), Answer(content="draft two"))
    graph = graph_of(
        [
            ("start", "start", {}),
            ("research", "agent", {"model": research, "user_prompt": "Research {{input.topic}}"}),
            ("write", "agent", {"model": write, "user_prompt": "Write from {{nodes.research.message}}"}),
            ("end", "end", {"output": {"text": "{{nodes.write.message}}"}}),
        ],
        [("start", "research"), ("research", "write"), ("write", "end")],
    )
    source = wait_for(start(alice, graph, {"topic": "tides"}))
    assert source.output == {"text": "draft one"}

    response = api(alice).post(f"/api/runs/{source.pk}/resume/", {"node_id": "write"}, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["reused"] == ["start", "research"] and body["source_run"] == source.pk
    assert any('"research" (agent)' in warning for warning in body["warnings"])
    run = wait_for(Run.objects.get(pk=body["id"]))
    assert run.status == "succeeded", run.error
    assert run.output == {"text": "draft two"}
    assert len(llm_server.requests(research)) == 1  # the research agent was not asked again
    assert len(llm_server.requests(write)) == 2
    assert "facts" in llm_server.requests(write)[1]["messages"][-1]["content"]  # the reused result flowed on
    assert reused(run) == [("start", True), ("research", True), ("write", False), ("end", False)]


def test_resume_from_a_failed_node_after_fixing_the_workflow(alice: User) -> None:
    broken = graph_of(
        [
            ("start", "start", {}),
            ("prep", "fork", {}),
            ("check", "if_else", {"left": "{{input.amount_typo}}", "operator": ">", "right": "10"}),
            ("big", "end", {"output": {"size": "big"}}),
            ("small", "end", {"output": {"size": "small"}}),
        ],
        [("start", "prep"), ("prep", "check"), ("check", "big", "true"), ("check", "small", "false")],
    )
    source = wait_for(start(alice, broken, {"amount": 50}))
    assert source.status == "failed" and "input.amount_typo" in source.error
    assert source.workflow is not None
    fixed = graph_of(
        [
            ("start", "start", {}),
            ("prep", "fork", {}),
            ("check", "if_else", {"left": "{{input.amount}}", "operator": ">", "right": "10"}),
            ("big", "end", {"output": {"size": "big"}}),
            ("small", "end", {"output": {"size": "small"}}),
        ],
        [("start", "prep"), ("prep", "check"), ("check", "big", "true"), ("check", "small", "false")],
    )
    workflow_update(workflow=source.workflow, graph=fixed)
    response = api(alice).post(
        f"/api/runs/{source.pk}/resume/", {"node_id": "check", "version": "current"}, format="json"
    )
    assert response.status_code == 201, response.json()
    run = wait_for(Run.objects.get(pk=response.json()["id"]))
    assert run.status == "succeeded", run.error
    assert run.output == {"size": "big"} and run.workflow_version == 2
    assert reused(run) == [("start", True), ("prep", True), ("check", False), ("big", False)]
    assert response.json()["warnings"] == []  # nothing reused acts on the world


def test_resume_with_edited_input_and_bad_requests(alice: User, mallory: User) -> None:
    graph = graph_of(
        [
            ("start", "start", {}),
            ("check", "if_else", {"left": "{{input.n}}", "operator": ">", "right": "10"}),
            ("big", "end", {"output": {"size": "big"}}),
            ("small", "end", {"output": {"size": "small"}}),
        ],
        [("start", "check"), ("check", "big", "true"), ("check", "small", "false")],
    )
    source = wait_for(start(alice, graph, {"n": 1}))
    assert source.output == {"size": "small"}
    response = api(alice).post(
        f"/api/runs/{source.pk}/resume/", {"node_id": "check", "input": {"n": 99}}, format="json"
    )
    run = wait_for(Run.objects.get(pk=response.json()["id"]))
    assert run.output == {"size": "big"}
    assert api(alice).post(f"/api/runs/{source.pk}/resume/", {"node_id": "nope"}, format="json").status_code == 400
    assert api(mallory).post(f"/api/runs/{source.pk}/resume/", {"node_id": "check"}, format="json").status_code == 404
    # An input for the node cannot be used when a node that feeds it runs again: said, not dropped.
    conflict = api(alice).post(
        f"/api/runs/{source.pk}/resume/",
        {"node_id": "check", "input": {"n": 99}, "reexecute": ["start"]},
        format="json",
    )
    assert conflict.status_code == 400
    assert 'input for "check" cannot be given while re-executing start' in str(conflict.json())
    assert Run.objects.filter(source_run=source).count() == 1


def test_rerun_of_the_same_version_or_the_current_one(alice: User) -> None:
    first = graph_of([("start", "start", {}), ("end", "end", {"output": {"v": 1}})], [("start", "end")])
    source = wait_for(start(alice, first))
    assert source.workflow is not None
    workflow_update(
        workflow=source.workflow,
        graph=graph_of([("start", "start", {}), ("end", "end", {"output": {"v": 2}})], [("start", "end")]),
    )
    same = api(alice).post(f"/api/runs/{source.pk}/rerun/", {}, format="json").json()
    current = api(alice).post(f"/api/runs/{source.pk}/rerun/", {"version": "current"}, format="json").json()
    assert wait_for(Run.objects.get(pk=same["id"])).output == {"v": 1}
    assert wait_for(Run.objects.get(pk=current["id"])).output == {"v": 2}


def test_compare_two_runs_node_by_node(alice: User, mallory: User) -> None:
    graph = graph_of(
        [
            ("start", "start", {}),
            ("check", "if_else", {"left": "{{input.n}}", "operator": ">", "right": "10"}),
            ("big", "end", {"output": {"size": "big"}}),
            ("small", "end", {"output": {"size": "small"}}),
        ],
        [("start", "check"), ("check", "big", "true"), ("check", "small", "false")],
    )
    first = wait_for(start(alice, graph, {"n": 5}))
    second = wait_for(start(alice, graph, {"n": 50}))
    body = api(alice).get("/api/runs/compare/", {"a": first.pk, "b": second.pk}).json()
    nodes = {node["node_id"]: node for node in body["nodes"]}
    assert (
        nodes["check"]["changed"]
        and {"op": "replace", "path": "/condition", "value": True} in nodes["check"]["output_diff"]
    )
    assert nodes["small"]["status"] == ["succeeded", None] and nodes["big"]["status"] == [None, "succeeded"]
    assert body["output_diff"] == [{"op": "replace", "path": "/size", "value": "big"}]
    assert api(mallory).get("/api/runs/compare/", {"a": first.pk, "b": second.pk}).status_code == 404


def test_the_ledger_alone_rebuilds_a_run_after_its_workflow_is_deleted(alice: User) -> None:
    graph = graph_of(
        [
            ("start", "start", {}),
            ("check", "if_else", {"left": "{{input.n}}", "operator": "==", "right": "3"}),
            ("yes", "end", {}),
            ("no", "end", {}),
        ],
        [("start", "check"), ("check", "yes", "true"), ("check", "no", "false")],
    )
    run = wait_for(start(alice, graph, {"n": 3}))
    assert run.workflow_id is not None
    Workflow.objects.filter(pk=run.workflow_id).delete()  # gone for good, not just soft-deleted
    trace = api(alice).get(f"/api/runs/{run.pk}/trace/").json()
    assert trace["workflow"] is None and trace["workflow_name"] == "Example"
    assert trace["path"] == ["start", "check", "yes"]
    check = next(step for step in trace["steps"] if step["node_id"] == "check")
    assert check["input"] == {"n": 3} and check["output"]["condition"] is True
    assert [node["id"] for node in trace["graph"]["nodes"]] == ["start", "check", "yes", "no"]
    assert ledger(run)[-1] == ("yes", "succeeded")
