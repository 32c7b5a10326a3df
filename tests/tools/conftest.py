"""Fixtures for the tool tests, and the safety net that keeps them on loopback.

No test here may send a packet outside 127.0.0.0/8 or ::1, not even when the egress guard is broken: every
socket connect of this process is checked, and host names other than `localhost` are never resolved.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterator
from typing import Any

import httpcore
import pytest
from pytest_django import Settings

from tests.tools.servers import LocalServer, Responder, echo
from tools.egress_transport import PinnedBackend

LOCAL_NAMES = {"localhost"}


def _loopback(host: object) -> bool:
    try:
        return ipaddress.ip_address(str(host).split("%", 1)[0]).is_loopback
    except ValueError:
        return False


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    real_getaddrinfo = socket.getaddrinfo
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def getaddrinfo(host: bytes | str | None, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name.lower() not in LOCAL_NAMES and not _loopback(name) and name not in ("", "None"):
            raise AssertionError(f"a test tried to resolve {name!r}: only localhost may be resolved")
        return real_getaddrinfo(host, *args, **kwargs)

    def check(sock: socket.socket, address: Any) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not _loopback(address[0]):
            raise AssertionError(f"a test tried to connect to {address!r}: only loopback is allowed")

    def connect(self: socket.socket, address: Any) -> None:
        check(self, address)
        return real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        check(self, address)
        return real_connect_ex(self, address)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)


@pytest.fixture(autouse=True)
def egress_settings(settings: Settings) -> None:
    """Nothing allow-listed unless a test says so; quick backoff."""
    settings.FLOWNOVA_EGRESS_ALLOWLIST = []
    settings.FLOWNOVA_EGRESS_BACKOFF_SECONDS = 0.01
    settings.FLOWNOVA_EGRESS_RETRIES = 2


@pytest.fixture
def allow_loopback(settings: Settings) -> None:
    settings.FLOWNOVA_EGRESS_ALLOWLIST = ["127.0.0.1"]


@pytest.fixture
def connects(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Every address egress connected to, in order."""
    seen: list[tuple[str, int]] = []
    real = PinnedBackend._connect

    def record(self: PinnedBackend, address: str, port: int, *args: Any) -> httpcore.NetworkStream:
        seen.append((address, port))
        return real(self, address, port, *args)

    monkeypatch.setattr(PinnedBackend, "_connect", record)
    return seen


@pytest.fixture
def make_server() -> Iterator[Callable[..., LocalServer]]:
    servers: list[LocalServer] = []

    def make(responder: Responder = echo, **kwargs: Any) -> LocalServer:
        server = LocalServer(responder, **kwargs)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()


@pytest.fixture
def server(make_server: Callable[..., LocalServer]) -> LocalServer:
    """An echo server: answers every request with JSON describing what it received."""
    return make_server()
