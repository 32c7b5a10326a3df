"""Chained transitions: the control-flow nodes a process continues commit one after another, each node's COMMIT
sent with the next node's locks in one round trip.

A process that continues a run (runs.services.continuation) begins the nodes a transition queued once it has
committed. Each such node was a transaction of two round trips: its locks (with the BEGIN), then its writes
with the COMMIT. Inside `chained(run_id)`, a transition that queued nodes this process will begin sends
`writes; COMMIT; BEGIN; the next nodes' locks` instead, and the next transition starts from the rows those
locks read: one round trip a node. Durability is unchanged: each node's writes are committed before the next
node's handler runs, and what the locks read is read after they are held, as in a transition of its own.

Django sees one atomic block around the chain; the transactions inside it are begun and committed on the
server, and each transition's on-commit hooks (the next nodes handed over, events published, tasks sent) run
once its own COMMIT is done (`flownova.reliances.run_commit_hooks`, a reliance on Django's pending hooks).
When that reliance does not apply, or a transaction is already open, `chained` does nothing and each node is a
transaction of its own, as before.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from django.db import connection, transaction

from flownova import reliances


@dataclass(frozen=True)
class Prelocked:
    """What the locks sent with the last commit read, for the transition that begins the nodes they lock."""

    run_id: int
    node_fields: tuple[str, ...]
    lock_pending: bool
    locked: Any  # runs.writes.transition.Locked


@dataclass
class Chain:
    run_id: int
    depth: int = 0  # transitions of the chain open now: one nested in another is not chained
    prelocked: Prelocked | None = None

    def take(self, run_id: int, node_fields: tuple[str, ...], lock_pending: bool) -> Prelocked | None:
        """The locks taken for a transition of `run_id` that reads `node_fields` (and the pending rows), if the
        last commit took them; they are the caller's to use once."""
        prelocked, self.prelocked = self.prelocked, None
        if prelocked is None or (prelocked.run_id, prelocked.node_fields, prelocked.lock_pending) != (
            run_id,
            node_fields,
            lock_pending,
        ):
            return None
        return prelocked


_current: ContextVar[Chain | None] = ContextVar("flownova_chain", default=None)


@contextmanager
def chained(run_id: int) -> Iterator[None]:
    """Chain the transitions of `run_id` made in the block (see the module's docstring). Nothing happens when a
    transaction is open already or the reliance on Django's hooks does not apply. An error rolls back only the
    transaction open when it happened: the ones before it were committed, and their hooks have run."""
    if connection.in_atomic_block or _current.get() is not None or not reliances.DJANGO_COMMIT_HOOKS.applies():
        yield
        return
    token = _current.set(Chain(run_id))
    try:
        with transaction.atomic():
            yield
    finally:
        _current.reset(token)


def link(run_id: int) -> Chain | None:
    """The chain a transition of `run_id` opened now belongs to, if any: the current chain, when it is that
    run's and no transition of it is open."""
    chain = _current.get()
    if chain is None or chain.run_id != run_id or chain.depth or not connection.in_atomic_block:
        return None
    return chain
