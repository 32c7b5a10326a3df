"""Child runs: what a node's child run executes and how it starts, and nodes that run several child runs of a
saved workflow (a map's items, some at a time; a loop's iterations, in turn), whose state is a ChildBatch and
one ChildItem per child, written in the parent run's transitions like the node itself.

Every decision (which item starts next, whether the node is done) is taken under the parent run's row lock, in
the transition that records a child's end (`batch_report`): children ending together queue on that lock, so
none is lost and no more than `concurrency` children are ever started. A report that never came (its message
was lost) is sent again by the recovery sweep, which finds running items whose child run has ended."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from nodes import get_node_type, limits, node_specs
from nodes.base import ChildRunRequest, ChildStep, NodeError, NodeResult
from projects.permissions import Action
from runs.engine import core
from runs.events import ChildRunSpawned, ChildRunStarted, MapProgress
from runs.ledger import ledger_append
from runs.models import (
    ACTIVE_RUN_STATUSES,
    FINAL_RUN_STATUSES,
    ChildBatch,
    ChildItem,
    ChildItemStatus,
    LedgerStatus,
    NodeRun,
    NodeStatus,
    Run,
    RunStatus,
    RunTrigger,
)
from runs.services.advance import advance, settle
from runs.services.base import CLAIM_FIELDS, input_errors, remember_graph, run_graph
from runs.services.dispatch import enqueue_after_commit, send
from runs.services.outcome import node_failed, node_succeed
from runs.writes import Transition
from workflows.graph import Graph, GraphError, parse_graph
from workflows.models import Workflow

logger = logging.getLogger(__name__)

ChildNext = Callable[[ChildStep], ChildRunRequest | NodeResult]

# A map sends `map_progress` when this share of its items (at least one) has ended since the last one it sent,
# and when the last item ends: at most about a hundred events however long the list.
PROGRESS_STEPS = 100
# ChildItem rows per INSERT statement (seven parameters each; PostgreSQL takes at most 65,535 per statement).
ITEMS_PER_INSERT = 2000

# --- what a child run executes -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChildWorkflow:
    """What a child run executes: its workflow (id, name, version) and the graph, as a document and parsed."""

    workflow_id: int | None
    name: str
    version: int
    document: dict[str, Any]
    graph: Graph
    # The saved workflow's project, where its child runs belong; None for a generated workflow, whose child run
    # belongs to its parent's.
    project_id: int | None = None


class ChildRefused(Exception):
    """The child run cannot start (its workflow is gone, too deep, its input does not fit): fails the node."""


def child_workflow(run: Run, node_run: NodeRun, request: ChildRunRequest) -> ChildWorkflow:
    """What the child run of `node_run` executes; ChildRefused saying why it cannot start."""
    if request.graph is not None:  # a generated workflow, run as part of the parent's
        name, version = Run.objects.values_list("workflow_name", "workflow_version").get(pk=run.pk)
        graph = parse_graph(request.graph, node_specs())
        return ChildWorkflow(run.workflow_id, f"{name} / {node_run.node_id}", version, request.graph, graph)
    assert request.workflow_id is not None
    target = saved_workflow(run, request.workflow_id, request.workflow_version)
    input_refused(target, request.input)
    return target


def saved_workflow(run: Run, workflow_id: int, version: int | None) -> ChildWorkflow:
    """A saved workflow at `version` (None: as saved now) for a child run of `run`; ChildRefused when the run is
    too deep a child already, the run's owner may no longer run it, or it cannot run."""
    _check_depth(run)
    owner = User.objects.filter(pk=run.owner_id).first()
    runnable = Workflow.objects.alive().visible_to(owner, Action.RUN) if owner else Workflow.objects.none()
    workflow = runnable.filter(pk=workflow_id).first()
    if workflow is None:
        raise ChildRefused(f"workflow {workflow_id} was deleted, or the run's owner may not run it")
    number = workflow.version if version is None else version
    document = workflow.version_document(number)
    if document is None:
        raise ChildRefused(f"workflow {workflow_id} has no version {number}")
    try:
        graph = parse_graph(document.get("graph"), node_specs(), recorded=True)
    except GraphError as exc:
        raise ChildRefused(f"workflow {workflow_id} (version {number}) cannot run: {exc}") from exc
    name = str(document.get("name") or workflow.name)
    return ChildWorkflow(workflow.pk, name, number, document["graph"], graph, project_id=workflow.project_id)


def input_refused(target: ChildWorkflow, child_input: Any) -> None:
    """ChildRefused when `child_input` does not fit the start node's input_schema of the workflow."""
    errors = input_errors(target.graph, child_input)
    if errors:
        raise ChildRefused(
            f"the input does not fit the start node's input_schema of workflow {target.workflow_id} "
            f"(version {target.version}): " + "; ".join(errors)
        )


def _check_depth(run: Run) -> None:
    """ChildRefused when `run` is already FLOWNOVA_SUBWORKFLOW_MAX_DEPTH child runs deep (its chain of parents is
    that long): a workflow may call another, not without end."""
    limit = int(settings.FLOWNOVA_SUBWORKFLOW_MAX_DEPTH)
    depth, parent_id = 0, run.parent_id
    while parent_id is not None and depth < limit:
        depth += 1
        parent_id = Run.objects.filter(pk=parent_id).values_list("parent_id", flat=True).first()
    if depth >= limit:
        raise ChildRefused(
            f"run {run.pk} is already {depth} child run(s) deep: no further child run may start "
            f"(FLOWNOVA_SUBWORKFLOW_MAX_DEPTH = {limit})"
        )


def child_run_create(tx: Transition, node_run: NodeRun, target: ChildWorkflow, child_input: dict[str, Any]) -> Run:
    """Create and queue a child run of the locked run, started by `node_run`, and tell the parent's watchers."""
    run = tx.run
    now = timezone.now()
    child = Run.objects.create(
        workflow_id=target.workflow_id,
        workflow_name=target.name,
        workflow_version=target.version,
        graph=target.document,
        project_id=target.project_id or run.project_id,
        owner_id=run.owner_id,
        input=child_input,
        parent=run,
        parent_node_id=node_run.node_id,
        trigger={"type": RunTrigger.CHILD.value},
    )
    remember_graph(child.pk, target.graph)
    start = NodeRun(run=child, node_id=target.graph.start_id, node_type="start", input=child_input, queued_at=now)
    child_tx = Transition(child)
    child_tx.insert([start])
    child_tx.emit(ChildRunStarted(parent_run_id=run.pk, parent_node_id=node_run.node_id, trigger=child.trigger))
    child_tx.finish()
    enqueue_after_commit(child, target.graph, [start])
    tx.emit(ChildRunSpawned(node_id=node_run.node_id, child_run_id=child.pk))
    return child


# --- several child runs of one node (map, loop) ----------------------------------------------------------------

# Saved workflows' parsed graphs by (workflow id, version): every child of a batch runs the same one, and a
# version's document never changes.
_TARGETS: OrderedDict[tuple[int, int], ChildWorkflow] = OrderedDict()
_TARGETS_SIZE = 64
_TARGETS_LOCK = threading.Lock()  # the I/O worker runs nodes on threads


def _batch_target(batch: ChildBatch) -> ChildWorkflow:
    key = (batch.workflow_id, batch.workflow_version)
    with _TARGETS_LOCK:
        target = _TARGETS.get(key)
        if target is not None:
            _TARGETS.move_to_end(key)
            return target
    workflow = Workflow.objects.get(pk=batch.workflow_id)
    document = workflow.version_document(batch.workflow_version)
    if document is None:  # versions are kept for good: only a purge of the workflow itself removes them
        raise ChildRefused(f"workflow {batch.workflow_id} has no version {batch.workflow_version} any more")
    graph = parse_graph(document.get("graph"), node_specs(), recorded=True)
    name = str(document.get("name") or workflow.name)
    target = ChildWorkflow(
        workflow.pk, name, batch.workflow_version, document["graph"], graph, project_id=workflow.project_id
    )
    with _TARGETS_LOCK:
        _TARGETS[key] = target
        if len(_TARGETS) > _TARGETS_SIZE:
            _TARGETS.popitem(last=False)
    return target


def is_batch(node_type: str, request: ChildRunRequest) -> bool:
    """Whether the node's children are a batch: a map's items, or a loop's iterations."""
    return request.items is not None or get_node_type(node_type).child_next is not None


def batch_spawn(tx: Transition, node_run: NodeRun, result: NodeResult, *, started_at: Any, finished_at: Any) -> None:
    """Start a map's first children (up to its concurrency) or a loop's first iteration, and record the batch
    and its items; the node waits (holding no worker) until `batch_report` has recorded every child's end. An
    item whose input the workflow's start node refuses fails the node, or with `continue_on_error` is failed
    at once."""
    request = result.child
    assert request is not None and request.workflow_id is not None
    stepwise = request.items is None
    inputs = [request.input] if request.items is None else request.items
    try:
        target = saved_workflow(tx.run, request.workflow_id, request.workflow_version)
    except ChildRefused as exc:
        node_failed(tx, node_run, error=str(exc), started_at=started_at)
        return
    assert target.workflow_id is not None  # a saved workflow's
    refused: dict[int, str] = {}
    for index, child_input in enumerate(inputs):
        try:
            input_refused(target, child_input)
        except ChildRefused as exc:
            refused[index] = str(exc)
    if refused and not request.continue_on_error:
        index = min(refused)
        node_failed(
            tx, node_run, error=refused[index] if stepwise else f"item {index}: {refused[index]}", started_at=started_at
        )
        return
    node_run.status = NodeStatus.WAITING
    node_run.result = result.fields
    tx.save(node_run, "result", *CLAIM_FIELDS)
    batch = ChildBatch(
        node_run=node_run,
        workflow_id=target.workflow_id,
        workflow_version=target.version,
        total=len(inputs),
        concurrency=1 if stepwise else request.concurrency,
        continue_on_error=request.continue_on_error,
        done=len(refused),
        failed=len(refused),
    )
    items = [
        ChildItem(
            node_run=node_run,
            index=index,
            input=child_input,
            status=ChildItemStatus.FAILED if index in refused else ChildItemStatus.PENDING,
            error=refused.get(index, ""),
        )
        for index, child_input in enumerate(inputs)
    ]
    startable = [item for item in items if item.status == ChildItemStatus.PENDING][: batch.concurrency]
    for item in startable:
        item.child_run = child_run_create(tx, node_run, target, item.input)
        item.status = ChildItemStatus.RUNNING
    tx.insert([batch], ids=False)
    for start in range(0, len(items), ITEMS_PER_INSERT):
        tx.insert(items[start : start + ITEMS_PER_INSERT], ids=False)
        tx.flush()  # one statement's parameters are bounded: a long list goes out in parts
    ledger_append(
        tx=tx,
        node_run=node_run,
        status=LedgerStatus.WAITING,
        input=node_run.input,
        output={**(node_run.input or {}), **result.fields, "child_runs": len(inputs)},
        started_at=started_at,
        finished_at=finished_at,
    )
    if not stepwise:
        _progress(tx, node_run, batch, force=True)
    if batch.done == batch.total:  # every item was refused
        _batch_finish(tx, node_run, batch)
        return
    settle(tx)


def batch_report(tx: Transition, node_run: NodeRun, item: ChildItem, child: Run) -> None:
    """Record that the child run of `item` ended, inside the parent's transition, and decide what follows: start
    the next pending items (a map), the next iteration (a loop), or end the node. Only an item still running
    is recorded, so a report sent twice changes nothing."""
    if item.status != ChildItemStatus.RUNNING or node_run.status != NodeStatus.WAITING:
        return
    batch = ChildBatch.objects.get(node_run=node_run)
    if child.status == RunStatus.SUCCEEDED:
        item.status, item.output = ChildItemStatus.SUCCEEDED, child.output
    else:
        item.status = ChildItemStatus.FAILED
        item.error = f"workflow {child.workflow_id} (run {child.pk}) {child.status}: {child.error or 'no error given'}"
        batch.failed += 1
    batch.done += 1
    tx.save(item, "status", "output", "error")
    node_type = get_node_type(node_run.node_type)
    if node_type.child_next is not None:
        _loop_next(tx, node_run, batch, item, node_type.child_next)
        return
    if item.status == ChildItemStatus.FAILED and not batch.continue_on_error:
        tx.save(batch, "done", "failed")
        _batch_fail(tx, node_run, f"item {item.index} failed: {item.error}")
        return
    if batch.done == batch.total:
        _progress(tx, node_run, batch)
        _batch_finish(tx, node_run, batch)
        return
    running = ChildItem.objects.filter(node_run=node_run, status=ChildItemStatus.RUNNING).count()
    free = batch.concurrency - running
    if free > 0:
        pending = ChildItem.objects.filter(node_run=node_run, status=ChildItemStatus.PENDING).order_by("index")
        target = _batch_target(batch)
        for next_item in pending.only("id", "index", "input")[:free]:
            next_item.child_run = child_run_create(tx, node_run, target, next_item.input)
            next_item.status = ChildItemStatus.RUNNING
            tx.save(next_item, "status", "child_run")
    _progress(tx, node_run, batch)
    tx.save(batch, "done", "failed", "progress_at")


def _loop_next(tx: Transition, node_run: NodeRun, batch: ChildBatch, item: ChildItem, child_next: ChildNext) -> None:
    """A loop's iteration ended: fail, finish, or start the next iteration, as the node type decides."""
    iteration = item.index + 1
    if item.status == ChildItemStatus.FAILED:
        tx.save(batch, "done", "failed")
        _batch_fail(tx, node_run, f"iteration {iteration} failed: {item.error}")
        return
    data = run_graph(tx.run.pk).node(node_run.node_id).data
    try:
        step = child_next(ChildStep(data=data, input=node_run.input or {}, output=item.output, iteration=iteration))
        if isinstance(step, ChildRunRequest):
            target = _batch_target(batch)
            input_refused(target, step.input)
    except (NodeError, ChildRefused) as exc:
        tx.save(batch, "done", "failed")
        _batch_fail(tx, node_run, str(exc))
        return
    if isinstance(step, NodeResult):
        tx.save(batch, "done", "failed")
        _node_complete(tx, node_run, {**(node_run.result or {}), **step.fields}, step.handle)
        return
    following = ChildItem(node_run=node_run, index=iteration, input=step.input, status=ChildItemStatus.RUNNING)
    following.child_run = child_run_create(tx, node_run, target, step.input)
    tx.insert([following], ids=False)
    batch.total += 1
    tx.save(batch, "done", "failed", "total")


def _progress(tx: Transition, node_run: NodeRun, batch: ChildBatch, *, force: bool = False) -> None:
    """Send `map_progress` when enough items ended since the last one sent, or the last one did."""
    step = max(1, batch.total // PROGRESS_STEPS)
    if force or batch.done == batch.total or batch.done - batch.progress_at >= step:
        batch.progress_at = batch.done
        tx.emit(MapProgress(node_id=node_run.node_id, done=batch.done, total=batch.total, failed=batch.failed))


def _batch_finish(tx: Transition, node_run: NodeRun, batch: ChildBatch) -> None:
    """Every item of a map ended: the node completes with their outputs in item order, and `failed`."""
    rows = ChildItem.objects.filter(node_run=node_run).order_by("index").values_list("status", "output", "error")
    results = [output if status == ChildItemStatus.SUCCEEDED else {"error": error} for status, output, error in rows]
    tx.save(batch, "done", "failed", "progress_at")
    _node_complete(tx, node_run, {**(node_run.result or {}), "results": results, "failed": batch.failed}, None)


def _node_complete(tx: Transition, node_run: NodeRun, fields: dict[str, Any], handle: str | None) -> None:
    """The waiting node succeeds with `fields` and the run advances on `handle`; an output past its cap fails
    it instead."""
    now = timezone.now()
    output = core.output_of(node_run.input or {}, fields)
    try:
        limits.check_size(
            output, setting="FLOWNOVA_MAX_NODE_OUTPUT_BYTES", what=f'the output of node "{node_run.node_id}"'
        )
    except limits.SizeLimitError as exc:
        node_failed(tx, node_run, error=str(exc), started_at=node_run.started_at or now)
        return
    node_succeed(
        tx,
        node_run,
        fields=fields,
        output=output,
        handle=handle,
        started_at=node_run.started_at or now,
        finished_at=now,
    )
    if tx.run.status in FINAL_RUN_STATUSES:
        return
    advance(tx, node_run.node_id, handle=handle, output=output)
    settle(tx)


def _batch_fail(tx: Transition, node_run: NodeRun, error: str) -> None:
    """Fail the node (taking its error path when it has one); its items that have not ended are cancelled, and
    so, after commit, are their child runs still going."""
    open_items = ChildItem.objects.filter(
        node_run=node_run, status__in=(ChildItemStatus.PENDING, ChildItemStatus.RUNNING)
    )
    running = [
        pk for pk in open_items.filter(child_run__status__in=ACTIVE_RUN_STATUSES).values_list("child_run_id", flat=True)
    ]
    open_items.update(status=ChildItemStatus.CANCELLED)
    node_failed(tx, node_run, error=error, started_at=node_run.started_at or timezone.now())
    if running:
        from runs.tasks import cancel_run

        def cancel_children() -> None:
            for child_id in running:
                if child_id is not None:
                    send(cancel_run, child_id)

        transaction.on_commit(cancel_children)
