"""A stream's shared log: each message chunk-encoded once, for every player of one selection.

Entries carry absolute sequence numbers, byte offsets and timestamps, so what a player lacks is
a subtraction, and a player is only a cursor into the log (an entry, and a byte offset inside it
when a flush stopped in the middle of a message). No Twisted, no clock: time is an argument.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from typing import Protocol

from fms.rtmp.constants import U32_MASK
from fms.rtmp.messages import Data, Media


class PlayerSink(Protocol):
    """What a stream needs of a player's connection (implemented by the Twisted layer)."""

    def write(self, data: bytes) -> None:
        """Send bytes (already chunk-encoded for this player's chunk size)."""

    def can_write(self) -> bool:
        """False while the transport pushes back (its buffer is full)."""

    def pending(self) -> int:
        """Bytes handed to this player that its socket has not taken yet (held in user space,
        by the transport): with :attr:`FanoutLimits.player_buffer`, what it may still take."""

    def close(self, reason: str) -> None:
        """Disconnect this player (it broke a bound); ``reason`` goes to the log."""

    def publish_started(self) -> None:
        """The stream got a publisher while this player waited (Play.PublishNotify)."""

    def publish_stopped(self) -> None:
        """The publisher left (Play.UnpublishNotify and StreamEOF)."""


class PlayerState(Enum):
    WAITING = "waiting"  # no publisher yet, or it left
    ACTIVE = "active"
    PARKED = "parked"  # skipping to the next keyframe
    PAUSED = "paused"


class Player:
    """One play on one stream: a sink, its message stream id and a cursor into a log."""

    __slots__ = (
        "audio",
        "blocked_since",
        "bytes_sent",
        "cursor",
        "flv",
        "headers_version",
        "log",
        "messages_sent",
        "offer",
        "offset",
        "parked_slow",
        "sink",
        "skip_pending",
        "skipped_messages",
        "skips",
        "state",
        "stream_id",
        "video",
    )

    def __init__(
        self, sink: PlayerSink, stream_id: int, audio: bool, video: bool, flv: bool = False
    ) -> None:
        self.sink = sink
        self.offer: Callable[[bytes, int], bool] | None = getattr(sink, "offer", None)
        """The sink's whole-write in one call, if it has one: ``offer(data, budget)`` hands
        over all of ``data`` when the player can take it now (writes not paused, at most
        ``budget`` bytes held then) and says whether it did. The fan-out's common case (a
        player at the head, its socket drained) then costs one call into the Twisted layer
        instead of three (``can_write``, ``pending``, ``write``) and their chains."""
        self.flv = flv
        """The encoding it takes: FLV tags (an HTTP-FLV viewer), else RTMP chunks."""
        self.stream_id = stream_id
        self.audio = audio
        self.video = video
        self.state = PlayerState.WAITING
        self.cursor = 0
        self.offset = 0
        """Bytes of entry ``cursor`` already handed over (a flush may stop inside one)."""
        self.skip_pending = False
        """A bound said skip, but the entry under way must be finished first (a chunk stream
        cannot be cut mid-message)."""
        self.log: SharedLog | None = None
        self.blocked_since: float | None = None
        self.headers_version = 0
        self.bytes_sent = 0
        """Bytes handed to the sink (its connection) for this play."""
        self.messages_sent = 0
        """Whole messages handed to the sink (one handed over in pieces counts once, when its
        last byte is)."""
        self.skips = 0
        """Times it was too slow and skipped ahead (to a newer keyframe, or parked)."""
        self.skipped_messages = 0
        """Messages of its log it never got because it was too slow."""
        self.parked_slow = False
        """Parked because it was too slow: what passes until the next keyframe is skipped."""


class SharedLog:
    """Encoded messages for one (message stream id, audio, video, encoding) selection: RTMP
    chunks, or FLV tags (``flv``) for HTTP-FLV viewers.

    Entries carry absolute sequence numbers: entry ``i`` of ``entries`` has number
    ``base + i``. ``ends[i]`` is the log's byte offset after that entry, so bytes behind are a
    subtraction; ``stamps[i]`` its timestamp (ms) for seconds behind.
    """

    __slots__ = (
        "audio",
        "base",
        "ends",
        "entries",
        "flv",
        "keyframe",
        "marks",
        "players",
        "stamps",
        "stream_id",
        "video",
    )

    def __init__(self, stream_id: int, audio: bool, video: bool, flv: bool = False) -> None:
        self.stream_id = stream_id
        self.flv = flv
        self.audio = audio
        self.video = video
        self.base = 0
        self.entries: list[bytes] = []
        self.ends: list[int] = []
        self.stamps: list[int] = []
        self.keyframe: int | None = None
        """Sequence number of the newest sync point (keyframe) still in the log."""
        self.players: set[Player] = set()
        self.marks: list[tuple[int, float]] = []
        """(head, time) at each flush that found new entries: how long an entry has waited for
        a player is the time since the first flush that could have handed it over."""

    @property
    def head(self) -> int:
        return self.base + len(self.entries)

    def wants(self, message: Media | Data) -> bool:
        if isinstance(message, Data):
            return True
        return self.video if message.is_video else self.audio

    def offset(self, seq: int) -> int:
        """Byte offset of the start of entry ``seq``."""
        index = seq - self.base
        if index <= 0:
            return self.ends[0] - len(self.entries[0]) if self.entries else 0
        return self.ends[index - 1]

    def append(self, data: bytes, timestamp: int, sync: bool) -> None:
        if sync:
            self.keyframe = self.head
        end = (self.ends[-1] if self.ends else 0) + len(data)
        self.entries.append(data)
        self.ends.append(end)
        self.stamps.append(timestamp)

    def behind(self, seq: int, within: int = 0) -> tuple[int, float]:
        """(bytes, seconds) between ``seq`` (``within`` bytes into it) and the head."""
        if seq >= self.head or not self.entries:
            return 0, 0.0
        index = max(seq - self.base, 0)
        size = self.ends[-1] - self.offset(seq) - within
        seconds = ((self.stamps[-1] - self.stamps[index]) & U32_MASK) / 1000.0
        return size, seconds

    def since(self, seq: int) -> bytes:
        return b"".join(self.entries[max(seq - self.base, 0) :])

    def take(self, seq: int, within: int, limit: int, whole: bool) -> tuple[bytes, int, int]:
        """At most ``limit`` bytes from entry ``seq`` (``within`` bytes into it) on, and where
        that ends: ``(data, seq, within)``. ``whole``: stop at the end of the first entry."""
        index = max(seq - self.base, 0)
        parts: list[bytes] = []
        total = 0
        entries = self.entries
        while index < len(entries) and total < limit:
            entry = entries[index]
            piece = entry[within:] if within else entry
            if total + len(piece) <= limit:
                parts.append(piece)
                total += len(piece)
                index += 1
                within = 0
                if whole:
                    break
            else:
                cut = limit - total
                parts.append(piece[:cut])
                within += cut
                total = limit
        return b"".join(parts), self.base + index, within

    def mark(self, now: float) -> None:
        """A flush at ``now`` (seconds) can hand over everything up to the head."""
        if not self.marks or self.marks[-1][0] < self.head:
            self.marks.append((self.head, now))

    def waited(self, seq: int, now: float) -> float:
        """Seconds entry ``seq`` has been waiting to be handed over, at ``now``."""
        for head, at in self.marks:
            if head > seq:
                return now - at
        return 0.0

    def trim(self, keep_from: int) -> None:
        """Forget entries before ``keep_from``."""
        drop = min(keep_from, self.head) - self.base
        if self.marks and drop > 0:
            first = self.base + drop  # marks at or below it concern no entry left
            self.marks = [mark for mark in self.marks if mark[0] > first]
        if drop <= 0:
            return
        del self.entries[:drop], self.ends[:drop], self.stamps[:drop]
        self.base += drop
        if self.keyframe is not None and self.keyframe < self.base:
            self.keyframe = None
