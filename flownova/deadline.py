"""A node's deadline, which every call that waits on the network honours; and the pooled database connection such
a call gives back before it waits.

Celery's soft time limit interrupts a handler with a signal, which only the prefork pool sends: the thread pool of
the I/O worker cannot interrupt a thread. So each node execution sets its deadline here (`node_deadline`, from
runs/execution.py), and the calls a handler waits in, the LLM client (runs/llm.py) and the egress client
(tools/egress.py), bound each wait by what remains (`bounded`) and raise `DeadlineExceeded` once it has passed.
`DeadlineExceeded` is a `SoftTimeLimitExceeded`, so the node ends with the same recorded timeout, in bounded time,
on any pool. Deadlines are context variables: each thread (and each asyncio task) has its own.

A thread of the I/O worker spends most of a node waiting for an answer. With a pool of connections
(FLOWNOVA_DB_POOL_SIZE) it must not hold one meanwhile, or a few hundred threads would need as many PostgreSQL
connections: `release_connection` gives the thread's connection back before the wait, and the next query takes
one again.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from celery.exceptions import SoftTimeLimitExceeded
from django.db import connection

_DEADLINE: ContextVar[float | None] = ContextVar("flownova_node_deadline", default=None)


class DeadlineExceeded(SoftTimeLimitExceeded):
    """The node's time limit passed while it waited on a call."""


@contextmanager
def node_deadline(seconds: float | None) -> Iterator[None]:
    """Calls made inside end by `seconds` from now (None or 0: no deadline). A deadline already set further out
    is narrowed, never widened."""
    if not seconds:
        yield
        return
    deadline = time.monotonic() + float(seconds)
    current = _DEADLINE.get()
    token = _DEADLINE.set(deadline if current is None else min(current, deadline))
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def remaining() -> float | None:
    """Seconds left before the deadline (negative once past), or None when there is none."""
    deadline = _DEADLINE.get()
    return None if deadline is None else deadline - time.monotonic()


def passed() -> bool:
    left = remaining()
    return left is not None and left <= 0


def check() -> None:
    """Raise DeadlineExceeded if the deadline has passed."""
    if passed():
        raise DeadlineExceeded("the node's time limit passed")


def bounded(timeout: float, *, whole: bool = False) -> float:
    """`timeout` cut to what remains before the deadline; DeadlineExceeded when nothing remains. With `whole`,
    the remainder is rounded up to whole seconds, for a client that keeps one connection pool per timeout value
    (LiteLLM): a call may then outlive the deadline by less than a second."""
    left = remaining()
    if left is None:
        return timeout
    if left <= 0:
        raise DeadlineExceeded("the node's time limit passed")
    return min(timeout, float(math.ceil(left)) if whole else left)


def release_connection() -> None:
    """Give this thread's database connection back to its pool before a wait on the network. Does nothing without
    a pool (a process keeps its one connection), inside a transaction, or with no connection open."""
    if not connection.settings_dict["OPTIONS"].get("pool"):
        return
    if connection.connection is None or connection.in_atomic_block:
        return
    connection.close()
