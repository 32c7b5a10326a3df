"""Starting runs: a new run of a workflow, and a run resumed from a node of an earlier one (replay)."""

from __future__ import annotations

import copy
import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from flownova import metrics
from nodes import get_node_type, node_specs
from runs.engine import core
from runs.errors import ResumeInputConflict, RunInputError
from runs.events import Event, NodeReused, NodeSkipped, RunResumed, RunStarted
from runs.ledger import ledger_append
from runs.models import (
    TRIGGERS_WITH_ID,
    LedgerStatus,
    NodeRun,
    NodeStatus,
    Run,
    RunTrigger,
)
from runs.ratelimit import check_run_start
from runs.services.base import input_errors, remember_graph, run_input
from runs.services.dispatch import enqueue_after_commit
from runs.writes import Transition
from workflows.graph import Graph, GraphError, parse_graph
from workflows.models import Workflow

logger = logging.getLogger(__name__)

# --- starting ----------------------------------------------------------------------------------------------


def run_start(
    *,
    workflow: Workflow,
    input: Any,
    user: User,
    source_run: Run | None = None,
    snapshot: Run | None = None,
    trigger: dict[str, Any] | None = None,
    user_rate_limit: bool = True,
    events: Sequence[Event] = (),
) -> Run:
    """Start a run of the workflow's current graph with `input` (checked against the start node's schema), or,
    with `snapshot`, of the graph version that run executed (a re-run of the same version).

    `trigger` says how it started (`Run.trigger`): `{"type": <RunTrigger value>}`, plus `"id"` (an int, the
    trigger's) for a webhook or a schedule; a type that is not a RunTrigger, or a webhook or schedule without
    an id, is a programming error (ValueError). None means `{"type": "rerun"}` for a re-run (`snapshot` or
    `source_run` given), else `{"type": "api"}`. `events` are the caller's, recorded right after
    `run_started` in the same transition (a trigger's `trigger_fired`).

    Counts against `user`'s run-start rate limit first: past it, RunRateLimited and nothing starts. Only a
    caller that limits its starts some other way passes `user_rate_limit=False`: a webhook (a rate limit per
    trigger) or a schedule (at most one start per period). Those starts are then not counted against the
    owner's limit either."""
    trigger = _trigger_checked(trigger, rerun=snapshot is not None or source_run is not None)
    if user_rate_limit:
        check_run_start(user)
    graph, document = _graph_to_run(workflow, snapshot)
    errors = input_errors(graph, input)
    if errors:
        raise RunInputError(errors)
    # No savepoint inside a caller's transaction (two round trips saved): what fails here fails the caller's.
    with transaction.atomic(savepoint=False):
        run = _run_create(
            workflow=workflow,
            document=document,
            graph=graph,
            input=input,
            user=user,
            source_run=source_run,
            version=snapshot.workflow_version if snapshot else workflow.version,
            trigger=trigger,
        )
        start = NodeRun(run=run, node_id=graph.start_id, node_type="start", input=input, queued_at=timezone.now())
        tx = Transition(run)
        tx.insert([start])
        tx.emit(RunStarted(workflow_id=workflow.pk, version=run.workflow_version, trigger=trigger))
        for event in events:
            tx.emit(event)
        tx.finish()
        enqueue_after_commit(run, graph, [start])
    return run


def _trigger_checked(trigger: dict[str, Any] | None, *, rerun: bool) -> dict[str, Any]:
    """`run_start`'s trigger, checked, as a dict of its own (the caller's is not kept)."""
    if trigger is None:
        return {"type": (RunTrigger.RERUN if rerun else RunTrigger.API).value}
    kind = trigger.get("type")
    if kind not in RunTrigger.values:
        raise ValueError(f"trigger type must be one of {', '.join(RunTrigger.values)}, not {kind!r}")
    checked = {**trigger, "type": RunTrigger(kind).value}
    if kind in TRIGGERS_WITH_ID:
        trigger_id = trigger.get("id")
        if not isinstance(trigger_id, int) or isinstance(trigger_id, bool):
            raise ValueError(f"a {kind} trigger needs its id (an int), not {trigger_id!r}")
    return checked


def _graph_to_run(workflow: Workflow, snapshot: Run | None) -> tuple[Graph, dict[str, Any]]:
    try:
        if snapshot is None:
            return _current_graph(workflow)
        return parse_graph(snapshot.graph, node_specs(), recorded=True), snapshot.graph
    except GraphError as exc:
        raise RunInputError([f"the workflow is not valid: {issue.message}" for issue in exc.issues]) from exc


# Parsed graphs of saved workflows, by (workflow id, version): every save bumps the version, so an entry never
# goes stale. Starting runs of the same workflow (a webhook, a schedule, an API client) read and parse its
# graph once per process instead of at every start (two queries and a parse).
_CURRENT_GRAPHS: OrderedDict[tuple[int, int], tuple[Graph, dict[str, Any]]] = OrderedDict()
_CURRENT_GRAPHS_SIZE = 256
_CURRENT_GRAPHS_LOCK = threading.Lock()  # the I/O worker's threads and the web's share it


def _current_graph(workflow: Workflow) -> tuple[Graph, dict[str, Any]]:
    """The workflow's graph as saved at `workflow.version`, parsed (GraphError if it is not valid), and a copy
    of its document for the new run to keep."""
    key = (workflow.pk, workflow.version)
    with _CURRENT_GRAPHS_LOCK:
        cached = _CURRENT_GRAPHS.get(key)
        if cached is not None:
            _CURRENT_GRAPHS.move_to_end(key)
    if cached is None:
        document = workflow.graph_document()
        cached = (parse_graph(document, node_specs()), document)
        # Kept only when no save came between reading the version and reading the nodes: the entry must be the
        # graph of exactly that version.
        if Workflow.objects.filter(pk=workflow.pk, version=workflow.version).exists():
            with _CURRENT_GRAPHS_LOCK:
                _CURRENT_GRAPHS[key] = cached
                if len(_CURRENT_GRAPHS) > _CURRENT_GRAPHS_SIZE:
                    _CURRENT_GRAPHS.popitem(last=False)
    return cached[0], copy.deepcopy(cached[1])


def _run_create(
    *,
    workflow: Workflow,
    document: dict[str, Any],
    graph: Graph,
    input: Any,
    user: User,
    source_run: Run | None,
    version: int,
    trigger: dict[str, Any],
) -> Run:
    run = Run.objects.create(
        workflow=workflow,
        workflow_name=workflow.name,
        workflow_version=version,
        graph=document,
        project_id=workflow.project_id,
        owner=user,
        input=input,
        source_run=source_run,
        trigger=trigger,
    )
    remember_graph(run.pk, graph)
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
    user: User,
    current_version: bool = False,
    input: dict[str, Any] | None = None,
    reexecute: frozenset[str] = frozenset(),
) -> Resumed:
    """A new run that reuses what `source` recorded for every node that finished before `node_id` (no LLM or
    tool call is repeated for them: their ledger entries are copied, marked `reused`) and executes from
    `node_id` on, with `input` for that node if given. `current_version` runs the workflow as it is now (to
    resume from a failed node after fixing it); `reexecute` names earlier nodes to run again instead. The run's
    trigger is `{"type": "resume"}`. Counts against `user`'s run-start rate limit first: past it,
    RunRateLimited and nothing starts."""
    check_run_start(user)
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
    if input is not None and (feeding := core.feeding(graph, node_id, frozenset(reexecute))):
        raise ResumeInputConflict(
            [
                f'input for "{node_id}" cannot be given while re-executing {", ".join(feeding)}, which feed it: '
                "the node gets their new output"
            ]
        )
    states = {node: (row.status, row.node_type, row.handle) for node, row in recorded.items()}
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
            trigger={"type": RunTrigger.RESUME.value},
        )
        tx = Transition(run)
        tx.emit(RunResumed(workflow_id=workflow.pk, resumed_from=source.pk, resumed_at=node_id, trigger=run.trigger))
        _replay_reused(
            tx, graph, [recorded[node] for node in reused], source=source, resume_at=node_id, resume_input=input
        )
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
    states = {node: (row[0], row[1], row[2]) for node, row in rows.items()}
    unreachable = set()
    for node_id in graph.nodes:
        reused = core.reusable(graph, node_id, states)
        if core.skipped_on_replay(graph, node_id, [(node, rows[node][2] or None) for node in reused]):
            unreachable.add(node_id)
    return unreachable


def run_resume_reused(*, source: Run, graph: Graph, node_id: str) -> list[str]:
    """The nodes `run_resume` would reuse from `source` when resuming it at `node_id` on `graph`, in order,
    before anything is started (resume pages show them)."""
    rows = source.node_runs.values_list("node_id", "status", "node_type", "handle")
    states = {node: (status, node_type, handle) for node, status, node_type, handle in rows}
    return core.reusable(graph, node_id, states)


def _replay_reused(
    tx: Transition,
    graph: Graph,
    reused: list[NodeRun],
    *,
    source: Run,
    resume_at: str,
    resume_input: dict[str, Any] | None,
) -> None:
    """Copy the reused nodes' records into the new run, then let the core resolve their edges exactly as if
    they had just finished, and queue whatever that makes ready (the resume node among them). A node that
    failed and took its error path is reused as it was recorded: failed, with its error, on its error path."""
    run = tx.run
    now = timezone.now()
    known: dict[str, dict[str, str]] = {}
    outputs: dict[str, dict[str, Any]] = {}
    ready: list[str] = []
    skipped: set[str] = set()
    rows: list[NodeRun] = []
    for source_row in reused:
        row = NodeRun(
            run=run,
            node_id=source_row.node_id,
            node_type=source_row.node_type,
            status=source_row.status,
            input=source_row.input,
            result=source_row.result,
            output=source_row.output,
            handle=source_row.handle,
            error=source_row.error,
            arrivals=source_row.arrivals,
            attempts=0,
            queued_at=now,
            started_at=now,
            finished_at=now,
        )
        rows.append(row)
        ledger_append(
            tx=tx,
            node_run=row,
            status=LedgerStatus.FAILED if row.status == NodeStatus.FAILED else LedgerStatus.SUCCEEDED,
            input=row.input,
            output=row.output,
            error=row.error,
            started_at=source_row.started_at,
            finished_at=source_row.finished_at,
            reused=True,
        )
        tx.emit(NodeReused(node_id=row.node_id, handle=row.handle or None, result=row.result))
        outputs[row.node_id] = row.output or {}
        if get_node_type(row.node_type).ends_run:
            run.output = Run.objects.values_list("output", flat=True).get(pk=source.pk)
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
            NodeRun(
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
        rows.append(
            NodeRun(run=run, node_id=node, node_type=graph.node(node).type, status=NodeStatus.SKIPPED, finished_at=now)
        )
        tx.emit(NodeSkipped(node_id=node))
    for node, arrivals in known.items():
        if node not in outputs and node not in ready and node not in skipped:
            node_type = graph.node(node).type
            rows.append(
                NodeRun(run=run, node_id=node, node_type=node_type, status=NodeStatus.PENDING, arrivals=arrivals)
            )
    tx.insert([*rows, *queued], match="node_id")
    enqueue_after_commit(run, graph, queued)
