"""Exceptions of the sans-IO RTMP layer.

Everything the peer can cause is a :class:`~fms.errors.RemoteProtocolError`; the adapter logs
the message with the peer's address and closes that one connection. Modules of :mod:`fms.rtmp`
define narrower subclasses next to the code that raises them when that helps tests and logs.
"""

from __future__ import annotations

from fms.errors import LocalProtocolError, RemoteProtocolError


class HandshakeError(RemoteProtocolError):
    """The peer's handshake bytes are not RTMP (or not a version we speak)."""


class ChunkStreamError(RemoteProtocolError):
    """A chunk header or sequence that the chunk stream protocol does not allow."""


class LimitExceeded(RemoteProtocolError):
    """The peer broke a configured limit (sizes, counts, buffered bytes)."""


class MessageError(RemoteProtocolError):
    """A complete message whose payload does not decode as its type says."""


__all__ = [
    "ChunkStreamError",
    "HandshakeError",
    "LimitExceeded",
    "LocalProtocolError",
    "MessageError",
    "RemoteProtocolError",
]
