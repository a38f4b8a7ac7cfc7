"""What the relay needs to know about FLV audio and video payloads, and nothing more.

The first bytes of an RTMP audio or video message are an FLV tag header; from them we learn
whether a video frame is a keyframe (where a late joiner can start decoding) and whether a
message is a codec sequence header (AVC/HEVC decoder configuration, AAC AudioSpecificConfig),
which must be cached and resent to every new player because encoders send them once.

Both the legacy layout and Enhanced RTMP (``IsExHeader`` bit, a FourCC and a packet type) are
understood. Pure functions, no state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from functools import lru_cache

from fms.live.tracks import (
    CONFIG,
    METADATA,
    TaggedPayload,
    from_prefix,
    prefix_key,
    split,
)


class VideoCodec(IntEnum):
    """Legacy FLV video codec ids (low nibble of the first byte)."""

    SORENSON_H263 = 2
    SCREEN = 3
    VP6 = 4
    VP6_ALPHA = 5
    SCREEN_V2 = 6
    AVC = 7
    HEVC_LEGACY = 12  # a widespread pre-Enhanced-RTMP extension


KEYFRAME = 1
"""FLV frame type of a keyframe (high nibble, or bits 4-6 with IsExHeader)."""
SOUND_FORMAT_AAC = 10
SOUND_FORMAT_EX = 9
"""Enhanced RTMP audio: a FourCC follows."""


@dataclass(frozen=True, slots=True)
class VideoTag:
    """What a video payload's header says. ``codec`` is a FourCC (``"avc1"`` for legacy AVC)."""

    keyframe: bool
    sequence_header: bool
    codec: str


_LEGACY_FOURCC = {VideoCodec.AVC: "avc1", VideoCodec.HEVC_LEGACY: "hvc1"}


def parse_video(payload: bytes) -> VideoTag:
    """Read the header of a video payload (an empty payload is a non-key, non-header frame).
    Multitrack and ModEx are unwrapped (:mod:`fms.live.tracks`); ``codec`` is the lowest
    track's."""
    tagged = split(9, payload)
    codec = tagged.tracks[0].codec if tagged.tracks else ""
    return VideoTag(tagged.keyframe, tagged.role is CONFIG, codec)


def is_audio_sequence_header(payload: bytes) -> bool:
    """True for an AAC AudioSpecificConfig (or an Enhanced RTMP audio SequenceStart)."""
    if len(payload) < 2:
        return False
    sound_format = payload[0] >> 4
    if sound_format == SOUND_FORMAT_AAC:
        return payload[1] == 0
    if sound_format == SOUND_FORMAT_EX:
        return payload[0] & 0x0F == 0
    return False


@dataclass(frozen=True, slots=True)
class MediaInfo:
    """What one published message is, read once from its header when it is published and
    handed with it to everyone who follows the stream (logs, the relay, plugins).

    ``kind`` is ``"audio"``, ``"video"`` or ``"data"``; ``codec`` a FourCC (``"avc1"``,
    ``"hvc1"``, ``"av01"``...), or for legacy audio its FLV sound format number as text (the
    lowest track's in a multitrack message); ``keyframe`` is true for a video keyframe (coded
    frames only: never a sequence header, metadata or command), and for every audio frame;
    ``sequence_header`` for decoder configuration that a late joiner needs first; ``track`` the
    lowest track id the message carries (0 without multitrack); ``tagged`` every track of it.
    """

    kind: str
    codec: str
    keyframe: bool
    sequence_header: bool
    track: int = 0
    tagged: TaggedPayload | None = field(default=None, compare=False, repr=False)


DATA_INFO = MediaInfo("data", "", False, False)


def describe(type_id: int, payload: bytes) -> MediaInfo:
    """Read the header of an RTMP message of type ``type_id`` (8 audio, 9 video, other data)."""
    if type_id not in (8, 9):
        return DATA_INFO
    key = prefix_key(type_id, payload)
    if key is not None:
        return _prefix_info(*key)
    return _info(split(type_id, payload))


@lru_cache(maxsize=4096)
def _prefix_info(type_id: int, prefix: bytes) -> MediaInfo:
    """Most payloads are read from a short prefix (:func:`fms.live.tracks.prefix_key`): once
    per distinct prefix."""
    return _info(from_prefix(type_id, prefix))


def _info(tagged: TaggedPayload) -> MediaInfo:
    codec = tagged.tracks[0].codec if tagged.tracks else ""
    header = tagged.role is CONFIG
    if tagged.kind == "video":
        keyframe = tagged.keyframe
    else:
        keyframe = tagged.role not in (CONFIG, METADATA)
    return MediaInfo(tagged.kind, codec, keyframe, header, tagged.lowest_track, tagged)
