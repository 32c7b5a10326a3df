"""Continuing a run in the process that advanced it.

A transition that queues instant nodes (control flow: start, if/else, switch, fork, join, end, an approval's
request) would send each one through the broker, to be picked up by a worker and begun in a transaction of
its own: for such a node that trip costs more than executing it. Inside `continuing(run_id, task_id)` (a node
task, or the request that decided an approval) the process takes those nodes on instead: once the transition
that queued them has committed, it begins them itself, every node it took from one transition together in
one transition of their own (the hundred branches of a fork, and their arrivals at the join, in one
transaction), then the nodes those queued, and so on. Nothing changes in what is durable: every node's state
and ledger entry are committed before any of its successors begins, and a node is begun under the run's lock
exactly as a task would begin it.

Bounds: a process continues for at most FLOWNOVA_CONTINUE_MS milliseconds and FLOWNOVA_CONTINUE_NODES nodes,
so one long run does not hold a worker process while other runs wait; past that, nodes go through the broker
as before. Nodes that are not instant (they may block: an LLM call, an HTTP tool) always do.

If the process dies between the commit and the nodes' beginning, they are left queued with no message. The
rows it took say so (`task_id` is CONTINUED_PREFIX + the id of the task that took them), and the recovery
sweep dispatches them once they have stayed queued for FLOWNOVA_RECOVER_CONTINUED_AFTER seconds.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction

from nodes import get_node_type
from runs.models import NodeRun
from runs.services.base import BEGIN_FIELDS, has_merges, run_graph
from runs.writes import Transition

CONTINUED_PREFIX = "continued:"


@dataclass
class Continuation:
    """What the current task (or request) continues: one run, within a budget."""

    run_id: int
    marker: str  # written as the task_id of the nodes it takes
    seconds: float  # the budget of time, counted from the first node taken
    nodes_left: int
    deadline: float | None = None  # time.monotonic(), set when the first node is taken
    ready: list[int] = field(default_factory=list)  # node run ids, committed queued, to begin here
    ending: bool = False  # whether one of them ends the run (its transition then reads what is unfinished)

    def take_ready(self) -> tuple[list[int], bool]:
        """The nodes to begin now, and whether one of them ends the run."""
        ready, ending, self.ready, self.ending = self.ready, self.ending, [], False
        return ready, ending


_current: ContextVar[Continuation | None] = ContextVar("flownova_continuation", default=None)


@contextmanager
def taking_on(run_id: int, task_id: str) -> Iterator[Continuation | None]:
    """While the block runs, transitions of `run_id` hand the instant nodes they queue to the Continuation
    yielded (None when continuing is turned off); the caller begins them (runs.services.execute.continuing)."""
    if settings.FLOWNOVA_CONTINUE_MS <= 0 or settings.FLOWNOVA_CONTINUE_NODES <= 0:
        yield None
        return
    budget = Continuation(
        run_id=run_id,
        marker=f"{CONTINUED_PREFIX}{task_id}"[:255],
        seconds=settings.FLOWNOVA_CONTINUE_MS / 1000,
        nodes_left=settings.FLOWNOVA_CONTINUE_NODES,
    )
    token = _current.set(budget)
    try:
        yield budget
    finally:
        _current.reset(token)


def take(tx: Transition, queued: list[NodeRun]) -> list[NodeRun]:
    """Called by `advance` inside its transition, before the queued rows are written: the instant ones this
    process will begin itself once the transaction commits (marked as taken), within the budget. The caller
    sends the others through the broker. In a chain (runs.writes.chain), their locks go out with the commit."""
    run = tx.run
    budget = _current.get()
    if budget is None or run.pk != budget.run_id or not queued or budget.nodes_left <= 0:
        return []
    now = time.monotonic()
    if budget.deadline is None:  # counted from here: the node the task was sent for may take any time
        budget.deadline = now + budget.seconds
    elif now >= budget.deadline:
        return []
    taken = [row for row in queued if get_node_type(row.node_type).instant][: budget.nodes_left]
    if not taken:
        return []
    budget.nodes_left -= len(taken)
    for row in taken:
        row.task_id = budget.marker
    ending = any(get_node_type(row.node_type).ends_run for row in taken)
    # As `instant_nodes_begin` will lock them.
    tx.lock_next([row.node_id for row in taken], BEGIN_FIELDS, ending or has_merges(run_graph(run.pk)))

    def hand_over() -> None:  # ids are known once the transition's writes have gone out
        budget.ready.extend(row.pk for row in taken)
        budget.ending = budget.ending or ending

    transaction.on_commit(hand_over)  # a transaction that rolls back hands over nothing
    return taken
