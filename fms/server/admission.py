"""Admission: who may open a connection, counted per address. Pure counting, no Twisted.

At most ``max_connections`` connections, and at most ``max_connecting_per_ip`` *parked*
connections from one address: connections that have not had ``connect`` accepted
``connecting_grace`` seconds after they were admitted or, since, finished their handshake (the
progress the server sees), measured on an :class:`AttentionClock` that leaves out the time
the server itself was too busy to serve them. Judging a pending connection by its age
rather than counting every one tells an attacker who parks connections (idle sockets,
slowloris) from a legitimate burst behind one address (a NAT, a restreaming service): under
load the server itself takes a while to bring a connection to ``connect``, so a burst of 250 a
second from one address has many more than 50 pending, all of them young; parked ones grow old
and are counted. The handshake and connect deadlines still bound how long any of them lasts.

An "address" is an IPv4 address or an IPv6 /64 (``ipv6_prefix_length``): one IPv6 host commonly
holds a whole /64. Refusals are logged at most once per ``REFUSAL_LOG_INTERVAL`` with a count.
"""

from __future__ import annotations

import ipaddress
import resource
from pathlib import Path

from fms.config import LimitsConfig

REFUSAL_LOG_INTERVAL = 10.0
"""Seconds between two log lines about refused connections (the count in between is kept)."""

FILE_DESCRIPTOR_MARGIN = 64
"""Descriptors kept beyond ``max_connections`` for the listener, logs, recordings and plugins."""


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


def descriptor_ceiling() -> int:
    """The open-file limit this process can raise itself to: the hard limit, or when that is
    unlimited the kernel's per-process ceiling (``/proc/sys/fs/nr_open``)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY:
        return int(hard)
    try:
        return int(Path("/proc/sys/fs/nr_open").read_text().strip())
    except (OSError, ValueError):
        return int(soft) if soft != resource.RLIM_INFINITY else 1 << 20


def effective_max_connections(configured: int, ceiling: int | None = None) -> int:
    """``[limits] max_connections``, or when it is 0 (the default) what the descriptors allow:
    the ceiling (:func:`descriptor_ceiling`) less ``FILE_DESCRIPTOR_MARGIN``, so that the cap,
    not the kernel, decides and no player of a full house is lost to EMFILE."""
    if configured > 0:
        return configured
    if ceiling is None:
        ceiling = descriptor_ceiling()
    return max(ceiling - FILE_DESCRIPTOR_MARGIN, 1)


PULSE_INTERVAL = 0.1
"""Seconds between two beats of the :class:`AttentionClock` (a cheap timer in the factory)."""


class AttentionClock:
    """Time that passes only while the server keeps up: the ages of pending connections are
    measured on it, so that the server's own lateness does not count against a client.

    The factory beats it every ``interval`` seconds. A beat that comes late (the event loop
    was busy: a burst of arrivals, a large fan-out) means the server did not get to its
    connections either; that lateness is left out, as is the lateness of a beat overdue now.
    Under normal load it runs with the wall clock.
    """

    def __init__(self, interval: float = PULSE_INTERVAL) -> None:
        self.interval = interval
        self.lost = 0.0
        """Seconds left out so far."""
        self._last: float | None = None

    def beat(self, now: float) -> None:
        """The timer ran at ``now`` (seconds)."""
        if self._last is not None:
            self.lost += max(now - self._last - self.interval, 0.0)
        self._last = now

    def time(self, now: float) -> float:
        """The attention time at wall time ``now``; the wall time itself before any beat."""
        if self._last is None:
            return now
        overdue = max(now - self._last - self.interval, 0.0)
        return now - self.lost - overdue


class Admission:
    """Counts open connections, and per address those still connecting with when each was
    admitted (seconds, the factory's clock)."""

    def __init__(self) -> None:
        self.open = 0
        self._connecting: dict[str, dict[int, float]] = {}
        """Per address group: connection key -> admission time, in admission order (so the
        oldest come first)."""

    def refusal(
        self, group: str, limits: LimitsConfig, now: float, max_connections: int
    ) -> str | None:
        """Why a new connection from address ``group`` is refused at ``now``, or None to admit
        it (``max_connections`` as :func:`effective_max_connections` resolved it)."""
        return self.total_refusal(max_connections) or self.address_refusal(group, limits, now)

    def total_refusal(self, max_connections: int) -> str | None:
        """Why one more connection is refused whatever its address (a trusted proxy's is
        judged by this alone), or None."""
        if self.open >= max_connections:
            return f"{self.open} connections open (max_connections)"
        return None

    def address_refusal(self, group: str, limits: LimitsConfig, now: float) -> str | None:
        """Why ``group`` may not have one more connecting connection, or None."""
        cap = limits.max_connecting_per_ip
        parked = self.parked(group, now - limits.connecting_grace, cap)
        if parked >= cap:
            return (
                f"{parked} connections from this address have not connected within "
                f"{limits.connecting_grace:g}s (max_connecting_per_ip)"
            )
        return None

    def parked(self, group: str, admitted_by: float, stop_at: int) -> int:
        """How many connections from ``group`` admitted at or before ``admitted_by`` are still
        connecting, counted up to ``stop_at`` (so a refusal costs at most the cap)."""
        count = 0
        for admitted in self._connecting.get(group, {}).values():
            if admitted > admitted_by or count >= stop_at:
                break
            count += 1
        return count

    def admit(self, group: str, key: int, now: float) -> None:
        """Connection ``key`` from ``group`` was made at ``now``: it counts as open and
        connecting."""
        self.open += 1
        self.connecting_from(group, key, now)

    def opened(self) -> None:
        """A connection was made that counts as open only (one from a trusted proxy, until its
        PROXY header names the client: :meth:`connecting_from`)."""
        self.open += 1

    def connecting_from(self, group: str, key: int, now: float) -> None:
        """Connection ``key`` (already open) counts as connecting from ``group`` since
        ``now``: how a connection through a trusted proxy is counted once its PROXY header
        named the client."""
        self._connecting.setdefault(group, {})[key] = now

    def progressed(self, group: str, key: int, now: float) -> None:
        """Connection ``key`` made progress at ``now`` (its handshake finished): its age
        starts again, and it moves behind the others of ``group`` (which keeps them ordered by
        age)."""
        pending = self._connecting.get(group)
        if pending is not None and key in pending:
            del pending[key]
            pending[key] = now

    def connected(self, group: str, key: int) -> None:
        """Its ``connect`` was accepted: it no longer counts as connecting."""
        pending = self._connecting.get(group)
        if pending is not None:
            pending.pop(key, None)
            if not pending:
                del self._connecting[group]

    def closed(self) -> None:
        """A connection (no longer connecting) was lost."""
        self.open -= 1

    @property
    def tracked(self) -> int:
        """Addresses the table holds (only those with a connection still connecting)."""
        return len(self._connecting)

    def connecting_total(self) -> int:
        """Connections whose ``connect`` was not accepted yet, from every address."""
        return sum(len(pending) for pending in self._connecting.values())

    def connecting(self, group: str) -> int:
        """Connections from ``group`` whose ``connect`` was not accepted yet."""
        return len(self._connecting.get(group, {}))
