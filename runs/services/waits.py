"""Nodes that wait without holding a worker: for a person (an approval step, handled by whichever app
listens to `node_waiting`) or for child runs (a cognitive node's generated workflow, a subworkflow's saved one,
a map's items and a loop's iterations: runs/services/children.py)."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.utils import timezone

from nodes import get_node_type
from nodes.base import NodeResult, WaitRequest
from runs.engine import core
from runs.errors import RunError
from runs.ledger import ledger_append
from runs.models import (
    FINAL_RUN_STATUSES,
    ChildItem,
    LedgerStatus,
    NodeRun,
    NodeStatus,
    Run,
    RunStatus,
)
from runs.services.advance import advance, settle, unfinished_after
from runs.services.base import CLAIM_FIELDS
from runs.services.children import ChildRefused, batch_report, batch_spawn, child_run_create, child_workflow, is_batch
from runs.services.outcome import node_failed, node_succeed
from runs.signals import node_waiting
from runs.writes import Transition, run_transition

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
    node_run = _locked_node(tx, node_id)
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
    advanced = advance(tx, node_id, handle=handle, output=output)
    settle(tx, unfinished_after(tx, [node_run, *advanced]))


def _locked_node(tx: Transition, node_id: str) -> NodeRun:
    """The run's node `node_id`, locked: the one the transition locked with the run, or else locked now."""
    if tx.node_run is not None and tx.node_run.node_id == node_id:
        return tx.node_run
    return NodeRun.objects.select_for_update().get(run=tx.run, node_id=node_id)


# --- child runs (cognitive and subworkflow nodes) --------------------------------------------------------------


def node_spawn(tx: Transition, node_run: NodeRun, result: NodeResult, *, started_at: Any, finished_at: Any) -> None:
    """Start the node's child run: its generated workflow (in the parent's workflow), or a saved workflow at the
    version it asks for. The node waits (holding no worker) until the child ends and `child_run_report`
    completes it. A saved workflow that the run's owner may no longer run, a child deeper than
    FLOWNOVA_SUBWORKFLOW_MAX_DEPTH or an input its start node refuses fails the node instead."""
    assert result.child is not None
    if is_batch(node_run.node_type, result.child):
        batch_spawn(tx, node_run, result, started_at=started_at, finished_at=finished_at)
        return
    try:
        target = child_workflow(tx.run, node_run, result.child)
    except ChildRefused as exc:
        node_failed(tx, node_run, error=str(exc), started_at=started_at)
        return
    node_run.status = NodeStatus.WAITING
    node_run.result = result.fields
    tx.save(node_run, "result", *CLAIM_FIELDS)
    child = child_run_create(tx, node_run, target, result.child.input)
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
    settle(tx)


def child_run_report(*, child_run_id: int) -> None:
    """Complete the parent's waiting node with the child's output, or fail it with the child's error. Safe to
    call twice: only a node still waiting is completed."""
    read = ("parent_id", "parent_node_id", "workflow_id", "status", "output", "error")
    child = Run.objects.only(*read).get(pk=child_run_id)
    if child.parent_id is None or child.status not in FINAL_RUN_STATUSES:
        return
    with run_transition(child.parent_id) as tx:
        node_run = _locked_node(tx, child.parent_node_id)
        if node_run.status != NodeStatus.WAITING or tx.run.status in FINAL_RUN_STATUSES:
            return
        item = ChildItem.objects.filter(child_run_id=child.pk).first()
        if item is not None:  # one of several children of the node (a map's item, a loop's iteration)
            batch_report(tx, node_run, item, child)
            return
        if child.status == RunStatus.SUCCEEDED:
            own = dict(node_run.result or {})
            fields = get_node_type(node_run.node_type).child_result(own, child.output, child.pk)
            node_resume(tx, node_id=node_run.node_id, fields=fields, handle=None)
            return
        # A child in the parent's own workflow is a generated one; another workflow is a subworkflow's.
        what = "the generated workflow" if child.workflow_id == tx.run.workflow_id else f"workflow {child.workflow_id}"
        error = f"{what} (run {child.pk}) {child.status}: {child.error or 'no error given'}"
        node_fail_waiting(tx, node_id=node_run.node_id, error=error)


def node_fail_waiting(tx: Transition, *, node_id: str, error: str) -> None:
    """Fail a waiting node (an approval past its deadline, a cognitive node whose child run failed) and with
    it the run, inside the caller's transition."""
    node_run = _locked_node(tx, node_id)
    node_failed(tx, node_run, error=error, started_at=timezone.now())
