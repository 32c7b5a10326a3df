"""The one way the product makes an outbound HTTP request (tools, and anything else that calls out).

What every request gets:

- A guard against server-side request forgery. The URL must be http or https; its host is resolved once, every
  address it resolves to must be allowed by `egress_address_allowed` (public addresses only, unless the host or
  address is in `FLOWNOVA_EGRESS_ALLOWLIST`), and the connection goes to one of those checked addresses: the
  network backend below connects to the pinned address instead of resolving the name again, so a DNS answer
  that changes between the check and the connect (DNS rebinding) cannot send us elsewhere. The Host header,
  TLS SNI and certificate verification keep using the host name.
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
"""

from __future__ import annotations

import ipaddress
import logging
import re
import socket
import ssl
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from functools import lru_cache
from typing import Any
from urllib.parse import quote, urlencode

import certifi
import httpcore
import httpx
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

__all__ = [
    "IDEMPOTENT_METHODS",
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

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
# Methods that get the Idempotency-Key header: the others are idempotent by definition.
KEYED_METHODS = frozenset({"POST", "PATCH"})
ALLOWED_SCHEMES = frozenset({"http", "https"})
RETRY_STATUSES = frozenset({429, 502, 503, 504})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# Dropped whenever a redirect leaves the origin, on top of the caller's sensitive headers.
CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})

# Cloud metadata services: refused even when an allow-list entry (a broad CIDR, say) would cover them.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(address)
    for address in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean...
        "169.254.170.2",  # AWS ECS task credentials
        "169.254.169.253",  # AWS DNS
        "fd00:ec2::254",  # AWS over IPv6
        "100.100.100.200",  # Alibaba Cloud
        "192.0.0.192",  # Oracle Cloud
    )
)
METADATA_HOSTS = frozenset(
    {"metadata.google.internal", "metadata.goog", "metadata", "instance-data", "instance-data.ec2.internal"}
)
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
# Host names made only of numbers, dots and hex: what inet_aton reads as an address (2130706433, 0x7f.1, 127.1).
_NUMERIC_HOST_RE = re.compile(r"(?:0x[0-9a-f]*|[0-9]+)(?:\.(?:0x[0-9a-f]*|[0-9]+))*\.?", re.IGNORECASE)
_HOST_ENTRY_RE = re.compile(r"(\*\.)?[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*", re.I)


# --- errors and results -----------------------------------------------------------------------------------


class EgressError(Exception):
    """No response could be had. `kind`: refused, dns, connect, tls, timeout, too_large, redirects, protocol.
    `transient`: whether trying again later may help."""

    def __init__(self, message: str, *, kind: str, transient: bool = False) -> None:
        super().__init__(message)
        self.kind = kind
        self.transient = transient
        # True when an earlier hop of the call (before a redirect) reached the server.
        self.after_redirect = False


class EgressRefused(EgressError):
    """The request was refused before any connection: a scheme, host or address the guard does not admit."""

    def __init__(self, message: str) -> None:
        super().__init__(message, kind="refused", transient=False)


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
        media_type = self.headers.get("content-type", "").split(";")[0].strip().lower()
        return media_type == "application/json" or media_type.endswith("+json")


# --- the guard's decision: pure -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _AllowList:
    hosts: frozenset[str] = frozenset()
    suffixes: tuple[str, ...] = ()  # from "*.example.com" entries, kept as ".example.com"
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    def entry_for(self, host: str, addresses: Sequence[IPAddress]) -> str | None:
        if host in self.hosts:
            return host
        for suffix in self.suffixes:
            if host.endswith(suffix):
                return f"*{suffix}"
        for network in self.networks:
            if any(address.version == network.version and address in network for address in addresses):
                return str(network)
        return None


@lru_cache(maxsize=32)
def _parse_allowlist(entries: tuple[str, ...]) -> _AllowList:
    hosts: set[str] = set()
    suffixes: list[str] = []
    networks = []
    for raw in entries:
        entry = raw.strip().lower()
        if not entry:
            continue
        unbracketed = entry[1:-1] if entry.startswith("[") and entry.endswith("]") else entry
        try:
            networks.append(ipaddress.ip_network(unbracketed, strict=False))
            continue
        except ValueError:
            pass
        if _HOST_ENTRY_RE.fullmatch(entry.rstrip(".")) is None or _NUMERIC_HOST_RE.fullmatch(entry):
            raise ImproperlyConfigured(
                f"FLOWNOVA_EGRESS_ALLOWLIST entry {raw!r} is not a host name (optionally *.domain), an IP address "
                "or a CIDR network"
            )
        if entry.startswith("*."):
            suffixes.append(entry[1:].rstrip("."))
        else:
            hosts.add(entry.rstrip("."))
    return _AllowList(frozenset(hosts), tuple(suffixes), tuple(networks))


def _embedded_ipv4(address: IPAddress) -> list[ipaddress.IPv4Address]:
    """IPv4 addresses an IPv6 address carries and that a packet to it may reach (mapped, compatible, 6to4,
    Teredo, NAT64): each must pass the check as well."""
    if address.version != 6:
        return []
    assert isinstance(address, ipaddress.IPv6Address)
    found = []
    if address.ipv4_mapped is not None:
        found.append(address.ipv4_mapped)
    if address in _IPV4_COMPATIBLE and int(address) > 1:  # not :: or ::1, which are themselves
        found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    if address.sixtofour is not None:
        found.append(address.sixtofour)
    if address.teredo is not None:
        found.extend(address.teredo)
    if any(address in network for network in _NAT64):
        found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return found


def _never_reason(address: IPAddress) -> str | None:
    """Addresses no allow-list entry admits."""
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if address.is_unspecified:
        return "the unspecified address"
    if address.is_multicast:
        return "a multicast address"
    return None


def _non_public_reason(address: IPAddress) -> str | None:
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.version == 4 and address in _CGNAT:
        return "a carrier-grade NAT address (100.64.0.0/10)"
    if address.is_reserved:
        return "a reserved address"
    if address.version == 6 and address.is_site_local:  # type: ignore[union-attr]
        return "a site-local address"
    if address.is_private:
        return "a private address"
    if not address.is_global:
        return "not a public address"
    return None


def egress_address_allowed(ip: str | IPAddress, host: str = "", allowlist: Iterable[str] = ()) -> tuple[bool, str]:
    """Whether a request to `host` may connect to `ip`, and why (a short phrase for error messages).

    Refused always: cloud metadata addresses and names, the unspecified address, multicast. Admitted: an
    address or host in `allowlist` (host names, `*.domain`, IP addresses or CIDR networks), then any address
    that is public. Everything else (loopback, private, link-local, CGNAT, reserved, site-local, any other
    non-global range) is refused. An IPv6 address that embeds an IPv4 address (IPv4-mapped or -compatible,
    6to4, Teredo, NAT64) is judged on both. Pure: no DNS, no settings.
    """
    try:
        address = ipaddress.ip_address(ip) if isinstance(ip, str) else ip
    except ValueError:
        return False, f"{ip!r} is not an IP address"
    if address.version == 6 and address.scope_id:  # type: ignore[union-attr]
        address = ipaddress.IPv6Address(str(address).split("%", 1)[0])
    name = host.strip().lower().rstrip(".")
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    if name in METADATA_HOSTS:
        return False, f"{name} is a cloud metadata host"
    # The embedded IPv4 address first: it is what a mapped or translated packet reaches, so the clearer reason.
    candidates: list[IPAddress] = [*_embedded_ipv4(address), address]
    for candidate in candidates:
        reason = _never_reason(candidate)
        if reason:
            return False, f"{candidate} is {reason}"
    entry = _parse_allowlist(tuple(allowlist)).entry_for(name, candidates)
    if entry is not None:
        return True, f"allow-listed ({entry})"
    for candidate in candidates:
        reason = _non_public_reason(candidate)
        if reason:
            shown = str(candidate) if candidate == address else f"{candidate} (inside {address})"
            return False, f"{shown} is {reason}"
    return True, "a public address"


# --- resolution and the URL check -----------------------------------------------------------------------------


def egress_resolve(host: str, port: int) -> list[str]:
    """The addresses `host` resolves to, in the resolver's order, without repeats."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        transient = exc.errno == socket.EAI_AGAIN
        raise EgressError(f"cannot resolve {host}: {exc.strerror}", kind="dns", transient=transient) from None
    seen: dict[str, None] = {}
    for _family, _type, _proto, _canon, sockaddr in infos:
        seen.setdefault(str(sockaddr[0]).split("%", 1)[0], None)
    return list(seen)


@dataclass(frozen=True)
class CheckedURL:
    url: httpx.URL
    host: str  # as httpcore will name it when connecting (lower case, no brackets)
    port: int
    addresses: tuple[str, ...]  # every one checked; connect to these only


def _allowlist() -> list[str]:
    return list(getattr(settings, "FLOWNOVA_EGRESS_ALLOWLIST", []) or [])


def egress_check_url(url: str | httpx.URL, *, resolver: Resolver | None = None) -> CheckedURL:
    """Parse and check `url`, resolving its host once. Raises EgressRefused (or EgressError for an
    unresolvable name) before any connection is made."""
    try:
        parsed = url if isinstance(url, httpx.URL) else httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise EgressRefused(f"invalid URL {str(url)[:200]!r}: {exc}") from None
    scheme = parsed.scheme.lower()
    if scheme not in ALLOWED_SCHEMES:
        raise EgressRefused(f"refused {_shown(parsed)}: only http and https URLs are allowed, not {scheme or 'none'}")
    host = parsed.raw_host.decode("ascii").lower()
    if not host:
        raise EgressRefused(f"refused {_shown(parsed)}: the URL has no host")
    port = parsed.port or (443 if scheme == "https" else 80)
    literal = _ip_literal(host)
    if literal is None and _NUMERIC_HOST_RE.fullmatch(host):
        raise EgressRefused(
            f"refused {_shown(parsed)}: {host!r} is an IP address written in a non-standard form; write it as "
            "a plain dotted or IPv6 address"
        )
    addresses = [str(literal)] if literal is not None else (resolver or egress_resolve)(host, port)
    if not addresses:
        raise EgressError(f"cannot resolve {host}: no addresses", kind="dns")
    allowlist = _allowlist()
    for address in addresses:
        allowed, reason = egress_address_allowed(address, host, allowlist)
        if not allowed:
            resolved = "" if literal is not None else f" ({host} resolves to {address})"
            raise EgressRefused(
                f"refused {_shown(parsed)}{resolved}: {reason}; tools may only reach public addresses unless "
                "the host is in FLOWNOVA_EGRESS_ALLOWLIST"
            )
    return CheckedURL(parsed, host, port, tuple(addresses))


def _ip_literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None


def _shown(url: httpx.URL) -> str:
    """The URL for messages and logs: no credentials, no query (it may carry user data)."""
    host = url.raw_host.decode("ascii", "replace")
    if ":" in host:
        host = f"[{host}]"
    port = f":{url.port}" if url.port else ""
    return f"{url.scheme}://{host}{port}{url.path}"[:300]


# --- connecting to the checked address only ----------------------------------------------------------------


class _PinnedBackend(httpcore.SyncBackend):
    """Connects to the addresses the guard checked for (host, port), never resolving the name again. A
    connection to anything not pinned is refused: if a code path ever skipped the check, it fails closed."""

    def __init__(self) -> None:
        self._pins: dict[tuple[str, int], tuple[str, ...]] = {}

    def pin(self, checked: CheckedURL) -> None:
        self._pins[(checked.host, checked.port)] = checked.addresses

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        addresses = self._pins.get((host.lower(), port))
        if not addresses:
            raise httpcore.ConnectError(f"{host}:{port} was not checked by the egress guard")
        last_error: Exception | None = None
        for address in addresses:
            try:
                return self._connect(address, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last_error = exc
        assert last_error is not None
        raise last_error

    def _connect(
        self,
        address: str,
        port: int,
        timeout: float | None,
        local_address: str | None,
        socket_options: Iterable[Any] | None,
    ) -> httpcore.NetworkStream:
        return super().connect_tcp(address, port, timeout, local_address, socket_options)

    def connect_unix_socket(self, *args: Any, **kwargs: Any) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("unix sockets are not reachable through egress")


class _PinnedTransport(httpx.HTTPTransport):
    def __init__(self, backend: _PinnedBackend, ssl_context: ssl.SSLContext) -> None:
        super().__init__(verify=ssl_context, trust_env=False, retries=0)
        # httpx has no public way to give its pool a network backend; the pool it built is replaced by the
        # same pool with ours (httpx is pinned in requirements.txt, and the tests would catch a change).
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context, max_connections=4, http1=True, http2=False, retries=0, network_backend=backend
        )


@lru_cache(maxsize=4)
def _ssl_context(ca_bundle: str) -> ssl.SSLContext:
    # Certificates are verified against the URL's host name (httpcore passes it as server_hostname), not the
    # pinned address.
    return ssl.create_default_context(cafile=ca_bundle or certifi.where())


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
    while True:
        attempt += 1
        try:
            response = _follow(request, limits, resolver)
        except EgressError as exc:
            # A request that could not connect (or resolve) never left: repeating it is safe for any method.
            never_left = exc.kind in ("connect", "dns") and not exc.after_redirect
            retry = exc.transient and (method in IDEMPOTENT_METHODS or never_left)
            delay = _backoff(limits, attempt)
            if retry and attempt < limits.attempts and delay < limits.remaining():
                logger.info("egress %s %s failed (%s), retrying in %.2fs", method, _shown(request.url), exc, delay)
                time.sleep(delay)
                continue
            raise
        final = _finish(response, started, attempt)
        if response.status_code in RETRY_STATUSES and method in IDEMPOTENT_METHODS and attempt < limits.attempts:
            delay = _retry_delay(response, limits, attempt)
            if delay is not None and delay < limits.remaining():
                logger.info(
                    "egress %s %s answered %s, retrying in %.2fs",
                    method,
                    _shown(request.url),
                    response.status_code,
                    delay,
                )
                time.sleep(delay)
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
    backend = _PinnedBackend()
    transport = _PinnedTransport(backend, _ssl_context(getattr(settings, "FLOWNOVA_EGRESS_CA_BUNDLE", "") or ""))
    timeout = httpx.Timeout(connect=limits.connect, read=limits.read, write=limits.read, pool=limits.connect)
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
                    f"too many redirects from {_shown(request.url)} (more than {limits.max_redirects})",
                    kind="redirects",
                )
            try:
                next_url = url.join(location)
            except httpx.InvalidURL as exc:
                raise EgressRefused(f"refused a redirect from {_shown(url)} to an invalid URL: {exc}") from None
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
            redirects.append(_shown(next_url))
            url = next_url


def _send(
    client: httpx.Client,
    method: str,
    url: httpx.URL,
    headers: dict[str, str],
    content: bytes | None,
    limits: _Limits,
) -> _Answer:
    shown = _shown(url)
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
    total = float(settings.FLOWNOVA_EGRESS_TOTAL_TIMEOUT)
    return _Limits(
        connect=float(settings.FLOWNOVA_EGRESS_CONNECT_TIMEOUT),
        read=float(timeout or settings.FLOWNOVA_EGRESS_READ_TIMEOUT),
        deadline=time.monotonic() + total,
        max_bytes=int(max_response_bytes or settings.FLOWNOVA_EGRESS_MAX_RESPONSE_BYTES),
        max_redirects=int(settings.FLOWNOVA_EGRESS_MAX_REDIRECTS),
        attempts=1 + max(0, int(settings.FLOWNOVA_EGRESS_RETRIES)),
        backoff=float(settings.FLOWNOVA_EGRESS_BACKOFF_SECONDS),
        retry_after_max=float(settings.FLOWNOVA_EGRESS_RETRY_AFTER_MAX_SECONDS),
    )


def _backoff(limits: _Limits, attempt: int) -> float:
    return limits.backoff * 2 ** (attempt - 1)


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
