"""Events a :class:`~fms.rtmp.connection.ServerConnection` reports, in the past tense.

Each is a frozen record of what the peer asked for; the layer above decides and answers through
the connection's methods. Commands the connection does not model get a generic
:class:`CallRequested` (plugins answer those).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fms.rtmp.messages import Command, Data, Media


@dataclass(frozen=True, slots=True)
class Event:
    """Base class of every connection event."""


@dataclass(frozen=True, slots=True)
class HandshakeCompleted(Event):
    """The handshake finished; ``digest`` tells whether the client used the FP9 digest form."""

    digest: bool


@dataclass(frozen=True, slots=True)
class ConnectRequested(Event):
    """``connect``: ``app`` may hold a slash (``live/room1``); ``query`` comes from the tcUrl
    or app (``?key=value``), kept for plugins. ``object_encoding`` is 0 (AMF0) or 3 (AMF3)."""

    transaction_id: float
    app: str
    tc_url: str
    query: dict[str, str]
    object_encoding: int
    command_object: dict[str, Any]
    arguments: tuple[Any, ...] = ()

    @property
    def flash_ver(self) -> str:
        value = self.command_object.get("flashVer", "")
        return value if isinstance(value, str) else ""


@dataclass(frozen=True, slots=True)
class CreateStreamRequested(Event):
    """``createStream``: answer with :meth:`ServerConnection.accept_create_stream`."""

    transaction_id: float


@dataclass(frozen=True, slots=True)
class PublishRequested(Event):
    """``publish(name, type)``; ``name`` is the part before ``?``, ``query`` the rest parsed."""

    stream_id: int
    transaction_id: float
    name: str
    query: dict[str, str]
    publish_type: str
    raw_name: str


@dataclass(frozen=True, slots=True)
class PlayRequested(Event):
    """``play(name, start, duration, reset)``; start -2 means live-or-recorded, -1 live only."""

    stream_id: int
    transaction_id: float
    name: str
    query: dict[str, str]
    start: float = -2.0
    duration: float = -1.0
    reset: bool = True
    raw_name: str = ""


@dataclass(frozen=True, slots=True)
class DeleteStreamRequested(Event):
    """``deleteStream(id)``: the stream id is gone; stop whatever it published or played."""

    stream_id: int


@dataclass(frozen=True, slots=True)
class CloseStreamRequested(Event):
    """``closeStream`` on a stream: stop its publish or play, keep the stream id."""

    stream_id: int


@dataclass(frozen=True, slots=True)
class PauseRequested(Event):
    """``pause(flag, position)``: ``paused`` True to pause, False to resume; position in ms."""

    stream_id: int
    transaction_id: float
    paused: bool
    position: float


@dataclass(frozen=True, slots=True)
class SeekRequested(Event):
    """``seek(offset)`` with the offset in ms."""

    stream_id: int
    transaction_id: float
    offset: float


@dataclass(frozen=True, slots=True)
class ReceiveMediaRequested(Event):
    """``receiveAudio(flag)`` or ``receiveVideo(flag)``; ``kind`` is "audio" or "video"."""

    stream_id: int
    kind: str
    enabled: bool


@dataclass(frozen=True, slots=True)
class CallRequested(Event):
    """Any other command: releaseStream, FCPublish, _checkbw, or an application's own RPC."""

    command: Command

    @property
    def name(self) -> str:
        return self.command.name


@dataclass(frozen=True, slots=True)
class ResultReceived(Event):
    """The client answered one of our calls with ``_result``."""

    transaction_id: float
    values: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class ErrorReceived(Event):
    """The client answered one of our calls with ``_error``."""

    transaction_id: float
    values: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class MediaReceived(Event):
    """Audio or video on a stream whose publish was accepted."""

    stream_id: int
    message: Media


@dataclass(frozen=True, slots=True)
class DataReceived(Event):
    """A data message (e.g. ``@setDataFrame``) on a stream whose publish was accepted."""

    stream_id: int
    message: Data


@dataclass(frozen=True, slots=True)
class BufferLengthSet(Event):
    """User Control SetBufferLength: the client buffers ``length`` ms of ``stream_id``."""

    stream_id: int
    length: int


@dataclass(frozen=True, slots=True)
class PingAnswered(Event):
    """User Control PingResponse to our PingRequest carrying ``timestamp`` (ms)."""

    timestamp: int


@dataclass(frozen=True, slots=True)
class PeerChunkSizeChanged(Event):
    """The peer's chunk size changed (Set Chunk Size)."""

    size: int
