"""Helpers every app's pages share. Like every shared module of flownova, it imports no app."""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpRequest
from django_htmx.middleware import HtmxDetails


class HtmxHttpRequest(HttpRequest):
    """A request as django-htmx's middleware (settings.MIDDLEWARE) hands it to every view: with `htmx`."""

    htmx: HtmxDetails


def htmx_partial(request: HtmxHttpRequest) -> bool:
    """Whether to answer with a fragment (netbox's pattern): an HTMX request that is not a boosted navigation,
    which needs the whole page."""
    return bool(request.htmx) and not request.htmx.boosted


def pretty_json(value: Any) -> str:
    """JSON for people to read in a <pre>; the template escapes it."""
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False, default=str)


def too_many_runs(wait: int) -> str:
    """What a page says when the user started too many runs just now (FLOWNOVA_RUN_START_RATE)."""
    return f"You have started too many runs just now: try again in {wait} s."
