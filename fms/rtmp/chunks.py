"""The RTMP chunk stream: reassembling messages from chunks, and cutting messages into chunks.

Sans-IO: bytes in, :class:`RawMessage` records out (and the reverse); no sockets, no clock.

RTMP multiplexes messages over one TCP connection by cutting each message into chunks of at most
*chunk size* payload bytes (128 until a Set Chunk Size says otherwise) and tagging every chunk with
a chunk stream id (csid, 2..65599). Each chunk starts with a basic header (1, 2 or 3 bytes: the
``fmt`` and the csid) and a message header whose size depends on ``fmt``:

- fmt 0 (11 bytes): absolute timestamp, message length, type id, message stream id;
- fmt 1 (7 bytes): timestamp delta, message length, type id (stream id as before);
- fmt 2 (3 bytes): timestamp delta (length, type and stream id as before);
- fmt 3 (0 bytes): a continuation of the message in progress on that csid, or a new message
  that repeats everything, including the previous timestamp delta.

A 24-bit timestamp field of ``0xFFFFFF`` means a 4-byte extended timestamp follows. Timestamps are
32-bit milliseconds and wrap (every arithmetic here is modulo ``2**32``).

:class:`ChunkDecoder` is the receiving side of one connection, with hard limits
(:class:`ChunkLimits`) against peers that announce huge messages or open many partial ones.
:class:`ChunkEncoder` is the sending side of one connection, with per-csid header compression.
:func:`encode_shared` chunk-encodes a message once, statelessly, so the same ``bytes`` can be
written to every subscriber that uses that chunk size.
"""

from __future__ import annotations

from dataclasses import dataclass
from struct import Struct

from fms.errors import LocalProtocolError, RemoteProtocolError
from fms.rtmp.constants import DEFAULT_CHUNK_SIZE, EXTENDED_TIMESTAMP, U32_MASK, MessageType
from fms.rtmp.errors import ChunkStreamError, LimitExceeded

__all__ = [
    "MAX_CHUNK_SIZE",
    "MAX_CSID",
    "MAX_MESSAGE_LENGTH",
    "MIN_CSID",
    "ChunkDecoder",
    "ChunkEncoder",
    "ChunkLimits",
    "RawMessage",
    "encode_shared",
]

MIN_CSID = 2
"""Smallest chunk stream id a message can travel on (0 and 1 select the longer basic headers)."""

MAX_CSID = 65599
"""Largest chunk stream id (3-byte basic header: 64 + 0xFFFF)."""

MAX_CHUNK_SIZE = 0x7FFFFFFF
"""Largest chunk size Set Chunk Size may announce (bytes; bit 31 must be zero)."""

MAX_MESSAGE_LENGTH = 0xFFFFFF
"""Largest message payload a chunk message header can describe (24 bits, bytes)."""

_U32_BE = Struct(">I")
_U32_LE = Struct("<I")  # the message stream id is little endian (the spec's one exception)
# Bytes 1..7 of a fmt 0/1 message header after the basic header are read as
# (timestamp high byte, timestamp low 16 bits, length high byte, length low 16 bits, type id).
_HEADER7 = Struct(">BHBHB")


@dataclass(frozen=True, slots=True)
class RawMessage:
    """One complete RTMP message as the chunk stream carries it, payload still undecoded.

    ``type_id`` is the message type (see :class:`~fms.rtmp.constants.MessageType`; unknown ids are
    passed through); ``stream_id`` the message stream id (0 for the connection itself);
    ``timestamp`` absolute milliseconds, 32-bit, wrapping; ``payload`` the message body;
    ``csid`` the chunk stream it arrived on or should be sent on.
    """

    type_id: int
    stream_id: int
    timestamp: int
    payload: bytes
    csid: int = 3


@dataclass(frozen=True, slots=True)
class ChunkLimits:
    """Per-connection limits of :class:`ChunkDecoder`, against memory exhaustion by a peer.

    All sizes are bytes. Breaking one raises :class:`~fms.rtmp.errors.LimitExceeded`.

    ``max_chunk_size``: largest Set Chunk Size accepted. The default accepts the spec's whole
    range; the decoder never allocates by the chunk size, so a huge value costs nothing.

    ``max_command_message_size``: largest message of every type except media. Audio, video and
    aggregate messages are held to this limit too until :meth:`ChunkDecoder.enable_media`.

    ``max_audio_message_size``, ``max_video_message_size``: largest audio (type 8) and video
    (type 9) message once media is enabled; aggregates (type 22) follow the video limit.

    ``max_partial_messages``: how many chunk streams may have a message in progress at once.

    ``max_buffered_bytes``: total payload held for messages in progress, over all chunk streams.

    ``max_chunk_streams``: how many distinct chunk stream ids a peer may use (each costs a little
    state for header compression, kept for the whole connection).
    """

    max_chunk_size: int = MAX_CHUNK_SIZE
    max_command_message_size: int = 64 * 1024
    max_audio_message_size: int = 1024 * 1024
    max_video_message_size: int = 8 * 1024 * 1024
    max_partial_messages: int = 64
    max_buffered_bytes: int = 16 * 1024 * 1024
    max_chunk_streams: int = 1024

    def __post_init__(self) -> None:
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise LocalProtocolError(f"ChunkLimits.{name} must be a positive int: {value!r}")
        if self.max_chunk_size > MAX_CHUNK_SIZE:
            raise LocalProtocolError(
                f"ChunkLimits.max_chunk_size must be at most {MAX_CHUNK_SIZE}: "
                f"{self.max_chunk_size}"
            )


class _InboundChunkStream:
    """What the decoder remembers about one chunk stream id (mutable, internal)."""

    __slots__ = (
        "active",
        "buffer",
        "csid",
        "extended",
        "field",
        "length",
        "stream_id",
        "timestamp",
        "type_id",
    )

    def __init__(self, csid: int) -> None:
        self.csid = csid
        self.timestamp = 0  # absolute timestamp of the current (or last) message, ms
        self.field = 0  # the last fmt 0/1/2 timestamp field (a delta, or fmt 0's absolute), ms
        self.extended = False  # that field was carried in an extended timestamp
        self.length = 0
        self.type_id = 0
        self.stream_id = 0
        self.active = False  # a message is in progress
        # Payload of the message in progress received so far. It grows only as bytes arrive
        # (a list of parts would cost ~40 bytes per part when a peer uses 1-byte chunks).
        self.buffer = bytearray()


class ChunkDecoder:
    """Reassembles RTMP messages from the chunk stream a peer sends on one connection.

    Feed it every byte after the handshake with :meth:`receive_data`; it returns the messages that
    completed. Set Chunk Size (type 1) changes the incoming chunk size from the very next chunk,
    even inside the same data, and is still returned. Abort (type 2) drops the partial message of
    the chunk stream it names and is not returned. Everything else is returned as is: the
    connection layer interprets acknowledgements, user control and the rest.

    Anything the peer does wrong raises a :class:`~fms.errors.RemoteProtocolError` subclass
    (:class:`~fms.rtmp.errors.ChunkStreamError` or :class:`~fms.rtmp.errors.LimitExceeded`). After
    that the decoder stays failed: every later :meth:`receive_data` raises the same class again.

    Memory: at most a few header bytes stay unparsed between calls (a header is consumed whole or
    not at all); payload bytes are stored only as they arrive, never reserved by an announced
    length, and are bounded by :class:`ChunkLimits`.

    On fmt 3 chunks after a header that carried an extended timestamp, some senders (FMLE,
    FFmpeg, Flash) repeat the 4-byte field and others (rtmpdump, older OBS) do not. The decoder
    peeks at the next 4 bytes and skips them only when they equal the header's field or the
    message's absolute timestamp. When fewer than 4 bytes are available and they could still be
    such a value, it waits for more data. (A payload that happens to start with exactly that value
    after a sender that does not repeat it is misread: the protocol leaves no way to tell.)

    Set Chunk Size and Abort are honoured on any chunk stream and message stream, not only on
    csid 2 / stream 0 as the spec asks: being lenient there costs nothing.
    """

    def __init__(self, limits: ChunkLimits | None = None) -> None:
        self.limits: ChunkLimits = limits if limits is not None else ChunkLimits()
        self.bytes_received: int = 0
        """Every byte fed to :meth:`receive_data`, for acknowledgements (plain int, no wrap)."""
        self._chunk_size = DEFAULT_CHUNK_SIZE
        self._media_enabled = False
        self._streams: dict[int, _InboundChunkStream] = {}
        self._pending = b""  # unparsed bytes: at most one incomplete chunk header
        self._current: _InboundChunkStream | None = None  # stream whose chunk payload we are in
        self._chunk_left = 0  # payload bytes of the current chunk still to come
        self._partials = 0  # chunk streams with a message in progress
        self._buffered = 0  # payload bytes held for messages in progress
        self._error: Exception | None = None
        self._audio_max = self.limits.max_command_message_size
        self._video_max = self.limits.max_command_message_size

    @property
    def chunk_size(self) -> int:
        """The peer's current chunk size (bytes), as last set by a Set Chunk Size message."""
        return self._chunk_size

    @property
    def media_enabled(self) -> bool:
        """Whether audio, video and aggregate messages get their larger size limits."""
        return self._media_enabled

    @property
    def buffered_bytes(self) -> int:
        """Payload bytes currently held for messages in progress, over all chunk streams."""
        return self._buffered

    def enable_media(self) -> None:
        """Raise the size limits of audio, video and aggregate messages to their media values.

        The connection calls this once a publish was accepted; before that, media messages are
        held to the command limit, so an unauthenticated peer cannot make us buffer megabytes.
        """
        self._media_enabled = True
        self._audio_max = self.limits.max_audio_message_size
        self._video_max = self.limits.max_video_message_size

    def receive_data(self, data: bytes | bytearray | memoryview) -> list[RawMessage]:
        """Consume ``data`` (any split of the stream) and return the messages it completed.

        Raises a :class:`~fms.errors.RemoteProtocolError` subclass when the peer broke the
        chunk stream protocol or a limit; the decoder is unusable afterwards.
        """
        if self._error is not None:
            message = f"chunk decoder already failed: {self._error}"
            if isinstance(self._error, RemoteProtocolError):
                raise type(self._error)(message)
            raise LocalProtocolError(message)
        self.bytes_received += len(data)
        if self._pending:
            joined = self._pending + data
            self._pending = b""
        else:
            joined = data if type(data) is bytes else bytes(data)
        try:
            return self._parse(joined)
        except Exception as exc:
            self._error = exc
            raise

    # --- parsing -------------------------------------------------------------------------------

    def _parse(self, data: bytes) -> list[RawMessage]:
        out: list[RawMessage] = []
        end = len(data)
        view = memoryview(data)
        pos = 0
        while pos < end:
            if self._chunk_left:
                pos = self._take_payload(view, pos, end, out)
                continue

            # Basic header.
            b0 = data[pos]
            fmt = b0 >> 6
            csid = b0 & 0x3F
            hpos = pos + 1
            if csid == 0:
                if end < hpos + 1:
                    break
                csid = data[hpos] + 64
                hpos += 1
            elif csid == 1:
                if end < hpos + 2:
                    break
                csid = data[hpos] + (data[hpos + 1] << 8) + 64
                hpos += 2
            st = self._streams.get(csid)

            # Message header: parse it whole before changing any state.
            if fmt == 3:
                if st is None:
                    raise ChunkStreamError(
                        f"fmt 3 chunk on chunk stream {csid}, which has no previous header"
                    )
                if st.extended:
                    if st.active:
                        expected = (st.field, st.timestamp)
                    else:
                        expected = (st.field, (st.timestamp + st.field) & U32_MASK)
                    if end - hpos >= 4:
                        if _U32_BE.unpack_from(data, hpos)[0] in expected:
                            hpos += 4
                    elif _could_be_prefix(data[hpos:end], expected):
                        break
                if st.active:
                    pos = hpos
                    self._start_chunk(st, st.length - len(st.buffer))
                    continue
                # A new message that repeats the previous header, timestamp delta included.
                timestamp = (st.timestamp + st.field) & U32_MASK
                length = st.length
                type_id = st.type_id
                stream_id = st.stream_id
                field = st.field
                extended = st.extended
            else:
                if fmt == 0:
                    if end < hpos + 11:
                        break
                    ts_hi, ts_lo, len_hi, len_lo, type_id = _HEADER7.unpack_from(data, hpos)
                    stream_id = _U32_LE.unpack_from(data, hpos + 7)[0]
                    hpos += 11
                elif fmt == 1:
                    if end < hpos + 7:
                        break
                    ts_hi, ts_lo, len_hi, len_lo, type_id = _HEADER7.unpack_from(data, hpos)
                    hpos += 7
                else:
                    if end < hpos + 3:
                        break
                    ts_hi = data[hpos]
                    ts_lo = (data[hpos + 1] << 8) | data[hpos + 2]
                    hpos += 3
                field = (ts_hi << 16) | ts_lo
                extended = field == EXTENDED_TIMESTAMP
                if extended:
                    if end < hpos + 4:
                        break
                    field = _U32_BE.unpack_from(data, hpos)[0]
                    hpos += 4
                # The whole header is here: from now on state may change.
                if fmt == 0:
                    timestamp = field
                    length = (len_hi << 16) | len_lo
                    if st is None:
                        st = self._new_stream(csid)
                else:
                    if st is None:
                        raise ChunkStreamError(
                            f"fmt {fmt} chunk on chunk stream {csid}, which has no previous header"
                        )
                    timestamp = (st.timestamp + field) & U32_MASK
                    stream_id = st.stream_id
                    if fmt == 1:
                        length = (len_hi << 16) | len_lo
                    else:
                        length = st.length
                        type_id = st.type_id
                if st.active:
                    raise ChunkStreamError(
                        f"fmt {fmt} header on chunk stream {csid} before its previous message "
                        f"({len(st.buffer)} of {st.length} bytes) completed"
                    )

            self._check_length(type_id, length)
            pos = hpos
            st.timestamp = timestamp
            st.field = field
            st.extended = extended
            st.length = length
            st.type_id = type_id
            st.stream_id = stream_id

            chunk_size = self._chunk_size
            if length <= chunk_size and end - pos >= length:
                # Fast path: the whole message is in this chunk and this data.
                message = RawMessage(type_id, stream_id, timestamp, data[pos : pos + length], csid)
                pos += length
                self._deliver(message, out)
                continue
            if self._partials >= self.limits.max_partial_messages:
                raise LimitExceeded(
                    f"too many chunk streams with a partial message: "
                    f"{self._partials + 1} > maximum {self.limits.max_partial_messages}"
                )
            self._partials += 1
            st.active = True
            self._start_chunk(st, length)

        if pos < end:
            self._pending = data[pos:]
        return out

    def _start_chunk(self, st: _InboundChunkStream, remaining: int) -> None:
        """Enter the payload of a chunk carrying ``remaining`` more bytes of ``st``'s message."""
        self._current = st
        self._chunk_left = remaining if remaining < self._chunk_size else self._chunk_size

    def _take_payload(self, view: memoryview, pos: int, end: int, out: list[RawMessage]) -> int:
        """Store the current chunk's payload bytes available in ``view[pos:end]``."""
        st = self._current
        assert st is not None
        take = self._chunk_left if self._chunk_left < end - pos else end - pos
        if self._buffered + take > self.limits.max_buffered_bytes:
            raise LimitExceeded(
                f"too many bytes buffered for partial messages: {self._buffered + take} > "
                f"maximum {self.limits.max_buffered_bytes}"
            )
        buffer = st.buffer
        buffer += view[pos : pos + take]
        self._buffered += take
        self._chunk_left -= take
        pos += take
        if len(buffer) == st.length:
            self._chunk_left = 0
            self._current = None
            payload = bytes(buffer)
            self._buffered -= len(buffer)
            self._partials -= 1
            st.buffer = bytearray()
            st.active = False
            message = RawMessage(st.type_id, st.stream_id, st.timestamp, payload, st.csid)
            self._deliver(message, out)
        return pos

    def _deliver(self, message: RawMessage, out: list[RawMessage]) -> None:
        """Act on the chunk-layer control messages, and collect the others."""
        type_id = message.type_id
        if type_id == MessageType.SET_CHUNK_SIZE:
            self._set_chunk_size(message.payload)
        elif type_id == MessageType.ABORT:
            self._abort(message.payload)
            return
        out.append(message)

    def _check_length(self, type_id: int, length: int) -> None:
        if type_id == MessageType.VIDEO or type_id == MessageType.AGGREGATE:
            maximum = self._video_max
        elif type_id == MessageType.AUDIO:
            maximum = self._audio_max
        else:
            maximum = self.limits.max_command_message_size
        if length > maximum:
            kind = _kind_name(type_id) if self._media_enabled else _kind_name_before_media(type_id)
            raise LimitExceeded(f"{kind} message too large: {length} bytes > maximum {maximum}")

    def _new_stream(self, csid: int) -> _InboundChunkStream:
        if len(self._streams) >= self.limits.max_chunk_streams:
            raise LimitExceeded(
                f"too many chunk stream ids: {len(self._streams) + 1} > "
                f"maximum {self.limits.max_chunk_streams}"
            )
        st = _InboundChunkStream(csid)
        self._streams[csid] = st
        return st

    def _set_chunk_size(self, payload: bytes) -> None:
        if len(payload) < 4:
            raise ChunkStreamError(f"Set Chunk Size payload of {len(payload)} bytes, expected 4")
        size = _U32_BE.unpack_from(payload)[0]
        if size == 0 or size & 0x80000000:
            raise ChunkStreamError(f"invalid Set Chunk Size {size} (must be 1..{MAX_CHUNK_SIZE})")
        if size > self.limits.max_chunk_size:
            raise LimitExceeded(
                f"chunk size too large: {size} bytes > maximum {self.limits.max_chunk_size}"
            )
        self._chunk_size = size

    def _abort(self, payload: bytes) -> None:
        if len(payload) < 4:
            raise ChunkStreamError(f"Abort payload of {len(payload)} bytes, expected 4")
        st = self._streams.get(_U32_BE.unpack_from(payload)[0])
        if st is None or not st.active:
            return
        self._buffered -= len(st.buffer)
        self._partials -= 1
        st.buffer = bytearray()
        st.active = False


def _could_be_prefix(available: bytes, candidates: tuple[int, int]) -> bool:
    """Whether ``available`` (under 4 bytes) may begin one of the 32-bit ``candidates``."""
    return any(_U32_BE.pack(value).startswith(available) for value in candidates)


def _kind_name(type_id: int) -> str:
    if type_id == MessageType.AUDIO:
        return "audio"
    if type_id == MessageType.VIDEO:
        return "video"
    if type_id == MessageType.AGGREGATE:
        return "aggregate"
    return f"type {type_id}"


def _kind_name_before_media(type_id: int) -> str:
    name = _kind_name(type_id)
    if type_id in (MessageType.AUDIO, MessageType.VIDEO, MessageType.AGGREGATE):
        return f"{name} (before media was enabled)"
    return name


# --- encoding ------------------------------------------------------------------------------------


def _basic_header(fmt: int, csid: int) -> bytes:
    if csid < 64:
        return bytes(((fmt << 6) | csid,))
    if csid < 320:
        return bytes((fmt << 6, csid - 64))
    rest = csid - 64
    return bytes(((fmt << 6) | 1, rest & 0xFF, rest >> 8))


def _check_message(message: RawMessage) -> None:
    if not MIN_CSID <= message.csid <= MAX_CSID:
        raise LocalProtocolError(f"chunk stream id {message.csid} outside {MIN_CSID}..{MAX_CSID}")
    if len(message.payload) > MAX_MESSAGE_LENGTH:
        raise LocalProtocolError(
            f"message of {len(message.payload)} bytes exceeds the {MAX_MESSAGE_LENGTH}-byte maximum"
        )
    if not 0 <= message.type_id <= 0xFF:
        raise LocalProtocolError(f"message type id {message.type_id} outside 0..255")
    if not 0 <= message.stream_id <= U32_MASK:
        raise LocalProtocolError(f"message stream id {message.stream_id} outside 32 bits")
    if not 0 <= message.timestamp <= U32_MASK:
        raise LocalProtocolError(f"timestamp {message.timestamp} outside 32 bits")


def _check_chunk_size(chunk_size: int) -> None:
    if not 1 <= chunk_size <= MAX_CHUNK_SIZE:
        raise LocalProtocolError(f"chunk size {chunk_size} outside 1..{MAX_CHUNK_SIZE}")


def _chunk(first_header: bytes, continuation: bytes, payload: bytes, chunk_size: int) -> bytes:
    """Join ``first_header``, the payload cut at ``chunk_size``, and a header per continuation."""
    length = len(payload)
    if length <= chunk_size:
        return first_header + payload
    view = memoryview(payload)
    parts: list[bytes | memoryview] = [first_header, view[:chunk_size]]
    for offset in range(chunk_size, length, chunk_size):
        parts.append(continuation)
        parts.append(view[offset : offset + chunk_size])
    return b"".join(parts)


def _fmt0_header(message: RawMessage, basic: bytes) -> tuple[bytes, bytes]:
    """The fmt 0 chunk header of ``message`` and the extended-timestamp suffix it needs."""
    timestamp = message.timestamp
    length = len(message.payload)
    if timestamp >= EXTENDED_TIMESTAMP:
        ext = _U32_BE.pack(timestamp)
        field = EXTENDED_TIMESTAMP
    else:
        ext = b""
        field = timestamp
    header = b"".join(
        (
            basic,
            _HEADER7.pack(
                field >> 16, field & 0xFFFF, length >> 16, length & 0xFFFF, message.type_id
            ),
            _U32_LE.pack(message.stream_id),
            ext,
        )
    )
    return header, ext


def encode_shared(message: RawMessage, chunk_size: int) -> bytes:
    """Chunk-encode ``message`` statelessly: one fmt 0 header, then fmt 3 continuations.

    The timestamp in the fmt 0 header is absolute, so the result does not depend on what was sent
    before and the SAME ``bytes`` object is valid for every connection whose outgoing chunk size
    is ``chunk_size`` (bytes): fan-out encodes a message once and writes it to every subscriber.

    The csid of a shared message (``message.csid``) must be dedicated to shared messages on every
    connection they are written to (see :class:`~fms.rtmp.constants.ChunkStreamId`): a
    :class:`ChunkEncoder` that also compressed headers on that csid would describe its messages
    relative to a header the peer never saw from it. Every whole shared message must also be
    written between whole messages of the connection's own encoder, never inside one.

    An extended timestamp is repeated on every continuation chunk.
    """
    _check_message(message)
    _check_chunk_size(chunk_size)
    header, ext = _fmt0_header(message, _basic_header(0, message.csid))
    return _chunk(header, _basic_header(3, message.csid) + ext, message.payload, chunk_size)


class _OutboundChunkStream:
    """What the encoder remembers about one chunk stream id (mutable, internal)."""

    __slots__ = ("continuation", "delta", "length", "stream_id", "timestamp", "type_id")

    def __init__(self, message: RawMessage, delta: int | None, continuation: bytes) -> None:
        self.stream_id = message.stream_id
        self.timestamp = message.timestamp
        self.length = len(message.payload)
        self.type_id = message.type_id
        self.delta = delta  # the delta of the last fmt 1/2 header; None after fmt 0
        self.continuation = continuation  # fmt 3 basic header plus any extended timestamp


class ChunkEncoder:
    """Cuts outgoing messages into chunks for one connection, compressing headers per csid.

    The first message on a csid, a change of message stream id, and a timestamp lower than the
    previous one on that csid (backwards, or wrapped past ``2**32``) get a fmt 0 header. Otherwise
    a changed length or type gets fmt 1, a new timestamp delta fmt 2, and a message identical in
    length, type and delta to a previous fmt 1/2 one gets fmt 3. Continuation chunks are fmt 3 and
    repeat the extended timestamp whenever the message's header carried one.

    ``chunk_size`` is the outgoing chunk size in bytes (128 until we send Set Chunk Size).
    """

    def __init__(self, chunk_size: int = DEFAULT_CHUNK_SIZE) -> None:
        _check_chunk_size(chunk_size)
        self._chunk_size = chunk_size
        self._streams: dict[int, _OutboundChunkStream] = {}

    @property
    def chunk_size(self) -> int:
        """The outgoing chunk size in bytes."""
        return self._chunk_size

    def set_chunk_size(self, chunk_size: int) -> None:
        """Cut messages encoded from now on at ``chunk_size`` bytes (1..0x7FFFFFFF).

        Encode the Set Chunk Size message that announces it first, with the old size.
        """
        _check_chunk_size(chunk_size)
        self._chunk_size = chunk_size

    def encode(self, message: RawMessage) -> bytes:
        """Return the chunks of ``message`` on ``message.csid``; write them before later ones."""
        _check_message(message)
        csid = message.csid
        timestamp = message.timestamp
        length = len(message.payload)
        prev = self._streams.get(csid)
        if prev is None or prev.stream_id != message.stream_id or timestamp < prev.timestamp:
            header, ext = _fmt0_header(message, _basic_header(0, csid))
            continuation = _basic_header(3, csid) + ext
            self._streams[csid] = _OutboundChunkStream(message, None, continuation)
            return _chunk(header, continuation, message.payload, self._chunk_size)

        delta = timestamp - prev.timestamp
        if delta == prev.delta and length == prev.length and message.type_id == prev.type_id:
            header = continuation = prev.continuation
        else:
            if delta >= EXTENDED_TIMESTAMP:
                ext = _U32_BE.pack(delta)
                field = EXTENDED_TIMESTAMP
            else:
                ext = b""
                field = delta
            if length == prev.length and message.type_id == prev.type_id:
                header = b"".join(
                    (
                        _basic_header(2, csid),
                        bytes((field >> 16, (field >> 8) & 0xFF, field & 0xFF)),
                        ext,
                    )
                )
            else:
                header = b"".join(
                    (
                        _basic_header(1, csid),
                        _HEADER7.pack(
                            field >> 16,
                            field & 0xFFFF,
                            length >> 16,
                            length & 0xFFFF,
                            message.type_id,
                        ),
                        ext,
                    )
                )
            continuation = _basic_header(3, csid) + ext
            prev.delta = delta
            prev.continuation = continuation
            prev.length = length
            prev.type_id = message.type_id
        prev.timestamp = timestamp
        return _chunk(header, continuation, message.payload, self._chunk_size)
