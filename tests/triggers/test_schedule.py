"""When schedules fire: the pure computation (cron in a named timezone across DST changes, periods, missed
ticks) and the checks that name the field at fault."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from triggers.schedule import Schedule, ScheduleError, next_tick, timezone_names

GRACE = timedelta(seconds=60)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, micro: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)


def test_cron_ticks_come_in_order_after_the_moment() -> None:
    schedule = Schedule(cron="*/5 * * * *")
    assert schedule.upcoming(utc(2026, 1, 1, 0, 5), 3) == [
        utc(2026, 1, 1, 0, 10),
        utc(2026, 1, 1, 0, 15),
        utc(2026, 1, 1, 0, 20),
    ]
    assert schedule.after(utc(2026, 1, 1, 0, 7, 30)) == utc(2026, 1, 1, 0, 10)


def test_cron_is_read_in_its_timezone() -> None:
    # 09:00 in Paris is 08:00 UTC in winter and 07:00 UTC in summer.
    schedule = Schedule(cron="0 9 * * *", timezone="Europe/Paris")
    assert schedule.after(utc(2026, 1, 15, 12)) == utc(2026, 1, 16, 8)
    assert schedule.after(utc(2026, 7, 15, 12)) == utc(2026, 7, 16, 7)


def test_a_time_skipped_by_the_spring_change_fires_once_just_after_it() -> None:
    # Europe/Paris, 29 March 2026: 02:00 becomes 03:00, so 02:30 does not exist that day.
    schedule = Schedule(cron="30 2 * * *", timezone="Europe/Paris")
    ticks = schedule.upcoming(utc(2026, 3, 27, 12), 4)
    assert ticks == [
        utc(2026, 3, 28, 1, 30),  # 02:30 CET
        utc(2026, 3, 29, 1, 0),  # 03:00 CEST, right after the jump: once
        utc(2026, 3, 30, 0, 30),  # 02:30 CEST
        utc(2026, 3, 31, 0, 30),
    ]


def test_a_time_repeated_by_the_autumn_change_fires_once() -> None:
    # Europe/Paris, 25 October 2026: 03:00 becomes 02:00 again, so 02:30 happens twice; it fires the first time.
    schedule = Schedule(cron="30 2 * * *", timezone="Europe/Paris")
    assert schedule.upcoming(utc(2026, 10, 24, 12), 3) == [
        utc(2026, 10, 25, 0, 30),
        utc(2026, 10, 26, 1, 30),
        utc(2026, 10, 27, 1, 30),
    ]


def test_an_hourly_cron_keeps_its_local_minutes_across_new_york_dst() -> None:
    # America/New_York, 8 March 2026 at 02:00 EST -> 03:00 EDT: there is no 02:15 that night, and an hourly
    # schedule (unlike one at a set hour) does not make one up; the next tick after 01:30 EST is 03:15 EDT.
    schedule = Schedule(cron="15 * * * *", timezone="America/New_York")
    ticks = schedule.upcoming(utc(2026, 3, 8, 6, 30), 3)  # 01:30 EST
    assert ticks == [utc(2026, 3, 8, 7, 15), utc(2026, 3, 8, 8, 15), utc(2026, 3, 8, 9, 15)]


def test_periods_step_from_the_tick_not_the_clock() -> None:
    schedule = Schedule(every_seconds=90)
    assert schedule.upcoming(utc(2026, 1, 1), 2) == [utc(2026, 1, 1, 0, 1, 30), utc(2026, 1, 1, 0, 3)]


def test_a_tick_on_time_fires_and_the_next_follows_it() -> None:
    tick = next_tick(Schedule(every_seconds=5), utc(2026, 1, 1, 0, 0, 5), utc(2026, 1, 1, 0, 0, 5, 300000), grace=GRACE)
    assert (tick.due, tick.late, tick.missed, tick.next_due) == (
        utc(2026, 1, 1, 0, 0, 5),
        False,
        0,
        utc(2026, 1, 1, 0, 0, 10),
    )


def test_ticks_missed_while_down_are_counted_never_replayed() -> None:
    # Down for an hour with a one-second schedule: one firing (a catch-up), 3600 ticks counted, next after now.
    now = utc(2026, 1, 1, 1, 0, 0, 500000)
    tick = next_tick(Schedule(every_seconds=1), utc(2026, 1, 1), now, grace=GRACE)
    assert tick.late
    assert tick.missed == 3600
    assert tick.next_due == utc(2026, 1, 1, 1, 0, 1)


def test_a_very_long_outage_jumps_to_the_next_tick_after_now() -> None:
    now = utc(2026, 2, 1)
    tick = next_tick(Schedule(every_seconds=1), utc(2026, 1, 1), now, grace=GRACE)
    assert tick.next_due == utc(2026, 2, 1, 0, 0, 1)
    assert tick.missed >= 10_000


def test_a_cron_catch_up_lands_on_the_next_cron_tick() -> None:
    tick = next_tick(Schedule(cron="0 * * * *"), utc(2026, 1, 1, 3), utc(2026, 1, 1, 6, 20), grace=GRACE)
    assert (tick.late, tick.missed, tick.next_due) == (True, 3, utc(2026, 1, 1, 7))


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"cron": "61 * * * *"}, "cron", "not a valid cron expression"),
        ({"cron": "* * *"}, "cron", "five fields"),
        ({"cron": "@daily"}, "cron", "five fields"),
        ({"cron": "*/5 * * * *", "timezone": "Mars/Olympus"}, "timezone", "not a timezone"),
        ({"every_seconds": 0}, "every_seconds", "at least 1"),
        ({}, "cron", "either"),
        ({"cron": "* * * * *", "every_seconds": 5}, "cron", "either"),
    ],
)
def test_a_bad_schedule_names_its_field(fields: dict[str, object], field: str, words: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        Schedule(**fields)  # type: ignore[arg-type]
    assert caught.value.field == field
    assert words in caught.value.message


def test_schedules_explain_themselves() -> None:
    assert Schedule(cron="*/5 * * * *").explain() == "Every fifth minute of every hour"
    assert Schedule(cron="0 9 * * 1", timezone="Europe/Paris").explain() == "At 09:00 on Monday (Europe/Paris)"
    assert Schedule(every_seconds=1).explain() == "Every second"
    assert Schedule(every_seconds=7200).explain() == "Every 2 hours"
    assert Schedule(every_seconds=45).explain() == "Every 45 seconds"


def test_the_timezone_picker_lists_iana_names_utc_first() -> None:
    names = timezone_names()
    assert names[0] == "UTC"
    assert "Europe/Paris" in names and "America/New_York" in names
