"""Every place FlowNova relies on a library's private internals, in one module.

Each reliance buys speed or robustness that the library's public API does not offer; the decision record
(docs/decisions/0006-private-library-internals.md) says why each exists and what it costs. Each applies only
to the library versions it was checked against: with another version installed, FlowNova runs without it
(still correct, a little slower or less robust), logs a warning at start, and tests/test_reliances.py fails
until someone checks the new version and adds it to `checked`.

Nothing here imports an app: the engine, the event publisher and the Celery app call into it.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import Any

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reliance:
    name: str
    distribution: str  # whose installed version is checked
    checked: frozenset[str]  # "major.minor" versions it was checked against
    what: str

    def version(self) -> str:
        return ".".join(metadata.version(self.distribution).split(".")[:2])

    def applies(self) -> bool:
        return _applies(self)


DJANGO_CLOSE_AT = Reliance(
    "Django's connection.close_at",
    "django",
    frozenset({"5.2"}),
    "a connection whose prepared statement a migration invalidated is marked obsolete, so Django replaces it "
    "before the next task instead of failing every node on it",
)
CHANNELS_REDIS_GROUPS = Reliance(
    "channels-redis group keys",
    "channels-redis",
    frozenset({"4.3"}),
    "the Redis keys of channel groups are read to skip group_send to groups nobody watches",
)
KOMBU_DETACHED_CHANNEL = Reliance(
    "kombu's Redis channel connection parameters",
    "kombu",
    frozenset({"5.7"}),
    "a Redis channel whose transport was detached raises a connection error instead of stopping the worker",
)
DJANGO_COMMIT_HOOKS = Reliance(
    "Django's pending on-commit hooks",
    "django",
    frozenset({"5.2"}),
    "control-flow nodes continued in one process commit each on the server inside one atomic block, with the "
    "next node's lock in the same round trip, and each node's on-commit hooks run once its own COMMIT is done",
)
RELIANCES = (
    DJANGO_CLOSE_AT,
    CHANNELS_REDIS_GROUPS,
    KOMBU_DETACHED_CHANNEL,
    DJANGO_COMMIT_HOOKS,
)


@functools.cache
def _applies(reliance: Reliance) -> bool:
    try:
        return reliance.version() in reliance.checked
    except metadata.PackageNotFoundError:
        return False


def unchecked() -> list[str]:
    """What applies to none of the installed versions, as sentences naming the reliance and the version."""
    problems = []
    for reliance in RELIANCES:
        if not reliance.applies():
            try:
                found = reliance.version()
            except metadata.PackageNotFoundError:
                found = "not installed"
            checked = ", ".join(sorted(reliance.checked))
            problems.append(
                f"{reliance.name}: {reliance.distribution} {found} is not a version it was checked against "
                f"({checked}); FlowNova runs without it ({reliance.what})"
            )
    return problems


def activate() -> None:
    """At start (the runs app's ready()): apply what is applied once, and say what does not apply."""
    for problem in unchecked():
        logger.warning("private library internals: %s", problem)


def run_commit_hooks(connection: Any) -> None:
    """Run, and clear, the on-commit hooks registered so far in the current atomic block, as Django does when
    the block commits (robust hooks' errors are logged; another hook's error stops the rest and is raised).
    The caller has committed on the server itself (runs.writes.transition, chained transitions); Django's own
    method refuses to run inside an atomic block."""
    hooks, connection.run_on_commit = connection.run_on_commit, []
    for _, func, robust in hooks:
        if not robust:
            func()
            continue
        try:
            func()
        except Exception:
            logger.exception("on-commit hook %s failed", getattr(func, "__qualname__", func))


def mark_connection_obsolete(connection: Any) -> None:
    """Have Django close `connection` before its next request or task (it cannot be closed inside the
    transaction that found it unusable)."""
    if DJANGO_CLOSE_AT.applies():
        connection.close_at = time.monotonic()


async def watched_groups(layer: Any, groups: Sequence[str]) -> list[str]:
    """The groups that have members, asked with one pipelined Redis round trip per Redis host; every group
    when the layer is not the channels-redis this was checked against (the in-memory layer, another version)."""
    if not CHANNELS_REDIS_GROUPS.applies() or not all(
        hasattr(layer, name) for name in ("_group_key", "consistent_hash", "connection")
    ):
        return list(groups)
    by_host: dict[int, list[str]] = {}
    for group in groups:
        by_host.setdefault(layer.consistent_hash(group), []).append(group)
    watched: set[str] = set()
    for index, names in by_host.items():
        pipe = layer.connection(index).pipeline(transaction=False)
        for name in names:
            pipe.zcard(layer._group_key(name))
        members = await pipe.execute()
        watched.update(name for name, count in zip(names, members, strict=True) if count)
    return [group for group in groups if group in watched]  # in the order given


def guard_detached_redis_channels() -> bool:
    """Make a Redis channel whose connection was already torn down fail with a connection error, which the
    worker expects and recovers from, instead of an AttributeError, which stops its main process.

    When the worker loses Redis, Celery collects the broker connection and then closes it. Collecting stops at
    the first channel whose close fails (the remote-control channel deletes its queue, and Redis is gone),
    which can leave the task channel open with unacknowledged messages, and it detaches the transport from its
    connection. Closing that channel then restores the messages through a new pool, built from the detached
    connection's address: AttributeError("'NoneType' object has no attribute 'hostname'"), an "Unrecoverable
    error", and the worker exits. Redis is down at that point, so the restore could not succeed anyway; the
    messages stay in Redis's unacked set for redelivery, and the recovery sweep re-sends lost node tasks.
    Returns whether the guard is in place."""
    if not KOMBU_DETACHED_CHANNEL.applies():
        return False
    import redis
    from kombu.transport import redis as kombu_redis

    # kombu-stubs leave out the private _connparams; it takes `asynchronous` and returns redis' connection kwargs.
    original: Callable[..., dict[str, Any]] = kombu_redis.Channel._connparams  # type: ignore[attr-defined]
    if original in _CONNPARAMS_GUARDS:
        return True

    @functools.wraps(original)
    def connparams(self: Any, asynchronous: bool = False) -> dict[str, Any]:
        if self.connection is None or self.connection.client is None:
            raise redis.ConnectionError("the broker connection of this channel was closed")
        return original(self, asynchronous=asynchronous)

    _CONNPARAMS_GUARDS.add(connparams)
    kombu_redis.Channel._connparams = connparams  # type: ignore[attr-defined]
    return True


_CONNPARAMS_GUARDS: set[Callable[..., dict[str, Any]]] = set()  # guard_detached_redis_channels' wrappers
