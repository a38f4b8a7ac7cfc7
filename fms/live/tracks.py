"""The tracks inside one audio or video message, legacy FLV and Enhanced RTMP v2 alike.

Enhanced RTMP (veovera/enhanced-rtmp, v2) lets one message carry several tracks (multitrack:
OneTrack, ManyTracks, ManyTracksManyCodecs), each with its own one-byte track id and, in
ManyTracksManyCodecs, its own FourCC; ModEx prefixes (e.g. a nanosecond timestamp offset) may
come before the packet type. A late joiner needs every track's decoder configuration, so the
relay must see every track, not only the first byte.

:func:`split` reads a payload once into a :class:`TaggedPayload`: one packet type and frame
type for the whole message (the specification puts them before the tracks) and where each
track's body lies. Legacy messages and single-track enhanced ones are track 0. Malformed input
never raises: what cannot be read is an opaque frame with no tracks. Pure functions, no state.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, IntEnum
from functools import lru_cache


class Role(Enum):
    """What a message is for a relay, whatever the codec."""

    CONFIG = "config"
    """Decoder configuration (SequenceStart, MPEG2TS SequenceStart, legacy AVC/AAC header)."""
    METADATA = "metadata"
    """Per-track side information a decoder keeps: video Metadata (HDR colorInfo), audio
    MultichannelConfig."""
    END = "end"
    """SequenceEnd (legacy AVC end of sequence included): the track's configuration ends."""
    FRAMES = "frames"
    """Coded frames (CodedFrames, CodedFramesX, legacy frames)."""
    OTHER = "other"
    """Video command frames, unknown packet types, unreadable payloads."""


CONFIG, METADATA, END, FRAMES, OTHER = Role.CONFIG, Role.METADATA, Role.END, Role.FRAMES, Role.OTHER
"""The roles as plain module names: reading an Enum member off its class costs a lookup per
message on Python 3.11."""


class AvMultitrackType(IntEnum):
    ONE_TRACK = 0
    MANY_TRACKS = 1
    MANY_TRACKS_MANY_CODECS = 2


class VideoPacketType(IntEnum):
    """Enhanced RTMP video packet types (low nibble when IsExHeader is set)."""

    SEQUENCE_START = 0
    CODED_FRAMES = 1
    SEQUENCE_END = 2
    CODED_FRAMES_X = 3
    METADATA = 4
    MPEG2TS_SEQUENCE_START = 5
    MULTITRACK = 6
    MOD_EX = 7


class AudioPacketType(IntEnum):
    SEQUENCE_START = 0
    CODED_FRAMES = 1
    SEQUENCE_END = 2
    MULTICHANNEL_CONFIG = 4
    MULTITRACK = 5
    MOD_EX = 7


VIDEO_KEYFRAME = 1
VIDEO_COMMAND = 5
"""Video frame types (bits 4-6 of the first byte; bit 7 is IsExHeader)."""
SOUND_FORMAT_EX = 9
SOUND_FORMAT_AAC = 10
_LEGACY_VIDEO_FOURCC = {7: "avc1", 12: "hvc1"}  # AVC, and the pre-Enhanced HEVC extension

_VIDEO_ROLES: dict[int, Role] = {
    VideoPacketType.SEQUENCE_START: Role.CONFIG,
    VideoPacketType.MPEG2TS_SEQUENCE_START: Role.CONFIG,
    VideoPacketType.CODED_FRAMES: Role.FRAMES,
    VideoPacketType.CODED_FRAMES_X: Role.FRAMES,
    VideoPacketType.SEQUENCE_END: Role.END,
    VideoPacketType.METADATA: Role.METADATA,
}
_AUDIO_ROLES: dict[int, Role] = {
    AudioPacketType.SEQUENCE_START: Role.CONFIG,
    AudioPacketType.CODED_FRAMES: Role.FRAMES,
    AudioPacketType.SEQUENCE_END: Role.END,
    AudioPacketType.MULTICHANNEL_CONFIG: Role.METADATA,
}


_ONE_TRACK = int(AvMultitrackType.ONE_TRACK)
_MANY_TRACKS_MANY_CODECS = int(AvMultitrackType.MANY_TRACKS_MANY_CODECS)
_VIDEO_MULTITRACK = int(VideoPacketType.MULTITRACK)
_AUDIO_MULTITRACK = int(AudioPacketType.MULTITRACK)


@dataclass(frozen=True, slots=True)
class Track:
    """One track of a message: its id, its codec (a FourCC; a legacy sound format as text) and
    where its body lies in the payload (``payload[start:end]``, byte offsets; ``end`` None: to
    the end of the payload)."""

    track_id: int
    codec: str
    start: int
    end: int | None


@dataclass(frozen=True, slots=True)
class TaggedPayload:
    """What one audio or video payload carries.

    ``packet_type`` is the Enhanced RTMP packet type after ModEx and multitrack are unwrapped
    (None for legacy payloads); ``multitrack`` the AvMultitrackType, or None; ``frame_type``
    the video frame type with IsExHeader masked (0 for audio).
    """

    kind: str
    role: Role
    frame_type: int
    packet_type: int | None
    multitrack: int | None
    tracks: tuple[Track, ...]

    @property
    def keyframe(self) -> bool:
        """A video keyframe with coded frames (never a header, metadata or command)."""
        return self.frame_type == VIDEO_KEYFRAME and self.role is FRAMES

    @property
    def lowest_track(self) -> int:
        return min((t.track_id for t in self.tracks), default=0)


_OPAQUE_VIDEO = TaggedPayload("video", OTHER, 0, None, None, ())
_OPAQUE_AUDIO = TaggedPayload("audio", OTHER, 0, None, None, ())


def split(type_id: int, payload: bytes) -> TaggedPayload:
    """Read the tag header of an audio (type 8) or video (type 9) message."""
    key = prefix_key(type_id, payload)
    if key is not None:
        return from_prefix(*key)
    return _split(type_id, payload)


def prefix_key(type_id: int, payload: bytes) -> tuple[int, bytes] | None:
    """``(8 or 9, prefix)`` when the reading of ``payload`` depends only on a short prefix of
    it (legacy: 2 bytes; Enhanced single track: 5; OneTrack: 7; every track body then runs to
    the end of the payload), so that it can be read once per distinct prefix; None for
    ManyTracks and ModEx payloads, whose reading depends on their sizes."""
    kind = 9 if type_id == 9 else 8
    if not payload:
        return (kind, b"")
    first = payload[0]
    if not ((first & 0x80) if kind == 9 else (first >> 4 == SOUND_FORMAT_EX)):
        return (kind, payload[:2])
    packet_type = first & 0x0F
    if packet_type == 7:
        return None
    if packet_type == (_VIDEO_MULTITRACK if kind == 9 else _AUDIO_MULTITRACK):
        if len(payload) > 1 and payload[1] >> 4 == _ONE_TRACK:
            return (kind, payload[:7])
        return None
    return (kind, payload[:5])


@lru_cache(maxsize=4096)
def from_prefix(type_id: int, prefix: bytes) -> TaggedPayload:
    """:func:`split` of a payload of which ``prefix`` (from :func:`prefix_key`) is all that
    counts: most messages share a handful of prefixes (one per track and frame type)."""
    return _split(type_id, prefix)


def _split(type_id: int, payload: bytes) -> TaggedPayload:
    if not payload:
        return _OPAQUE_VIDEO if type_id == 9 else _OPAQUE_AUDIO
    first = payload[0]
    second = payload[1] if len(payload) > 1 else -1
    if type_id == 9:
        if first & 0x80:
            return _split_enhanced(
                "video", payload, (first >> 4) & 0x07, _VIDEO_MULTITRACK, _VIDEO_ROLES
            )
        return _legacy(9, first, second)
    if first >> 4 == SOUND_FORMAT_EX:
        return _split_enhanced("audio", payload, 0, _AUDIO_MULTITRACK, _AUDIO_ROLES)
    return _legacy(8, first, second)


def _legacy(type_id: int, first: int, second: int) -> TaggedPayload:
    """A legacy payload from its first two bytes (``second`` -1: absent)."""
    if type_id == 9:
        frame_type = first >> 4
        fourcc = _LEGACY_VIDEO_FOURCC.get(first & 0x0F)
        if fourcc is None:
            role = OTHER if frame_type == VIDEO_COMMAND else FRAMES
            return TaggedPayload("video", role, frame_type, None, None, _whole(str(first & 15)))
        if second < 0:
            return _OPAQUE_VIDEO
        role = (CONFIG, FRAMES, END)[second] if second < 3 else OTHER
        if frame_type == VIDEO_COMMAND:
            role = OTHER
        return TaggedPayload("video", role, frame_type, None, None, _whole(fourcc))
    sound_format = first >> 4
    if sound_format == SOUND_FORMAT_AAC:
        if second < 0:
            return _OPAQUE_AUDIO
        role = CONFIG if second == 0 else FRAMES
        return TaggedPayload("audio", role, 0, None, None, _whole("mp4a"))
    return TaggedPayload("audio", FRAMES, 0, None, None, _whole(str(sound_format)))


def _whole(codec: str) -> tuple[Track, ...]:
    """A legacy payload: one track 0 (its body after the first byte)."""
    return (Track(0, codec, 1, None),)


def _split_enhanced(
    kind: str, payload: bytes, frame_type: int, multitrack_type: int, roles: dict[int, Role]
) -> TaggedPayload:
    """The ExHeader layout shared by audio and video: ModEx prefixes, then either one FourCC or
    a multitrack header and its tracks."""
    size = len(payload)
    packet_type = payload[0] & 0x0F
    pos = 1
    while packet_type == 7:  # ModEx: a size, its data, then (mod-ex type, packet type)
        if pos >= size:
            return _opaque(kind, frame_type)
        data_size = payload[pos] + 1
        pos += 1
        if data_size == 256:
            if pos + 2 > size:
                return _opaque(kind, frame_type)
            data_size = int.from_bytes(payload[pos : pos + 2], "big") + 1
            pos += 2
        pos += data_size
        if pos >= size:
            return _opaque(kind, frame_type)
        packet_type = payload[pos] & 0x0F
        pos += 1
    if kind == "video" and frame_type == VIDEO_COMMAND and packet_type != 4:
        return TaggedPayload(kind, OTHER, frame_type, packet_type, None, ())
    if packet_type != multitrack_type:
        if pos + 4 > size:
            return _opaque(kind, frame_type)
        fourcc = payload[pos : pos + 4].decode("latin-1")
        role = roles.get(packet_type, OTHER)
        return TaggedPayload(
            kind, role, frame_type, packet_type, None, (Track(0, fourcc, pos + 4, None),)
        )
    if pos >= size:
        return _opaque(kind, frame_type)
    multitrack = payload[pos] >> 4
    packet_type = payload[pos] & 0x0F
    pos += 1
    if multitrack > 2 or packet_type in (multitrack_type, 7):
        return _opaque(kind, frame_type)
    fourcc = ""
    if multitrack != _MANY_TRACKS_MANY_CODECS:
        if pos + 4 > size:
            return _opaque(kind, frame_type)
        fourcc = payload[pos : pos + 4].decode("latin-1")
        pos += 4
    tracks: list[Track] = []
    while pos < size:
        if multitrack == _MANY_TRACKS_MANY_CODECS:
            if pos + 4 > size:
                return _opaque(kind, frame_type)
            fourcc = payload[pos : pos + 4].decode("latin-1")
            pos += 4
        if pos >= size:
            return _opaque(kind, frame_type)
        track_id = payload[pos]
        pos += 1
        if multitrack == _ONE_TRACK:
            tracks.append(Track(track_id, fourcc, pos, None))
            break
        if pos + 3 > size:
            return _opaque(kind, frame_type)
        length = int.from_bytes(payload[pos : pos + 3], "big")
        pos += 3
        if pos + length > size:
            return _opaque(kind, frame_type)
        tracks.append(Track(track_id, fourcc, pos, pos + length))
        pos += length
    if not tracks:
        return _opaque(kind, frame_type)
    role = roles.get(packet_type, OTHER)
    return TaggedPayload(kind, role, frame_type, packet_type, multitrack, tuple(tracks))


@lru_cache(maxsize=64)
def _opaque(kind: str, frame_type: int) -> TaggedPayload:
    return TaggedPayload(kind, OTHER, frame_type, None, None, ())


def one_track(kind: str, tagged: TaggedPayload, track: Track, payload: bytes) -> bytes:
    """The payload of a OneTrack message carrying ``track`` of a multitrack message alone (the
    same frame type and packet type; ModEx prefixes dropped: they concern frames, not
    configuration)."""
    assert tagged.packet_type is not None
    if kind == "video":
        first = 0x80 | (tagged.frame_type << 4) | _VIDEO_MULTITRACK
    else:
        first = (SOUND_FORMAT_EX << 4) | _AUDIO_MULTITRACK
    return (
        bytes((first, (_ONE_TRACK << 4) | tagged.packet_type))
        + track.codec.encode("latin-1")
        + bytes((track.track_id,))
        + payload[track.start : track.end]
    )
