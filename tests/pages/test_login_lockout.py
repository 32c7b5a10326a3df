"""Password guessing on /login/, /admin/login/ and the API's token endpoint: failures count per account and
per address (django-axes); past FLOWNOVA_LOGIN_FAILURE_LIMIT the right password is refused with a 429 that says
when to try again, until the cool-off has passed. Personas: alice and bob are users, root-admin is staff."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from axes.models import AccessAttempt
from django.contrib.auth import SESSION_KEY
from django.contrib.auth.models import User
from django.test import Client, override_settings
from pytest_django import Settings
from rest_framework.test import APIClient

from tests.conftest import service_env, start_daphne, stop_process

pytestmark = pytest.mark.django_db

LIMIT = 5  # FLOWNOVA_LOGIN_FAILURE_LIMIT's default
LOGIN_PAGES = ["/login/", "/admin/login/"]
OTHER_ADDRESS = "203.0.113.9"


def log_in(client: Client, page: str, username: str, password: str | None = None) -> Any:
    return client.post(page, {"username": username, "password": password or f"{username}-password"})


def logged_in(client: Client) -> bool:
    return SESSION_KEY in client.session


def guess(client: Client, page: str, username: str, times: int) -> list[int]:
    return [log_in(client, page, username, f"guess-{n}").status_code for n in range(times)]


@pytest.fixture
def staff(make_user: Callable[..., User]) -> User:
    """Staff, so that the right password logs in on both pages."""
    return make_user("root-admin", staff=True)


@pytest.mark.parametrize("page", LOGIN_PAGES)
def test_the_right_password_is_refused_after_too_many_wrong_ones(client: Client, staff: User, page: str) -> None:
    # Wrong passwords get the form again (200) until the last allowed one locks the account out.
    assert guess(client, page, "root-admin", LIMIT) == [200] * (LIMIT - 1) + [429]

    refused = log_in(client, page, "root-admin")
    assert refused.status_code == 429 and not logged_in(client)
    html = refused.content.decode()
    assert "too many failed logins for this account or from this address" in html
    assert "Try again in <strong>15 minutes</strong>" in html
    assert refused["Retry-After"] == str(15 * 60)
    # The other login page is locked too: it is the same account, from the same address.
    other = LOGIN_PAGES[1 - LOGIN_PAGES.index(page)]
    assert log_in(client, other, "root-admin").status_code == 429 and not logged_in(client)


def test_fewer_failures_than_the_limit_lock_nothing(client: Client, alice: User) -> None:
    assert guess(client, "/login/", "alice", LIMIT - 1) == [200] * (LIMIT - 1)
    assert log_in(client, "/login/", "alice").status_code == 302 and logged_in(client)


def test_a_locked_address_is_refused_for_every_account_and_a_locked_account_from_every_address(
    client: Client, alice: User, make_user: Callable[..., User]
) -> None:
    make_user("bob")
    guess(client, "/login/", "alice", LIMIT)

    # The address is locked: bob's right password from it is refused too.
    assert log_in(client, "/login/", "bob").status_code == 429 and not logged_in(client)
    # From another address bob logs in, but alice's account is still locked.
    elsewhere = Client(REMOTE_ADDR=OTHER_ADDRESS)
    assert log_in(elsewhere, "/login/", "alice").status_code == 429 and not logged_in(elsewhere)
    assert log_in(elsewhere, "/login/", "bob").status_code == 302 and logged_in(elsewhere)


def test_guesses_spread_over_accounts_lock_the_address(
    client: Client, alice: User, make_user: Callable[..., User]
) -> None:
    for name in ("bob", "carol", "dave", "erin"):
        make_user(name)
        assert guess(client, "/login/", name, 1) == [200]
    assert guess(client, "/login/", "nobody", 1) == [429]
    assert log_in(client, "/login/", "alice").status_code == 429
    assert log_in(Client(REMOTE_ADDR=OTHER_ADDRESS), "/login/", "alice").status_code == 302


def test_the_api_token_endpoint_shares_the_lockout(alice: User) -> None:
    api = APIClient()
    body = {"username": "alice", "password": "guess"}
    codes = [api.post("/api/auth/token/", body, format="json").status_code for _ in range(LIMIT)]
    assert codes == [400] * (LIMIT - 1) + [429]
    refused = api.post("/api/auth/token/", {"username": "alice", "password": "alice-password"}, format="json")
    assert refused.status_code == 429 and refused["Retry-After"] == str(15 * 60)
    assert refused.json()["detail"].startswith("Too many failed logins for this account or from this address.")
    # Failures through the API lock the login pages as well.
    assert log_in(Client(), "/login/", "alice").status_code == 429


@override_settings(AXES_COOLOFF_TIME=timedelta(seconds=2))
def test_logging_in_works_again_after_the_cool_off(client: Client, alice: User) -> None:
    guess(client, "/login/", "alice", LIMIT)
    refused = log_in(client, "/login/", "alice")
    assert refused.status_code == 429 and "Try again in <strong>2 seconds</strong>" in refused.content.decode()
    time.sleep(2.2)  # the refused attempt started the wait again
    assert log_in(client, "/login/", "alice").status_code == 302 and logged_in(client)


@pytest.mark.parametrize(
    ("forwarded", "proxies", "counted_as"),
    [
        ("198.51.100.7", 0, "127.0.0.1"),  # no proxy configured: the header is the client's own claim
        ("198.51.100.7", 1, "198.51.100.7"),
        ("10.9.9.9, 198.51.100.7", 1, "198.51.100.7"),  # the nearest proxy appends what it saw
        ("not-an-address", 1, "127.0.0.1"),
    ],
)
def test_the_address_comes_from_x_forwarded_for_only_behind_configured_proxies(
    client: Client, alice: User, settings: Settings, forwarded: str, proxies: int, counted_as: str
) -> None:
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": proxies}  # FLOWNOVA_NUM_PROXIES
    client.post("/login/", {"username": "alice", "password": "guess"}, HTTP_X_FORWARDED_FOR=forwarded)
    assert list(AccessAttempt.objects.values_list("ip_address", flat=True)) == [counted_as]


@pytest.mark.django_db(transaction=True)
def test_the_lockout_page_over_daphne(alice: User) -> None:
    """Served by daphne as in production: axes' middleware runs on its async path there."""
    server = start_daphne(service_env())
    try:
        with httpx.Client(base_url=server.base_url) as browser:
            browser.get("/login/")
            token = browser.cookies["csrftoken"]

            def post(password: str) -> httpx.Response:
                body = {"username": "alice", "password": password, "csrfmiddlewaretoken": token}
                return browser.post("/login/", data=body, headers={"Referer": f"{server.base_url}/login/"})

            assert [post("guess").status_code for _ in range(LIMIT)] == [200] * (LIMIT - 1) + [429]
            refused = post("alice-password")
    finally:
        stop_process(server.process)
    assert refused.status_code == 429 and refused.headers["Retry-After"] == str(15 * 60)
    assert "Try again in <strong>15 minutes</strong>" in refused.text
