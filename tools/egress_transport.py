"""The egress transport: httpx connecting only to the addresses the guard checked (`tools.egress_guard`), with
TLS verified against the URL's host name."""

from __future__ import annotations

import ssl
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

import certifi
import httpcore
import httpx

from tools.egress_guard import CheckedURL


class PinnedBackend(httpcore.SyncBackend):
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


class PinnedTransport(httpx.HTTPTransport):
    def __init__(self, backend: PinnedBackend, ssl_context: ssl.SSLContext) -> None:
        super().__init__(verify=ssl_context, trust_env=False, retries=0)
        # httpx has no public way to give its pool a network backend; the pool it built is replaced by the
        # same pool with ours (httpx is pinned in requirements.txt, and the tests would catch a change).
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context, max_connections=4, http1=True, http2=False, retries=0, network_backend=backend
        )


@lru_cache(maxsize=4)
def ssl_context(ca_bundle: str) -> ssl.SSLContext:
    # Certificates are verified against the URL's host name (httpcore passes it as server_hostname), not the
    # pinned address.
    return ssl.create_default_context(cafile=ca_bundle or certifi.where())
