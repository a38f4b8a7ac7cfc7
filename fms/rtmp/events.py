"""Events the two RTMP connections report, in the past tense: one module for both sides.

A :class:`~fms.rtmp.connection.ServerConnection` reports :class:`Event` records of what the
client asked for; the layer above decides and answers through the connection's methods.
Commands the connection does not model get a generic :class:`CallRequested` (plugins answer
those). A :class:`~fms.rtmp.client.ClientConnection` reports :class:`ClientEvent` records
(a subclass) of what the server answered or sent. A few happen on both sides
(:class:`ResultReceived`, :class:`ErrorReceived`, :class:`PingAnswered`): they are client events,
so they are events of both kinds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fms.rtmp.liveness import DeadlineKind
from fms.rtmp.messages import Command, Data, Media


@dataclass(frozen=True, slots=True)
class Event:
    """Base class of every event either connection reports."""


# ---------------------------------------------------------------------------------- server side


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
class PeerChunkSizeChanged(Event):
    """The peer's chunk size changed (Set Chunk Size)."""

    size: int


@dataclass(frozen=True, slots=True)
class DeadlinePassed(Event):
    """A deadline of the connection passed (:meth:`ServerConnection.handle_timer`): ``kind``
    says which, ``limit_seconds`` how long it was. The connection is closed; the layer above
    says so in one line and drops the transport."""

    kind: DeadlineKind
    limit_seconds: float


# ---------------------------------------------------------------------------------- client side


def _text(info: dict[str, Any], key: str) -> str:
    value = info.get(key, "")
    return value if isinstance(value, str) else ""


def _info_in(values: tuple[Any, ...]) -> dict[str, Any]:
    """The info object (``{level, code, description}``) of an answer: its first dict argument."""
    for value in values[1:]:
        if isinstance(value, dict):
            return value
    return {}


@dataclass(frozen=True, slots=True)
class ClientEvent(Event):
    """Base class of every event a :class:`~fms.rtmp.client.ClientConnection` reports (those
    under "both sides" a server connection reports too)."""


# ----------------------------------------------------------------------------------- both sides


@dataclass(frozen=True, slots=True)
class ResultReceived(ClientEvent):
    """``_result`` for one of our requests or calls: ``values`` is the command object followed by
    the arguments. On the client ``request`` names the request (``releaseStream``...); the server
    leaves it empty (its layer above matches answers by transaction id)."""

    transaction_id: float
    values: tuple[Any, ...]
    request: str = ""


@dataclass(frozen=True, slots=True)
class ErrorReceived(ClientEvent):
    """``_error`` for one of our requests or calls (on the client, ``connect`` and its refusal
    excepted, see :class:`ConnectRejected`). FFmpeg tolerates it only for ``releaseStream``,
    ``FCPublish``, ``FCSubscribe`` and ``_checkbw``; the layer above decides. ``request`` as in
    :class:`ResultReceived`."""

    transaction_id: float
    values: tuple[Any, ...]
    request: str = ""

    @property
    def info(self) -> dict[str, Any]:
        return _info_in(self.values)

    @property
    def code(self) -> str:
        return _text(self.info, "code")


@dataclass(frozen=True, slots=True)
class PingAnswered(ClientEvent):
    """User Control PingResponse to a PingRequest we sent, carrying its ``timestamp`` (ms)."""

    timestamp: int


# ----------------------------------------------------------------------------- client side only


@dataclass(frozen=True, slots=True)
class HandshakeDone(ClientEvent):
    """The handshake finished; ``digest`` tells whether the server answered the FP9 digest form
    (and its digest and signature verified), False when it chose the simple handshake."""

    digest: bool


@dataclass(frozen=True, slots=True)
class Connected(ClientEvent):
    """``connect`` was accepted (``_result``): ``properties`` is the server's command object
    (``fmsVer``, ``capabilities``), ``info`` the status (``NetConnection.Connect.Success``)."""

    properties: dict[str, Any]
    info: dict[str, Any]

    @property
    def code(self) -> str:
        return _text(self.info, "code")


@dataclass(frozen=True, slots=True)
class ConnectRejected(ClientEvent):
    """``connect`` was refused (``_error``); the connection is closed. A redirect (Flash Media
    Server's ``ex.code`` 302) carries the URL to try instead in :attr:`redirect`."""

    info: dict[str, Any]

    @property
    def code(self) -> str:
        return _text(self.info, "code")

    @property
    def description(self) -> str:
        return _text(self.info, "description")

    @property
    def redirect(self) -> str | None:
        ex = self.info.get("ex")
        url = ex.get("redirect") if isinstance(ex, dict) else None
        return url if isinstance(url, str) else None


@dataclass(frozen=True, slots=True)
class StatusReceived(ClientEvent):
    """``onStatus`` on a message stream (0 for the NetConnection itself). Clients act on the
    ``level`` (FFmpeg aborts on "error") and the ``code`` (``NetStream.Publish.Start``...)."""

    stream_id: int
    info: dict[str, Any]

    @property
    def code(self) -> str:
        return _text(self.info, "code")

    @property
    def level(self) -> str:
        return _text(self.info, "level")

    @property
    def description(self) -> str:
        return _text(self.info, "description")


@dataclass(frozen=True, slots=True)
class StreamCreated(ClientEvent):
    """``createStream`` was answered with the message stream id to publish or play on."""

    transaction_id: float
    stream_id: int


@dataclass(frozen=True, slots=True)
class MediaArrived(ClientEvent):
    """Audio or video from the server (aggregates arrive already split)."""

    stream_id: int
    message: Media


@dataclass(frozen=True, slots=True)
class DataArrived(ClientEvent):
    """A data message from the server: ``onMetaData``, ``|RtmpSampleAccess``..."""

    stream_id: int
    message: Data


@dataclass(frozen=True, slots=True)
class StreamBegan(ClientEvent):
    """User Control StreamBegin: the server starts sending on ``stream_id``."""

    stream_id: int


@dataclass(frozen=True, slots=True)
class StreamEnded(ClientEvent):
    """User Control StreamEOF: the server has no more data for ``stream_id``."""

    stream_id: int


@dataclass(frozen=True, slots=True)
class CallReceived(ClientEvent):
    """A command the server sent on its own (``onBWDone``, ``onFCPublish``, ``close``, an
    application RPC). A non-zero transaction id asks for :meth:`ClientConnection.send_result`."""

    command: Command

    @property
    def name(self) -> str:
        return self.command.name


@dataclass(frozen=True, slots=True)
class AcknowledgementReceived(ClientEvent):
    """The server has read ``sequence_number`` bytes from us (32-bit, wraps): what a pushing
    relay measures its backlog with. Sent only after :meth:`set_window_acknowledgement_size`."""

    sequence_number: int
