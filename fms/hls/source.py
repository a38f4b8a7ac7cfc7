"""From a live stream's audio and video messages (FLV payloads, legacy and Enhanced RTMP) to
what the HLS muxers take: :class:`~fms.hls.samples.TrackConfig` for a sequence header,
:class:`~fms.hls.samples.Sample` for coded frames.

The tag header is read by :mod:`fms.live.tracks` (the one tag reader; :mod:`fms.live.media`
hands its reading along with each published message); this module only knows what follows
the header of each packet type: the 3-byte composition time of AVC/HEVC frames (legacy, and
Enhanced ``CodedFrames``; ``CodedFramesX`` has none), the one-byte AVC/AAC packet type of the
legacy layout. Pure functions, no state.
"""

from __future__ import annotations

from fms.hls.samples import Kind, Sample, TrackConfig
from fms.live.tracks import CONFIG, FRAMES, TaggedPayload, split

CODED_FRAMES = 1
"""Enhanced RTMP video packet type whose AVC/HEVC frames carry a composition time."""
_CTS_CODECS = frozenset({"avc1", "hvc1"})


def _s24(data: bytes, at: int) -> int:
    value = int.from_bytes(data[at : at + 3], "big")
    return value - (1 << 24) if value & 0x800000 else value


def read_message(
    type_id: int, timestamp: int, payload: bytes, tagged: TaggedPayload | None = None
) -> list[Sample | TrackConfig]:
    """What one audio (8) or video (9) message means to a muxer, per track it carries: a
    configuration (sequence header), a sample (coded frame), or nothing (metadata, commands,
    sequence ends, codecs without a sample layout here such as legacy MP3, unreadable
    payloads). ``timestamp`` is the unwrapped RTMP time (ms); ``tagged`` the reading of the
    header if the caller has it (:attr:`fms.live.media.MediaInfo.tagged`)."""
    if tagged is None:
        tagged = split(type_id, payload)
    role = tagged.role
    if role is not CONFIG and role is not FRAMES:
        return []
    kind: Kind = "video" if type_id == 9 else "audio"
    legacy = tagged.packet_type is None
    out: list[Sample | TrackConfig] = []
    for track in tagged.tracks:
        body = payload[track.start : track.end]
        codec = track.codec
        cts = 0
        if legacy:
            if codec not in ("avc1", "hvc1", "mp4a") or not body:
                continue
            if kind == "video":
                if len(body) < 4:
                    continue
                cts = _s24(body, 1)
                body = body[4:]
            else:
                body = body[1:]
        elif role is FRAMES and codec in _CTS_CODECS and tagged.packet_type == CODED_FRAMES:
            if len(body) < 3:
                continue
            cts = _s24(body, 0)
            body = body[3:]
        if role is CONFIG:
            if body:
                out.append(TrackConfig(kind, codec, body, track.track_id))
        elif body:
            keyframe = tagged.keyframe if kind == "video" else True
            out.append(Sample(kind, timestamp, cts, keyframe, body, track.track_id))
    return out


__all__ = ["read_message"]
