"""Counting what the edge refuses or loses, for the metrics (:data:`fms.counters.COUNTERS`):
admission refusals by reason, and RTMP handshakes that failed, by reason."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fms.counters import COUNTERS

if TYPE_CHECKING:
    from fms.server.protocol import RTMPServerProtocol

EPSILON = 0.05
"""Seconds of slack when telling a handshake deadline from a peer that left just before it."""


def refusal_kind(reason: str) -> str:
    """The label of an admission refusal: the limit its reason names in parentheses
    (``max_connections``, ``max_connecting_per_ip``), else ``shutting_down``."""
    if reason.endswith(")") and "(" in reason:
        return reason.rsplit("(", 1)[1][:-1]
    return "shutting_down"


def handshake_failure(proto: RTMPServerProtocol, now: float) -> str | None:
    """Why ``proto``'s RTMP handshake failed, once it is lost (None when it finished):

    - ``invalid``: the peer sent bytes that are not an RTMP handshake (a scanner, TLS on the
      plain port, a bad digest);
    - ``timeout``: the handshake deadline (``[limits] handshake_timeout``) passed;
    - ``closed``: the peer went away before it finished.
    """
    conn = proto.connection
    if conn is None:
        return None  # a PROXY header that never came is counted by its own log line
    handshake = getattr(conn, "_handshake", None)
    if handshake is None or handshake.done:
        return None
    if getattr(handshake, "_error", None) is not None:
        return "invalid"
    started = getattr(conn, "_started", now)
    if now - started >= proto.config.limits.handshake_timeout - EPSILON:
        return "timeout"
    return "closed"


def count_handshake_failure(proto: RTMPServerProtocol, now: float) -> None:
    if proto.claims_names:  # relay links are not clients
        reason = handshake_failure(proto, now)
        if reason is not None:
            COUNTERS.add("handshake_failures", reason=reason)
