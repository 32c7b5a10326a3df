"""Password guessing is stopped by django-axes: its authentication backend refuses a login (on /login/,
/admin/login/ and the API's token endpoint alike) while the account or the address it comes from is locked
out. The policy is in settings (FLOWNOVA_LOGIN_*); this module holds what axes calls back: the client's address,
the attempted username, and the page a locked-out login gets.

Failures count per account and per address, each on its own: an account takes FLOWNOVA_LOGIN_FAILURE_LIMIT
failed logins from anywhere before it is locked, and so does an address across every account it tries. A lock
lifts FLOWNOVA_LOGIN_COOLOFF_SECONDS after the last failed attempt; a further attempt while locked counts as a
failure, so it starts the wait again.
"""

from __future__ import annotations

import ipaddress
import math
from typing import Any

from axes.helpers import get_cool_off
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from rest_framework.exceptions import Throttled
from rest_framework.throttling import BaseThrottle

__all__ = ["LoginLockedOut", "attempted_username", "client_address", "locked_out_response", "retry_after"]

# The size of axes's username column; a longer name can't be an account's (Django's are 150 at most).
USERNAME_LIMIT = 255


def client_address(request: HttpRequest) -> str | None:
    """The address failures are counted against: the connection's, or behind FLOWNOVA_NUM_PROXIES reverse
    proxies the one the nearest proxy saw in X-Forwarded-For. The same rule as the API's per-address
    throttles (DRF's get_ident), so one client is one address everywhere. A header value that is not an IP
    address (sent by the client itself, past a misconfigured proxy) falls back to the connection's."""
    # DRF's stubs want its Request; get_ident reads only META, which Django's request (and axes' DRF one) has.
    ident = BaseThrottle().get_ident(request)  # type: ignore[arg-type]
    for candidate in (ident, request.META.get("REMOTE_ADDR")):
        try:
            return str(ipaddress.ip_address((candidate or "").strip()))
        except ValueError:
            continue
    return None


def attempted_username(request: HttpRequest, credentials: dict[str, Any] | None) -> str | None:
    """The username a login tried, cut to what axes can store (a longer one can't match an account anyway)."""
    username = (credentials or {}).get("username")
    if username is None:
        username = request.POST.get("username")
    return None if username is None else str(username)[:USERNAME_LIMIT]


def retry_after(request: HttpRequest | None = None) -> int:
    """Seconds until a lock set now lifts: the cool-off, which each refused attempt starts again."""
    cool_off = get_cool_off(request)
    return max(1, math.ceil(cool_off.total_seconds())) if cool_off else 0


def _in_words(seconds: int) -> str:
    if seconds < 60:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    minutes = math.ceil(seconds / 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def locked_out_response(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    """The page /login/ and /admin/login/ answer while locked out (axes' AXES_LOCKOUT_CALLABLE): 429, with
    when to try again in words and in Retry-After. Axes passes the original response and the credentials in
    an order that differs between its sync and async paths; neither is needed here."""
    wait = retry_after(request)
    context = {"retry_after": _in_words(wait) if wait else "", "login_url": request.path}
    response = render(request, "registration/locked_out.html", context, status=429)
    if wait:
        response["Retry-After"] = str(wait)
    return response


class LoginLockedOut(Throttled):
    """The API's answer for a token request refused by the lockout: 429 with Retry-After, as for its other
    rate limits, instead of the "wrong credentials" 400 the refused authentication would otherwise give."""

    default_detail = "Too many failed logins for this account or from this address."

    def __init__(self) -> None:
        super().__init__(wait=retry_after() or None)
