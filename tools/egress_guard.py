"""The egress guard: which URL an outbound request may reach, and at which addresses.

`egress_check_url` parses a URL, resolves its host once and judges every address with `egress_address_allowed`
(public addresses only, unless the host or address is in `FLOWNOVA_EGRESS_ALLOWLIST`; cloud metadata, the
unspecified address and multicast never). The client (`tools.egress`) then connects to those checked addresses
only (`tools.egress_transport`), so a DNS answer that changes between the check and the connect cannot send a
request elsewhere. The errors of the whole egress path are defined here, where the first of them is raised.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import httpx
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]

ALLOWED_SCHEMES = frozenset({"http", "https"})

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


# --- errors -----------------------------------------------------------------------------------------------------


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
    if address.version == 6 and address.is_site_local:
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
    if address.version == 6 and address.scope_id:
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
        raise EgressRefused(
            f"refused {shown_url(parsed)}: only http and https URLs are allowed, not {scheme or 'none'}"
        )
    host = parsed.raw_host.decode("ascii").lower()
    if not host:
        raise EgressRefused(f"refused {shown_url(parsed)}: the URL has no host")
    port = parsed.port or (443 if scheme == "https" else 80)
    literal = _ip_literal(host)
    if literal is None and _NUMERIC_HOST_RE.fullmatch(host):
        raise EgressRefused(
            f"refused {shown_url(parsed)}: {host!r} is an IP address written in a non-standard form; write it as "
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
                f"refused {shown_url(parsed)}{resolved}: {reason}; tools may only reach public addresses unless "
                "the host is in FLOWNOVA_EGRESS_ALLOWLIST"
            )
    return CheckedURL(parsed, host, port, tuple(addresses))


def _ip_literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None


def shown_url(url: httpx.URL) -> str:
    """The URL for messages and logs: no credentials, no query (it may carry user data)."""
    host = url.raw_host.decode("ascii", "replace")
    if ":" in host:
        host = f"[{host}]"
    port = f":{url.port}" if url.port else ""
    return f"{url.scheme}://{host}{port}{url.path}"[:300]
