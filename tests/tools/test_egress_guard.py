"""The server-side request forgery guard: the pure decision, the URL check with fake resolvers, and end to end
against live servers on loopback (the only addresses a test ever connects to)."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from django.core.exceptions import ImproperlyConfigured
from pytest_django import Settings

from tests.tools.servers import LocalServer, Reply
from tools.egress import EgressRefused, egress_address_allowed, egress_check_url, egress_request
from tools.egress_guard import Resolver
from tools.egress_transport import PinnedBackend

REFUSED = [
    ("127.0.0.1", "loopback"),
    ("127.0.0.2", "loopback"),
    ("10.0.0.1", "private"),
    ("10.255.255.255", "private"),
    ("172.16.0.1", "private"),
    ("172.31.255.254", "private"),
    ("192.168.1.1", "private"),
    ("169.254.169.254", "metadata"),
    ("169.254.1.1", "link-local"),
    ("100.64.0.1", "carrier-grade NAT"),
    ("100.127.255.254", "carrier-grade NAT"),
    ("100.100.100.200", "metadata"),
    ("192.0.0.192", "metadata"),
    ("0.0.0.0", "unspecified"),
    ("0.1.2.3", "private"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "reserved"),
    ("192.0.2.1", "private"),  # TEST-NET-1, documentation only
    ("198.18.0.1", "private"),  # benchmarking
    ("::1", "loopback"),
    ("::", "unspecified"),
    ("fe80::1", "link-local"),
    ("fe80::1%1", "link-local"),
    ("fc00::1", "private"),
    ("fd00::1", "private"),
    ("fd00:ec2::254", "metadata"),
    ("fec0::1", "site-local"),
    ("ff02::1", "multicast"),
    ("2001:db8::1", "private"),
    ("::ffff:127.0.0.1", "127.0.0.1"),
    ("::ffff:10.0.0.1", "10.0.0.1"),
    ("::ffff:169.254.169.254", "metadata"),
    ("::127.0.0.1", "127.0.0.1"),  # IPv4-compatible
    ("2002:7f00:1::", "127.0.0.1"),  # 6to4 around loopback
    ("2002:a00:1::1", "10.0.0.1"),  # 6to4 around 10/8
    ("64:ff9b::7f00:1", "127.0.0.1"),  # NAT64 around loopback
    ("64:ff9b::a9fe:a9fe", "metadata"),  # NAT64 around 169.254.169.254
]

ALLOWED = ["93.184.216.34", "8.8.8.8", "1.1.1.1", "2606:2800:220:1::1", "2a00:1450:4001:80b::200e"]


@pytest.mark.parametrize(("address", "why"), REFUSED)
def test_the_decision_refuses_every_non_public_address(address: str, why: str) -> None:
    allowed, reason = egress_address_allowed(address, "", [])
    assert not allowed
    assert why in reason


@pytest.mark.parametrize("address", ALLOWED)
def test_the_decision_admits_public_addresses(address: str) -> None:
    assert egress_address_allowed(address, "api.example.com", []) == (True, "a public address")


@pytest.mark.parametrize(
    ("address", "host", "allowlist", "expected"),
    [
        ("10.1.2.3", "intranet.test", ["intranet.test"], True),  # by host name
        ("10.1.2.3", "INTRANET.test.", ["intranet.test"], True),  # case and a final dot do not matter
        ("10.1.2.3", "api.intranet.test", ["*.intranet.test"], True),  # by domain
        ("10.1.2.3", "intranet.test", ["*.intranet.test"], False),  # *.domain is its subdomains only
        ("10.1.2.3", "other.test", ["intranet.test"], False),
        ("10.1.2.3", "x.test", ["10.1.2.3"], True),  # by address
        ("10.1.2.4", "x.test", ["10.1.2.3"], False),
        ("10.1.2.4", "x.test", ["10.1.0.0/16"], True),  # by network
        ("10.2.0.1", "x.test", ["10.1.0.0/16"], False),
        ("127.0.0.1", "", ["127.0.0.1"], True),
        ("127.0.0.2", "", ["127.0.0.1"], False),
        ("::ffff:127.0.0.1", "", ["127.0.0.1"], True),  # the same address, mapped
        ("::1", "", ["[::1]"], True),
        ("fd12::5", "", ["fd12::/16"], True),
        # Never, whatever the list says: metadata (address or name), unspecified, multicast.
        ("169.254.169.254", "", ["169.254.0.0/16"], False),
        ("169.254.169.254", "", ["0.0.0.0/0"], False),
        ("10.0.0.5", "metadata.google.internal", ["metadata.google.internal", "10.0.0.0/8"], False),
        ("0.0.0.0", "", ["0.0.0.0/0"], False),
        ("224.0.0.1", "", ["224.0.0.0/4"], False),
        ("fd00:ec2::254", "", ["fd00::/8"], False),
    ],
)
def test_the_allow_list_admits_chosen_hosts_addresses_and_networks(
    address: str, host: str, allowlist: list[str], expected: bool
) -> None:
    allowed, reason = egress_address_allowed(address, host, allowlist)
    assert allowed is expected, reason
    if expected:
        assert reason.startswith("allow-listed")


def test_a_metadata_host_name_is_refused_whatever_it_resolves_to() -> None:
    assert egress_address_allowed("93.184.216.34", "metadata.google.internal", []) == (
        False,
        "metadata.google.internal is a cloud metadata host",
    )


def test_a_malformed_allow_list_entry_is_a_configuration_error() -> None:
    with pytest.raises(ImproperlyConfigured, match=re.escape("'10.0.0.0/33'")):
        egress_address_allowed("10.0.0.1", "", ["10.0.0.0/33"])


def test_a_malformed_address_is_refused() -> None:
    assert egress_address_allowed("not-an-ip", "", []) == (False, "'not-an-ip' is not an IP address")


# --- the URL check, with resolvers that never touch the network ----------------------------------------------


def fake_resolver(table: dict[str, list[str]], calls: list[str] | None = None) -> Resolver:
    def resolve(host: str, port: int) -> list[str]:
        if calls is not None:
            calls.append(host)
        return table[host]

    return resolve


@pytest.mark.parametrize(
    ("addresses", "message"),
    [
        (["10.0.0.7"], "intranet.test resolves to 10.0.0.7): 10.0.0.7 is a private address"),
        (["169.254.169.254"], "metadata address"),
        (["172.20.0.1"], "private"),
        (["192.168.0.10"], "private"),
        (["100.64.3.2"], "carrier-grade NAT"),
        (["fd00::1"], "private"),
        (["93.184.216.34", "10.0.0.7"], "10.0.0.7 is a private address"),  # one bad answer is enough
    ],
)
def test_a_name_resolving_to_a_private_address_is_refused(
    addresses: list[str], message: str, connects: list[tuple[str, int]]
) -> None:
    with pytest.raises(EgressRefused, match=re.escape(message)):
        egress_request(method="GET", url="http://intranet.test/x", resolver=fake_resolver({"intranet.test": addresses}))
    assert connects == []


def test_the_check_resolves_once_and_keeps_the_addresses_it_checked() -> None:
    calls: list[str] = []
    checked = egress_check_url(
        "https://api.example.test:8443/v1?q=1", resolver=fake_resolver({"api.example.test": ["93.184.216.34"]}, calls)
    )
    assert (checked.host, checked.port, checked.addresses) == ("api.example.test", 8443, ("93.184.216.34",))
    assert calls == ["api.example.test"]


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "gopher://127.0.0.1:70/_x",
        "ftp://example.test/",
        "javascript:alert(1)",
        "//x/y",
        "dict://x",
    ],
)
def test_only_http_and_https_are_allowed(url: str, connects: list[tuple[str, int]]) -> None:
    with pytest.raises(EgressRefused, match="only http and https"):
        egress_request(method="GET", url=url)
    assert connects == []


# --- end to end on loopback ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "localhost", "LocalHost", "[::1]", "0.0.0.0", "2130706433", "0x7f.1", "127.1", "[::ffff:127.0.0.1]"],
)
def test_loopback_in_every_spelling_is_refused_before_any_connection(
    host: str, server: LocalServer, connects: list[tuple[str, int]]
) -> None:
    with pytest.raises(EgressRefused, match="refused"):
        egress_request(method="GET", url=f"http://{host}:{server.port}/secret")
    assert connects == []
    assert server.received == []


def test_an_allow_listed_loopback_server_is_reached(
    server: LocalServer, allow_loopback: None, connects: list[tuple[str, int]]
) -> None:
    response = egress_request(method="GET", url=f"{server.url}/hello")
    assert response.status_code == 200
    assert [r.path for r in server.received] == ["/hello"]
    assert connects == [("127.0.0.1", server.port)]


def test_allow_listing_127_0_0_1_does_not_admit_127_0_0_2(
    server: LocalServer, allow_loopback: None, connects: list[tuple[str, int]]
) -> None:
    with pytest.raises(EgressRefused, match=re.escape("127.0.0.2 is a loopback address")):
        egress_request(method="GET", url=f"http://127.0.0.2:{server.port}/")
    assert connects == []


def test_a_redirect_to_a_refused_address_is_refused(
    make_server: Callable[..., LocalServer], allow_loopback: None, connects: list[tuple[str, int]]
) -> None:
    redirecting = make_server(lambda request, count: Reply(302, headers={"Location": "http://127.0.0.2:9/x"}))
    with pytest.raises(EgressRefused, match=re.escape("127.0.0.2 is a loopback address")):
        egress_request(method="GET", url=f"{redirecting.url}/start")
    assert connects == [("127.0.0.1", redirecting.port)]  # the first hop only


@pytest.mark.parametrize(
    "location",
    ["file:///etc/passwd", "gopher://127.0.0.1:70/_x", "http://169.254.169.254/latest/meta-data/", "http://[::1]/"],
)
def test_every_redirect_hop_is_checked(
    make_server: Callable[..., LocalServer], allow_loopback: None, connects: list[tuple[str, int]], location: str
) -> None:
    redirecting = make_server(lambda request, count: Reply(307, headers={"Location": location}))
    with pytest.raises(EgressRefused):
        egress_request(method="GET", url=f"{redirecting.url}/start")
    assert len(redirecting.received) == 1
    assert connects == [("127.0.0.1", redirecting.port)]


def test_the_connection_goes_to_the_checked_address_without_a_second_lookup(
    server: LocalServer, settings: Settings, connects: list[tuple[str, int]]
) -> None:
    # A resolver that would answer differently the second time (DNS rebinding): it is asked once.
    answers = iter([["127.0.0.1"], ["10.0.0.1"]])
    calls: list[str] = []

    def rebinding(host: str, port: int) -> list[str]:
        calls.append(host)
        return next(answers)

    settings.FLOWNOVA_EGRESS_ALLOWLIST = ["127.0.0.1"]
    response = egress_request(method="GET", url=f"http://rebind.test:{server.port}/r", resolver=rebinding)
    assert response.status_code == 200
    assert calls == ["rebind.test"]
    assert connects == [("127.0.0.1", server.port)]
    assert server.received[0].headers["host"] == f"rebind.test:{server.port}"  # the name, not the address


def test_a_connection_the_guard_did_not_pin_is_refused() -> None:
    backend = PinnedBackend()
    with pytest.raises(Exception, match="not checked by the egress guard"):
        backend.connect_tcp("127.0.0.1", 9)
