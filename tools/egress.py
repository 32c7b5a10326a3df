"""The one way the product makes an outbound HTTP request (tools, and anything else that calls out).

What every request gets:

- A guard against server-side request forgery (`tools/egress_guard.py`). The URL must be http or https; its
  host is resolved once, every address it resolves to must be allowed by `egress_address_allowed` (public
  addresses only, unless the host or address is in `FLOWNOVA_EGRESS_ALLOWLIST`), and the connection goes to one
  of those checked addresses: the network backend (`tools/egress_transport.py`) connects to the pinned address
  instead of resolving the name again, so a DNS answer that changes between the check and the connect (DNS
  rebinding) cannot send us elsewhere. The Host header, TLS SNI and certificate verification keep using the
  host name.
- Redirects are followed here, not by httpx, so that every hop goes through the same check; at most
  `FLOWNOVA_EGRESS_MAX_REDIRECTS` of them. Credentials (Authorization, Cookie and the caller's sensitive
  headers) are dropped when a redirect leaves the origin.
- Connect and read timeouts, a bound on the whole call, and a cap on the response body: the body is streamed
  and reading stops as soon as it passes `FLOWNOVA_EGRESS_MAX_RESPONSE_BYTES`.
- Retries with exponential backoff on transient failures (timeouts, connection errors, 429, 502, 503, 504) for
  idempotent methods only. A request that never left (the connection could not be made) is retried whatever
  its method. 429 and 503 honour Retry-After up to `FLOWNOVA_EGRESS_RETRY_AFTER_MAX_SECONDS`; a server asking
  for a longer wait gets its answer returned instead.
- An `Idempotency-Key` header on POST and PATCH when the caller gives one (see `egress_idempotency_key`).

HTTP error statuses are not exceptions: the response is returned and the caller decides what it means.
Everything that prevents a response raises an `EgressError` whose `kind` and `transient` say what happened.

This module is the client: the request, its redirects, limits and retries. Callers import every egress name
from here.
"""

from __future__ import annotations

import logging
import ssl
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote, urlencode

import httpx
from django.conf import settings

from flownova import deadline as node_deadline
from tools.egress_guard import (
    ALLOWED_SCHEMES,
    EgressError,
    EgressRefused,
    Resolver,
    egress_address_allowed,
    egress_check_url,
    egress_resolve,
    shown_url,
)
from tools.egress_transport import PinnedBackend, PinnedTransport, ssl_context

# The guard's names are part of this module's interface: callers import everything egress from here.
__all__ = [
    "ALLOWED_SCHEMES",
    "IDEMPOTENT_METHODS",
    "RETRY_STATUSES",
    "EgressError",
    "EgressRefused",
    "EgressResponse",
    "egress_address_allowed",
    "egress_check_url",
    "egress_idempotency_key",
    "egress_request",
    "egress_resolve",
]

logger = logging.getLogger("flownova.egress")

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
# Methods that get the Idempotency-Key header: the others are idempotent by definition.
KEYED_METHODS = frozenset({"POST", "PATCH"})
RETRY_STATUSES = frozenset({429, 502, 503, 504})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# Dropped whenever a redirect leaves the origin, on top of the caller's sensitive headers.
CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})


@dataclass(frozen=True)
class EgressResponse:
    status_code: int
    reason: str
    headers: httpx.Headers
    content: bytes
    url: str  # the URL that answered, after redirects
    duration_ms: int
    attempts: int = 1
    redirects: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return 200 <= self.status_code < 300

    @property
    def text(self) -> str:
        return httpx.Response(self.status_code, headers=self.headers, content=self.content).text

    @property
    def is_json(self) -> bool:
        media_type: str = self.headers.get("content-type", "").split(";")[0].strip().lower()
        return media_type == "application/json" or media_type.endswith("+json")


# --- the request ----------------------------------------------------------------------------------------------


def egress_idempotency_key(*, run_id: int | str, node_id: str, call_index: int = 0) -> str:
    """The same key for every attempt of the same call of the same node of the same run, so that a server that
    honours Idempotency-Key applies a repeated POST once."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"flownova:run/{run_id}/node/{node_id}/call/{call_index}"))


@dataclass
class _Limits:
    connect: float
    read: float
    deadline: float  # time.monotonic() after which the call gives up
    max_bytes: int
    max_redirects: int
    attempts: int
    backoff: float
    retry_after_max: float

    def remaining(self) -> float:
        return self.deadline - time.monotonic()


@dataclass
class _Request:
    method: str
    url: httpx.URL
    headers: dict[str, str]
    content: bytes | None
    sensitive: frozenset[str] = field(default_factory=frozenset)


def egress_request(
    *,
    method: str,
    url: str,
    headers: Mapping[str, str] | None = None,
    params: Sequence[tuple[str, str]] | None = None,
    json_body: Any = None,
    content: bytes | None = None,
    sensitive_headers: Iterable[str] = (),
    idempotency_key: str | None = None,
    timeout: float | None = None,
    max_response_bytes: int | None = None,
    resolver: Resolver | None = None,
) -> EgressResponse:
    """Send one request through the guard (see the module docstring). `json_body`, if not None, is sent as JSON
    (it wins over `content`). `timeout` overrides the read timeout. `sensitive_headers` name headers that are
    dropped on a redirect to another origin and never logged."""
    method = method.upper()
    limits = _limits(timeout, max_response_bytes)
    request_headers = {str(name): str(value) for name, value in (headers or {}).items()}
    if idempotency_key and method in KEYED_METHODS and not _has_header(request_headers, "idempotency-key"):
        request_headers["Idempotency-Key"] = idempotency_key
    body = content
    if json_body is not None:
        body = httpx.Request("POST", "http://x", json=json_body).content
        if not _has_header(request_headers, "content-type"):
            request_headers["Content-Type"] = "application/json"
    request = _Request(
        method=method,
        url=_with_params(_parse(url), params or ()),
        headers=request_headers,
        content=body,
        sensitive=frozenset(name.lower() for name in sensitive_headers),
    )
    started = time.monotonic()
    attempt = 0
    node_deadline.release_connection()  # a pooled database connection is not held while the request waits
    while True:
        attempt += 1
        try:
            response = _follow(request, limits, resolver)
        except EgressError as exc:
            if node_deadline.passed():  # the node's time limit, not this call's own: the node times out
                raise node_deadline.DeadlineExceeded(f"{method} {shown_url(request.url)}: {exc}") from exc
            # A request that could not connect (or resolve) never left: repeating it is safe for any method.
            never_left = exc.kind in ("connect", "dns") and not exc.after_redirect
            retry = exc.transient and (method in IDEMPOTENT_METHODS or never_left)
            delay = _backoff(limits, attempt)
            if retry and attempt < limits.attempts and delay < limits.remaining():
                logger.info("egress %s %s failed (%s), retrying in %.2fs", method, shown_url(request.url), exc, delay)
                time.sleep(delay)
                continue
            raise
        final = _finish(response, started, attempt)
        if response.status_code in RETRY_STATUSES and method in IDEMPOTENT_METHODS and attempt < limits.attempts:
            wait = _retry_delay(response, limits, attempt)
            if wait is not None and wait < limits.remaining():
                logger.info(
                    "egress %s %s answered %s, retrying in %.2fs",
                    method,
                    shown_url(request.url),
                    response.status_code,
                    wait,
                )
                time.sleep(wait)
                continue
        return final


@dataclass
class _Answer:
    status_code: int
    reason: str
    headers: httpx.Headers
    content: bytes
    url: httpx.URL
    redirects: list[str]


def _finish(answer: _Answer, started: float, attempt: int) -> EgressResponse:
    return EgressResponse(
        status_code=answer.status_code,
        reason=answer.reason,
        headers=answer.headers,
        content=answer.content,
        url=str(answer.url),
        duration_ms=round((time.monotonic() - started) * 1000),
        attempts=attempt,
        redirects=tuple(answer.redirects),
    )


def _follow(request: _Request, limits: _Limits, resolver: Resolver | None) -> _Answer:
    """One attempt: the request and its redirects, each hop checked before it connects."""
    backend = PinnedBackend()
    transport = PinnedTransport(backend, ssl_context(getattr(settings, "FLOWNOVA_EGRESS_CA_BUNDLE", "") or ""))
    budget = max(limits.remaining(), 0.001)  # a later attempt waits no longer than the call has left
    connect, read = min(limits.connect, budget), min(limits.read, budget)
    timeout = httpx.Timeout(connect=connect, read=read, write=read, pool=connect)
    method, url, headers, content = request.method, request.url, dict(request.headers), request.content
    redirects: list[str] = []
    with httpx.Client(transport=transport, trust_env=False, follow_redirects=False, timeout=timeout) as client:
        while True:
            try:
                checked = egress_check_url(url, resolver=resolver)
                backend.pin(checked)
                answer = _send(client, method, url, headers, content, limits)
            except EgressError as exc:
                exc.after_redirect = bool(redirects)
                raise
            location = answer.headers.get("location")
            if answer.status_code not in REDIRECT_STATUSES or not location:
                answer.redirects = redirects
                return answer
            if len(redirects) >= limits.max_redirects:
                raise EgressError(
                    f"too many redirects from {shown_url(request.url)} (more than {limits.max_redirects})",
                    kind="redirects",
                )
            try:
                next_url = url.join(location)
            except httpx.InvalidURL as exc:
                raise EgressRefused(f"refused a redirect from {shown_url(url)} to an invalid URL: {exc}") from None
            if _origin(next_url) != _origin(url):
                headers = {
                    name: value
                    for name, value in headers.items()
                    if name.lower() not in CREDENTIAL_HEADERS | request.sensitive
                }
            if (answer.status_code == 303 and method != "HEAD") or (
                answer.status_code in (301, 302) and method == "POST"
            ):
                method, content = "GET", None
                headers = {name: value for name, value in headers.items() if name.lower() != "content-type"}
            redirects.append(shown_url(next_url))
            url = next_url


def _send(
    client: httpx.Client,
    method: str,
    url: httpx.URL,
    headers: dict[str, str],
    content: bytes | None,
    limits: _Limits,
) -> _Answer:
    shown = shown_url(url)
    if limits.remaining() <= 0:
        raise EgressError(f"{method} {shown} ran out of time", kind="timeout", transient=True)
    started = time.monotonic()
    try:
        with client.stream(method, url, headers=headers, content=content) as response:
            body = b"" if response.status_code in REDIRECT_STATUSES else _read_capped(response, limits, shown)
            logger.info(
                "egress %s %s -> %s in %d ms",
                method,
                shown,
                response.status_code,
                round((time.monotonic() - started) * 1000),
            )
            return _Answer(response.status_code, response.reason_phrase, response.headers, body, url, [])
    except httpx.ConnectTimeout:
        raise EgressError(f"{method} {shown}: connection timed out", kind="connect", transient=True) from None
    except httpx.TimeoutException:
        raise EgressError(
            f"{method} {shown}: timed out waiting for the answer", kind="timeout", transient=True
        ) from None
    except httpx.ConnectError as exc:
        if _caused_by(exc, ssl.SSLCertVerificationError):
            # Not transient: the same certificate will be presented next time.
            raise EgressError(f"{method} {shown}: TLS certificate check failed ({_clip(exc)})", kind="tls") from None
        raise EgressError(f"{method} {shown}: cannot connect ({_clip(exc)})", kind="connect", transient=True) from None
    except httpx.TransportError as exc:
        raise EgressError(
            f"{method} {shown}: {type(exc).__name__} ({_clip(exc)})", kind="protocol", transient=True
        ) from None


def _read_capped(response: httpx.Response, limits: _Limits, shown: str) -> bytes:
    cap = limits.max_bytes
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > cap:
        raise EgressError(
            f"the answer of {shown} is {int(declared)} bytes, over the {cap} byte limit", kind="too_large"
        )
    body = bytearray()
    for chunk in response.iter_bytes():
        body += chunk
        if len(body) > cap:
            raise EgressError(f"the answer of {shown} is over the {cap} byte limit; stopped reading", kind="too_large")
        if limits.remaining() <= 0:
            raise EgressError(f"{shown} took too long to send its answer", kind="timeout", transient=True)
    return bytes(body)


# --- helpers ----------------------------------------------------------------------------------------------------


def _limits(timeout: float | None, max_response_bytes: int | None) -> _Limits:
    # The node's deadline, when it is nearer, bounds the whole call and each wait in it (flownova/deadline.py).
    total = node_deadline.bounded(float(settings.FLOWNOVA_EGRESS_TOTAL_TIMEOUT))
    return _Limits(
        connect=min(float(settings.FLOWNOVA_EGRESS_CONNECT_TIMEOUT), total),
        read=min(float(timeout or settings.FLOWNOVA_EGRESS_READ_TIMEOUT), total),
        deadline=time.monotonic() + total,
        max_bytes=int(max_response_bytes or settings.FLOWNOVA_EGRESS_MAX_RESPONSE_BYTES),
        max_redirects=int(settings.FLOWNOVA_EGRESS_MAX_REDIRECTS),
        attempts=1 + max(0, int(settings.FLOWNOVA_EGRESS_RETRIES)),
        backoff=float(settings.FLOWNOVA_EGRESS_BACKOFF_SECONDS),
        retry_after_max=float(settings.FLOWNOVA_EGRESS_RETRY_AFTER_MAX_SECONDS),
    )


def _backoff(limits: _Limits, attempt: int) -> float:
    return limits.backoff * 2.0 ** (attempt - 1)


def _retry_delay(answer: _Answer, limits: _Limits, attempt: int) -> float | None:
    """Seconds to wait before trying again, or None when the server asks for longer than we wait."""
    backoff = _backoff(limits, attempt)
    raw = answer.headers.get("retry-after", "").strip()
    if not raw or answer.status_code not in (429, 503):
        return backoff
    if raw.isdigit():
        wanted = float(raw)
    else:
        try:
            wanted = max(0.0, parsedate_to_datetime(raw).timestamp() - time.time())
        except (TypeError, ValueError, IndexError, OverflowError):
            return backoff
    if wanted > limits.retry_after_max:
        return None
    return max(wanted, backoff)


def _parse(url: str) -> httpx.URL:
    try:
        return httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise EgressRefused(f"invalid URL {str(url)[:200]!r}: {exc}") from None


def _with_params(url: httpx.URL, params: Sequence[tuple[str, str]]) -> httpx.URL:
    """`params` appended to the URL's own query (httpx's `params=` would replace that query)."""
    if not params:
        return url
    extra = urlencode(list(params), quote_via=quote)
    query = url.query.decode("ascii")
    return url.copy_with(query=f"{query}&{extra}".encode("ascii") if query else extra.encode("ascii"))


def _origin(url: httpx.URL) -> tuple[str, bytes, int | None]:
    return (url.scheme, url.raw_host.lower(), url.port)


def _has_header(headers: Mapping[str, str], name: str) -> bool:
    return any(key.lower() == name for key in headers)


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            return False
        if isinstance(seen, kind):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _clip(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 200 else text[:200] + "..."
