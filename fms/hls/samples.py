"""What the HLS muxers take: one decoded-order access unit of one track, and each track's
codec configuration, both already out of their FLV/RTMP wrapping.

The muxers (fragmented MP4, MPEG-TS) share this input so that they can be compared and tested
against each other; turning RTMP messages (legacy and Enhanced RTMP tags) into samples is the
job of the module that feeds them, not of the muxers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["video", "audio"]


@dataclass(frozen=True, slots=True)
class TrackConfig:
    """One track's codec and decoder configuration.

    ``codec`` is the FourCC Enhanced RTMP uses (``"avc1"``, ``"hvc1"``, ``"av01"``, ``"vp09"``,
    ``"mp4a"``, ``"Opus"``, ``"fLaC"``, ``"ac-3"``, ``"ec-3"``). ``config`` is the codec's
    configuration record exactly as the sequence header carried it (AVCDecoderConfigurationRecord,
    HEVCDecoderConfigurationRecord, AV1CodecConfigurationRecord, VPCodecConfigurationRecord,
    AAC AudioSpecificConfig, Opus ID header, ...). ``track`` is the Enhanced RTMP track id (0 for
    a single-track stream).
    """

    kind: Kind
    codec: str
    config: bytes
    track: int = 0


@dataclass(frozen=True, slots=True)
class Sample:
    """One access unit in decode order.

    ``dts`` is the decode time in milliseconds (the RTMP timestamp, already unwrapped to keep
    growing past 2**32), ``cts`` the composition offset in milliseconds (presentation time is
    ``dts + cts``; 0 for audio). ``data`` is the frame without its FLV header: length-prefixed
    NAL units (4-byte lengths, as AVC/HEVC records say) for H.264/HEVC, OBUs for AV1, the raw
    frame for VP9, a raw AAC frame (no ADTS header) or an Opus packet for audio.
    """

    kind: Kind
    dts: int
    cts: int
    keyframe: bool
    data: bytes
    track: int = 0
