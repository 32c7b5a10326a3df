"""When a schedule fires: pure functions over a cron expression or a period, a timezone and a clock.

Cron expressions are read by cronsim, the parser healthchecks.io runs its cron checks on: it handles the two
DST changes the way cron daemons do (a time that does not exist that day fires once, right after the clock
jumps; a time that exists twice fires once, the first time) and explains an expression in English. Times are
computed in the schedule's timezone and stored in UTC.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from cronsim import CronSim, CronSimError

__all__ = [
    "Schedule",
    "ScheduleError",
    "Tick",
    "next_tick",
    "timezone_names",
]

# Counting the ticks a long outage missed stops here: the number is reported, never replayed.
MISSED_COUNT_CAP = 10_000


class ScheduleError(ValueError):
    """A schedule that cannot be used; `field` names what is wrong (cron, timezone or every_seconds)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Schedule:
    """Either a five-field cron expression read in `timezone`, or a fixed period of `every_seconds`."""

    cron: str = ""
    every_seconds: int | None = None
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        if bool(self.cron) == (self.every_seconds is not None):
            raise ScheduleError("cron", "give either `cron` or `every_seconds`, not both and not neither")
        if self.every_seconds is not None and self.every_seconds < 1:
            raise ScheduleError("every_seconds", "`every_seconds` must be at least 1")
        zone(self.timezone)
        if self.cron:
            fields = self.cron.split()
            if len(fields) != 5:
                raise ScheduleError(
                    "cron",
                    f"a cron expression has five fields (minute hour day-of-month month day-of-week); "
                    f"{self.cron!r} has {len(fields)}",
                )
            try:
                CronSim(self.cron, datetime(2000, 1, 1, tzinfo=UTC))
            except CronSimError as exc:
                raise ScheduleError("cron", f"{self.cron!r} is not a valid cron expression: {exc}") from None

    def after(self, moment: datetime) -> datetime:
        """The first tick strictly after `moment` (aware), in UTC."""
        return next(self.ticks(moment))

    def ticks(self, moment: datetime) -> Iterator[datetime]:
        """The ticks strictly after `moment`, in UTC, for ever."""
        if self.every_seconds is not None:
            period = timedelta(seconds=self.every_seconds)
            tick = moment.astimezone(UTC)
            while True:
                tick += period
                yield tick
        # cronsim counts whole minutes and steps from the next minute on: a moment within a minute that matches
        # would be returned again, so start from the moment itself only when it is not on a whole minute.
        local = moment.astimezone(zone(self.timezone))
        for tick in CronSim(self.cron, local):
            if tick > local:
                yield tick.astimezone(UTC)

    def upcoming(self, moment: datetime, count: int = 5) -> list[datetime]:
        """The next `count` ticks after `moment`, in UTC."""
        ticks = self.ticks(moment)
        return [next(ticks) for _ in range(count)]

    def explain(self) -> str:
        """The schedule in English ("Every 5 minutes", "At 09:00 on Monday")."""
        if self.every_seconds is not None:
            return _every(self.every_seconds)
        text = str(CronSim(self.cron, datetime(2000, 1, 1, tzinfo=UTC)).explain())
        return text if self.timezone == "UTC" else f"{text} ({self.timezone})"


@dataclass(frozen=True)
class Tick:
    """What a scheduler does with a schedule whose tick `due` has come, at `now`."""

    # The tick to fire for (the one that was due), and whether it is later than the grace allows (a catch-up).
    due: datetime
    late: bool
    # Ticks after `due` that passed while nothing fired them: counted, not replayed.
    missed: int
    # When to fire next: the first tick after `due`, or, when that has passed too, the first after `now`.
    next_due: datetime


def next_tick(schedule: Schedule, due: datetime, now: datetime, *, grace: timedelta) -> Tick:
    """Decide one firing of a schedule whose tick `due` is at or before `now`.

    However long the scheduler was away, one tick fires (for `due`) and the schedule moves on to the first
    tick after `now`: missed ticks are counted and reported, never replayed in a burst. `late` says the tick is
    older than `grace` (a catch-up, which a schedule may choose to skip)."""
    ticks = schedule.ticks(due)
    following = next(ticks)
    missed = 0
    while following <= now and missed < MISSED_COUNT_CAP:
        missed += 1
        following = next(ticks)
    if following <= now:  # past the cap: jump straight to the first tick after now
        following = schedule.after(now)
    return Tick(due=due, late=now - due > grace, missed=missed, next_due=following)


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(
            "timezone", f"{name!r} is not a timezone name (use an IANA name such as 'Europe/Paris' or 'UTC')"
        ) from None


def timezone_names() -> list[str]:
    """Every IANA timezone name this machine knows, sorted, UTC first (for pickers)."""
    return ["UTC", *sorted(name for name in available_timezones() if name != "UTC" and "/" in name)]


def _every(seconds: int) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds % size == 0:
            count = seconds // size
            return f"Every {unit}" if count == 1 else f"Every {count} {unit}s"
    return "Every second" if seconds == 1 else f"Every {seconds} seconds"
