"""The run-start rate limit: FLOWNOVA_RUN_START_RATE run starts per user, for every start a person asks for (the
API, the pages, the run_workflow command, a re-run or a resume): `run_start` and `run_resume` check it. Callers
turn RunRateLimited into their own answer (the API's 429 with `Retry-After`, a page's message).

Two kinds of start may skip it, because their callers bound them another way: a webhook's (the caller applies
a rate limit per trigger) and a schedule's (at most one start per period). They pass
`run_start(user_rate_limit=False)`, and nothing here checks that they do bound them. Child runs, which a node
starts inside its run, are not counted either.

It counts as DRF's `UserRateThrottle` would with the scope `run_start`: the times of the user's recent starts
are kept in the default cache (Redis, so every web process shares them) under `throttle_run_start_<user id>`,
starts older than the period are dropped, and a start is refused while the period holds `N` of them. The rate
is read from settings at each check, so `override_settings` changes it in tests.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.cache import cache

from runs.errors import RunError

if TYPE_CHECKING:
    from django.contrib.auth.models import User

__all__ = ["RunRateLimited", "check_run_start"]

_CACHE_KEY = "throttle_run_start_{user_id}"
_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}  # by the period's first letter: "min" and "m" alike


class RunRateLimited(RunError):
    """The user started too many runs just now; `wait` is how many whole seconds until the next may start."""

    def __init__(self, wait: int) -> None:
        super().__init__(f"too many runs started just now: try again in {wait} s")
        self.wait = wait


def parse_rate(rate: str) -> tuple[int, int]:
    """`"60/min"` -> (60, 60): how many starts, per how many seconds (settings.env_rate checked the form)."""
    count, period = rate.split("/")
    return int(count), _PERIODS[period[0]]


def check_run_start(user: User) -> None:
    """Count a run start by `user`, or raise RunRateLimited if they started too many just now (a refused
    start is not counted). `run_start` (unless told `user_rate_limit=False`, see above) and `run_resume` call
    it before anything else."""
    rate = settings.FLOWNOVA_RUN_START_RATE
    if not rate:
        return
    limit, period = parse_rate(rate)
    key = _CACHE_KEY.format(user_id=user.pk)
    history: list[float] = cache.get(key, [])
    now = time.time()
    while history and history[-1] <= now - period:
        history.pop()
    if len(history) >= limit:
        raise RunRateLimited(_wait(history, now, limit=limit, period=period))
    history.insert(0, now)
    cache.set(key, history, period)


def _wait(history: list[float], now: float, *, limit: int, period: int) -> int:
    """Seconds until the next start may go, as DRF's throttle works it out (the time left until the oldest
    start leaves the period, spread over the starts then available), in whole seconds, at least one."""
    remaining = period - (now - history[-1]) if history else period
    available = limit - len(history) + 1
    wait = remaining / available if available > 0 else None
    return max(1, math.ceil(wait or 1))
