"""In-memory players of one :class:`~fms.live.stream.LiveStream` and the media they are fed.

A :class:`Sink` is what the stream writes to instead of a connection: it keeps every write and
decodes them back into messages, and a test makes it stop taking bytes (``writable``) to play a
player whose socket buffer is full. No sockets, no clock: the stream is given the time.
"""

from __future__ import annotations

from fms.live.stream import FanoutLimits, LiveStream
from fms.rtmp.chunks import ChunkDecoder, ChunkEncoder, RawMessage
from fms.rtmp.constants import MessageType
from fms.rtmp.messages import Media, SetChunkSize, encode_message

AVC_HEADER = b"\x17\x00\x00\x00\x00\x01\x64\x00\x1f"
AAC_HEADER = b"\xaf\x00\x12\x10"
"""Codec headers (AVC and AAC sequence headers) a stream keeps for late players."""


def key(ts: int, size: int = 100) -> Media:
    """An AVC keyframe on stream 1 at ``ts`` ms, padded with ``size`` bytes."""
    return Media(MessageType.VIDEO, ts, 1, b"\x17\x01\x00\x00\x00" + b"k" * size)


def inter(ts: int, size: int = 100) -> Media:
    """An AVC inter frame on stream 1 at ``ts`` ms, padded with ``size`` bytes."""
    return Media(MessageType.VIDEO, ts, 1, b"\x27\x01\x00\x00\x00" + b"i" * size)


def audio(ts: int) -> Media:
    """An AAC frame on stream 1 at ``ts`` ms."""
    return Media(MessageType.AUDIO, ts, 1, b"\xaf\x01" + b"a" * 20)


class Sink:
    """A player: keeps what the stream writes, the reason it was closed, and the publish
    notices it got."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.writable = True
        self.held = 0
        self.closed: str | None = None
        self.notices: list[str] = []
        self.offers = 0

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def can_write(self) -> bool:
        return self.writable

    def offer(self, data: bytes, budget: int) -> bool:
        """The whole-write the server's sinks have (:attr:`fms.live.log.Player.offer`): all of
        ``data`` if it can write and what it holds plus ``data`` fits ``budget``, through its
        own ``can_write``/``pending``/``write`` (which subclasses play); counted in ``offers``."""
        self.offers += 1
        if not self.can_write() or self.pending() + len(data) > budget:
            return False
        self.write(data)
        return True

    def pending(self) -> int:
        """What the player holds unsent; a test sets ``held`` to play a slow socket."""
        return self.held

    def close(self, reason: str) -> None:
        self.closed = reason

    def publish_started(self) -> None:
        self.notices.append("started")

    def publish_stopped(self) -> None:
        self.notices.append("stopped")

    def messages(self, chunk_size: int = 4096) -> list[RawMessage]:
        """What was written, decoded at ``chunk_size`` (the stream's shared chunk size)."""
        decoder = ChunkDecoder()
        decoder.enable_media()
        decoder.receive_data(ChunkEncoder().encode(encode_message(SetChunkSize(chunk_size))))
        out = decoder.receive_data(b"".join(self.writes))
        return [m for m in out if m.type_id != MessageType.SET_CHUNK_SIZE]


class PlainSink(Sink):
    """A sink without the whole-write (``offer``): plugins' and tests' sinks may lack it."""

    offer = None  # type: ignore[assignment]


def published(limits: FanoutLimits | None = None) -> LiveStream:
    """Stream live/cam with a publisher, under ``limits`` (the defaults when None)."""
    stream = LiveStream("live", "cam", limits)
    stream.start_publish(object())
    return stream
