"""Nodes that wait without holding a worker: for a person (an approval step, handled by whichever app
listens to `node_waiting`) or for a child run (a cognitive node's generated workflow)."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.utils import timezone

from nodes import get_node_type, node_specs
from nodes.base import NodeResult, WaitRequest
from runs.engine import core
from runs.errors import RunError
from runs.events import ChildRunSpawned, ChildRunStarted
from runs.ledger import ledger_append
from runs.models import (
    FINAL_RUN_STATUSES,
    LedgerStatus,
    NodeRun,
    NodeStatus,
    Run,
    RunStatus,
    RunTrigger,
)
from runs.services.advance import advance, settle
from runs.services.base import CLAIM_FIELDS, remember_graph
from runs.services.dispatch import enqueue_after_commit
from runs.services.outcome import node_failed, node_succeed
from runs.signals import node_waiting
from runs.writes import Transition, run_transition
from workflows.graph import parse_graph

logger = logging.getLogger(__name__)

# --- waiting for a person --------------------------------------------------------------------------------------


def node_wait(tx: Transition, node_run: NodeRun, wait: WaitRequest, *, started_at: Any, finished_at: Any) -> None:
    """The node waits for a person: whichever app handles such waits (`runs.signals.node_waiting`) records the
    request in this transition; the run waits until a decision resumes the node (`node_resume`)."""
    if not node_waiting.has_listeners():
        error = "this node waits for a person, but no installed app handles such waits (install the approvals app)"
        node_failed(tx, node_run, error=error, started_at=started_at)
        return
    node_run.status = NodeStatus.WAITING
    tx.save(node_run, *CLAIM_FIELDS)
    deadline = finished_at + timedelta(seconds=wait.timeout_seconds) if wait.timeout_seconds else None
    ledger_append(
        tx=tx,
        node_run=node_run,
        status=LedgerStatus.WAITING,
        input=node_run.input,
        started_at=started_at,
        finished_at=finished_at,
    )
    node_waiting.send(sender=NodeRun, tx=tx, node_run=node_run, wait=wait, deadline=deadline)
    settle(tx)


def node_resume(
    tx: Transition, *, node_id: str, fields: dict[str, Any], handle: str | None, replaces: str | None = None
) -> None:
    """Complete a waiting node with `fields` and route on `handle`, inside the caller's transition (the
    approvals service records the decision in the same one). `replaces` names an input key the node's own
    result supersedes (an earlier approval's decision must not pass for this one)."""
    run = tx.run
    node_run = NodeRun.objects.select_for_update().get(run=run, node_id=node_id)
    if node_run.status != NodeStatus.WAITING:
        raise RunError(f'node "{node_id}" is not waiting (it is {node_run.status})')
    input_ = dict(node_run.input or {})
    if replaces:
        input_.pop(replaces, None)
    output = core.output_of(input_, fields)
    now = timezone.now()
    node_succeed(tx, node_run, fields=fields, output=output, handle=handle, started_at=now, finished_at=now)
    if run.status in FINAL_RUN_STATUSES:
        return
    advance(tx, node_id, handle=handle, output=output)
    settle(tx)


# --- child runs (cognitive nodes) ------------------------------------------------------------------------------


def node_spawn(tx: Transition, node_run: NodeRun, result: NodeResult, *, started_at: Any, finished_at: Any) -> None:
    """Start the node's generated workflow as a child run; the node waits (holding no worker) until the
    child ends and `child_run_report` completes it."""
    assert result.child is not None
    run = tx.run
    graph = parse_graph(result.child.graph, node_specs())
    node_run.status = NodeStatus.WAITING
    node_run.result = result.fields
    tx.save(node_run, "result", *CLAIM_FIELDS)
    name, version = Run.objects.values_list("workflow_name", "workflow_version").get(pk=run.pk)
    child = Run.objects.create(
        workflow_id=run.workflow_id,
        workflow_name=f"{name} / {node_run.node_id}",
        workflow_version=version,
        graph=result.child.graph,
        owner_id=run.owner_id,
        input=result.child.input,
        parent=run,
        parent_node_id=node_run.node_id,
        trigger={"type": RunTrigger.CHILD.value},
    )
    remember_graph(child.pk, graph)
    start = NodeRun(
        run=child, node_id=graph.start_id, node_type="start", input=result.child.input, queued_at=finished_at
    )
    child_tx = Transition(child)
    child_tx.insert([start])
    child_tx.emit(ChildRunStarted(parent_run_id=run.pk, parent_node_id=node_run.node_id, trigger=child.trigger))
    child_tx.finish()
    enqueue_after_commit(child, graph, [start])
    ledger_append(
        tx=tx,
        node_run=node_run,
        status=LedgerStatus.WAITING,
        input=node_run.input,
        output={**(node_run.input or {}), **result.fields, "child_run_id": child.pk},
        started_at=started_at,
        finished_at=finished_at,
        llm_usage=result.llm_usage,
    )
    tx.emit(ChildRunSpawned(node_id=node_run.node_id, child_run_id=child.pk))
    settle(tx)


def child_run_report(*, child_run_id: int) -> None:
    """Complete the parent's waiting node with the child's output, or fail it with the child's error. Safe to
    call twice: only a node still waiting is completed."""
    child = Run.objects.only("parent_id", "parent_node_id", "status", "output", "error").get(pk=child_run_id)
    if child.parent_id is None or child.status not in FINAL_RUN_STATUSES:
        return
    with run_transition(child.parent_id) as tx:
        node_run = NodeRun.objects.select_for_update().get(run=tx.run, node_id=child.parent_node_id)
        if node_run.status != NodeStatus.WAITING or tx.run.status in FINAL_RUN_STATUSES:
            return
        if child.status == RunStatus.SUCCEEDED:
            own = dict(node_run.result or {})
            fields = get_node_type(node_run.node_type).child_result(own, child.output, child.pk)
            node_resume(tx, node_id=node_run.node_id, fields=fields, handle=None)
            return
        error = f"the generated workflow (run {child.pk}) {child.status}: {child.error or 'no error given'}"
        node_fail_waiting(tx, node_id=node_run.node_id, error=error)


def node_fail_waiting(tx: Transition, *, node_id: str, error: str) -> None:
    """Fail a waiting node (an approval past its deadline, a cognitive node whose child run failed) and with
    it the run, inside the caller's transition."""
    node_run = NodeRun.objects.select_for_update().get(run=tx.run, node_id=node_id)
    node_failed(tx, node_run, error=error, started_at=timezone.now())
