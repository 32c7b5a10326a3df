"""The egress module against live loopback servers: timeouts, the size cap, retries, redirects, TLS."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from pytest_django import Settings

from tests.tools.servers import LocalServer, Received, Reply, Responder, echo, make_certificates
from tools.egress import EgressError, egress_idempotency_key, egress_request

pytestmark = pytest.mark.usefixtures("allow_loopback")


def fails_then_answers(times: int, status: int = 503, headers: dict[str, str] | None = None) -> Responder:
    def respond(request: Received, count: int) -> Reply:
        if count <= times:
            return Reply(status, body="busy", headers=headers or {})
        return Reply(200, body={"attempt": count})

    return respond


@pytest.mark.parametrize("status", [503, 502, 504, 429])
def test_an_idempotent_request_is_retried_on_transient_statuses_until_it_succeeds(
    make_server: Callable[..., LocalServer], status: int
) -> None:
    server = make_server(fails_then_answers(2, status))
    response = egress_request(method="GET", url=f"{server.url}/flaky")
    assert response.status_code == 200
    assert response.attempts == 3
    assert len(server.received) == 3


def test_retries_stop_after_the_configured_number_and_the_last_answer_is_returned(
    make_server: Callable[..., LocalServer], settings: Settings
) -> None:
    settings.FLOWNOVA_EGRESS_RETRIES = 1
    server = make_server(fails_then_answers(5))
    response = egress_request(method="PUT", url=f"{server.url}/flaky")
    assert (response.status_code, response.attempts, len(server.received)) == (503, 2, 2)


@pytest.mark.parametrize("method", ["POST", "PATCH"])
def test_a_non_idempotent_request_is_not_repeated_after_it_was_sent(
    make_server: Callable[..., LocalServer], method: str
) -> None:
    server = make_server(fails_then_answers(2))
    response = egress_request(method=method, url=f"{server.url}/once", json_body={"a": 1})
    assert response.status_code == 503
    assert len(server.received) == 1


def test_retry_after_is_honoured(make_server: Callable[..., LocalServer], settings: Settings) -> None:
    server = make_server(fails_then_answers(1, 429, {"Retry-After": "1"}))
    started = time.monotonic()
    response = egress_request(method="GET", url=f"{server.url}/limited")
    assert response.status_code == 200
    assert time.monotonic() - started >= 0.9


def test_a_retry_after_longer_than_the_bound_returns_the_answer_without_waiting(
    make_server: Callable[..., LocalServer],
) -> None:
    server = make_server(fails_then_answers(1, 429, {"Retry-After": "3600"}))
    started = time.monotonic()
    response = egress_request(method="GET", url=f"{server.url}/limited")
    assert (response.status_code, len(server.received)) == (429, 1)
    assert time.monotonic() - started < 1


def test_a_connection_that_cannot_be_made_is_retried_for_any_method_then_reported(
    connects: list[tuple[str, int]],
) -> None:
    closed = LocalServer()
    port = closed.port
    closed.close()
    with pytest.raises(EgressError, match="cannot connect") as caught:
        egress_request(method="POST", url=f"http://127.0.0.1:{port}/x", json_body={})
    assert caught.value.kind == "connect" and caught.value.transient
    assert len(connects) == 3  # nothing was sent, so even a POST is tried again


def test_a_slow_answer_times_out(make_server: Callable[..., LocalServer], settings: Settings) -> None:
    settings.FLOWNOVA_EGRESS_RETRIES = 0
    server = make_server(lambda request, count: Reply(body="late", delay=1.0))
    started = time.monotonic()
    with pytest.raises(EgressError, match="timed out") as caught:
        egress_request(method="GET", url=f"{server.url}/slow", timeout=0.2)
    assert caught.value.kind == "timeout" and caught.value.transient
    assert time.monotonic() - started < 0.9


def test_a_timeout_is_retried_for_get(make_server: Callable[..., LocalServer]) -> None:
    server = make_server(lambda request, count: Reply(body="ok", delay=0.4 if count == 1 else 0))
    response = egress_request(method="GET", url=f"{server.url}/slow-once", timeout=0.15)
    assert (response.status_code, response.attempts) == (200, 2)


def test_the_whole_call_is_bounded(make_server: Callable[..., LocalServer], settings: Settings) -> None:
    settings.FLOWNOVA_EGRESS_TOTAL_TIMEOUT = 0.3
    server = make_server(lambda request, count: Reply(stream_forever=True))
    started = time.monotonic()
    with pytest.raises(EgressError) as caught:
        egress_request(method="GET", url=f"{server.url}/drip", max_response_bytes=10**9)
    assert caught.value.kind == "timeout"
    assert time.monotonic() - started < 2


def test_a_declared_oversized_answer_is_refused_without_reading_it(
    make_server: Callable[..., LocalServer], settings: Settings
) -> None:
    settings.FLOWNOVA_EGRESS_MAX_RESPONSE_BYTES = 1000
    server = make_server(lambda request, count: Reply(body="x" * 5000))
    with pytest.raises(EgressError, match="5000 bytes, over the 1000 byte limit") as caught:
        egress_request(method="GET", url=f"{server.url}/big")
    assert caught.value.kind == "too_large" and not caught.value.transient
    assert len(server.received) == 1  # not retried


def test_an_endless_answer_is_cut_off_at_the_cap(make_server: Callable[..., LocalServer], settings: Settings) -> None:
    settings.FLOWNOVA_EGRESS_MAX_RESPONSE_BYTES = 50_000
    server = make_server(lambda request, count: Reply(stream_forever=True))
    started = time.monotonic()
    with pytest.raises(EgressError, match="over the 50000 byte limit; stopped reading"):
        egress_request(method="GET", url=f"{server.url}/endless")
    assert time.monotonic() - started < 5
    assert server.hung_up.wait(5)  # we hung up on it


def test_an_answer_at_the_cap_is_read_whole(make_server: Callable[..., LocalServer], settings: Settings) -> None:
    settings.FLOWNOVA_EGRESS_MAX_RESPONSE_BYTES = 1000
    server = make_server(lambda request, count: Reply(body="y" * 1000))
    assert egress_request(method="GET", url=f"{server.url}/exact").content == b"y" * 1000


# --- redirects -------------------------------------------------------------------------------------------------


def redirect_to(location: str, status: int = 302) -> Responder:
    def respond(request: Received, count: int) -> Reply:
        if request.path == "/start":
            return Reply(status, headers={"Location": location})
        return echo(request, count)

    return respond


def test_a_redirect_is_followed_and_recorded(make_server: Callable[..., LocalServer]) -> None:
    server = make_server(redirect_to("/final?x=1"))
    response = egress_request(method="GET", url=f"{server.url}/start", params=[("q", "a")])
    assert response.status_code == 200
    assert [(r.path, r.query) for r in server.received] == [("/start", [("q", "a")]), ("/final", [("x", "1")])]
    assert response.redirects == (f"{server.url}/final",)


@pytest.mark.parametrize(
    ("status", "method", "body_kept"),
    [(303, "GET", False), (302, "GET", False), (307, "POST", True), (308, "POST", True)],
)
def test_redirects_of_a_post_keep_or_drop_the_body_as_browsers_do(
    make_server: Callable[..., LocalServer], status: int, method: str, body_kept: bool
) -> None:
    server = make_server(redirect_to("/final", status))
    egress_request(method="POST", url=f"{server.url}/start", json_body={"a": 1})
    final = server.received[1]
    assert final.method == method
    assert (final.json() == {"a": 1}) is body_kept


def test_credentials_are_dropped_when_a_redirect_leaves_the_origin(make_server: Callable[..., LocalServer]) -> None:
    other = make_server()
    server = make_server(redirect_to(f"{other.url}/elsewhere"))
    headers = {"Authorization": "Bearer t0ken", "X-Api-Key": "k3y", "X-Plain": "p"}
    egress_request(method="GET", url=f"{server.url}/start", headers=headers, sensitive_headers=["X-Api-Key"])
    assert server.received[0].headers["authorization"] == "Bearer t0ken"
    arrived = other.received[0].headers
    assert "authorization" not in arrived and "x-api-key" not in arrived
    assert arrived["x-plain"] == "p"


def test_credentials_stay_on_a_redirect_within_the_origin(make_server: Callable[..., LocalServer]) -> None:
    server = make_server(redirect_to("/final"))
    egress_request(
        method="GET", url=f"{server.url}/start", headers={"X-Api-Key": "k3y"}, sensitive_headers=["X-Api-Key"]
    )
    assert server.received[1].headers["x-api-key"] == "k3y"


def test_redirects_are_bounded(make_server: Callable[..., LocalServer], settings: Settings) -> None:
    settings.FLOWNOVA_EGRESS_MAX_REDIRECTS = 3
    server = make_server(lambda request, count: Reply(302, headers={"Location": f"/hop{count}"}))
    with pytest.raises(EgressError, match=r"too many redirects .* \(more than 3\)") as caught:
        egress_request(method="GET", url=f"{server.url}/start")
    assert caught.value.kind == "redirects"
    assert len(server.received) == 4


# --- idempotency keys -------------------------------------------------------------------------------------------


def test_the_idempotency_key_is_stable_per_run_node_and_call() -> None:
    key = egress_idempotency_key(run_id=7, node_id="charge", call_index=0)
    assert key == egress_idempotency_key(run_id=7, node_id="charge", call_index=0)
    others = {
        egress_idempotency_key(run_id=8, node_id="charge"),
        egress_idempotency_key(run_id=7, node_id="refund"),
        egress_idempotency_key(run_id=7, node_id="charge", call_index=1),
    }
    assert key not in others and len(others) == 3


@pytest.mark.parametrize(
    ("method", "sent"), [("POST", True), ("PATCH", True), ("GET", False), ("PUT", False), ("DELETE", False)]
)
def test_the_idempotency_key_goes_with_non_idempotent_methods(server: LocalServer, method: str, sent: bool) -> None:
    egress_request(method=method, url=f"{server.url}/k", idempotency_key="abc-123")
    assert (server.received[0].headers.get("idempotency-key") == "abc-123") is sent


# --- TLS: connect to the pinned address, verify against the name -------------------------------------------------


@pytest.fixture
def tls_server(
    make_server: Callable[..., LocalServer], tmp_path: Path, settings: Settings
) -> tuple[LocalServer, list[str | None]]:
    """A TLS server for tls.test, and the names clients asked it for (SNI)."""
    ca_path, context = make_certificates(tmp_path, hostname="tls.test")
    settings.FLOWNOVA_EGRESS_CA_BUNDLE = str(ca_path)
    settings.FLOWNOVA_EGRESS_ALLOWLIST = ["tls.test", "wrong.test"]
    names: list[str | None] = []
    context.sni_callback = lambda sock, name, ctx: names.append(name)
    return make_server(tls=context), names


def loopback_resolver(host: str, port: int) -> list[str]:
    assert host in ("tls.test", "wrong.test")
    return ["127.0.0.1"]


def test_https_connects_to_the_pinned_address_with_the_host_name_for_sni_and_verification(
    tls_server: tuple[LocalServer, list[str | None]],
) -> None:
    server, names = tls_server
    response = egress_request(method="GET", url=f"https://tls.test:{server.port}/s", resolver=loopback_resolver)
    assert response.status_code == 200
    assert names == ["tls.test"]
    assert server.received[0].headers["host"] == f"tls.test:{server.port}"


def test_a_certificate_for_another_name_is_refused_and_not_retried(
    tls_server: tuple[LocalServer, list[str | None]], connects: list[tuple[str, int]]
) -> None:
    server, _ = tls_server
    with pytest.raises(EgressError, match="TLS certificate check failed") as caught:
        egress_request(method="GET", url=f"https://wrong.test:{server.port}/s", resolver=loopback_resolver)
    assert caught.value.kind == "tls" and not caught.value.transient
    assert len(connects) == 1
    assert server.received == []


def test_a_post_that_reached_the_server_is_not_repeated_when_its_redirect_cannot_connect(
    make_server: Callable[..., LocalServer], connects: list[tuple[str, int]]
) -> None:
    closed = LocalServer()
    port = closed.port
    closed.close()
    server = make_server(redirect_to(f"http://127.0.0.1:{port}/gone", 307))
    with pytest.raises(EgressError, match="cannot connect"):
        egress_request(method="POST", url=f"{server.url}/start", json_body={"a": 1})
    assert len(server.received) == 1
