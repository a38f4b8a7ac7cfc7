"""RTMP wire constants, spelled as the specification spells them.

Message type ids and User Control event types from Adobe's RTMP specification (2012), plus the
defaults pyFMS announces. Pure data: every other module of :mod:`fms.rtmp` imports from here.
"""

from __future__ import annotations

from enum import IntEnum

RTMP_VERSION = 3
"""The only handshake version byte (C0/S0) of plain RTMP."""

HANDSHAKE_SIZE = 1536
"""Length of C1/S1/C2/S2 in bytes."""

DEFAULT_CHUNK_SIZE = 128
"""Chunk size both directions start with, before any Set Chunk Size (bytes)."""

U32_MASK = 0xFFFFFFFF
"""The 32-bit fields of RTMP wrap: timestamps (ms), the acknowledged byte count, message stream
ids. ``value & U32_MASK`` keeps the low 32 bits; it is also the largest such value."""

EXTENDED_TIMESTAMP = 0xFFFFFF
"""A 24-bit timestamp field holding this value means a 4-byte extended timestamp follows."""


class MessageType(IntEnum):
    """RTMP message type ids (the ``type id`` of the chunk message header)."""

    SET_CHUNK_SIZE = 1
    ABORT = 2
    ACKNOWLEDGEMENT = 3
    USER_CONTROL = 4
    WINDOW_ACKNOWLEDGEMENT_SIZE = 5
    SET_PEER_BANDWIDTH = 6
    AUDIO = 8
    VIDEO = 9
    DATA_AMF3 = 15
    SHARED_OBJECT_AMF3 = 16
    COMMAND_AMF3 = 17
    DATA_AMF0 = 18
    SHARED_OBJECT_AMF0 = 19
    COMMAND_AMF0 = 20
    AGGREGATE = 22


PROTOCOL_CONTROL_TYPES = frozenset(
    {
        MessageType.SET_CHUNK_SIZE,
        MessageType.ABORT,
        MessageType.ACKNOWLEDGEMENT,
        MessageType.WINDOW_ACKNOWLEDGEMENT_SIZE,
        MessageType.SET_PEER_BANDWIDTH,
    }
)
"""Types 1, 2, 3, 5, 6: sent on chunk stream 2, message stream 0."""

MEDIA_TYPES = frozenset({MessageType.AUDIO, MessageType.VIDEO, MessageType.AGGREGATE})
"""Types whose size limit is raised once a publish was accepted."""


class UserControlEvent(IntEnum):
    """Event types carried in a User Control message (type 4)."""

    STREAM_BEGIN = 0
    STREAM_EOF = 1
    STREAM_DRY = 2
    SET_BUFFER_LENGTH = 3
    STREAM_IS_RECORDED = 4
    PING_REQUEST = 6
    PING_RESPONSE = 7


class PeerBandwidthLimit(IntEnum):
    """Limit type of Set Peer Bandwidth (type 6)."""

    HARD = 0
    SOFT = 1
    DYNAMIC = 2


class ChunkStreamId(IntEnum):
    """Chunk stream ids pyFMS sends on.

    Protocol control always goes on 2. Media for players uses its own ids and is always written
    with type-0 (absolute timestamp) headers, so bytes encoded once can be shared by every player
    without touching any connection's per-csid header-compression state.
    """

    PROTOCOL_CONTROL = 2
    COMMAND = 3
    DATA = 5
    AUDIO = 6
    VIDEO = 7
