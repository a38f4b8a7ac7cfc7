"""The server side of one RTMP connection, as a sans-IO state machine.

Bytes go in through :meth:`ServerConnection.receive_data` (with the current time passed in) and
come out as :mod:`fms.rtmp.events`; the layer above decides and answers through this object's
methods, which queue bytes for :meth:`ServerConnection.data_to_send`. No sockets, no clock, no
Twisted: every behaviour is testable by feeding bytes.

What the connection does on its own, because the protocol leaves no choice: the handshake,
acknowledgements per the window the peer announced (the 32-bit byte counter wraps), answering
pings, honouring the peer's chunk size, splitting aggregates, and refusing anything out of order
(no command before ``connect``, no media relayed before a publish was accepted). Everything that
is policy (who may connect, publish or play) is an event for the layer above.

Deadlines (:mod:`fms.rtmp.liveness`) are kept here too, from the times passed in: the layer
above calls :meth:`ServerConnection.handle_timer` at :meth:`ServerConnection.next_deadline`;
a passed deadline is a :class:`~fms.rtmp.events.DeadlinePassed` event and closes the connection.

States: ``HANDSHAKE`` -> ``AWAITING_CONNECT`` -> ``CONNECT_PENDING`` (the application decides;
commands that arrive meanwhile are held, in order) -> ``CONNECTED``; ``CLOSED`` after a rejected
connect, a passed deadline or :meth:`close`; ``ERROR`` after the peer broke the protocol, for
good.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from fms.amf import AMFLimits
from fms.errors import LocalProtocolError
from fms.rtmp import events as ev
from fms.rtmp.capabilities import connect_properties
from fms.rtmp.chunks import ChunkLimits, RawMessage, encode_shared
from fms.rtmp.constants import U32_MASK, MessageType, PeerBandwidthLimit, UserControlEvent
from fms.rtmp.errors import LimitExceeded, MessageError
from fms.rtmp.handshake import ServerHandshake
from fms.rtmp.liveness import EPSILON, DeadlineKind, Liveness, LivenessLimits
from fms.rtmp.messages import (
    Aggregate,
    Command,
    Data,
    Media,
    Message,
    SetChunkSize,
    SetPeerBandwidth,
    UserControl,
    WindowAcknowledgementSize,
    decode_message,
    encode_message,
)
from fms.rtmp.session import Session
from fms.rtmp.states import ConnectionState, StreamState
from fms.rtmp.status import StatusCode, info

FMS_VERSION = "FMS/3,5,7,7009"
"""What we report as ``fmsVer``: clients gate features on a Flash Media Server version."""

FMS_CAPABILITIES = 31
"""The capability bits Flash Media Server 3.5 reports in the connect ``_result``."""


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """Per-connection limits; breaking one is a :class:`RemoteProtocolError` (or a refused
    command), never an unbounded allocation."""

    chunk: ChunkLimits = field(default_factory=ChunkLimits)
    amf: AMFLimits = field(default_factory=AMFLimits)
    max_streams: int = 16
    max_app_length: int = 128
    max_tc_url_length: int = 512
    max_stream_name_length: int = 256
    min_chunk_size: int = 128
    """Smallest Set Chunk Size accepted (bytes). The protocol allows 1, but every chunk costs a
    header and a parse step: at chunk size 1 a MiB of payload costs about half a second of CPU
    here, while no real client announces less than the initial 128."""
    max_pending_calls: int = 1024
    max_held_commands: int = 64
    liveness: LivenessLimits = field(default_factory=LivenessLimits)
    """Deadlines (seconds): see :mod:`fms.rtmp.liveness`."""


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """What the server announces at connect, as Flash Media Server does.

    ``chunk_size`` is the outgoing chunk size for every connection: shared (encode-once) media
    bytes are valid only for connections that use the same one.
    """

    window_ack_size: int = 2_500_000
    peer_bandwidth: int = 2_500_000
    chunk_size: int = 4096
    fms_version: str = FMS_VERSION


def split_query(text: str) -> tuple[str, dict[str, str]]:
    """``"name?a=1&b=2"`` -> ``("name", {"a": "1", "b": "2"})``; the query is kept for plugins."""
    name, sep, query = text.partition("?")
    if not sep:
        return text, {}
    return name, dict(parse_qsl(query, keep_blank_values=True))


def _app_from_tc_url(tc_url: str) -> str:
    try:
        path = urlsplit(tc_url).path
    except ValueError:
        return ""
    return path.strip("/")


def _number(value: Any, default: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return default
    if value != value or value in (float("inf"), float("-inf")):
        return default
    return float(value)


class ServerConnection(Session[ev.Event]):
    """One client connection, from the first handshake byte to the close."""

    _CLOSED = ConnectionState.CLOSED
    _ERROR = ConnectionState.ERROR
    state: ConnectionState
    _handshake: ServerHandshake

    def __init__(
        self,
        limits: ConnectionLimits | None = None,
        settings: ServerSettings | None = None,
        *,
        random_bytes: Callable[[int], bytes] = os.urandom,
        now: float = 0.0,
    ) -> None:
        self.limits = limits or ConnectionLimits()
        self.settings = settings or ServerSettings()
        handshake = ServerHandshake(now_ms=0, random_bytes=random_bytes)
        super().__init__(handshake, self.limits.chunk, now)
        self.state = ConnectionState.HANDSHAKE
        self.app: str | None = None
        self.streams: dict[int, StreamState] = {}
        self.dropped_messages = 0
        """Media/data messages that arrived on a stream not (yet) publishing: counted, dropped."""
        self._held: list[ev.Event] = []
        self._next_stream_id = 1
        self._next_transaction = 1
        self._pending_calls: set[float] = set()
        self._liveness = Liveness(self.limits.liveness, now)

    # ----------------------------------------------------------------------------- input

    def _receive(self, data: bytes, now: float) -> list[ev.Event]:
        self._liveness.last_received = now
        held: list[ev.Event] = []
        if self.state is ConnectionState.CONNECTED and self._held:
            held, self._held = self._held, []
        return held + super()._receive(data, now)

    def _handshake_completed(self, out: list[ev.Event], now: float) -> None:
        self.state = ConnectionState.AWAITING_CONNECT
        self._liveness.handshake_at = now
        out.append(ev.HandshakeCompleted(digest=self._handshake.digest_scheme is not None))

    def pending_events(self) -> list[ev.Event]:
        """Commands held while ``connect`` was pending, once it was accepted (in order)."""
        if self.state is not ConnectionState.CONNECTED or not self._held:
            return []
        held, self._held = self._held, []
        return held

    def _dispatch(self, raw: RawMessage, out: list[ev.Event]) -> None:
        message = decode_message(raw, self.limits.amf)
        if isinstance(message, Aggregate):
            for sub in message.messages:
                self._dispatch_stream_message(sub, out)
        elif isinstance(message, (Media, Data)):
            self._dispatch_stream_message(message, out)
        elif isinstance(message, Command):
            self._dispatch_command(message, out)
        else:
            self._dispatch_control(message, out)

    def _dispatch_control(self, message: Message, out: list[ev.Event]) -> None:
        if isinstance(message, SetChunkSize):
            if message.size < self.limits.min_chunk_size:
                raise LimitExceeded(
                    f"chunk size {message.size} below the minimum {self.limits.min_chunk_size}"
                )
            out.append(ev.PeerChunkSizeChanged(message.size))
        elif isinstance(message, WindowAcknowledgementSize):
            self.window_acknowledgement_size = message.size
        elif isinstance(message, UserControl):
            if message.event == UserControlEvent.PING_REQUEST:
                self._send(UserControl(UserControlEvent.PING_RESPONSE, message.value))
            elif message.event == UserControlEvent.PING_RESPONSE:
                self._liveness.answers_pings = True
                out.append(ev.PingAnswered(message.value))
            elif message.event == UserControlEvent.SET_BUFFER_LENGTH:
                out.append(ev.BufferLengthSet(message.value, message.buffer_length or 0))
        # Acknowledgement, Abort (handled by the decoder), Set Peer Bandwidth and shared
        # objects need no answer from a live server.

    def _dispatch_stream_message(self, message: Media | Data, out: list[ev.Event]) -> None:
        if self.streams.get(message.stream_id) is not StreamState.PUBLISHING:
            self.dropped_messages += 1
            return
        self._liveness.last_media = self._liveness.last_received
        if isinstance(message, Media):
            out.append(ev.MediaReceived(message.stream_id, message))
        else:
            out.append(ev.DataReceived(message.stream_id, message))

    def _dispatch_command(self, command: Command, out: list[ev.Event]) -> None:
        if self.state is ConnectionState.AWAITING_CONNECT:
            if command.name != "connect":
                raise MessageError(f"{command.name!r} before connect")
            out.append(self._connect_event(command))
            self.state = ConnectionState.CONNECT_PENDING
            return
        if command.name == "connect":
            raise MessageError("a second connect on one connection")
        event = self._command_event(command)
        if event is None:
            return
        if self.state is ConnectionState.CONNECT_PENDING:
            if len(self._held) >= self.limits.max_held_commands:
                raise MessageError("too many commands while connect is pending")
            self._held.append(event)
        else:
            out.append(event)

    def _connect_event(self, command: Command) -> ev.ConnectRequested:
        obj = command.command_object
        if not isinstance(obj, dict):
            raise MessageError("connect without a command object")
        app = obj.get("app")
        tc_url = obj.get("tcUrl", "")
        if not isinstance(tc_url, str):
            raise MessageError("connect: tcUrl is not a string")
        # Past a limit by a little, connect is refused with a status by the layer above (it
        # names the limit); far past it, the peer is not a client worth answering.
        if len(tc_url.encode("utf-8", "surrogatepass")) > self.limits.max_tc_url_length + 1024:
            raise MessageError(f"connect: tcUrl far longer than {self.limits.max_tc_url_length}")
        if not isinstance(app, str):
            app = _app_from_tc_url(tc_url)
        app, query = split_query(app)
        if not query and "?" in tc_url:
            query = split_query(tc_url)[1]
        app = app.strip("/")
        if len(app.encode("utf-8", "surrogatepass")) > self.limits.max_app_length + 1024:
            raise MessageError(f"connect: app far longer than {self.limits.max_app_length} bytes")
        encoding = 3 if _number(obj.get("objectEncoding"), 0.0) == 3.0 else 0
        self.object_encoding = encoding
        self.app = app
        return ev.ConnectRequested(
            command.transaction_id, app, tc_url, query, encoding, obj, command.arguments
        )

    def _stream_name(self, command: Command) -> tuple[str, dict[str, str], str]:
        raw_name = command.arguments[0] if command.arguments else ""
        if raw_name is None or raw_name is False:
            raw_name = ""
        if not isinstance(raw_name, str):
            raise MessageError(f"{command.name}: the stream name is not a string")
        if len(raw_name.encode()) > self.limits.max_stream_name_length + 1024:
            raise MessageError(f"{command.name}: stream name far too long")
        name, query = split_query(raw_name)
        return name, query, raw_name

    def _command_event(self, command: Command) -> ev.Event | None:
        name, sid, tid, args = (
            command.name,
            command.stream_id,
            command.transaction_id,
            command.arguments,
        )
        if name == "createStream":
            return ev.CreateStreamRequested(tid)
        if name in ("_result", "_error"):
            if tid not in self._pending_calls:
                return None  # an answer to nothing we asked: ignore
            self._pending_calls.discard(tid)
            values = (command.command_object, *args)
            if name == "_result":
                return ev.ResultReceived(tid, values)
            return ev.ErrorReceived(tid, values)
        if name == "deleteStream":
            target = int(_number(args[0] if args else None, 0.0))
            return ev.DeleteStreamRequested(target)
        if sid in self.streams:
            if name == "publish":
                stream_name, query, raw = self._stream_name(command)
                kind = args[1] if len(args) > 1 and isinstance(args[1], str) else "live"
                return ev.PublishRequested(sid, tid, stream_name, query, kind, raw)
            if name == "play":
                stream_name, query, raw = self._stream_name(command)
                start = _number(args[1] if len(args) > 1 else None, -2.0)
                duration = _number(args[2] if len(args) > 2 else None, -1.0)
                reset = args[3] if len(args) > 3 and isinstance(args[3], bool) else True
                return ev.PlayRequested(sid, tid, stream_name, query, start, duration, reset, raw)
            if name == "closeStream":
                self._liveness.publishing.discard(sid)  # the client stopped it: no longer
                self._liveness.playing.discard(sid)  # engaged, whatever the layer above does
                return ev.CloseStreamRequested(sid)
            if name == "pause":
                paused = bool(args[0]) if args else True
                position = _number(args[1] if len(args) > 1 else None, 0.0)
                return ev.PauseRequested(sid, tid, paused, position)
            if name == "seek":
                return ev.SeekRequested(sid, tid, _number(args[0] if args else None, 0.0))
            if name in ("receiveAudio", "receiveVideo"):
                kind = "audio" if name == "receiveAudio" else "video"
                return ev.ReceiveMediaRequested(sid, kind, bool(args[0]) if args else True)
        return ev.CallRequested(command)

    # ---------------------------------------------------------------------------- output

    def _require(self, *states: ConnectionState) -> None:
        if self.state not in states:
            names = ", ".join(s.value for s in states)
            raise LocalProtocolError(f"not allowed in state {self.state.value} (needs {names})")

    def accept_connect(
        self,
        event: ev.ConnectRequested,
        *,
        properties: dict[str, Any] | None = None,
        **information: Any,
    ) -> None:
        """Answer ``connect`` as Flash Media Server does: Window Ack Size, Set Peer Bandwidth,
        Set Chunk Size, then ``_result`` with ``NetConnection.Connect.Success``."""
        self._require(ConnectionState.CONNECT_PENDING)
        s = self.settings
        self._send(WindowAcknowledgementSize(s.window_ack_size))
        self._send(SetPeerBandwidth(s.peer_bandwidth, PeerBandwidthLimit.DYNAMIC))
        self.set_chunk_size(s.chunk_size)
        props: dict[str, Any] = {
            "fmsVer": s.fms_version,
            "capabilities": FMS_CAPABILITIES,
            "mode": 1,
        }
        props.update(connect_properties(event.command_object))  # Enhanced RTMP negotiation
        props.update(properties or {})
        details = info(
            StatusCode.CONNECT_SUCCESS,
            objectEncoding=float(self.object_encoding),
            data={"version": s.fms_version.partition("/")[2]},
        )
        details.update(information)
        self._command("_result", event.transaction_id, props, details)
        self.state = ConnectionState.CONNECTED

    def reject_connect(
        self,
        event: ev.ConnectRequested,
        description: str = "",
        *,
        code: StatusCode = StatusCode.CONNECT_REJECTED,
        redirect: str | None = None,
    ) -> None:
        """Refuse ``connect`` with ``_error`` (a redirect carries ``ex.code`` 302 and the URL,
        as Flash Media Server signals it) and close."""
        self._require(ConnectionState.CONNECT_PENDING)
        extra: dict[str, Any] = {}
        if redirect is not None:
            extra["ex"] = {"code": 302.0, "redirect": redirect}
        details = info(code, description or None, **extra)
        self._command("_error", event.transaction_id, None, details)
        self._held.clear()
        self.state = ConnectionState.CLOSED

    def send_onbwdone(self) -> None:
        """Offer ``onBWDone`` (FFmpeg answers it with ``_checkbw``)."""
        self._require(ConnectionState.CONNECTED)
        self._command("onBWDone", 0.0, None)

    def send_result(
        self, transaction_id: float, *values: Any, obj: Any = None, stream_id: int = 0
    ) -> None:
        """``_result`` for a client's call: ``obj`` is the command object, then ``values``."""
        self._require(ConnectionState.CONNECTED)
        self._command("_result", transaction_id, obj, *values, stream_id=stream_id)

    def send_error(
        self,
        transaction_id: float,
        code: StatusCode = StatusCode.CALL_FAILED,
        description: str | None = None,
        *,
        stream_id: int = 0,
    ) -> None:
        """``_error`` for a client's call, with an info object."""
        self._require(ConnectionState.CONNECTED)
        self._command("_error", transaction_id, None, info(code, description), stream_id=stream_id)

    def call(self, method: str, *args: Any, expect_result: bool = True) -> float:
        """Call ``method`` on the client; return the transaction id its answer will carry
        (0 when no answer is expected)."""
        self._require(ConnectionState.CONNECTED)
        tid = 0.0
        if expect_result:
            if len(self._pending_calls) >= self.limits.max_pending_calls:
                raise LocalProtocolError("too many unanswered calls to this client")
            tid = float(self._next_transaction)
            self._next_transaction += 1
            self._pending_calls.add(tid)
        self._command(method, tid, None, *args)
        return tid

    def send_status(self, stream_id: int, details: dict[str, Any]) -> None:
        """``onStatus`` on a message stream with an info object (see :func:`status.info`)."""
        self._require(ConnectionState.CONNECTED)
        self._command("onStatus", 0.0, None, details, stream_id=stream_id)

    def send_user_control(self, event: UserControlEvent, value: int) -> None:
        self._send(UserControl(event, value))

    def ping(self, now: float) -> int:
        """Send a PingRequest; return its timestamp (ms since the connection started)."""
        stamp = self._ms(now)
        self._send(UserControl(UserControlEvent.PING_REQUEST, stamp))
        return stamp

    def accept_create_stream(self, event: ev.CreateStreamRequested) -> int | None:
        """Allocate a message stream id and answer with it, or refuse when the connection
        already has ``max_streams``; return the id (None when refused)."""
        self._require(ConnectionState.CONNECTED)
        if len(self.streams) >= self.limits.max_streams:
            self.send_error(
                event.transaction_id,
                StatusCode.CALL_FAILED,
                f"at most {self.limits.max_streams} streams per connection",
            )
            return None
        while self._next_stream_id in self.streams or self._next_stream_id == 0:
            self._next_stream_id = (self._next_stream_id + 1) & U32_MASK
        sid = self._next_stream_id
        self._next_stream_id += 1
        self.streams[sid] = StreamState.IDLE
        self.send_result(event.transaction_id, float(sid))
        return sid

    def delete_stream(self, stream_id: int) -> StreamState | None:
        """Forget a stream id; return what it was doing (None if unknown)."""
        self._liveness.publishing.discard(stream_id)
        self._liveness.playing.discard(stream_id)
        return self.streams.pop(stream_id, None)

    def hold_publish(self, stream_id: int) -> None:
        """Mark a publish as pending while the application decides (media is dropped); until
        :meth:`decided`, the client counts as engaged."""
        self._require(ConnectionState.CONNECTED)
        self.streams[stream_id] = StreamState.PUBLISH_PENDING
        self._liveness.deciding.add(stream_id)

    def hold_play(self, stream_id: int) -> None:
        """Mark a play as being decided by the application: until :meth:`decided`, the client
        counts as engaged (the publish-or-play deadline does not run)."""
        self._require(ConnectionState.CONNECTED)
        self._liveness.deciding.add(stream_id)

    def decided(self, stream_id: int) -> None:
        """The application decided the publish or play held on ``stream_id`` (whatever the
        outcome, even if the stream was deleted meanwhile): it no longer counts as engaged."""
        self._liveness.deciding.discard(stream_id)

    def accept_publish(self, stream_id: int, name: str) -> None:
        """Start relaying: ``NetStream.Publish.Start``, and media limits rise to their
        post-publish values."""
        self._require(ConnectionState.CONNECTED)
        self.streams[stream_id] = StreamState.PUBLISHING
        self._liveness.publishing.add(stream_id)
        self._liveness.publish_started()
        self._decoder.enable_media()
        self.send_status(
            stream_id, info(StatusCode.PUBLISH_START, subject=name, details=name, clientid="")
        )

    def reject_publish(
        self,
        stream_id: int,
        name: str,
        code: StatusCode = StatusCode.PUBLISH_BAD_NAME,
        description: str | None = None,
    ) -> None:
        self._require(ConnectionState.CONNECTED)
        if stream_id in self.streams:
            self.streams[stream_id] = StreamState.IDLE
        self.send_status(stream_id, info(code, description, subject=name, details=name))

    def end_publish(self, stream_id: int, name: str) -> None:
        """The publish on ``stream_id`` stopped: ``NetStream.Unpublish.Success``."""
        self._liveness.publishing.discard(stream_id)
        if stream_id in self.streams:
            self.streams[stream_id] = StreamState.IDLE
        if self.state is ConnectionState.CONNECTED:
            self.send_status(
                stream_id, info(StatusCode.UNPUBLISH_SUCCESS, subject=name, details=name)
            )

    def accept_play(self, stream_id: int, name: str, *, reset: bool = True) -> None:
        """Start playing: StreamBegin, ``Play.Reset``, ``Play.Start`` and ``|RtmpSampleAccess``;
        media follows through :meth:`send_stream_message`. (Flash Media Server also sends a
        ``NetStream.Data.Start`` data message; FFmpeg turns it into a spurious text stream.)"""
        self._require(ConnectionState.CONNECTED)
        self.streams[stream_id] = StreamState.PLAYING
        self._liveness.playing.add(stream_id)
        self.send_user_control(UserControlEvent.STREAM_BEGIN, stream_id)
        if reset:
            self.send_status(stream_id, info(StatusCode.PLAY_RESET, subject=name, details=name))
        self.send_status(stream_id, info(StatusCode.PLAY_START, subject=name, details=name))
        self.send_stream_message(Data(("|RtmpSampleAccess", True, True), stream_id))

    def reject_play(
        self,
        stream_id: int,
        name: str,
        code: StatusCode = StatusCode.PLAY_STREAM_NOT_FOUND,
        description: str | None = None,
    ) -> None:
        self._require(ConnectionState.CONNECTED)
        self.send_status(stream_id, info(code, description, subject=name, details=name))

    def stop_play(self, stream_id: int, name: str, *, unpublished: bool = True) -> None:
        """The stream a player watches ended: ``Play.UnpublishNotify`` (or ``Play.Stop``) and
        StreamEOF, so FFmpeg and librtmp players end promptly."""
        if self.state is not ConnectionState.CONNECTED:
            return
        code = StatusCode.PLAY_UNPUBLISH_NOTIFY if unpublished else StatusCode.PLAY_STOP
        self.send_status(stream_id, info(code, subject=name, details=name))
        self.send_user_control(UserControlEvent.STREAM_EOF, stream_id)
        if stream_id in self.streams:
            self.streams[stream_id] = StreamState.IDLE

    def send_stream_message(self, message: Media | Data) -> None:
        """Queue media or data for a player, encoded the way shared fan-out bytes are (type-0
        headers on the dedicated media/data chunk streams), so both can be interleaved."""
        raw = encode_message(message)
        self._outgoing.append(encode_shared(raw, self._encoder.chunk_size))

    def close(self) -> None:
        """Stop processing input (the adapter closes the transport)."""
        if self.state is not ConnectionState.ERROR:
            self.state = ConnectionState.CLOSED

    # ------------------------------------------------------------------------- deadlines

    @property
    def judge_publishers(self) -> bool:
        """Whether a publisher silent for ``publisher_timeout`` is closed (default True). A
        relay link from another worker sets it False: the publisher's own worker judges it."""
        return self._liveness.judge_publishers

    @judge_publishers.setter
    def judge_publishers(self, value: bool) -> None:
        self._liveness.judge_publishers = value

    def set_publish_or_play_timeout(self, seconds: float) -> None:
        """The application's publish-or-play deadline (seconds; 0: none), set when the layer
        above accepts ``connect``."""
        if not seconds >= 0:
            raise LocalProtocolError(f"publish-or-play timeout {seconds!r} is not >= 0 seconds")
        self._liveness.publish_or_play_timeout = seconds

    def update_engagement(self, now: float) -> None:
        """The layer above finished handling a batch of events or a decision at ``now``
        (seconds): start the publish-or-play clock if the client now has no stream publishing
        (:meth:`accept_publish` until :meth:`end_publish`), playing (:meth:`accept_play` until
        the client closes or deletes the stream; a player waiting for its publisher to return
        still plays) or being decided (:meth:`hold_publish` or :meth:`hold_play` until
        :meth:`decided`); stop it if it has one again; start the media clock of a publish
        accepted since the last call. Call it where the server settled engagement before: after
        each batch of events and each decision, not after every change."""
        self._liveness.update_engagement(self.state, now)

    def next_deadline(self) -> float | None:
        """When to call :meth:`handle_timer` next (seconds, the clock ``now`` comes from); None
        once closed. Bytes received move the idle and ping deadlines later (never the handshake
        and connect ones); an earlier one can follow the handshake, :meth:`accept_connect`,
        :meth:`accept_publish` and :meth:`update_engagement`: ask again after each."""
        deadlines = self._liveness.deadlines(self.state)
        return deadlines[0][0] if deadlines else None

    def handle_timer(self, now: float) -> list[ev.Event]:
        """Act on every deadline due at ``now`` (up to :data:`~fms.rtmp.liveness.EPSILON`
        early): queue a PingRequest when one is due, and when a deadline passed, close and
        return ``[DeadlinePassed(kind, limit_seconds)]``; otherwise return ``[]``."""
        for at, kind in self._liveness.deadlines(self.state):
            if at > now + EPSILON:
                break
            if kind is DeadlineKind.PING:
                self._liveness.ping_sent_at = now
                self.ping(now)
                continue
            self.close()
            return [ev.DeadlinePassed(kind, self._liveness.limit(kind))]
        return []


__all__ = [
    "ConnectionLimits",
    "ConnectionState",
    "MessageType",
    "ServerConnection",
    "ServerSettings",
    "StreamState",
    "split_query",
]
