"""The one place that advances a run.

Every transition follows the same shape: one transaction, the run's row locked first (then node rows), ask
the pure core (`runs.engine.core`) what happens next, write node state and the ledger entry together, and
only after commit enqueue tasks and publish events. Handlers never touch the database; tasks only call these
functions.

Lock order, everywhere: the Run row, then NodeRun rows, then ApprovalRequest rows.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from datetime import timedelta
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, Group
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone
from jsonschema import Draft202012Validator
from kombu.exceptions import OperationalError as KombuOperationalError
from redis.exceptions import ConnectionError as RedisConnectionError

from approvals.models import ApprovalRequest, ApprovalStatus
from flownova import metrics
from flownova.logcontext import log_context
from nodes import get_node_type, limits, node_specs
from nodes.base import NodeResult, WaitRequest
from nodes.templating import referenced_paths
from runs.engine import core
from runs.events import Transition, run_transition
from runs.execution import run_handler
from runs.ledger import ledger_append
from runs.models import (
    ACTIVE_RUN_STATUSES,
    FINAL_RUN_STATUSES,
    LedgerEntry,
    LedgerStatus,
    NodeRun,
    NodeStatus,
    Run,
    RunStatus,
    concrete_fields,
    insert_sql,
    update_sql,
)
from workflows.graph import Graph, GraphError, Node, parse_graph
from workflows.models import Workflow

logger = logging.getLogger(__name__)

# What publishing a task raises when the broker cannot be reached.
BROKER_ERRORS = (KombuOperationalError, RedisConnectionError, OSError)
ACTIVE_NODE_STATUSES = (NodeStatus.QUEUED, NodeStatus.RUNNING)
OPEN_NODE_STATUSES = (NodeStatus.PENDING, NodeStatus.QUEUED, NodeStatus.WAITING)
DEFAULT_RETRIES = 2
# What node_begin changes on a node; saved with the node's final state when it runs inline.
CLAIM_FIELDS = ["status", "attempts", "started_at", "task_id"]
# What is read of a node when it is locked to begin, and to record its result: never its result or output.
CLAIMED_FIELDS = ("id", "run_id", "node_id", "node_type", "status", "input", "attempts", "task_id")
BEGIN_FIELDS = (*CLAIMED_FIELDS, "handle", "error", "arrivals", "queued_at", "started_at", "finished_at")


class RunError(Exception):
    """A request about a run that cannot be carried out; the message says why."""


class RunInputError(RunError):
    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


class RunFinishedError(RunError):
    """The run already ended (for cancel: 409)."""


# --- the graph a run executes -------------------------------------------------------------------------------

_GRAPHS: OrderedDict[int, Graph] = OrderedDict()
_GRAPH_CACHE_SIZE = 512


def run_graph(run_id: int) -> Graph:
    """The parsed snapshot of a run. Snapshots never change, so each process parses one once."""
    graph = _GRAPHS.get(run_id)
    if graph is not None:
        _GRAPHS.move_to_end(run_id)
        return graph
    document = Run.objects.values_list("graph", flat=True).get(pk=run_id)
    graph = parse_graph(document, node_specs(), recorded=True)
    _GRAPHS[run_id] = graph
    if len(_GRAPHS) > _GRAPH_CACHE_SIZE:
        _GRAPHS.popitem(last=False)
    return graph


def input_errors(graph: Graph, run_input: object) -> list[str]:
    if not isinstance(run_input, dict):
        return [f"input must be a JSON object, not {type(run_input).__name__}"]
    schema = graph.node(graph.start_id).data.get("input_schema")
    if schema is None:
        return []
    validator = Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(run_input), key=lambda error: list(error.absolute_path))
    return [
        f"input.{'.'.join(map(str, error.absolute_path))}: {error.message}".replace("input.:", "input:")
        for error in errors
    ]


# --- starting ----------------------------------------------------------------------------------------------


def run_start(
    *,
    workflow: Workflow,
    input: Any,
    user: AbstractBaseUser,
    source_run: Run | None = None,
    snapshot: Run | None = None,
) -> Run:
    """Start a run of the workflow's current graph with `input` (checked against the start node's schema), or,
    with `snapshot`, of the graph version that run executed (a re-run of the same version)."""
    graph, document = _graph_to_run(workflow, snapshot)
    errors = input_errors(graph, input)
    if errors:
        raise RunInputError(errors)
    with transaction.atomic():
        run = _run_create(
            workflow=workflow,
            document=document,
            graph=graph,
            input=input,
            user=user,
            source_run=source_run,
            version=snapshot.workflow_version if snapshot else workflow.version,
        )
        start = NodeRun.objects.create(
            run=run, node_id=graph.start_id, node_type="start", input=input, queued_at=timezone.now()
        )
        tx = Transition(run)
        tx.emit("run_started", data={"workflow_id": workflow.pk, "version": run.workflow_version})
        tx.finish()
        _enqueue_after_commit(run, graph, [start])
    return run


def _graph_to_run(workflow: Workflow, snapshot: Run | None) -> tuple[Graph, dict[str, Any]]:
    document = snapshot.graph if snapshot is not None else workflow.graph_document()
    try:
        return parse_graph(document, node_specs(), recorded=snapshot is not None), document
    except GraphError as exc:
        raise RunInputError([f"the workflow is not valid: {issue.message}" for issue in exc.issues]) from exc


def _run_create(
    *,
    workflow: Workflow,
    document: dict[str, Any],
    graph: Graph,
    input: Any,
    user: AbstractBaseUser,
    source_run: Run | None,
    version: int,
) -> Run:
    run = Run.objects.create(
        workflow=workflow,
        workflow_name=workflow.name,
        workflow_version=version,
        graph=document,
        owner=user,
        input=input,
        source_run=source_run,
    )
    _GRAPHS[run.pk] = graph
    logger.info("run started: workflow %s v%s", workflow.pk, version, extra={"run_id": run.pk})
    metrics.observe_after_commit(metrics.RUNS_STARTED.inc)
    return run


# --- resuming from a node ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Resumed:
    run: Run
    reused: list[str]
    warnings: list[str]


def run_resume(
    *,
    source: Run,
    node_id: str,
    user: AbstractBaseUser,
    current_version: bool = False,
    input: dict[str, Any] | None = None,
    reexecute: frozenset[str] = frozenset(),
) -> Resumed:
    """A new run that reuses what `source` recorded for every node that finished before `node_id` (no LLM or
    tool call is repeated for them: their ledger entries are copied, marked `reused`) and executes from
    `node_id` on, with `input` for that node if given. `current_version` runs the workflow as it is now (to
    resume from a failed node after fixing it); `reexecute` names earlier nodes to run again instead."""
    workflow = source.workflow
    if workflow is None or (current_version and workflow.is_deleted):
        raise RunInputError([f"the workflow of run {source.pk} was deleted"])
    graph, document = _graph_to_run(workflow, None if current_version else source)
    if node_id not in graph.nodes:
        raise RunInputError([f'node "{node_id}" is not in the workflow{" as it is now" if current_version else ""}'])
    recorded = {row.node_id: row for row in NodeRun.objects.filter(run=source)}
    unknown = sorted(set(reexecute) - set(graph.nodes))
    if unknown:
        raise RunInputError([f"reexecute names nodes that are not in the workflow: {', '.join(unknown)}"])
    states = {node: (row.status, row.node_type) for node, row in recorded.items()}
    reused = core.reusable(graph, node_id, states, frozenset(reexecute))
    if core.skipped_on_replay(graph, node_id, [(node, recorded[node].handle or None) for node in reused]):
        raise RunInputError([resume_skipped_message(source, node_id)])
    warnings = [
        f'node "{node}" ({graph.node(node).type}) acts on the world: its recorded result is reused, not called '
        f'again; name it in "reexecute" to run it again'
        for node in reused
        if get_node_type(graph.node(node).type).side_effects
    ]
    with transaction.atomic():
        run = _run_create(
            workflow=workflow,
            document=document,
            graph=graph,
            input=source.input,
            user=user,
            source_run=source,
            version=workflow.version if current_version else source.workflow_version,
        )
        tx = Transition(run)
        tx.emit("run_started", data={"workflow_id": workflow.pk, "resumed_from": source.pk, "node_id": node_id})
        _replay_reused(tx, graph, [recorded[node] for node in reused], resume_at=node_id, resume_input=input)
        tx.finish()
    return Resumed(run=run, reused=reused, warnings=warnings)


def resume_skipped_message(source: Run, node_id: str) -> str:
    return (
        f'node "{node_id}" cannot be resumed from: the recorded results of the nodes before it take another '
        f"path, so the resumed run would skip it (as run {source.pk} did). Resume from the node that chose the "
        "path, or execute it again"
    )


def run_resume_unreachable(*, source: Run, graph: Graph) -> set[str]:
    """The nodes of `graph` that a run resumed from `source` would skip if resumed there (`run_resume` refuses
    them); resume pages leave them out."""
    rows = {row[0]: row[1:] for row in source.node_runs.values_list("node_id", "status", "node_type", "handle")}
    states = {node: row[:2] for node, row in rows.items()}
    unreachable = set()
    for node_id in graph.nodes:
        reused = core.reusable(graph, node_id, states)
        if core.skipped_on_replay(graph, node_id, [(node, rows[node][2] or None) for node in reused]):
            unreachable.add(node_id)
    return unreachable


def run_resume_reused(*, source: Run, graph: Graph, node_id: str) -> list[str]:
    """The nodes `run_resume` would reuse from `source` when resuming it at `node_id` on `graph`, in order,
    before anything is started (resume pages show them)."""
    states = {row[0]: row[1:] for row in source.node_runs.values_list("node_id", "status", "node_type")}
    return core.reusable(graph, node_id, states)


def _replay_reused(
    tx: Transition, graph: Graph, reused: list[NodeRun], *, resume_at: str, resume_input: dict[str, Any] | None
) -> None:
    """Copy the reused nodes' records into the new run, then let the core resolve their edges exactly as if
    they had just finished, and queue whatever that makes ready (the resume node among them)."""
    run = tx.run
    now = timezone.now()
    known: dict[str, dict[str, str]] = {}
    outputs: dict[str, dict[str, Any]] = {}
    ready: list[str] = []
    skipped: set[str] = set()
    for source_row in reused:
        row = NodeRun.objects.create(
            run=run,
            node_id=source_row.node_id,
            node_type=source_row.node_type,
            status=NodeStatus.SUCCEEDED,
            input=source_row.input,
            result=source_row.result,
            output=source_row.output,
            handle=source_row.handle,
            arrivals=source_row.arrivals,
            attempts=0,
            queued_at=now,
            started_at=now,
            finished_at=now,
        )
        ledger_append(
            tx=tx,
            node_run=row,
            status=LedgerStatus.SUCCEEDED,
            input=row.input,
            output=row.output,
            started_at=source_row.started_at,
            finished_at=source_row.finished_at,
            reused=True,
        )
        tx.emit("node_completed", row.node_id, {"handle": row.handle or None, "result": row.result, "reused": True})
        outputs[row.node_id] = row.output or {}
        if row.node_type == "end":
            run.output = Run.objects.values_list("output", flat=True).get(pk=run.source_run_id)
            tx.save_run("output")
        step = core.advance(graph, row.node_id, handle=row.handle or None, known_arrivals=known)
        known.update(step.arrivals)
        ready += [node for node in step.ready if node not in ready]
        skipped.update(step.skipped)
    if not reused:  # resuming at the start node
        ready = [graph.start_id]
    queued = []
    for node in ready:
        if node in outputs:
            continue
        arrivals = known.get(node, {})
        sources = core.fired_sources(graph, node, arrivals)
        node_input = core.merge_inputs(sources, outputs) if sources else dict(run_input(run))
        if node == resume_at and resume_input is not None:
            node_input = resume_input
        queued.append(
            NodeRun.objects.create(
                run=run,
                node_id=node,
                node_type=graph.node(node).type,
                status=NodeStatus.QUEUED,
                input=node_input,
                arrivals=arrivals if len(graph.incoming(node)) > 1 else {},
                queued_at=now,
            )
        )
    for node in skipped:
        NodeRun.objects.create(
            run=run, node_id=node, node_type=graph.node(node).type, status=NodeStatus.SKIPPED, finished_at=now
        )
        tx.emit("node_skipped", node)
    for node, arrivals in known.items():
        if node not in outputs and node not in ready and node not in skipped:
            NodeRun.objects.create(
                run=run, node_id=node, node_type=graph.node(node).type, status=NodeStatus.PENDING, arrivals=arrivals
            )
    _enqueue_after_commit(run, graph, queued)


def run_input(run: Run) -> dict[str, Any]:
    return Run.objects.values_list("input", flat=True).get(pk=run.pk) or {}


# --- a node begins -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeClaim:
    """Everything a task needs to execute one node, read while the node was marked running."""

    node_run_id: int
    run_id: int
    owner_id: int
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
    merges = _has_merges(run_graph(run_id))
    with run_transition(run_id, node_run_id=node_run_id, node_fields=BEGIN_FIELDS, lock_pending=merges) as tx:
        run, node_run = tx.run, tx.node_run
        if node_run is None:
            return None
        if run.status in FINAL_RUN_STATUSES:
            if node_run.status in (NodeStatus.QUEUED, NodeStatus.RUNNING):
                node_run.status = NodeStatus.CANCELLED
                node_run.save(update_fields=["status"])
            return None
        if node_run.status == NodeStatus.RUNNING and node_run.task_id != task_id:
            return None  # a duplicate message while the first one runs
        if node_run.status not in (NodeStatus.QUEUED, NodeStatus.RUNNING):
            return None  # finished, waiting or cancelled already
        if node_run.status == NodeStatus.RUNNING and _attempt_lost(tx, node_run, reason=LOST_REDELIVERED):
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
            tx.write(*update_sql(node_run, CLAIM_FIELDS))
        if run.status != RunStatus.RUNNING:
            run.status = RunStatus.RUNNING
            run.started_at = run.started_at or now
            tx.save_run("status", "started_at")
        tx.emit("node_started", node_run.node_id, {"attempt": node_run.attempts})
        graph = run_graph(run.pk)
        node = graph.node(node_run.node_id)
        claim = NodeClaim(
            node_run_id=node_run.pk,
            run_id=run.pk,
            owner_id=run.owner_id,
            node=node,
            handles=frozenset(edge.source_handle for edge in graph.outgoing(node.id) if edge.source_handle),
            input=node_run.input or {},
            attempt=node_run.attempts,
            max_retries=int(node.data.get("retries", DEFAULT_RETRIES)),
            started_at=now,
            nodes=_referenced_results(run, node),
            branches=_branch_outputs(run, graph, node_run),
        )
        if not node_type.instant:
            return claim
        with log_context(node_id=node.id):
            outcome = run_handler(claim)
        if outcome.result is not None:
            _record_result(tx, node_run, claim, outcome.result)
        else:
            _record_failure(tx, node_run, claim, outcome.error, outcome.traceback, transient=False)
        return None


def node_event(run_id: int, node_id: str, type: str, data: dict[str, Any]) -> None:
    """An event a node sends while it executes (streamed text, a tool call): stored and published like every
    other. Nothing is sent once the run has ended."""
    data, _ = limits.storable(data)  # streamed text may hold a NUL, which jsonb cannot store
    with run_transition(run_id) as tx:
        if tx.run.status not in FINAL_RUN_STATUSES:
            tx.emit(type, node_id, data)


def _claimed_transition(claim: NodeClaim) -> AbstractContextManager[Transition]:
    """The run's transition with the claimed node locked too (as `tx.node_run`)."""
    merges = _has_merges(run_graph(claim.run_id))
    return run_transition(claim.run_id, node_run_id=claim.node_run_id, node_fields=CLAIMED_FIELDS, lock_pending=merges)


def _lock_claimed(tx: Transition, claim: NodeClaim) -> NodeRun | None:
    """The claimed node, locked with the run, if the claim is still the current attempt."""
    node_run = tx.node_run
    if node_run is None or node_run.status != NodeStatus.RUNNING or node_run.attempts != claim.attempt:
        return None  # a later attempt owns the node now
    return node_run


def _referenced_results(run: Run, node: Node) -> dict[str, dict[str, Any]]:
    refs = core.template_node_refs(referenced_paths(node.data))
    if not refs:
        return {}
    rows = NodeRun.objects.filter(run=run, node_id__in=refs, status=NodeStatus.SUCCEEDED)
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
        _node_wait(tx, node_run, result.wait, started_at=claim.started_at, finished_at=finished)
        return
    if result.child is not None:
        _node_spawn(tx, node_run, _storable_result(node_run, result), started_at=claim.started_at, finished_at=finished)
        return
    try:
        output, result = _checked_output(node_run, result)
    except limits.SizeLimitError as exc:
        _node_failed(tx, node_run, error=str(exc), started_at=claim.started_at, tool_calls=result.tool_calls)
        return
    # Read before this node's writes are queued, so that they go out with the rest of the transition's.
    pending = tx.pending_rows if tx.pending_rows is not None else _pending_rows(tx)
    _node_succeed(
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
    advanced = _advance(tx, node_run.node_id, handle=result.handle, output=output, pending=pending)
    if not any(row.status == NodeStatus.QUEUED for row in advanced):
        _settle(tx, _unfinished_after(tx, [node_run, *advanced]))  # nothing new queued: waiting, or done?


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


def _node_succeed(
    tx: Transition,
    node_run: NodeRun,
    *,
    fields: dict[str, Any],
    output: dict[str, Any],
    handle: str | None,
    started_at: Any,
    finished_at: Any,
    tool_calls: list[dict[str, Any]] | None = None,
    llm_usage: dict[str, Any] | None = None,
) -> None:
    node_run.status = NodeStatus.SUCCEEDED
    node_run.result = fields
    node_run.output = output
    node_run.handle = handle or ""
    node_run.error = ""
    node_run.finished_at = finished_at
    entry = ledger_append(
        tx=tx,
        node_run=node_run,
        node_fields=["status", "result", "output", "handle", "error", "finished_at", *CLAIM_FIELDS],
        status=LedgerStatus.SUCCEEDED,
        input=node_run.input,
        output=output,
        started_at=started_at,
        finished_at=finished_at,
        tool_calls=tool_calls,
        llm_usage=llm_usage,
    )
    tx.emit(
        "node_completed",
        node_run.node_id,
        {"handle": handle, "result": fields, "duration_ms": entry.duration_ms, "ledger_seq": entry.seq},
    )


def node_fail(
    *,
    claim: NodeClaim,
    error: str,
    traceback: str = "",
    transient: bool = False,
    tool_calls: list[dict[str, Any]] | None = None,
) -> float | None:
    """Record a failed attempt (with the tool calls it made). Returns the delay before the next attempt when
    one is scheduled (transient failure with retries left), else None: the node and the run have failed."""
    with _claimed_transition(claim) as tx:
        node_run = _lock_claimed(tx, claim)
        if node_run is None:
            return None
        return _record_failure(tx, node_run, claim, error, traceback, transient=transient, tool_calls=tool_calls)


def _record_failure(
    tx: Transition,
    node_run: NodeRun,
    claim: NodeClaim,
    error: str,
    traceback: str,
    *,
    transient: bool,
    tool_calls: list[dict[str, Any]] | None = None,
) -> float | None:
    retry = transient and claim.attempt <= claim.max_retries and tx.run.status not in FINAL_RUN_STATUSES
    delay = retry_delay(claim.attempt) if retry else None
    _node_failed(
        tx,
        node_run,
        error=error,
        traceback=traceback,
        started_at=claim.started_at,
        retry_in=delay,
        tool_calls=tool_calls,
    )
    return delay


def _node_failed(
    tx: Transition,
    node_run: NodeRun,
    *,
    error: str,
    traceback: str = "",
    started_at: Any,
    retry_in: float | None = None,
    tool_calls: list[dict[str, Any]] | None = None,
) -> None:
    """Record a failed attempt: queued again after `retry_in` seconds when given, else the node fails and with
    it the run (unless it already ended)."""
    finished = timezone.now()
    retry = retry_in is not None
    node_run.error = error
    node_run.status = NodeStatus.QUEUED if retry else NodeStatus.FAILED
    node_run.finished_at = None if retry else finished
    if retry:  # due then: the recovery sweep must not take the wait for a lost message
        node_run.queued_at = finished + timedelta(seconds=retry_in)
    ledger_append(
        tx=tx,
        node_run=node_run,
        node_fields=["error", "status", "finished_at", "queued_at", *CLAIM_FIELDS],
        status=LedgerStatus.RETRYING if retry else LedgerStatus.FAILED,
        input=node_run.input,
        error=error,
        traceback=traceback,
        started_at=started_at,
        finished_at=finished,
        tool_calls=tool_calls,
    )
    tx.emit(
        "node_failed",
        node_run.node_id,
        {"error": error, "attempt": node_run.attempts, "will_retry": retry, "retry_in_seconds": retry_in},
    )
    logger.warning(
        "node %s (%s) attempt %d failed%s: %s",
        node_run.node_id,
        node_run.node_type,
        node_run.attempts,
        ", will retry" if retry else "",
        error,
        extra={"node_id": node_run.node_id},
    )
    if not retry and tx.run.status not in FINAL_RUN_STATUSES:
        _run_fail(tx, f'node "{node_run.node_id}" ({node_run.node_type}) failed: {error}')


# Why an attempt ended without a result. Lost attempts count against the node's attempts like failed ones.
LOST_REDELIVERED = "the worker running it stopped (killed, out of memory, or a crash) and its message came back"
LOST_STALLED = "it gave no result within its time limit plus the recovery grace (the worker died or was killed)"
LOST_PREFIX = "attempt lost: "
ERROR_HANDLE = "error"


def _attempt_lost(tx: Transition, node_run: NodeRun, *, reason: str) -> bool:
    """Record that the node's current attempt ended without a result. Returns True when no attempt is left:
    the node has then failed (or taken its `error` edge) and the caller must not start it again; else the
    node may be started again (the caller counts the new attempt)."""
    node = run_graph(tx.run.pk).node(node_run.node_id)
    allowed = int(node.data.get("retries", DEFAULT_RETRIES)) + 1
    now = timezone.now()
    if node_run.attempts < allowed:
        ledger_append(
            tx=tx,
            node_run=node_run,
            status=LedgerStatus.RETRYING,
            input=node_run.input,
            error=f"{LOST_PREFIX}{reason}",
            started_at=node_run.started_at,
            finished_at=now,
        )
        tx.emit(
            "node_failed",
            node_run.node_id,
            {"error": f"{LOST_PREFIX}{reason}", "attempt": node_run.attempts, "will_retry": True},
        )
        logger.warning(
            "node %s attempt %d lost: %s", node_run.node_id, node_run.attempts, reason, extra={"node_id": node.id}
        )
        return False
    lost = (
        1
        + LedgerEntry.objects.filter(
            run_id=tx.run.pk, node_id=node_run.node_id, status=LedgerStatus.RETRYING, error__startswith=LOST_PREFIX
        ).count()
    )
    error = (
        f"the node was given up after {node_run.attempts} attempt(s), {lost} of them lost: the last one ended "
        f"because {reason}"
    )
    _node_give_up(tx, node_run, error=error, started_at=node_run.started_at or now)
    return True


def _node_give_up(tx: Transition, node_run: NodeRun, *, error: str, started_at: Any, traceback: str = "") -> None:
    """End a node that cannot produce a result (its attempts were lost, or the engine could not execute or
    record it): it takes its `error` edge when it has one, with `error` as its field, else it fails and with
    it the run."""
    graph = run_graph(tx.run.pk)
    routed = any(edge.source_handle == ERROR_HANDLE for edge in graph.outgoing(node_run.node_id))
    if not routed or tx.run.status in FINAL_RUN_STATUSES:
        _node_failed(tx, node_run, error=error, traceback=traceback, started_at=started_at)
        return
    fields = {"error": error}
    output = core.output_of(node_run.input or {}, fields)
    _node_succeed(
        tx,
        node_run,
        fields=fields,
        output=output,
        handle=ERROR_HANDLE,
        started_at=started_at,
        finished_at=timezone.now(),
    )
    _advance(tx, node_run.node_id, handle=ERROR_HANDLE, output=output)
    _settle(tx)


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
        _node_give_up(tx, node_run, error=message, traceback=traceback, started_at=node_run.started_at or now)


def retry_delay(attempt: int) -> float:
    """Exponential backoff: base, 2 x base, 4 x base ... capped."""
    base = float(getattr(settings, "FLOWNOVA_RETRY_BACKOFF_SECONDS", 1.0))
    return min(base * 2 ** (attempt - 1), float(getattr(settings, "FLOWNOVA_RETRY_BACKOFF_MAX_SECONDS", 300.0)))


# --- waiting for a person --------------------------------------------------------------------------------------


def _node_wait(tx: Transition, node_run: NodeRun, wait: WaitRequest, *, started_at: Any, finished_at: Any) -> None:
    run = tx.run
    node_run.status = NodeStatus.WAITING
    node_run.save(update_fields=CLAIM_FIELDS)
    deadline = finished_at + timedelta(seconds=wait.timeout_seconds) if wait.timeout_seconds else None
    request, created = ApprovalRequest.objects.get_or_create(
        run=run,
        node_id=node_run.node_id,
        defaults={
            "message": wait.message,
            "data": wait.data,
            "allow_self_approval": wait.allow_self_approval,
            "editable_fields": wait.editable_fields,
            "deadline": deadline,
            "timeout_action": wait.timeout_action,
        },
    )
    if created and wait.assignees:
        user_model = type(run.owner)
        request.assignee_users.set(user_model.objects.filter(username__in=wait.assignees))
        request.assignee_groups.set(Group.objects.filter(name__in=wait.assignees))
    if created and deadline is not None:
        from approvals.services import approval_deadline_schedule  # approvals.services imports this module

        approval_deadline_schedule(approval=request)  # its timeout action is applied at the deadline
    ledger_append(
        tx=tx,
        node_run=node_run,
        status=LedgerStatus.WAITING,
        input=node_run.input,
        started_at=started_at,
        finished_at=finished_at,
    )
    tx.emit(
        "approval_needed",
        node_run.node_id,
        {
            "approval_id": request.pk,
            "message": request.message,
            "assignees": wait.assignees,
            "deadline": deadline.isoformat() if deadline else None,
        },
    )
    _settle(tx)


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
    _node_succeed(tx, node_run, fields=fields, output=output, handle=handle, started_at=now, finished_at=now)
    if run.status in FINAL_RUN_STATUSES:
        return
    _advance(tx, node_id, handle=handle, output=output)
    _settle(tx)


# --- advancing -------------------------------------------------------------------------------------------------


def _pending_rows(tx: Transition) -> dict[str, NodeRun]:
    """The run's nodes reached by some of their branches, locked, by node id (none in a graph without merges)."""
    if not _has_merges(run_graph(tx.run.pk)):
        return {}
    pending = NodeRun.objects.select_for_update().filter(run=tx.run, status=NodeStatus.PENDING)
    return {row.node_id: row for row in pending}


def _advance(
    tx: Transition,
    node_id: str,
    *,
    handle: str | None,
    output: dict[str, Any],
    pending: dict[str, NodeRun] | None = None,
) -> list[NodeRun]:
    """Resolve the finished node's outgoing edges; returns the node rows it wrote (created or changed, queued
    among them). `pending` is what `_pending_rows` returned, if the caller read it already."""
    run = tx.run
    graph = run_graph(run.pk)
    rows = _pending_rows(tx) if pending is None else pending
    step = core.advance(graph, node_id, handle=handle, known_arrivals={k: v.arrivals for k, v in rows.items()})
    now = timezone.now()

    def row_of(target: str) -> NodeRun:
        return rows.get(target) or NodeRun(run=run, node_id=target, node_type=graph.node(target).type)

    changed = []
    for skipped in step.skipped:
        changed.append(_set_state(row_of(skipped), NodeStatus.SKIPPED, step.arrivals.get(skipped, {}), finished=now))
        tx.emit("node_skipped", skipped)
    for target, arrivals in step.arrivals.items():
        if target not in step.skipped and target not in step.ready:
            changed.append(_set_state(row_of(target), NodeStatus.PENDING, arrivals))
    queued = []
    if step.ready:
        outputs = _source_outputs(run, graph, step, finished=(node_id, output))
        for target in step.ready:
            arrivals = step.arrivals[target]
            row = _set_state(row_of(target), NodeStatus.QUEUED, arrivals if len(graph.incoming(target)) > 1 else {})
            row.input = core.merge_inputs(core.fired_sources(graph, target, arrivals), outputs)
            row.queued_at = now
            queued.append(row)
    node_runs_save(tx, [*changed, *queued])
    _enqueue_after_commit(run, graph, queued)
    return [*changed, *queued]


def _set_state(row: NodeRun, status: str, arrivals: dict[str, str], *, finished: Any = None) -> NodeRun:
    row.status = status
    row.arrivals = arrivals
    row.finished_at = finished or row.finished_at
    return row


# What _advance changes on a node row it had already created (a merge point reached by some branches).
ADVANCE_FIELDS = ("status", "arrivals", "input", "queued_at", "finished_at")
NODE_RUN_FIELDS = concrete_fields(NodeRun)


def node_runs_save(tx: Transition, rows: list[NodeRun]) -> None:
    """Insert the new rows and update the others (their ADVANCE_FIELDS) with the transition's other writes,
    in one statement however many branches a fork starts. New rows get their ids when it has run."""
    for row in rows:
        if row.pk is not None:
            tx.write(*update_sql(row, ADVANCE_FIELDS))
    new = {row.node_id: row for row in rows if row.pk is None}
    if not new:
        return

    def created(ids: list[dict[str, Any]]) -> None:
        for returned in ids:
            row = new[returned["node_id"]]
            row.pk, row._state.adding = returned["id"], False

    tx.write(*insert_sql(list(new.values()), NODE_RUN_FIELDS, returning=("id", "node_id")), on_rows=created)


@lru_cache(maxsize=1024)
def _has_merges(graph: Graph) -> bool:
    """Whether any node has several incoming edges; without one, no node ever waits for branches."""
    return any(len(graph.incoming(node_id)) > 1 for node_id in graph.nodes)


def _source_outputs(
    run: Run, graph: Graph, step: core.Advance, *, finished: tuple[str, dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    needed = {source for target in step.ready for source in core.fired_sources(graph, target, step.arrivals[target])}
    needed.discard(finished[0])
    outputs = {finished[0]: finished[1]}
    if needed:
        rows = NodeRun.objects.filter(run=run, node_id__in=needed).values_list("node_id", "output")
        outputs.update({node_id: output or {} for node_id, output in rows})
    return outputs


def _unfinished_after(tx: Transition, written: list[NodeRun]) -> set[str] | None:
    """The statuses of the run's unfinished nodes once the transition's node writes (`written`: every node row
    it changed) are applied to what was read with the lock; None when nothing was read with the lock.

    This spares a branch arrival (and the end of a run whose graph has merge points) a query while the run's
    lock is held: every other arrival at the same join queues behind that lock, so the query cost a fork's join
    a round trip per branch."""
    if tx.unfinished is None:
        return None
    statuses = {**tx.unfinished, **{row.node_id: row.status for row in written}}
    return {status for status in statuses.values() if status not in _CLOSED}


def _settle(tx: Transition, statuses: set[str] | None = None) -> None:
    """Bring the run's status in line with its nodes: still running, waiting for a person, or finished.
    `statuses` are those of the run's unfinished nodes, if the caller knows them; else they are read."""
    run = tx.run
    if statuses is None:
        open_nodes = NodeRun.objects.filter(run=run).exclude(status__in=_CLOSED)
        statuses = set(open_nodes.order_by().values_list("status", flat=True).distinct())
    if statuses & {NodeStatus.QUEUED, NodeStatus.RUNNING}:
        if run.status != RunStatus.RUNNING:
            run.status = RunStatus.RUNNING
            tx.save_run("status")
        return
    if NodeStatus.WAITING in statuses:
        if not ApprovalRequest.objects.filter(run=run, status=ApprovalStatus.PENDING).exists():
            # Waiting for a child run, not for a person: the run is still at work.
            if run.status != RunStatus.RUNNING:
                run.status = RunStatus.RUNNING
                tx.save_run("status")
            return
        if run.status != RunStatus.WAITING:
            run.status = RunStatus.WAITING
            tx.save_run("status")
            tx.emit("run_waiting")
        return
    if NodeStatus.PENDING in statuses:
        # Cannot happen in a valid DAG (every edge gets resolved); fail loudly rather than hang.
        pending = list(NodeRun.objects.filter(run=run, status=NodeStatus.PENDING).values_list("node_id", flat=True))
        _run_fail(tx, f"internal error: nodes {pending} wait for branches that can no longer arrive")
        return
    if run.output is None:
        _run_fail(tx, "the run stopped without reaching an end node")
        return
    run.status = RunStatus.SUCCEEDED
    run.finished_at = timezone.now()
    tx.save_run("status", "finished_at")
    tx.emit("run_succeeded", data={"output": run.output})
    _run_ended(run, RunStatus.SUCCEEDED)
    _report_to_parent(run)


_CLOSED = (NodeStatus.SUCCEEDED, NodeStatus.FAILED, NodeStatus.SKIPPED, NodeStatus.CANCELLED)


def _run_fail(tx: Transition, error: str) -> None:
    run = tx.run
    run.status = RunStatus.FAILED
    run.error = error
    run.finished_at = timezone.now()
    tx.save_run("status", "error", "finished_at")
    _close_open_work(tx)
    tx.emit("run_failed", data={"error": error})
    _run_ended(run, RunStatus.FAILED)


def _run_ended(run: Run, status: str) -> None:
    """Count and log a run that ended, once its transaction commits (a rolled-back ending never happened)."""
    run_id = run.pk

    def observe() -> None:
        metrics.RUNS_FINISHED.labels(status).inc()
        logger.info("run %s", status, extra={"run_id": run_id})

    metrics.observe_after_commit(observe)


def _close_open_work(tx: Transition) -> None:
    """Every node of the run that has not finished ends: nodes not started yet will not start, and a node
    still executing is cancelled (its result, if it ever comes, is ignored) with a ledger entry that says so;
    pending approvals can no longer be decided; child runs are cancelled (after commit, each in its own
    transition) and a parent learns that this child ended."""
    run = tx.run
    now = timezone.now()
    running = NodeRun.objects.select_for_update().filter(run=run, status=NodeStatus.RUNNING)
    for node_run in running.only(*BEGIN_FIELDS):
        node_run.status = NodeStatus.CANCELLED
        node_run.finished_at = now
        ledger_append(
            tx=tx,
            node_run=node_run,
            node_fields=["status", "finished_at"],
            status=LedgerStatus.CANCELLED,
            input=node_run.input,
            error=f"the run ended ({run.status}) while this node was executing; its result is ignored",
            started_at=node_run.started_at,
            finished_at=now,
        )
    NodeRun.objects.filter(run=run, status__in=OPEN_NODE_STATUSES).update(status=NodeStatus.CANCELLED)
    ApprovalRequest.objects.filter(run=run, status=ApprovalStatus.PENDING).update(status=ApprovalStatus.CANCELLED)
    children = list(Run.objects.filter(parent=run, status__in=ACTIVE_RUN_STATUSES).values_list("pk", flat=True))
    if children:
        from runs.tasks import cancel_run

        transaction.on_commit(lambda: [_send(cancel_run, child) for child in children])
    _report_to_parent(run)


# --- child runs (cognitive nodes) ------------------------------------------------------------------------------


def _node_spawn(tx: Transition, node_run: NodeRun, result: NodeResult, *, started_at: Any, finished_at: Any) -> None:
    """Start the node's generated workflow as a child run; the node waits (holding no worker) until the
    child ends and `child_run_report` completes it."""
    assert result.child is not None
    run = tx.run
    graph = parse_graph(result.child.graph, node_specs())
    node_run.status = NodeStatus.WAITING
    node_run.result = result.fields
    node_run.save(update_fields=["result", *CLAIM_FIELDS])
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
    )
    _GRAPHS[child.pk] = graph
    start = NodeRun.objects.create(
        run=child, node_id=graph.start_id, node_type="start", input=result.child.input, queued_at=finished_at
    )
    child_tx = Transition(child)
    child_tx.emit("run_started", data={"parent_run_id": run.pk, "parent_node_id": node_run.node_id})
    child_tx.finish()
    _enqueue_after_commit(child, graph, [start])
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
    tx.emit("child_run_started", node_run.node_id, {"child_run_id": child.pk})
    _settle(tx)


def _report_to_parent(run: Run) -> None:
    """A child run that ended tells its parent, after commit and in another transition (locks are taken
    parent-first everywhere else, so the parent is never locked while a child is)."""
    if run.parent_id is None:
        return
    from runs.tasks import report_child_run

    child_id = run.pk
    transaction.on_commit(lambda: _send(report_child_run, child_id))


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
            report = {**own.get("cognitive", {}), "output": child.output, "run_id": child.pk}
            fields = {**(child.output or {}), **own, "cognitive": report}
            node_resume(tx, node_id=node_run.node_id, fields=fields, handle=None)
            return
        error = f"the generated workflow (run {child.pk}) {child.status}: {child.error or 'no error given'}"
        node_fail_waiting(tx, node_id=node_run.node_id, error=error)


def node_fail_waiting(tx: Transition, *, node_id: str, error: str) -> None:
    """Fail a waiting node (an approval past its deadline, a cognitive node whose child run failed) and with
    it the run, inside the caller's transition."""
    node_run = NodeRun.objects.select_for_update().get(run=tx.run, node_id=node_id)
    _node_failed(tx, node_run, error=error, started_at=timezone.now())


# --- cancelling ----------------------------------------------------------------------------------------------


def run_cancel(*, run: Run, user: AbstractBaseUser | None = None) -> Run:
    """Stop a run: every node that has not finished is cancelled. A handler already executing is not
    interrupted, but what it returns is ignored and nothing after it starts."""
    with run_transition(run.pk) as tx:
        locked = tx.run
        if locked.status in FINAL_RUN_STATUSES:
            raise RunFinishedError(f"run {run.pk} already ended ({locked.status})")
        locked.status = RunStatus.CANCELLED
        locked.finished_at = timezone.now()
        tx.save_run("status", "finished_at")
        _close_open_work(tx)
        tx.emit("run_cancelled", data={"by": getattr(user, "username", None)})
        _run_ended(locked, RunStatus.CANCELLED)
    return locked


# --- retention ------------------------------------------------------------------------------------------------


def runs_purge(*, finished_before: Any, dry_run: bool = False) -> int:
    """Delete top-level runs that ended before `finished_before`, with everything recorded for them (child
    runs, ledger, events, approvals, tool calls). Returns how many top-level runs that was. The ledger refuses
    DELETE unless the transaction says it purges (runs migration 0006): this is the one place that does."""
    old = Run.objects.filter(parent__isnull=True, status__in=FINAL_RUN_STATUSES, finished_at__lt=finished_before)
    if dry_run:
        return old.count()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL flownova.ledger_purge = 'on'")
        ids = list(old.select_for_update(skip_locked=True).values_list("pk", flat=True))
        Run.objects.filter(pk__in=ids).delete()
    return len(ids)


# --- recovery -------------------------------------------------------------------------------------------------


def node_runs_recover(*, queued_for: float, running_for: float) -> int:
    """Dispatch again the nodes whose message was lost: queued for longer than `queued_for` seconds (a Redis
    restart drops queued messages), or running for longer than `running_for` seconds past their own time limit
    (the worker died without the message being redelivered). Safe at any time: node_begin lets exactly one
    message claim a node. Returns how many nodes were dispatched again."""
    now = timezone.now()
    stale_queued = NodeRun.objects.filter(status=NodeStatus.QUEUED, queued_at__lt=now - timedelta(seconds=queued_for))
    stale_running = NodeRun.objects.filter(status=NodeStatus.RUNNING)
    # Each candidate with the state it was found stale in; it is checked again under the run's lock, since it
    # may have moved on meanwhile (a queued node claimed by a worker is not stale).
    candidates = [
        (pk, run_id, NodeStatus.QUEUED, started)
        for pk, run_id, started in stale_queued.values_list("pk", "run_id", "started_at")[:1000]
    ]
    for pk, run_id, started_at, node_id in stale_running.values_list("pk", "run_id", "started_at", "node_id")[:1000]:
        limit = _time_limit(run_id, node_id) + running_for
        if started_at is not None and started_at < now - timedelta(seconds=limit):
            candidates.append((pk, run_id, NodeStatus.RUNNING, started_at))
    recovered = _recover_child_reports()
    for pk, run_id, status, started_at in candidates:
        try:
            recovered += _node_recover(pk, run_id, now, found=(status, started_at))
        except Exception:  # one run's problem must not stop the sweep for every other run
            logger.exception("could not recover node run %s of run %s", pk, run_id, extra={"run_id": run_id})
    return recovered


def _node_recover(pk: int, run_id: int, now: Any, *, found: tuple[str, Any]) -> int:
    """Dispatch one stale node again, or end it: returns 1 if it was dispatched again. `found` is the status
    and start time it was found stale with: a node that has changed since (a worker claimed it, or a later
    attempt started) is left alone."""
    with run_transition(run_id) as tx:
        node_run = NodeRun.objects.select_for_update().get(pk=pk)
        if node_run.status not in ACTIVE_NODE_STATUSES:
            return 0
        if tx.run.status in FINAL_RUN_STATUSES:  # left behind by a run that ended: it will never run
            _close_open_work(tx)
            return 0
        if (node_run.status, node_run.started_at) != found:
            return 0
        logger.warning(
            "recovering node %s of run %s (%s since %s)",
            node_run.node_id,
            run_id,
            node_run.status,
            node_run.started_at or node_run.queued_at,
        )
        if node_run.status == NodeStatus.RUNNING and _attempt_lost(tx, node_run, reason=LOST_STALLED):
            return 0  # that was its last attempt: it failed (or took its error edge)
        node_run.status = NodeStatus.QUEUED
        node_run.task_id = ""  # the lost message's id no longer owns the node
        node_run.queued_at = now
        node_run.save(update_fields=["status", "task_id", "queued_at"])
        _enqueue_after_commit(tx.run, run_graph(tx.run.pk), [node_run])
        return 1


def _recover_child_reports() -> int:
    """Parents still waiting for a child run that has ended (its report was lost): report again."""
    from runs.tasks import report_child_run

    ended = Run.objects.filter(parent__isnull=False, status__in=FINAL_RUN_STATUSES)
    waiting = NodeRun.objects.filter(status=NodeStatus.WAITING, node_type="cognitive")
    lost = list(
        ended.filter(parent__node_runs__in=waiting, parent__node_runs__node_id=F("parent_node_id"))
        .values_list("pk", flat=True)
        .distinct()[:1000]
    )
    for child_id in lost:
        report_child_run.delay(child_id)
    return len(lost)


def _time_limit(run_id: int, node_id: str) -> float:
    try:
        graph = run_graph(run_id)
    except GraphError:  # a snapshot this deployment can no longer read (a node type removed): the default
        return float(settings.FLOWNOVA_TASK_TIME_LIMIT)
    timeout = graph.node(node_id).data.get("timeout_seconds") if node_id in graph.nodes else None
    return float(timeout) + 10 if timeout else float(settings.FLOWNOVA_TASK_TIME_LIMIT)


# --- dispatch --------------------------------------------------------------------------------------------------


def _enqueue_after_commit(run: Run, graph: Graph, node_runs: list[NodeRun]) -> None:
    """Send one task per node once the transaction commits; several at once go out as one Celery group."""
    if not node_runs:
        return
    timeouts = [graph.node(row.node_id).data.get("timeout_seconds") for row in node_runs]
    run_id = run.pk
    # Ids read at commit: a transition's new rows get theirs when its deferred writes go out.
    transaction.on_commit(lambda: _dispatch(run_id, [(row.pk, t) for row, t in zip(node_runs, timeouts, strict=True)]))


def _dispatch(run_id: int, jobs: list[tuple[int, float | None]]) -> None:
    """Send the tasks. Called after commit: the nodes are queued in the database whatever happens here, so a
    broker that cannot be reached (after Celery's own publish retries) is logged, not raised, and the
    recovery sweep sends them once it can (FLOWNOVA_RECOVER_QUEUED_AFTER)."""
    from celery import group

    from runs.tasks import execute_node

    try:
        if len(jobs) == 1:  # the common case, without building a signature first
            node_run_id, timeout = jobs[0]
            execute_node.apply_async((run_id, node_run_id), **_limits(timeout))
            return
        signatures = [execute_node.si(run_id, node_run_id).set(**_limits(timeout)) for node_run_id, timeout in jobs]
        group(signatures).apply_async()
    except BROKER_ERRORS as exc:
        logger.error(
            "could not send %d node task(s) of run %s to the broker (%s: %s); the recovery sweep sends them later",
            len(jobs),
            run_id,
            type(exc).__name__,
            exc,
            extra={"run_id": run_id},
        )


def _send(task: Any, *args: Any) -> None:
    """Send a bookkeeping task after commit; a broker that cannot be reached is logged, not raised: what was
    committed stands. A lost child report is sent again by the recovery sweep; a child whose cancel was lost
    runs to its end, and its parent, which has ended, ignores its report."""
    try:
        task.delay(*args)
    except BROKER_ERRORS as exc:
        logger.error("could not send %s%s to the broker (%s: %s)", task.name, args, type(exc).__name__, exc)


def _limits(timeout: float | None) -> dict[str, float]:
    if not timeout:
        return {}
    # The soft limit raises inside the handler (a clean, recorded timeout); the hard one is the backstop.
    return {"soft_time_limit": float(timeout), "time_limit": float(timeout) + 10}
