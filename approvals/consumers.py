"""The approvals inbox stream, `/ws/approvals/`: approval_needed and approval_decided events, each sent only
to the users who may see that request (the same rule as the inbox page and the API).

Every approval event of every run is published to one group; forwarding is decided per connected user with a
database query, because who may see a request (assignees, groups, ownership) is not in the event.
"""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from approvals.selectors import approvals_visible_to
from runs.consumers import CLOSE_UNAUTHENTICATED
from runs.events import APPROVALS_GROUP


@database_sync_to_async
def visible_approval_ids(user: Any, ids: list[int]) -> set[int]:
    return set(approvals_visible_to(user).filter(pk__in=ids).values_list("pk", flat=True))


class ApprovalsConsumer(AsyncJsonWebsocketConsumer):
    joined = False

    async def connect(self) -> None:
        self.user = self.scope.get("user")
        if self.user is None or not self.user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        await self.channel_layer.group_add(APPROVALS_GROUP, self.channel_name)
        self.joined = True
        await self.accept()

    async def disconnect(self, code: int) -> None:
        if self.joined:
            await self.channel_layer.group_discard(APPROVALS_GROUP, self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        """One-way stream: anything a client sends is ignored."""

    async def run_events(self, payload: dict[str, Any]) -> None:
        events = [event for event in payload["events"] if isinstance(event.get("data"), dict)]
        ids = [int(event["data"]["approval_id"]) for event in events if event["data"].get("approval_id")]
        if not ids:
            return
        visible = await visible_approval_ids(self.user, ids)
        for event in events:
            if event["data"].get("approval_id") in visible:
                await self.send_json(event)
