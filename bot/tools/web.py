"""HTTP for the web tools under one address rule: a request may reach only public addresses.

The rule is checked where the connection is made, after DNS resolution, for every connection
(so for every redirect too): the host name is resolved once, each address is checked, and the
socket is opened to a checked address, never to the name again. Loopback, private, link-local,
multicast, reserved and unspecified addresses are refused (an IPv4 address written as IPv6
too), unless the URL's `host:port` is one the operator exempted (BOT_FETCH_ALLOW_PRIVATE).
TLS still checks the certificate against the URL's host name (httpcore sends it as SNI).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx

from bot.model.llm import shared_ssl_context

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
MAX_ADDRESSES_TRIED = 3


class AddressRefused(Exception):
    """A request was not sent: its host is, or resolves only to, an address the rule
    refuses; the message says which, for the model."""


def is_public(address: IPAddress) -> bool:
    """Whether an address is on the public internet (not loopback, private, link-local,
    multicast, reserved or unspecified)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


@dataclass(frozen=True, slots=True)
class AddressPolicy:
    """Which addresses requests may reach: public ones, and any address of the exempted
    `host:port` pairs (written in the URL's form, host in lower case)."""

    exempt: frozenset[tuple[str, int]] = frozenset()

    @classmethod
    def allowing(cls, entries: Iterable[str]) -> AddressPolicy:
        """The policy for BOT_FETCH_ALLOW_PRIVATE's `host:port` entries."""
        exempt = set()
        for entry in entries:
            host, _, port = entry.strip().rpartition(":")
            exempt.add((host.strip("[]").lower(), int(port)))
        return cls(frozenset(exempt))

    def allows(self, host: str, port: int, address: IPAddress) -> bool:
        """Whether a connection for `host:port` may go to `address`."""
        return (host.lower(), port) in self.exempt or is_public(address)


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend with the address rule: resolve, check, connect to the
    checked address (the TLS layer above still uses the host name)."""

    def __init__(self, policy: AddressPolicy) -> None:
        self._policy = policy
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self, host: str, port: int, timeout: float | None = None,  # noqa: ASYNC109
        local_address: str | None = None, socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """A connection to the first allowed address `host` resolves to."""
        addresses = await _resolve(host, port)
        allowed = [a for a in addresses if self._policy.allows(host, port, a)]
        if not allowed:
            shown = ", ".join(str(a) for a in addresses[:3])
            raise AddressRefused(
                f"{host} ({shown}) is a loopback, private, link-local, multicast or reserved "
                "address, which this bot does not fetch"
            )
        failure: Exception | None = None
        for address in allowed[:MAX_ADDRESSES_TRIED]:
            try:
                return await self._inner.connect_tcp(
                    str(address), port, timeout=timeout, local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None,  # noqa: ASYNC109
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Never: a web tool reaches hosts only."""
        raise AddressRefused("local sockets are not fetched")

    async def sleep(self, seconds: float) -> None:
        """Wait (httpcore's retry pause)."""
        await self._inner.sleep(seconds)


async def _resolve(host: str, port: int) -> list[IPAddress]:
    """The addresses of `host` (an address written as one is itself), in DNS order."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        found = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise httpcore.ConnectError(f"{host} could not be resolved") from exc
    addresses: dict[IPAddress, None] = {}
    for *_, sockaddr in found:
        addresses[ipaddress.ip_address(str(sockaddr[0]).partition("%")[0])] = None
    return list(addresses)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport (its exception mapping and streams) over a connection pool whose
    network backend enforces the address rule; no proxy from the environment."""

    def __init__(self, policy: AddressPolicy, *, max_connections: int = 20) -> None:
        super().__init__(trust_env=False, verify=shared_ssl_context())
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=shared_ssl_context(),
            max_connections=max_connections,
            max_keepalive_connections=max_connections // 2,
            network_backend=GuardedBackend(policy),
        )
