"""Admission: who may open a connection, counted per address. Pure counting, no Twisted.

At most ``max_connections`` connections, and at most ``max_connecting_per_ip`` from one
address that have not had ``connect`` accepted yet (the handshake and connect deadlines bound
how long such a connection lasts, so this caps what one address can hold open cheaply). An
"address" is an IPv4 address or an IPv6 /64 (``ipv6_prefix_length``): one IPv6 host commonly
holds a whole /64. Refusals are logged at most once per ``REFUSAL_LOG_INTERVAL`` with a count.
"""

from __future__ import annotations

import ipaddress

from fms.config import LimitsConfig

REFUSAL_LOG_INTERVAL = 10.0
"""Seconds between two log lines about refused connections (the count in between is kept)."""


def address_group(host: str, ipv6_prefix_length: int = 64) -> str:
    """The key under which ``max_connecting_per_ip`` counts ``host``: an IPv4 address as it
    is (also when IPv4-mapped), an IPv6 address as its ``/ipv6_prefix_length`` network; anything
    else (a Unix socket's ``?``) as it is."""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        network = ipaddress.IPv6Network((address, ipv6_prefix_length), strict=False)
        return str(network)
    return str(address)


class Admission:
    """Counts open connections, and per address those still connecting."""

    def __init__(self) -> None:
        self.open = 0
        self._connecting: dict[str, int] = {}

    def refusal(self, group: str, limits: LimitsConfig) -> str | None:
        """Why a new connection from address ``group`` is refused, or None to admit it."""
        if self.open >= limits.max_connections:
            return f"{self.open} connections open (max_connections)"
        connecting = self._connecting.get(group, 0)
        if connecting >= limits.max_connecting_per_ip:
            return (
                f"{connecting} connections from this address have not connected yet "
                "(max_connecting_per_ip)"
            )
        return None

    def admit(self, group: str) -> None:
        """A connection from ``group`` was made: it counts as open and connecting."""
        self.open += 1
        self._connecting[group] = self._connecting.get(group, 0) + 1

    def connected(self, group: str) -> None:
        """Its ``connect`` was accepted: it no longer counts as connecting."""
        left = self._connecting.get(group, 1) - 1
        if left > 0:
            self._connecting[group] = left
        else:
            self._connecting.pop(group, None)

    def closed(self) -> None:
        """A connection (no longer connecting) was lost."""
        self.open -= 1

    @property
    def tracked(self) -> int:
        """Addresses the table holds (only those with a connection still connecting)."""
        return len(self._connecting)

    def connecting(self, group: str) -> int:
        """Connections from ``group`` whose ``connect`` was not accepted yet."""
        return self._connecting.get(group, 0)
