"""What both ends of an RTMP connection share, below the commands: one sans-IO base class.

:class:`~fms.rtmp.connection.ServerConnection` and :class:`~fms.rtmp.client.ClientConnection`
differ in what they ask and answer, not in how bytes move: each runs a handshake, then reads one
chunk stream (:class:`~fms.rtmp.chunks.ChunkDecoder`) and writes another
(:class:`~fms.rtmp.chunks.ChunkEncoder`), acknowledges what it read per the window the peer
announced (the 32-bit count wraps), keeps a millisecond clock from the connection's start for
handshake times and pings, and queues everything it writes for ``data_to_send``. That part lives
here; the subclasses dispatch the messages and hold the states.

No sockets, no clock, no Twisted: time is the ``now`` argument (seconds, any epoch).
"""

from __future__ import annotations

from enum import Enum
from typing import Any, ClassVar, Generic, TypeVar

from fms.errors import LocalProtocolError, RemoteProtocolError
from fms.rtmp.chunks import ChunkDecoder, ChunkEncoder, ChunkLimits, RawMessage
from fms.rtmp.constants import U32_MASK
from fms.rtmp.events import Event
from fms.rtmp.handshake import ClientHandshake, ServerHandshake
from fms.rtmp.messages import Acknowledgement, Command, Message, SetChunkSize, encode_message

E = TypeVar("E", bound=Event)


class Session(Generic[E]):
    """The handshake, both chunk streams and acknowledgements of one connection.

    A subclass names its ``CLOSED`` and ``ERROR`` states (``state`` holds its own enum), turns
    decoded messages into events of type ``E`` (:meth:`_dispatch`) and says what completing the
    handshake means (:meth:`_handshake_completed`).
    """

    _CLOSED: ClassVar[Enum]
    """The subclass's state after a close: input is ignored."""
    _ERROR: ClassVar[Enum]
    """The subclass's state once the peer broke the protocol, for good."""

    state: Enum
    _handshake: ServerHandshake | ClientHandshake

    def __init__(
        self,
        handshake: ServerHandshake | ClientHandshake,
        chunk_limits: ChunkLimits | None,
        now: float,
    ) -> None:
        self.object_encoding = 0
        """0 (AMF0) or 3: commands after ``connect`` travel as type 17 when it is 3."""
        self.window_acknowledgement_size = 0
        """What the peer asked us to acknowledge every (bytes; 0: no acknowledgements)."""
        self._started = now
        self._handshake = handshake
        self._decoder = ChunkDecoder(chunk_limits)
        self._encoder = ChunkEncoder()
        self._outgoing: list[bytes] = []
        self._last_ack = 0

    # ----------------------------------------------------------------------------- input

    @property
    def bytes_received(self) -> int:
        """Bytes received after the handshake, as acknowledgements count them (32-bit)."""
        return self._decoder.bytes_received & U32_MASK

    @property
    def chunk_size(self) -> int:
        """Our outgoing chunk size (bytes)."""
        return self._encoder.chunk_size

    def receive_data(self, data: bytes, now: float = 0.0) -> list[E]:
        """Feed bytes from the peer (``now`` in seconds); return what happened, in order.

        Raises :class:`RemoteProtocolError` when the peer broke the protocol; the connection
        then stays in its ``ERROR`` state and any later call raises :class:`LocalProtocolError`.
        After a close, input is ignored.
        """
        if self.state is self._ERROR:
            raise LocalProtocolError("receive_data after a protocol error")
        if self.state is self._CLOSED:
            return []
        try:
            return self._receive(data, now)
        except RemoteProtocolError:
            self.state = self._ERROR
            raise

    def _receive(self, data: bytes, now: float) -> list[E]:
        out: list[E] = []
        if not self._handshake.done:
            self._handshake.receive_data(data, self._ms(now))
            self._outgoing.append(self._handshake.data_to_send())
            if not self._handshake.done:
                return out
            self._handshake_completed(out, now)
            data = self._handshake.leftover
        if not data:
            return out
        for raw in self._decoder.receive_data(data):
            self._dispatch(raw, out)
            if self.state is self._CLOSED:
                return out  # e.g. a refused connect: what follows is not for us
        self._acknowledge()
        return out

    def _handshake_completed(self, out: list[E], now: float) -> None:
        """The peer's last handshake packet was read at ``now``: change state, report it."""
        raise NotImplementedError

    def _dispatch(self, raw: RawMessage, out: list[E]) -> None:
        """Decode one message and append what it means to ``out``."""
        raise NotImplementedError

    def _ms(self, now: float) -> int:
        """``now`` (seconds) on the connection's own clock: ms since it started, 32-bit."""
        return int((now - self._started) * 1000) & U32_MASK

    def _acknowledge(self) -> None:
        window = self.window_acknowledgement_size
        if not window:
            return
        total = self._decoder.bytes_received
        if total - self._last_ack >= window:
            self._last_ack = total
            self._send(Acknowledgement(total & U32_MASK))

    # ---------------------------------------------------------------------------- output

    def data_to_send(self) -> bytes:
        """Everything queued for the peer since the last call."""
        if not self._outgoing:
            return b""
        data = b"".join(self._outgoing)
        self._outgoing.clear()
        return data

    def _send(self, message: Message, timestamp: int = 0) -> None:
        self._outgoing.append(self._encoder.encode(encode_message(message, timestamp)))

    def _command(self, name: str, tid: float, obj: Any, *args: Any, stream_id: int = 0) -> float:
        """Queue a command (AMF3 once ``object_encoding`` is 3); return its transaction id."""
        self._send(Command(name, tid, obj, args, stream_id, self.object_encoding == 3))
        return tid

    def set_chunk_size(self, size: int) -> None:
        """Announce and use a new outgoing chunk size (bytes)."""
        self._send(SetChunkSize(size))
        self._encoder.set_chunk_size(size)
