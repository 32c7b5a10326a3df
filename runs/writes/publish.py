"""Publishing stored events to Channels groups, after commit, from one background event loop per process.

A worker does not pay for the Channels layer's round trips on the node's critical path, and the layer's Redis
connections are reused instead of being opened per call. Order within a process is kept; across processes,
consumers fill any gap from the stored events (see `runs.consumers`).

Events go only to groups somebody watches (`flownova.reliances.watched_groups`, decision record 0005):
channels_redis's group_send costs two round trips per group even when the group is empty, as it is most of
the time. Skipping an empty group loses nothing: a client joins its group before it replays the stored
events, and these are stored before they are published, so one that joins just after the check gets them
from the replay, exactly as if it had joined just after group_send's own look-up.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from django.conf import settings

from flownova import reliances
from runs.events import APPROVAL_EVENTS, APPROVALS_GROUP, CONSUMER_MESSAGE_TYPE, run_group, workflow_group

if TYPE_CHECKING:
    from channels.layers import BaseChannelLayer

logger = logging.getLogger(__name__)


Item = tuple[list[dict[str, Any]], int | None, Future[None] | None]


class Publisher:
    """Sends batches of stored events to Channels groups from a background event loop, in submission order.

    A submission only appends to a list; the loop is woken by the first one after it last took the list, and
    waits `settings.FLOWNOVA_EVENTS_GATHER_MS` before taking it, so that the transitions committed meanwhile go
    out together. Waking the loop and asking Redis who watches cost about a millisecond of the process's CPU
    each time: when a worker continues a chain, that was paid at every node and slowed the nodes themselves."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._pending: list[Item] = []  # guarded by _lock
        self._woken = False  # a wake-up was sent and the loop has not taken the list yet; guarded by _lock

    def _ensure_started(self) -> asyncio.AbstractEventLoop:
        # After a fork (Celery's prefork pool) the parent's thread does not exist in the child: start anew.
        if self._pid == os.getpid() and self._loop is not None:
            return self._loop
        with self._lock:
            if self._pid != os.getpid() or self._loop is None:
                self._pending, self._woken = [], False  # the parent's, which it sends itself
                loop = asyncio.new_event_loop()
                ready = threading.Event()
                thread = threading.Thread(target=self._run, args=(loop, ready), name="flownova-events", daemon=True)
                thread.start()
                ready.wait()
                self._loop, self._pid = loop, os.getpid()
        return self._loop

    def _run(self, loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        self._wake = asyncio.Event()
        loop.create_task(self._drain())
        loop.call_soon(ready.set)
        loop.run_forever()

    async def _drain(self) -> None:
        from channels.layers import get_channel_layer

        assert self._wake is not None
        gather = settings.FLOWNOVA_EVENTS_GATHER_MS / 1000
        while True:
            await self._wake.wait()
            self._wake.clear()
            if gather > 0:
                await asyncio.sleep(gather)
            with self._lock:
                items, self._pending, self._woken = self._pending, [], False
            layer = get_channel_layer()
            for start in range(0, len(items), MAX_BATCH):
                batch = items[start : start + MAX_BATCH]
                if layer is None:
                    logger.error("no channel layer (CHANNEL_LAYERS): %d transitions' events not sent", len(batch))
                else:
                    await _send(layer, _by_group(batch))
                for _, _, done in batch:
                    if done is not None:
                        done.set_result(None)

    def publish(self, messages: list[dict[str, Any]], *, workflow_id: int | None) -> None:
        """Queue stored events of one run for sending. Call only after the transaction that stored them
        committed."""
        self._submit(messages, workflow_id, None)

    def flush(self, timeout: float = 5.0) -> None:
        """Wait until everything queued so far has been sent (process shutdown, tests)."""
        if self._loop is None or self._pid != os.getpid():
            return
        done: Future[None] = Future()
        self._submit([], None, done)
        done.result(timeout=timeout)

    def _submit(self, messages: list[dict[str, Any]], workflow_id: int | None, done: Future[None] | None) -> None:
        loop = self._ensure_started()
        with self._lock:
            self._pending.append((messages, workflow_id, done))
            if self._woken:
                return  # the loop has yet to take the list: this goes with it
            self._woken = True
        wake = self._wake
        assert wake is not None  # the loop's thread makes it before _ensure_started returns
        loop.call_soon_threadsafe(wake.set)


publisher = Publisher()

# Transitions whose events one check of the watched groups and one group_send per group may carry at most.
MAX_BATCH = 100


async def _send(layer: BaseChannelLayer, groups: dict[str, list[dict[str, Any]]]) -> None:
    try:
        watched = await reliances.watched_groups(layer, list(groups))
    except Exception:
        logger.exception("checking who watches %d groups failed; sending to all", len(groups))
        watched = list(groups)
    for group in watched:
        events = groups[group]
        try:
            await layer.group_send(group, {"type": CONSUMER_MESSAGE_TYPE, "events": events})
        except Exception:
            logger.exception("publishing %d run events to %s failed", len(events), group)


def _by_group(batch: list[Item]) -> dict[str, list[dict[str, Any]]]:
    """Each group's events, in submission order: a run's events stay in seq order in every group."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for messages, workflow_id, _ in batch:
        if not messages:
            continue
        first = messages[0]
        targets = [run_group(int(first["run_id"]))]
        if first.get("parent_run_id"):
            targets.append(run_group(int(first["parent_run_id"])))
        if workflow_id is not None:
            targets.append(workflow_group(workflow_id))
        for group in targets:
            groups.setdefault(group, []).extend(messages)
        approvals = [message for message in messages if message["type"] in APPROVAL_EVENTS]
        if approvals:
            groups.setdefault(APPROVALS_GROUP, []).extend(approvals)
    return groups
