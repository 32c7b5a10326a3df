"""The Celery beat scheduler that also fires schedule triggers.

It is Celery's own persistent scheduler (the periodic tasks in CELERY_BEAT_SCHEDULE keep working as before)
with one addition: at each tick it fires the schedule triggers that are due, in this process, and sleeps no
longer than until the next one is due (at most a second, so a trigger saved meanwhile is seen in time). The
beat process starts runs itself: a due tick never waits in the workers' queue behind slow nodes. Several beat
processes may run at once: each tick is claimed by one of them (`triggers.services.schedules_fire_due`).
The database being away costs a logged error per tick, never the beat process.
"""

from __future__ import annotations

import logging
from typing import Any

from celery.beat import PersistentScheduler
from django.db import close_old_connections
from django.utils import timezone

logger = logging.getLogger(__name__)

# Beat wakes at least this often to look for schedules that became due.
MAX_SLEEP_SECONDS = 1.0
MIN_SLEEP_SECONDS = 0.02


class TriggerScheduler(PersistentScheduler):
    def tick(self, *args: Any, **kwargs: Any) -> float:
        interval = super().tick(*args, **kwargs)
        return min(interval, self.fire_triggers())

    def fire_triggers(self) -> float:
        """Fire what is due; return how long beat may sleep before the next schedule is due."""
        from triggers.services import schedules_fire_due, schedules_next_due  # the app registry is ready now

        close_old_connections()  # a connection broken by a database restart is replaced, not reused
        try:
            schedules_fire_due()
            upcoming = schedules_next_due()
        except Exception:
            logger.exception("firing schedule triggers failed; trying again in %.0f s", MAX_SLEEP_SECONDS)
            close_old_connections()
            return MAX_SLEEP_SECONDS
        if upcoming is None:
            return MAX_SLEEP_SECONDS
        # Not zero: a tick another beat process holds (locked, skipped here) must not make this one spin.
        return max(MIN_SLEEP_SECONDS, min(MAX_SLEEP_SECONDS, (upcoming - timezone.now()).total_seconds()))
