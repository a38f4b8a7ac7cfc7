"""The client side of one RTMP connection, as a sans-IO state machine.

The mirror of :class:`~fms.rtmp.connection.ServerConnection`: bytes from the server go in through
:meth:`ClientConnection.receive_data` (with the current time passed in) and come out as
:class:`ClientEvent` records; requests (``connect``, ``createStream``, ``publish``, ``play``...)
are methods that queue bytes for :meth:`ClientConnection.data_to_send` and return the
transaction id their answer will carry. No sockets, no clock, no Twisted.

It exists for three users: end-to-end tests that replay the exact command sequence OBS sends when
publishing, the origin/edge relay, and worker processes that pull or push streams between pyFMS
processes. So requests may be pipelined the way encoders do it: :meth:`connect` may be called
before the handshake finished (the command waits for S2, then leaves right after C2, in the same
data as its Set Chunk Size, as OBS sends them), and ``releaseStream``/``FCPublish``/
``createStream`` need not wait for the ``connect`` answer.

What the client does on its own, because the protocol leaves no choice: the handshake (FP9 digest
or simple), honouring the server's Set Chunk Size, answering PingRequest, acknowledging per the
server's Window Acknowledgement Size (the 32-bit sequence number wraps), and matching
``_result``/``_error`` to the request that carried the transaction id (``connect`` becomes
:class:`Connected` or :class:`ConnectRejected`, ``createStream`` becomes :class:`StreamCreated`).
Everything else (statuses, server calls, media) is an event for the layer above.

States (:class:`ClientState`): ``HANDSHAKE`` until S2 was read, then ``CONNECTING`` until the
server answered ``connect``, then ``CONNECTED``; ``CLOSED`` after a refused connect or
:meth:`ClientConnection.close`; ``ERROR`` for good once the server broke the protocol.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import replace
from enum import Enum
from typing import Any

from fms.errors import LocalProtocolError
from fms.rtmp.chunks import ChunkLimits, RawMessage
from fms.rtmp.constants import DEFAULT_CHUNK_SIZE, U32_MASK, UserControlEvent
from fms.rtmp.errors import MessageError
from fms.rtmp.events import (
    AcknowledgementReceived,
    CallReceived,
    ClientEvent,
    Connected,
    ConnectRejected,
    DataArrived,
    ErrorReceived,
    HandshakeDone,
    MediaArrived,
    PingAnswered,
    ResultReceived,
    StatusReceived,
    StreamBegan,
    StreamCreated,
    StreamEnded,
)
from fms.rtmp.handshake import ClientHandshake
from fms.rtmp.messages import (
    Acknowledgement,
    Aggregate,
    Command,
    Data,
    Media,
    Message,
    UserControl,
    WindowAcknowledgementSize,
    decode_message,
    encode_message,
)
from fms.rtmp.session import Session

__all__ = [
    "DEFAULT_FLASH_VER",
    "MAX_PENDING_REQUESTS",
    "AcknowledgementReceived",
    "CallReceived",
    "ClientConnection",
    "ClientEvent",
    "ClientState",
    "ConnectRejected",
    "Connected",
    "DataArrived",
    "ErrorReceived",
    "HandshakeDone",
    "MediaArrived",
    "PingAnswered",
    "ResultReceived",
    "StatusReceived",
    "StreamBegan",
    "StreamCreated",
    "StreamEnded",
]

DEFAULT_FLASH_VER = "FMLE/3.0 (compatible; FMSc/1.0)"
"""The ``flashVer`` OBS and FMLE send; servers gate encoder-only behaviour on the FMLE prefix."""

MAX_PENDING_REQUESTS = 1024
"""Unanswered requests remembered for matching ``_result``/``_error``; beyond it the oldest is
forgotten. Servers answer some requests never (nginx-rtmp ignores ``FCUnpublish``, nobody answers
``deleteStream``), so a long-lived relay must not grow this without bound."""


# --------------------------------------------------------------------------------- connection


class ClientState(Enum):
    """Where the connection is; requests other than :meth:`ClientConnection.connect` need a
    queued ``connect``, and nothing may be sent once ``CLOSED`` or ``ERROR``."""

    HANDSHAKE = "handshake"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    CLOSED = "closed"
    ERROR = "error"


def _check_u32(value: int, what: str) -> None:
    if not 0 <= value <= U32_MASK:
        raise LocalProtocolError(f"{what} {value} does not fit in 32 bits")


def _stream_id_of(values: tuple[Any, ...]) -> int:
    """The stream id in a ``createStream`` ``_result``: its first numeric argument."""
    for value in values[1:]:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if not math.isfinite(value) or value != int(value) or not 0 < value <= U32_MASK:
            break
        return int(value)
    raise MessageError(f"createStream answered without a valid stream id: {values[1:]!r}")


class ClientConnection(Session[ClientEvent]):
    """One connection to an RTMP server, from C0 to the close.

    ``digest`` sends an FP9 digest C1 (and verifies the server's S1/S2 when it claims the digest
    handshake); OBS uses the simple one (False). ``chunk_size`` (bytes) is announced with Set
    Chunk Size right before ``connect`` unless it is the protocol's initial 128. ``limits`` bound
    what the server may make us buffer; ``random_bytes`` fills C1 (tests pass a seeded one).
    ``now`` (seconds, any epoch) is the start of the connection's own millisecond clock, used in
    handshake times and :meth:`ping`.
    """

    _CLOSED = ClientState.CLOSED
    _ERROR = ClientState.ERROR
    state: ClientState
    _handshake: ClientHandshake

    def __init__(
        self,
        *,
        digest: bool = True,
        chunk_size: int = 4096,
        limits: ChunkLimits | None = None,
        random_bytes: Callable[[int], bytes] = os.urandom,
        now: float = 0.0,
    ) -> None:
        if not 1 <= chunk_size <= 0x7FFFFFFF:
            raise LocalProtocolError(f"chunk size {chunk_size} outside 1..2147483647")
        handshake = ClientHandshake(digest=digest, now_ms=0, random_bytes=random_bytes)
        super().__init__(handshake, limits, now)
        self.state = ClientState.HANDSHAKE
        self.streams: set[int] = set()
        """Message stream ids the server created for us and we have not deleted."""
        self._chunk_size = chunk_size
        self._deferred: list[bytes] = []  # chunk bytes queued before S2 arrived
        self._next_transaction = 1
        self._connect_tid: float | None = None
        self._pending: dict[float, str] = {}  # transaction id -> the request's name

    # ----------------------------------------------------------------------------- input

    @property
    def server_chunk_size(self) -> int:
        """The server's chunk size (bytes), as its last Set Chunk Size announced."""
        return self._decoder.chunk_size

    def initiate(self) -> None:
        """Queue C0+C1; call once, first."""
        self._handshake.initiate()
        self._outgoing.append(self._handshake.data_to_send())

    def _handshake_completed(self, out: list[ClientEvent], now: float) -> None:
        self.state = ClientState.CONNECTING
        self._outgoing.extend(self._deferred)
        self._deferred.clear()
        out.append(HandshakeDone(digest=self._handshake.digest_scheme is not None))

    def _dispatch(self, raw: RawMessage, out: list[ClientEvent]) -> None:
        message = decode_message(raw)
        if isinstance(message, Media):
            out.append(MediaArrived(message.stream_id, message))
        elif isinstance(message, Data):
            out.append(DataArrived(message.stream_id, message))
        elif isinstance(message, Aggregate):
            for sub in message.messages:
                if isinstance(sub, Media):
                    out.append(MediaArrived(sub.stream_id, sub))
                else:
                    out.append(DataArrived(sub.stream_id, sub))
        elif isinstance(message, Command):
            self._dispatch_command(message, out)
        else:
            self._dispatch_control(message, out)

    def _dispatch_control(self, message: Message, out: list[ClientEvent]) -> None:
        if isinstance(message, WindowAcknowledgementSize):
            self.window_acknowledgement_size = message.size
        elif isinstance(message, Acknowledgement):
            out.append(AcknowledgementReceived(message.sequence_number))
        elif isinstance(message, UserControl):
            event = message.event
            if event == UserControlEvent.STREAM_BEGIN:
                out.append(StreamBegan(message.value))
            elif event == UserControlEvent.STREAM_EOF:
                out.append(StreamEnded(message.value))
            elif event == UserControlEvent.PING_REQUEST:
                self._send(UserControl(UserControlEvent.PING_RESPONSE, message.value))
            elif event == UserControlEvent.PING_RESPONSE:
                out.append(PingAnswered(message.value))
        # Set Chunk Size and Abort were applied by the decoder; Set Peer Bandwidth limits what a
        # sender may have unacknowledged, which a live client does not throttle on (nor does
        # librtmp); shared objects are not supported.

    def _dispatch_command(self, command: Command, out: list[ClientEvent]) -> None:
        name, tid = command.name, command.transaction_id
        if name in ("_result", "_error"):
            request = self._pending.pop(tid, None)
            if request is None:
                return  # an answer to nothing we asked (or forgotten): ignore
            values = (command.command_object, *command.arguments)
            if request == "connect":
                self._connect_answered(name == "_result", command, out)
            elif name == "_error":
                out.append(ErrorReceived(tid, values, request))
            elif request == "createStream":
                stream_id = _stream_id_of(values)
                self.streams.add(stream_id)
                out.append(StreamCreated(tid, stream_id))
            else:
                out.append(ResultReceived(tid, values, request))
        elif name == "onStatus":
            info = next((a for a in command.arguments if isinstance(a, dict)), {})
            out.append(StatusReceived(command.stream_id, info))
        else:
            out.append(CallReceived(command))

    def _connect_answered(self, accepted: bool, command: Command, out: list[ClientEvent]) -> None:
        info = next((a for a in command.arguments if isinstance(a, dict)), {})
        if accepted:
            obj = command.command_object
            self.state = ClientState.CONNECTED
            out.append(Connected(obj if isinstance(obj, dict) else {}, info))
        else:
            self.state = ClientState.CLOSED
            self._outgoing.clear()
            out.append(ConnectRejected(info))

    # ---------------------------------------------------------------------------- output

    def _send(self, message: Message, timestamp: int = 0) -> None:
        data = self._encoder.encode(encode_message(message, timestamp))
        if self._handshake.done:
            self._outgoing.append(data)
        else:
            self._deferred.append(data)

    def _require_open(self) -> None:
        if self.state in (ClientState.CLOSED, ClientState.ERROR):
            raise LocalProtocolError(f"not allowed in state {self.state.value}")

    def _require_connect(self) -> None:
        self._require_open()
        if self._connect_tid is None:
            raise LocalProtocolError("call connect() before any other command")

    def _require_stream(self, stream_id: int) -> None:
        self._require_connect()
        if stream_id not in self.streams:
            raise LocalProtocolError(f"stream {stream_id} was not created (or was deleted)")

    def _transaction(self, request: str | None) -> float:
        """A fresh transaction id; remembered for matching when ``request`` names it."""
        tid = float(self._next_transaction)
        self._next_transaction += 1
        if request is not None:
            if len(self._pending) >= MAX_PENDING_REQUESTS:
                del self._pending[next(iter(self._pending))]
            self._pending[tid] = request
        return tid

    def set_chunk_size(self, size: int) -> None:
        """Announce and use a new outgoing chunk size (bytes, 1..2147483647)."""
        self._require_open()
        if not 1 <= size <= 0x7FFFFFFF:
            raise LocalProtocolError(f"chunk size {size} outside 1..2147483647")
        super().set_chunk_size(size)

    def connect(
        self,
        app: str,
        tc_url: str,
        *,
        flash_ver: str = DEFAULT_FLASH_VER,
        extra: dict[str, Any] | None = None,
        object_encoding: int = 0,
    ) -> float:
        """Queue ``connect`` (after Set Chunk Size when ``chunk_size`` is not 128); return its
        transaction id. The command object is ``app``, ``type: "nonprivate"``, ``flashVer``,
        ``tcUrl`` as OBS sends them, ``objectEncoding`` only when 3, then ``extra`` (which
        overrides: e.g. ``{"supportsGoAway": True}`` for OBS 29, ``fpad``/``audioCodecs``... for
        a Flash-like player). May be called before the handshake finished."""
        self._require_open()
        if self._connect_tid is not None:
            raise LocalProtocolError("connect() was already called on this connection")
        if object_encoding not in (0, 3):
            raise LocalProtocolError(f"object encoding {object_encoding} is neither 0 nor 3")
        if self._chunk_size != DEFAULT_CHUNK_SIZE and self.chunk_size == DEFAULT_CHUNK_SIZE:
            self.set_chunk_size(self._chunk_size)
        obj: dict[str, Any] = {
            "app": app,
            "type": "nonprivate",
            "flashVer": flash_ver,
            "tcUrl": tc_url,
        }
        if object_encoding:
            obj["objectEncoding"] = float(object_encoding)
        obj.update(extra or {})
        tid = self._transaction("connect")
        self._connect_tid = tid
        self._command("connect", tid, obj)  # always AMF0 (type 20), as Flash sends it
        self.object_encoding = object_encoding
        return tid

    def call(
        self,
        name: str,
        *args: Any,
        command_object: Any = None,
        stream_id: int = 0,
        expect_result: bool = True,
    ) -> float:
        """Call ``name`` on the server (``_checkbw``, an application RPC...); return the
        transaction id its ``_result``/``_error`` will carry, or 0 when no answer is expected."""
        self._require_connect()
        tid = self._transaction(name) if expect_result else 0.0
        return self._command(name, tid, command_object, *args, stream_id=stream_id)

    def create_stream(self) -> float:
        """Ask for a message stream; the answer is :class:`StreamCreated` (or ErrorReceived)."""
        return self.call("createStream")

    def release_stream(self, name: str) -> float:
        """FMLE's ``releaseStream(name)``: asks the server to drop a stale publisher of ``name``
        (servers answer ``_result``, ``_error`` or nothing)."""
        return self.call("releaseStream", name)

    def fc_publish(self, name: str) -> float:
        """FMLE's ``FCPublish(name)``; FMS answers with an ``onFCPublish`` call."""
        return self.call("FCPublish", name)

    def fc_unpublish(self, name: str) -> float:
        """FMLE's ``FCUnpublish(name)``, sent by OBS and GStreamer when they stop."""
        return self.call("FCUnpublish", name)

    def publish(self, stream_id: int, name: str, kind: str = "live") -> float:
        """``publish(name, kind)`` on ``stream_id``; the name may carry ``?query``. Wait for
        ``NetStream.Publish.Start`` before relying on media being relayed: a server drops what
        arrives before it accepted the publish."""
        self._require_stream(stream_id)
        return self.call("publish", name, kind, stream_id=stream_id)

    def play(
        self, stream_id: int, name: str, start: float = -2.0, *, duration: float | None = None
    ) -> float:
        """``play(name, start[, duration])`` on ``stream_id`` (start -2: live or recorded,
        -1: live only; ms). Also raises the size limits for media from the server."""
        self._require_stream(stream_id)
        self._decoder.enable_media()
        args: tuple[Any, ...] = (name, float(start))
        if duration is not None:
            args += (float(duration),)
        return self.call("play", *args, stream_id=stream_id)

    def delete_stream(self, stream_id: int) -> float:
        """``deleteStream(id)`` on the NetConnection (OBS's last command); forgets the id."""
        self._require_connect()
        self.streams.discard(stream_id)
        return self._command("deleteStream", self._transaction(None), None, float(stream_id))

    def close_stream(self, stream_id: int) -> float:
        """``closeStream`` on ``stream_id`` (Flash's NetStream.close): stop publishing or
        playing and keep the id."""
        self._require_stream(stream_id)
        return self._command("closeStream", self._transaction(None), None, stream_id=stream_id)

    def send_media(self, stream_id: int, message: Media) -> None:
        """Audio or video on ``stream_id`` (the message's own stream id is replaced), with the
        message's timestamp (ms)."""
        self._require_stream(stream_id)
        if message.stream_id != stream_id:
            message = replace(message, stream_id=stream_id)
        self._send(message)

    def send_data(self, stream_id: int, values: tuple[Any, ...], *, timestamp: int = 0) -> None:
        """A data message on ``stream_id``, e.g. ``("@setDataFrame", "onMetaData",
        ECMAArray(...))`` as encoders send their metadata (AMF0, type 18)."""
        self._require_stream(stream_id)
        self._send(Data(tuple(values), stream_id, timestamp))

    def send_result(self, transaction_id: float, *values: Any, command_object: Any = None) -> None:
        """``_result`` for a server call (:class:`CallReceived` with a non-zero transaction
        id): ``command_object`` then ``values``."""
        self._require_connect()
        self._command("_result", transaction_id, command_object, *values)

    def send_error(self, transaction_id: float, info: dict[str, Any]) -> None:
        """``_error`` for a server call, with an info object (see :func:`status.info`)."""
        self._require_connect()
        self._command("_error", transaction_id, None, info)

    def send_user_control(self, event: UserControlEvent, value: int) -> None:
        """A User Control event with one 32-bit value (a stream id or a timestamp)."""
        self._require_open()
        self._send(UserControl(event, value & U32_MASK))

    def send_ping_response(self, timestamp: int) -> None:
        """PingResponse with ``timestamp`` (ms). PingRequests are already answered on their
        own; this is for scripted tests that need to send one unprompted."""
        self.send_user_control(UserControlEvent.PING_RESPONSE, timestamp)

    def ping(self, now: float) -> int:
        """Send a PingRequest; return its timestamp (ms on the connection's clock), which
        :class:`PingAnswered` will carry."""
        stamp = self._ms(now)
        self.send_user_control(UserControlEvent.PING_REQUEST, stamp)
        return stamp

    def set_buffer_length(self, stream_id: int, length: int) -> None:
        """User Control SetBufferLength: we buffer ``length`` ms of ``stream_id`` (players send
        it around ``play``; some servers pace their burst by it)."""
        self._require_open()
        _check_u32(stream_id, "stream id")
        _check_u32(length, "buffer length")
        self._send(UserControl(UserControlEvent.SET_BUFFER_LENGTH, stream_id, length))

    def set_window_acknowledgement_size(self, size: int) -> None:
        """Ask the server to acknowledge every ``size`` bytes it reads from us
        (:class:`AcknowledgementReceived`), as librtmp players do after ``connect``."""
        self._require_open()
        _check_u32(size, "window acknowledgement size")
        self._send(WindowAcknowledgementSize(size))

    def close(self) -> None:
        """Stop processing input and refuse further requests (the adapter closes the
        transport)."""
        if self.state is not ClientState.ERROR:
            self.state = ClientState.CLOSED
