"""The triggers' events on a workflow's stream (docs/CONTRACT.md, Events).

`trigger_fired` is an event of the run the trigger started, stored with its other events (so the run's own
stream and a late client see it too) and published to the workflow's watchers with them. `trigger_skipped`
belongs to no run: it goes live to the workflow's watchers only; the firing itself is kept in the trigger's
history (`TriggerFiring`), which is where a late reader finds it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, ClassVar

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.utils import timezone

from runs.events import CONSUMER_MESSAGE_TYPE, Event, workflow_group

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class TriggerFired(Event):
    type: ClassVar[str] = "trigger_fired"
    trigger_id: int
    trigger_type: str
    workflow_id: int


def trigger_skipped_publish(workflow_id: int, data: dict[str, Any]) -> None:
    """Tell the workflow's watchers that a trigger fired without starting a run (skipped, queued or failed)."""
    message = {
        "type": "trigger_skipped",
        "run_id": None,
        "seq": None,
        "ts": timezone.now().isoformat(),
        "node_id": None,
        "data": {**data, "workflow_id": workflow_id},
    }
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(
            workflow_group(workflow_id), {"type": CONSUMER_MESSAGE_TYPE, "events": [message]}
        )
    except Exception:  # the firing is recorded; a lost notice must not undo it
        logger.exception("publishing trigger_skipped for workflow %s failed", workflow_id)
