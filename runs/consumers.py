"""WebSocket consumers: authenticate, authorize the owner, join the group, replay what was missed, forward.

A client that connects late, or reconnects with `?after=<seq>`, first receives the stored events after that
seq, in order, then live ones; an event that arrives live while the backlog is being sent is not sent twice.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from flownova import metrics
from runs.events import run_group, workflow_group
from runs.models import Run, RunEvent
from workflows.models import Workflow

# Close codes in the application range (4000-4999), so clients can tell why.
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN_OR_MISSING = 4404
REPLAY_BATCH = 500


def after_seq(query_string: bytes) -> int:
    """The `?after=` of a connection's query string (0 when missing or not a number)."""
    raw = parse_qs(query_string.decode("latin1")).get("after", ["0"])[0]
    try:
        return max(0, int(raw))
    except ValueError:
        return 0


@database_sync_to_async
def stored_events(
    run_id: int, *, after: int, before: int | None = None, limit: int | None = None
) -> list[dict[str, Any]]:
    events = RunEvent.objects.filter(run_id=run_id, seq__gt=after).order_by("seq")
    if before is not None:
        events = events.filter(seq__lt=before)
    if limit is not None:
        events = events[:limit]
    return [event.as_message() for event in events]


@database_sync_to_async
def child_runs(run_id: int) -> list[tuple[int, str]]:
    return list(Run.objects.filter(parent_id=run_id).order_by("pk").values_list("pk", "parent_node_id"))


class EventStreamConsumer(AsyncJsonWebsocketConsumer):
    """Shared behaviour of the run and workflow streams. Subclasses name the group and the authorization."""

    groups_joined: list[str]

    async def connect(self) -> None:
        self.groups_joined = []
        # Highest seq already sent, per run: live events at or below it were part of the replay.
        self.sent_seq: dict[int, int] = {}
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        group = await self.authorize(user)
        if group is None:
            await self.close(code=CLOSE_FORBIDDEN_OR_MISSING)
            return
        await self.channel_layer.group_add(group, self.channel_name)
        self.groups_joined.append(group)
        await self.accept()
        metrics.WEBSOCKETS.inc()
        await self.replay()

    async def disconnect(self, code: int) -> None:
        if self.groups_joined:  # it was accepted
            metrics.WEBSOCKETS.dec()
        for group in self.groups_joined:
            await self.channel_layer.group_discard(group, self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        """The streams are one-way; anything a client sends is ignored."""

    async def authorize(self, user: Any) -> str | None:
        raise NotImplementedError

    async def replay(self) -> None:
        """Send stored events the client has not seen. The workflow stream has nothing to replay."""

    async def send_event(self, message: dict[str, Any]) -> None:
        """Send each event of a run once and in seq order. Events are published after their transaction
        commits, from whichever process made the change, so one may overtake another: on a gap, the missing
        events (committed already, since the later one's transaction waited for their lock) are read back.
        An event of no run (a trigger that fired without starting one) is sent as it comes."""
        if message.get("run_id") is None:
            await self.send_json(message)
            return
        run_id = int(message["run_id"])
        seq = int(message["seq"])
        last = self.sent_seq.get(run_id)
        if last is not None and seq <= last:
            return
        if last is not None and seq > last + 1:
            link = {key: message[key] for key in ("parent_run_id", "parent_node_id") if key in message}
            for missing in await stored_events(run_id, after=last, before=seq):
                await self.send_json({**missing, **link})
        self.sent_seq[run_id] = seq
        await self.send_json(message)

    async def run_events(self, payload: dict[str, Any]) -> None:
        for event in payload["events"]:
            await self.send_event(event)


class RunConsumer(EventStreamConsumer):
    async def authorize(self, user: Any) -> str | None:
        self.run_id = int(self.scope["url_route"]["kwargs"]["run_id"])
        exists = await database_sync_to_async(Run.objects.visible_to(user).filter(pk=self.run_id).exists)()
        return run_group(self.run_id) if exists else None

    async def replay(self) -> None:
        """The run's stored events after ?after=, then those of its child runs (cognitive nodes' generated
        workflows), each child's in its own order and marked with the parent node."""
        await self.replay_run(self.run_id, after_seq(self.scope.get("query_string", b"")))
        for child_id, parent_node_id in await child_runs(self.run_id):
            await self.replay_run(child_id, 0, link={"parent_run_id": self.run_id, "parent_node_id": parent_node_id})

    async def replay_run(self, run_id: int, after: int, link: dict[str, Any] | None = None) -> None:
        self.sent_seq[run_id] = after
        while True:
            batch = await stored_events(run_id, after=after, limit=REPLAY_BATCH)
            for event in batch:
                await self.send_event({**event, **(link or {})})
            if len(batch) < REPLAY_BATCH:
                return
            after = int(batch[-1]["seq"])


class WorkflowConsumer(EventStreamConsumer):
    async def authorize(self, user: Any) -> str | None:
        workflow_id = int(self.scope["url_route"]["kwargs"]["workflow_id"])
        visible = Workflow.objects.visible_to(user).filter(pk=workflow_id)
        exists = await database_sync_to_async(visible.exists)()
        return workflow_group(workflow_id) if exists else None
