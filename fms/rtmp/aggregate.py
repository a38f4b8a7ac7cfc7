"""Splitting RTMP aggregate messages (type 22) into the audio, video and data messages they carry.

Relays from other servers may deliver several media messages packed into one aggregate message.
Its body is a sequence of FLV tags, each::

    type (1 byte) | data size (3 bytes, BE) | timestamp (3 bytes, BE) | timestamp extension
    (1 byte, the upper 8 bits) | stream id (3 bytes, ignored) | data | back pointer (4 bytes)

The tag timestamps are only relative: the first sub-message takes the aggregate's own timestamp
and every later one keeps its offset (in ms, modulo ``2**32``) from the first tag. Sub-messages
inherit the aggregate's message stream id and chunk stream id. The back pointer (the previous tag
size, 11 + data size) is skipped, not checked: servers have differed in what they write there.

Pure standard library, sans-IO.
"""

from __future__ import annotations

from struct import Struct

from fms.errors import LocalProtocolError
from fms.rtmp.chunks import RawMessage
from fms.rtmp.constants import U32_MASK, MessageType
from fms.rtmp.errors import MessageError

__all__ = ["AGGREGATE_SUB_TYPES", "AggregateError", "split_aggregate"]

AGGREGATE_SUB_TYPES = frozenset({MessageType.AUDIO, MessageType.VIDEO, MessageType.DATA_AMF0})
"""Message types an aggregate may carry (FLV tag types 8, 9 and 18)."""

_TAG_HEADER = Struct(">BBHBHB")  # type, size hi, size lo, ts hi, ts lo, ts extension
_TAG_HEADER_SIZE = 11
_BACK_POINTER_SIZE = 4


class AggregateError(MessageError):
    """An aggregate message whose body is not a well-formed sequence of FLV tags."""


def split_aggregate(message: RawMessage) -> list[RawMessage]:
    """Return the sub-messages of the aggregate ``message``, in order, with absolute timestamps.

    Raises :class:`AggregateError` (a :class:`~fms.errors.RemoteProtocolError`) when the body is
    truncated or carries a tag type other than audio (8), video (9) or AMF0 data (18), and
    :class:`~fms.errors.LocalProtocolError` when ``message`` is not an aggregate. An empty body
    yields no sub-messages.
    """
    if message.type_id != MessageType.AGGREGATE:
        raise LocalProtocolError(f"split_aggregate() got a type {message.type_id} message")
    body = message.payload
    end = len(body)
    pos = 0
    first: int | None = None
    out: list[RawMessage] = []
    while pos < end:
        if end - pos < _TAG_HEADER_SIZE:
            raise AggregateError(
                f"aggregate truncated in a tag header at offset {pos}: "
                f"{end - pos} of {_TAG_HEADER_SIZE} bytes"
            )
        tag_type, size_hi, size_lo, ts_hi, ts_lo, ts_ext = _TAG_HEADER.unpack_from(body, pos)
        if tag_type not in AGGREGATE_SUB_TYPES:
            raise AggregateError(f"aggregate carries a tag of type {tag_type} at offset {pos}")
        size = (size_hi << 16) | size_lo
        data_start = pos + _TAG_HEADER_SIZE
        data_end = data_start + size
        if data_end + _BACK_POINTER_SIZE > end:
            raise AggregateError(
                f"aggregate truncated in a tag at offset {pos}: it announces {size} data bytes "
                f"and a back pointer, {end - data_start} bytes remain"
            )
        tag_ts = (ts_ext << 24) | (ts_hi << 16) | ts_lo
        if first is None:
            first = tag_ts
        timestamp = (message.timestamp + tag_ts - first) & U32_MASK
        out.append(
            RawMessage(
                tag_type, message.stream_id, timestamp, body[data_start:data_end], message.csid
            )
        )
        pos = data_end + _BACK_POINTER_SIZE
    return out
