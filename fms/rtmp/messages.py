"""Typed records for every RTMP message type, and their conversion from/to :class:`RawMessage`.

The chunk layer reassembles bytes into :class:`~fms.rtmp.chunks.RawMessage`; this module gives
each type id its meaning: protocol control (1-6), audio/video (8/9), data (15/18), shared objects
(16/19, kept opaque), commands (17/20, AMF through :mod:`fms.amf`) and aggregates (22, split into
their sub-messages). Anything malformed raises :class:`~fms.rtmp.errors.MessageError`.

Media payloads are never copied or parsed here: they are relayed as the bytes that arrived.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

from fms.amf import AMFDecodeError, AMFLimits, decode_payload, encode_payload
from fms.rtmp.aggregate import split_aggregate
from fms.rtmp.chunks import RawMessage
from fms.rtmp.constants import U32_MASK, ChunkStreamId, MessageType, UserControlEvent
from fms.rtmp.errors import MessageError

_U32 = struct.Struct(">I")
_U16 = struct.Struct(">H")
_U16_U32 = struct.Struct(">HI")
_U16_U32_U32 = struct.Struct(">HII")
_U32_U8 = struct.Struct(">IB")
_KNOWN_EVENTS = frozenset(int(e) for e in UserControlEvent)


@dataclass(frozen=True, slots=True)
class SetChunkSize:
    """Type 1: the sender's chunk size from now on (bytes, 1..0x7FFFFFFF)."""

    size: int


@dataclass(frozen=True, slots=True)
class Abort:
    """Type 2: discard the partial message on ``chunk_stream_id``."""

    chunk_stream_id: int


@dataclass(frozen=True, slots=True)
class Acknowledgement:
    """Type 3: the sender has received ``sequence_number`` bytes (32-bit, wraps)."""

    sequence_number: int


@dataclass(frozen=True, slots=True)
class UserControl:
    """Type 4: a User Control event.

    ``value`` is the stream id for stream events, the timestamp for pings; ``buffer_length`` (ms)
    is set only for SetBufferLength. Unknown event types are kept with their raw ``data``.
    """

    event: int
    value: int = 0
    buffer_length: int | None = None
    data: bytes = b""


@dataclass(frozen=True, slots=True)
class WindowAcknowledgementSize:
    """Type 5: acknowledge every ``size`` bytes received from the sender."""

    size: int


@dataclass(frozen=True, slots=True)
class SetPeerBandwidth:
    """Type 6: limit the receiver's output bandwidth (``size`` bytes per window)."""

    size: int
    limit_type: int


@dataclass(frozen=True, slots=True)
class Media:
    """Type 8 (audio) or 9 (video): an FLV tag body, relayed as it arrived."""

    type_id: int
    timestamp: int
    stream_id: int
    payload: bytes

    @property
    def is_video(self) -> bool:
        return self.type_id == MessageType.VIDEO


@dataclass(frozen=True, slots=True)
class Data:
    """Type 18 (or 15 in AMF3 form): e.g. ``@setDataFrame``/``onMetaData``.

    ``payload`` keeps the bytes that arrived (AMF0 form) so relaying never re-encodes them.
    """

    values: tuple[Any, ...]
    stream_id: int = 0
    timestamp: int = 0
    amf3: bool = False

    @property
    def name(self) -> str | None:
        first = self.values[0] if self.values else None
        return first if isinstance(first, str) else None


@dataclass(frozen=True, slots=True)
class Command:
    """Type 20 (or 17 in AMF3 form): ``name``, transaction id, command object, arguments."""

    name: str
    transaction_id: float = 0.0
    command_object: Any = None
    arguments: tuple[Any, ...] = ()
    stream_id: int = 0
    amf3: bool = False


@dataclass(frozen=True, slots=True)
class SharedObject:
    """Type 19 (or 16): shared object events; pyFMS keeps them opaque."""

    payload: bytes
    stream_id: int = 0
    amf3: bool = False


@dataclass(frozen=True, slots=True)
class Aggregate:
    """Type 22: several FLV tags in one message, already split into their sub-messages."""

    messages: tuple[Media | Data, ...] = field(default_factory=tuple)


Message = (
    SetChunkSize
    | Abort
    | Acknowledgement
    | UserControl
    | WindowAcknowledgementSize
    | SetPeerBandwidth
    | Media
    | Data
    | Command
    | SharedObject
    | Aggregate
)


def _unpack(fmt: struct.Struct, raw: RawMessage, what: str) -> tuple[int, ...]:
    if len(raw.payload) < fmt.size:
        raise MessageError(f"{what} needs {fmt.size} bytes, got {len(raw.payload)}")
    return fmt.unpack_from(raw.payload)


def _amf(raw: RawMessage, amf3: bool, limits: AMFLimits | None, what: str) -> list[Any]:
    try:
        return decode_payload(raw.payload, amf3_form=amf3, limits=limits)
    except AMFDecodeError as exc:
        raise MessageError(f"{what} is not valid AMF: {exc}") from None


def decode_message(raw: RawMessage, amf_limits: AMFLimits | None = None) -> Message:
    """Give a reassembled message its typed form; raise MessageError if it is malformed."""
    t = raw.type_id
    if t == MessageType.SET_CHUNK_SIZE:
        (size,) = _unpack(_U32, raw, "Set Chunk Size")
        if size == 0 or size & 0x80000000:
            raise MessageError(f"Set Chunk Size {size} is outside 1..2147483647")
        return SetChunkSize(size)
    if t == MessageType.ABORT:
        return Abort(_unpack(_U32, raw, "Abort")[0])
    if t == MessageType.ACKNOWLEDGEMENT:
        return Acknowledgement(_unpack(_U32, raw, "Acknowledgement")[0])
    if t == MessageType.WINDOW_ACKNOWLEDGEMENT_SIZE:
        return WindowAcknowledgementSize(_unpack(_U32, raw, "Window Acknowledgement Size")[0])
    if t == MessageType.SET_PEER_BANDWIDTH:
        size, limit = _unpack(_U32_U8, raw, "Set Peer Bandwidth")
        return SetPeerBandwidth(size, limit)
    if t == MessageType.USER_CONTROL:
        return _decode_user_control(raw)
    if t in (MessageType.AUDIO, MessageType.VIDEO):
        return Media(t, raw.timestamp, raw.stream_id, raw.payload)
    if t in (MessageType.DATA_AMF0, MessageType.DATA_AMF3):
        amf3 = t == MessageType.DATA_AMF3
        values = _amf(raw, amf3, amf_limits, "data message")
        return Data(tuple(values), raw.stream_id, raw.timestamp, amf3)
    if t in (MessageType.COMMAND_AMF0, MessageType.COMMAND_AMF3):
        return _decode_command(raw, t == MessageType.COMMAND_AMF3, amf_limits)
    if t in (MessageType.SHARED_OBJECT_AMF0, MessageType.SHARED_OBJECT_AMF3):
        return SharedObject(raw.payload, raw.stream_id, t == MessageType.SHARED_OBJECT_AMF3)
    if t == MessageType.AGGREGATE:
        subs: list[Media | Data] = []
        for sub in split_aggregate(raw):
            decoded = decode_message(sub, amf_limits)
            if not isinstance(decoded, (Media, Data)):
                raise MessageError(f"aggregate holds a message of type {sub.type_id}")
            subs.append(decoded)
        return Aggregate(tuple(subs))
    raise MessageError(f"unknown message type {t}")


def _decode_user_control(raw: RawMessage) -> UserControl:
    (event,) = _unpack(_U16, raw, "User Control")
    if event == UserControlEvent.SET_BUFFER_LENGTH:
        _, stream_id, length = _unpack(_U16_U32_U32, raw, "SetBufferLength")
        return UserControl(event, stream_id, length)
    if event in _KNOWN_EVENTS:
        _, value = _unpack(_U16_U32, raw, f"User Control {UserControlEvent(event).name}")
        return UserControl(event, value)
    return UserControl(event, data=raw.payload[2:])


def _decode_command(raw: RawMessage, amf3: bool, limits: AMFLimits | None) -> Command:
    values = _amf(raw, amf3, limits, "command")
    if not values or not isinstance(values[0], str):
        raise MessageError("command does not start with a name string")
    name = values[0]
    transaction_id = values[1] if len(values) > 1 else 0.0
    if isinstance(transaction_id, bool) or not isinstance(transaction_id, (int, float)):
        raise MessageError(f"command {name!r} has a non-numeric transaction id")
    if transaction_id != transaction_id or transaction_id in (float("inf"), float("-inf")):
        raise MessageError(f"command {name!r} has a non-finite transaction id")
    command_object = values[2] if len(values) > 2 else None
    return Command(
        name, float(transaction_id), command_object, tuple(values[3:]), raw.stream_id, amf3
    )


def encode_message(message: Message, timestamp: int = 0) -> RawMessage:
    """The :class:`RawMessage` that carries ``message`` (on the chunk stream its kind uses)."""
    control = ChunkStreamId.PROTOCOL_CONTROL
    if isinstance(message, SetChunkSize):
        return RawMessage(MessageType.SET_CHUNK_SIZE, 0, 0, _U32.pack(message.size), control)
    if isinstance(message, Abort):
        return RawMessage(MessageType.ABORT, 0, 0, _U32.pack(message.chunk_stream_id), control)
    if isinstance(message, Acknowledgement):
        payload = _U32.pack(message.sequence_number & U32_MASK)
        return RawMessage(MessageType.ACKNOWLEDGEMENT, 0, timestamp, payload, control)
    if isinstance(message, WindowAcknowledgementSize):
        payload = _U32.pack(message.size)
        return RawMessage(MessageType.WINDOW_ACKNOWLEDGEMENT_SIZE, 0, 0, payload, control)
    if isinstance(message, SetPeerBandwidth):
        payload = _U32_U8.pack(message.size, message.limit_type)
        return RawMessage(MessageType.SET_PEER_BANDWIDTH, 0, 0, payload, control)
    if isinstance(message, UserControl):
        if message.buffer_length is not None:
            payload = _U16_U32_U32.pack(message.event, message.value, message.buffer_length)
        elif message.data:
            payload = _U16.pack(message.event) + message.data
        else:
            payload = _U16_U32.pack(message.event, message.value & U32_MASK)
        return RawMessage(MessageType.USER_CONTROL, 0, timestamp, payload, control)
    if isinstance(message, Media):
        csid = ChunkStreamId.VIDEO if message.is_video else ChunkStreamId.AUDIO
        return RawMessage(
            message.type_id, message.stream_id, message.timestamp, message.payload, csid
        )
    if isinstance(message, Data):
        t = MessageType.DATA_AMF3 if message.amf3 else MessageType.DATA_AMF0
        payload = encode_payload(message.values, amf3_form=message.amf3)
        return RawMessage(t, message.stream_id, message.timestamp, payload, ChunkStreamId.DATA)
    if isinstance(message, Command):
        t = MessageType.COMMAND_AMF3 if message.amf3 else MessageType.COMMAND_AMF0
        values = [message.name, message.transaction_id, message.command_object]
        payload = encode_payload([*values, *message.arguments], amf3_form=message.amf3)
        return RawMessage(t, message.stream_id, timestamp, payload, ChunkStreamId.COMMAND)
    if isinstance(message, SharedObject):
        t = MessageType.SHARED_OBJECT_AMF3 if message.amf3 else MessageType.SHARED_OBJECT_AMF0
        return RawMessage(t, message.stream_id, timestamp, message.payload, ChunkStreamId.COMMAND)
    raise TypeError(f"cannot encode {type(message).__name__} as one message")
