"""FLV file framing for HTTP-FLV viewers: the file header and one tag per RTMP message.

An FLV tag *is* an RTMP audio (8), video (9) or data (18) message with an 11-byte header in
front and its size behind, so a stream's messages become FLV without touching their payloads
(Enhanced RTMP's FourCC packets included: the tag body is the message payload as published).

Layout (big-endian, sizes in bytes)::

    header:  'F' 'L' 'V' 0x01 flags(0x04 audio | 0x01 video) data_offset(u32 = 9)
             PreviousTagSize0 (u32 = 0)
    tag:     type(u8) data_size(u24) timestamp(u24) timestamp_extended(u8: bits 31..24)
             stream_id(u24 = 0) data[data_size] PreviousTagSize(u32 = 11 + data_size)

Timestamps are milliseconds, 32 bits (the extended byte holds the high 8). No Twisted here.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from fms.rtmp.constants import U32_MASK

TAG_AUDIO = 8
TAG_VIDEO = 9
TAG_SCRIPT = 18
"""The tag types of FLV, the same numbers as the RTMP message types they carry."""

TAG_HEADER_SIZE = 11
MAX_DATA_SIZE = 0xFFFFFF
"""The largest tag body (bytes): the data size field has 24 bits."""

FLAG_AUDIO = 0x04
FLAG_VIDEO = 0x01

_HEADER = struct.Struct(">3sBBI")
_PREVIOUS = struct.Struct(">I")


def file_header(*, audio: bool, video: bool) -> bytes:
    """The 9-byte FLV header with the flags of the tracks present, then PreviousTagSize0.

    MSE players (mpegts.js, flv.js) wait for every track the flags announce before they play,
    so a flag for a track that never comes stalls them forever: set only what the stream
    carries."""
    flags = (FLAG_AUDIO if audio else 0) | (FLAG_VIDEO if video else 0)
    return _HEADER.pack(b"FLV", 1, flags, 9) + _PREVIOUS.pack(0)


def encode_tag(tag_type: int, timestamp: int, payload: bytes) -> bytes:
    """One FLV tag: header, ``payload`` as it is, and the previous-tag-size trailer.

    ``timestamp`` (ms) is taken modulo 2**32, as RTMP's. Raises ``ValueError`` for a type
    other than 8, 9 or 18 or a payload over 16 MiB - 1 (RTMP's message length has 24 bits
    too, so a published message always fits)."""
    if tag_type not in (TAG_AUDIO, TAG_VIDEO, TAG_SCRIPT):
        raise ValueError(f"FLV has no tag type {tag_type}")
    size = len(payload)
    if size > MAX_DATA_SIZE:
        raise ValueError(f"an FLV tag body has at most {MAX_DATA_SIZE} bytes, not {size}")
    timestamp &= U32_MASK
    header = bytes(
        (
            tag_type,
            size >> 16 & 0xFF,
            size >> 8 & 0xFF,
            size & 0xFF,
            timestamp >> 16 & 0xFF,
            timestamp >> 8 & 0xFF,
            timestamp & 0xFF,
            timestamp >> 24 & 0xFF,
            0,
            0,
            0,
        )
    )
    return header + payload + _PREVIOUS.pack(TAG_HEADER_SIZE + size)


@dataclass(frozen=True, slots=True)
class Tag:
    """One tag read back by :func:`read_file` (type, timestamp in ms, body)."""

    tag_type: int
    timestamp: int
    payload: bytes


class FLVFormatError(ValueError):
    """Bytes that are not a well-formed FLV file."""


def read_file(data: bytes) -> tuple[int, list[Tag]]:
    """The header flags and the tags of a whole FLV file; the last tag may be cut short (a
    stream read until some moment), then it is left out. For tests and tools: strict about
    every size field, so it checks what :func:`encode_tag` wrote."""
    if len(data) < 13 or data[:3] != b"FLV" or data[3] != 1:
        raise FLVFormatError("not an FLV file header")
    flags = data[4]
    offset = _HEADER.unpack_from(data)[3]
    if offset != 9 or _PREVIOUS.unpack_from(data, 9)[0] != 0:
        raise FLVFormatError("bad data offset or PreviousTagSize0")
    tags: list[Tag] = []
    at = 13
    while at + TAG_HEADER_SIZE <= len(data):
        head = data[at : at + TAG_HEADER_SIZE]
        size = int.from_bytes(head[1:4], "big")
        end = at + TAG_HEADER_SIZE + size + 4
        if end > len(data):
            break
        timestamp = int.from_bytes(head[4:7], "big") | head[7] << 24
        if head[8:11] != b"\0\0\0":
            raise FLVFormatError("a tag's stream id is not 0")
        if _PREVIOUS.unpack_from(data, end - 4)[0] != TAG_HEADER_SIZE + size:
            raise FLVFormatError("a PreviousTagSize does not match its tag")
        tags.append(Tag(head[0], timestamp, data[at + TAG_HEADER_SIZE : end - 4]))
        at = end
    return flags, tags
