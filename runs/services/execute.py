"""Executing a node: a task claims it (`node_begin`), its handler runs, and the result or the failure is
recorded (`node_complete`, `node_fail`, `node_crash`). Instant control-flow nodes execute inside the claim."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from django.db.models import Q
from django.utils import timezone

from flownova import metrics
from flownova.logcontext import log_context
from nodes import get_node_type, limits
from nodes.base import DEFAULT_RETRIES, EVERY_NODE, NodeResult
from nodes.spec import ERROR_HANDLE
from nodes.templating import referenced_paths
from runs.engine import core
from runs.events import NodeStarted
from runs.execution import run_handler
from runs.models import (
    FINAL_RUN_STATUSES,
    NodeRun,
    NodeStatus,
    Run,
    RunStatus,
)
from runs.services import continuation
from runs.services.advance import advance, pending_rows, settle, track_writes, unfinished_after
from runs.services.base import (
    ACTIVE_NODE_STATUSES,
    BEGIN_FIELDS,
    CLAIM_FIELDS,
    CLAIMED_FIELDS,
    has_merges,
    run_graph,
)
from runs.services.dispatch import dispatch_ids
from runs.services.outcome import LOST_REDELIVERED, attempt_lost, node_failed, node_give_up, node_succeed, retry_delay
from runs.services.waits import node_spawn, node_wait
from runs.writes import Transition, run_transition
from runs.writes.chain import chained
from workflows.graph import Graph, Node

logger = logging.getLogger(__name__)

# --- a node begins -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeClaim:
    """Everything a task needs to execute one node, read while the node was marked running."""

    node_run_id: int
    run_id: int
    owner_id: int
    project_id: int
    node: Node
    handles: frozenset[str]
    input: dict[str, Any]
    attempt: int
    max_retries: int
    started_at: Any
    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)
    branches: dict[str, dict[str, Any]] = field(default_factory=dict)


def node_begin(*, run_id: int, node_run_id: int, task_id: str) -> NodeClaim | None:
    """Mark a node running and return what its handler needs, or None when there is nothing to do: the node
    already finished (a duplicated or redelivered message), another task holds it, or the run has ended.

    Instant node types (control flow: pure, microseconds, no I/O) are executed right here, inside the same
    transition, and None is returned: a second transaction per node would double the cost of every if/else,
    fork and join for nothing, since nobody can observe such a node "running". If the worker dies, the
    transaction rolls back and the redelivered task runs the node again."""
    merges = has_merges(run_graph(run_id))
    with run_transition(run_id, node_run_id=node_run_id, node_fields=BEGIN_FIELDS, lock_pending=merges) as tx:
        if tx.node_run is None:
            return None
        return _begin(tx, tx.node_run, task_id)


def instant_nodes_begin(*, run_id: int, node_run_ids: list[int], task_id: str, ending: bool = False) -> list[int]:
    """Begin and execute queued instant nodes of one run together, in one transition: the nodes a fork (or
    several branches finishing in one transition) queued, which this process took on to run itself
    (runs.services.continuation). Each is handled as `node_begin` would handle it alone; the transition's view
    of pending and unfinished nodes follows each one's writes, so a join reached by several of them is
    recorded once, with every arrival. `ending`: one of them ends the run, which is then settled from the
    statuses read with the locks, not with a query of its own. Returns the ids of the nodes that are not
    instant, left queued for a task of their own."""
    graph = run_graph(run_id)
    lock_pending = ending or has_merges(graph)
    with run_transition(run_id, node_run_ids=node_run_ids, node_fields=BEGIN_FIELDS, lock_pending=lock_pending) as tx:
        left = []
        for node_run in tx.node_runs:
            if not get_node_type(node_run.node_type).instant:
                left.append(node_run.pk)
                continue
            _begin(tx, node_run, task_id)
            track_writes(tx, [node_run])
            if tx.pending_rows and any(row.pk is None for row in tx.pending_rows.values()):
                tx.flush()  # a merge point this node reached first: the next arrival updates its row
        return left


def _begin(tx: Transition, node_run: NodeRun, task_id: str) -> NodeClaim | None:
    """`node_begin` for a node locked with its run in `tx`."""
    run = tx.run
    if run.status in FINAL_RUN_STATUSES:
        if node_run.status in (NodeStatus.QUEUED, NodeStatus.RUNNING):
            node_run.status = NodeStatus.CANCELLED
            tx.save(node_run, "status")
        return None
    if node_run.status == NodeStatus.RUNNING and node_run.task_id != task_id:
        return None  # a duplicate message while the first one runs
    if node_run.status not in (NodeStatus.QUEUED, NodeStatus.RUNNING):
        return None  # finished, waiting or cancelled already
    if node_run.status == NodeStatus.RUNNING and attempt_lost(tx, node_run, reason=LOST_REDELIVERED):
        return None  # RUNNING with our own task id: redelivered because the worker died mid-node
    now = timezone.now()
    if node_run.queued_at is not None and node_run.status == NodeStatus.QUEUED:
        waited = max(0.0, (now - node_run.queued_at).total_seconds())
        metrics.observe_after_commit(lambda: metrics.QUEUE_WAIT.observe(waited))
    node_run.status = NodeStatus.RUNNING
    node_run.attempts += 1
    node_run.started_at = now
    node_run.task_id = task_id
    node_type = get_node_type(node_run.node_type)
    if not node_type.instant:  # an instant node's state is written once, when it finishes below
        tx.save(node_run, *CLAIM_FIELDS)
    if run.status != RunStatus.RUNNING:
        run.status = RunStatus.RUNNING
        run.started_at = run.started_at or now
        tx.save_run("status", "started_at")
    tx.emit(NodeStarted(node_id=node_run.node_id, attempt=node_run.attempts))
    graph = run_graph(run.pk)
    node = graph.node(node_run.node_id)
    claim = NodeClaim(
        node_run_id=node_run.pk,
        run_id=run.pk,
        owner_id=run.owner_id,
        project_id=run.project_id,
        node=node,
        handles=frozenset(edge.source_handle for edge in graph.outgoing(node.id) if edge.source_handle),
        input=node_run.input or {},
        attempt=node_run.attempts,
        max_retries=int(node.data.get("retries", DEFAULT_RETRIES)),
        started_at=now,
        nodes=_referenced_results(run, node, node_type.reads_nodes),
        branches=_branch_outputs(run, graph, node_run),
    )
    if not node_type.instant:
        return claim
    with log_context(node_id=node.id):
        outcome = run_handler(claim)
    if outcome.result is not None:
        _record_result(tx, node_run, claim, outcome.result)
    else:
        _record_failure(
            tx, node_run, claim, outcome.error, outcome.traceback, transient=False, fields=dict(outcome.fields)
        )
    return None


@contextmanager
def continuing(run_id: int, task_id: str) -> Iterator[None]:
    """Run the block (a node task, a decision) continuing `run_id` (runs.services.continuation): once it is
    done, the instant nodes its transitions queued are begun here, then those that these queued, within the
    budget. Whatever could not be begun here goes through the broker: a node whose beginning raised is sent as
    a task, which records what goes wrong with it as any task does."""
    with continuation.taking_on(run_id, task_id) as budget:
        try:
            yield
            if budget is not None:
                dispatch_ids(run_id, _continue(run_id, task_id, budget))
        finally:
            if budget is not None:  # the block raised after a commit: what it took on goes through the broker
                dispatch_ids(run_id, budget.take_ready()[0])


def _continue(run_id: int, task_id: str, budget: continuation.Continuation) -> list[int]:
    """Begin the nodes handed over, then those these queue, within the budget, as chained transitions (each
    node's COMMIT carries the next one's locks: runs.writes.chain). Returns the nodes left for the broker: those
    that are not instant, and, when beginning raises, those it was beginning and every one handed over since."""
    left: list[int] = []
    ready: list[int] = []
    try:
        with chained(run_id):
            while True:
                ready, ending = budget.take_ready()
                if not ready:
                    break
                left += instant_nodes_begin(run_id=run_id, node_run_ids=ready, task_id=task_id, ending=ending)
    except Exception:
        logger.exception("could not continue run %s here; its nodes go through the broker", run_id)
        left += [*ready, *budget.take_ready()[0]]
        budget.nodes_left = 0
    return left


def node_event(run_id: int, node_id: str, type: str, data: dict[str, Any]) -> None:
    """An event a node sends while it executes (streamed text, a tool call): stored and published like every
    other. Nothing is sent once the run has ended."""
    data, _ = limits.storable(data)  # streamed text may hold a NUL, which jsonb cannot store
    with run_transition(run_id) as tx:
        if tx.run.status not in FINAL_RUN_STATUSES:
            tx.emit_streamed(type, node_id, data)


def _claimed_transition(claim: NodeClaim) -> AbstractContextManager[Transition]:
    """The run's transition with the claimed node locked too (as `tx.node_run`)."""
    merges = has_merges(run_graph(claim.run_id))
    return run_transition(claim.run_id, node_run_id=claim.node_run_id, node_fields=CLAIMED_FIELDS, lock_pending=merges)


def _lock_claimed(tx: Transition, claim: NodeClaim) -> NodeRun | None:
    """The claimed node, locked with the run, if the claim is still the current attempt."""
    node_run = tx.node_run
    if node_run is None or node_run.status != NodeStatus.RUNNING or node_run.attempts != claim.attempt:
        return None  # a later attempt owns the node now
    return node_run


def _referenced_results(
    run: Run, node: Node, reads_nodes: Callable[[dict[str, Any]], frozenset[str]] | None
) -> dict[str, dict[str, Any]]:
    """The own fields of the earlier nodes `node` reads: those its templates name, and those its type says."""
    refs = set(core.template_node_refs(referenced_paths(node.data)))
    if reads_nodes is not None:
        refs |= reads_nodes(node.data)
    if not refs:
        return {}
    # A node that failed and took its error path has fields too (`error`, and whatever its handler gave).
    went_on = Q(status=NodeStatus.SUCCEEDED) | Q(status=NodeStatus.FAILED, handle=ERROR_HANDLE)
    rows = NodeRun.objects.filter(went_on, run=run)
    if not EVERY_NODE <= refs:
        rows = rows.filter(node_id__in=refs)
    return {node_id: result or {} for node_id, result in rows.values_list("node_id", "result")}


def _branch_outputs(run: Run, graph: Graph, node_run: NodeRun) -> dict[str, dict[str, Any]]:
    if len(graph.incoming(node_run.node_id)) < 2:
        return {}
    sources = core.fired_sources(graph, node_run.node_id, node_run.arrivals)
    outputs = dict(NodeRun.objects.filter(run=run, node_id__in=sources).values_list("node_id", "output"))
    return {source: outputs.get(source) or {} for source in sources}


# --- a node finishes -----------------------------------------------------------------------------------------


def node_complete(*, claim: NodeClaim, result: NodeResult) -> None:
    """Record a handler's result and advance the run."""
    with _claimed_transition(claim) as tx:
        node_run = _lock_claimed(tx, claim)
        if node_run is not None:
            _record_result(tx, node_run, claim, result)


def _record_result(tx: Transition, node_run: NodeRun, claim: NodeClaim, result: NodeResult) -> None:
    finished = timezone.now()
    if result.wait is not None:
        node_wait(tx, node_run, result.wait, started_at=claim.started_at, finished_at=finished)
        return
    if result.child is not None:
        node_spawn(tx, node_run, _storable_result(node_run, result), started_at=claim.started_at, finished_at=finished)
        return
    try:
        output, result = _checked_output(node_run, result)
    except limits.SizeLimitError as exc:
        node_failed(tx, node_run, error=str(exc), started_at=claim.started_at, tool_calls=result.tool_calls)
        return
    # Read before this node's writes are queued, so that they go out with the rest of the transition's.
    pending = tx.pending_rows if tx.pending_rows is not None else pending_rows(tx)
    node_succeed(
        tx,
        node_run,
        fields=result.fields,
        output=output,
        handle=result.handle,
        started_at=claim.started_at,
        finished_at=finished,
        tool_calls=result.tool_calls,
        llm_usage=result.llm_usage,
    )
    if tx.run.status in FINAL_RUN_STATUSES:
        return  # recorded, but the run ended meanwhile (cancelled, or failed in another branch)
    if result.run_output is not None:
        tx.run.output = result.run_output
        tx.save_run("output")
    advanced = advance(tx, node_run.node_id, handle=result.handle, output=output, pending=pending)
    if not any(row.status == NodeStatus.QUEUED for row in advanced):
        settle(tx, unfinished_after(tx, [node_run, *advanced]))  # nothing new queued: waiting, or done?


def _storable_result(node_run: NodeRun, result: NodeResult) -> NodeResult:
    """The result with NUL characters replaced in its fields and run output (jsonb cannot hold them)."""
    fields, fields_changed = limits.storable(result.fields)
    run_output, output_changed = limits.storable(result.run_output)
    if not (fields_changed or output_changed):
        return result
    logger.warning(
        "node %s returned NUL characters; stored as U+FFFD", node_run.node_id, extra={"node_id": node_run.node_id}
    )
    return replace(result, fields=fields, run_output=run_output)


def _checked_output(node_run: NodeRun, result: NodeResult) -> tuple[dict[str, Any], NodeResult]:
    """The node's output, and the result as it will be stored: NUL characters replaced, then sizes checked
    against their caps (raises SizeLimitError). On this path, taken at every node, each value is encoded once;
    only a result that holds a NUL is cleaned and encoded again."""
    output = core.output_of(node_run.input or {}, result.fields)
    text = limits.json_text(output)
    run_text = None if result.run_output is None else limits.json_text(result.run_output)
    if limits.has_nul(text) or (run_text is not None and limits.has_nul(run_text)):
        result = _storable_result(node_run, result)  # the input was stored already: any NUL is the node's
        output = core.output_of(node_run.input or {}, result.fields)
        text = limits.json_text(output)
        run_text = None if result.run_output is None else limits.json_text(result.run_output)
    limits.check_size(
        output, setting="FLOWNOVA_MAX_NODE_OUTPUT_BYTES", what=f'the output of node "{node_run.node_id}"', text=text
    )
    if run_text is not None:
        run_cap = "FLOWNOVA_MAX_RUN_OUTPUT_BYTES"
        limits.check_size(result.run_output, setting=run_cap, what="the run's output", text=run_text)
    return output, result


def node_fail(
    *,
    claim: NodeClaim,
    error: str,
    traceback: str = "",
    transient: bool = False,
    tool_calls: list[dict[str, Any]] | None = None,
    fields: dict[str, Any] | None = None,
) -> float | None:
    """Record a failed attempt (with the tool calls it made, and `fields`: what the handler gave besides the
    error, for its error path). Returns the delay before the next attempt when one is scheduled (transient
    failure with retries left), else None: the node has failed, and took its error path or failed the run."""
    with _claimed_transition(claim) as tx:
        node_run = _lock_claimed(tx, claim)
        if node_run is None:
            return None
        return _record_failure(
            tx, node_run, claim, error, traceback, transient=transient, tool_calls=tool_calls, fields=fields
        )


def _record_failure(
    tx: Transition,
    node_run: NodeRun,
    claim: NodeClaim,
    error: str,
    traceback: str,
    *,
    transient: bool,
    tool_calls: list[dict[str, Any]] | None = None,
    fields: dict[str, Any] | None = None,
) -> float | None:
    retry = transient and claim.attempt <= claim.max_retries and tx.run.status not in FINAL_RUN_STATUSES
    delay = retry_delay(claim.attempt) if retry else None
    node_failed(
        tx,
        node_run,
        error=error,
        traceback=traceback,
        started_at=claim.started_at,
        retry_in=delay,
        tool_calls=tool_calls,
        fields=fields,
    )
    return delay


def node_crash(*, run_id: int, node_run_id: int, error: str, traceback: str = "", attempt: int | None = None) -> None:
    """The engine itself raised while executing or recording a node (a bug, a value the database refuses):
    not the handler's own failure, which `run_handler` classifies. Such an error would repeat on every
    delivery, so the node is given up at once, in a transaction of its own, instead of leaving it queued or
    running for the recovery sweep to send again for ever. `attempt` is the claim's, when a claim was made:
    only that attempt is given up."""
    with run_transition(run_id, node_run_id=node_run_id, node_fields=BEGIN_FIELDS) as tx:
        node_run = tx.node_run
        if node_run is None or node_run.status not in ACTIVE_NODE_STATUSES:
            return
        if tx.run.status in FINAL_RUN_STATUSES or (attempt is not None and node_run.attempts != attempt):
            return
        now = timezone.now()
        if node_run.status == NodeStatus.QUEUED:  # it failed as it began: that was an attempt too
            node_run.attempts += 1
            node_run.started_at = now
        message = f'node "{node_run.node_id}" ({node_run.node_type}) could not be executed: {error}'
        node_give_up(tx, node_run, error=message, traceback=traceback, started_at=node_run.started_at or now)
