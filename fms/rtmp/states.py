"""The states of a server connection and of its message streams.

Their own module so that :mod:`fms.rtmp.liveness` (which deadlines apply in which state) and
:mod:`fms.rtmp.connection` (which moves between them) can both import them;
:mod:`fms.rtmp.connection` re-exports them.
"""

from __future__ import annotations

from enum import Enum


class ConnectionState(Enum):
    """Where a :class:`~fms.rtmp.connection.ServerConnection` is: ``HANDSHAKE`` ->
    ``AWAITING_CONNECT`` -> ``CONNECT_PENDING`` (the application decides) -> ``CONNECTED``;
    ``CLOSED`` after a refused connect, a passed deadline or a close; ``ERROR`` for good once
    the peer broke the protocol."""

    HANDSHAKE = "handshake"
    AWAITING_CONNECT = "awaiting connect"
    CONNECT_PENDING = "connect pending"
    CONNECTED = "connected"
    CLOSED = "closed"
    ERROR = "error"


class StreamState(Enum):
    """What a message stream (created by ``createStream``) is doing."""

    IDLE = "idle"
    PUBLISH_PENDING = "publish pending"
    PUBLISHING = "publishing"
    PLAYING = "playing"
