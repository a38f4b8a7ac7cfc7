"""What a recording's ``onMetaData`` says about its tags, gathered tag by tag.

The same :class:`IndexBuilder` is fed by the writer as it writes (so the figures are ready when
the recording closes) and by the reader as it scans a file (to repair one a crash interrupted,
or to index a file for playback), so both give the same answer for the same tags.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fms.live import codecs
from fms.live.flv import TAG_AUDIO, TAG_VIDEO
from fms.live.media import parse_video
from fms.live.tracks import CONFIG, split
from fms.vod.metadata import fourcc_number

_SIZE_PARSERS: dict[str, Callable[[bytes], codecs.VideoConfig | None]] = {
    "avc1": codecs.parse_avc_config,
    "hvc1": codecs.parse_hevc_config,
    "av01": codecs.parse_av1_config,
    "vp09": codecs.parse_vp_config,
}
"""Decoder configuration records that tell the picture size, by FourCC."""

LEGACY_SOUND_EX = 9
"""The legacy sound format number that announces an Enhanced RTMP audio FourCC."""


@dataclass(slots=True)
class _TrackEnd:
    """Where one kind of media ends: its last timestamp plus the last step between two of its
    timestamps (about one frame), in ms."""

    last: int | None = None
    step: int = 0

    def add(self, timestamp: int) -> None:
        if self.last is not None and timestamp > self.last:
            self.step = timestamp - self.last
        if self.last is None or timestamp > self.last:
            self.last = timestamp

    @property
    def end(self) -> int:
        return 0 if self.last is None else self.last + self.step


def video_codec_id(payload: bytes) -> int | None:
    """``videocodecid`` for a video tag body: the legacy codec number, or the FourCC number of
    an Enhanced RTMP tag (its lowest track's for multitrack)."""
    if not payload:
        return None
    if payload[0] & 0x80:
        tagged = split(TAG_VIDEO, payload)
        return fourcc_number(tagged.tracks[0].codec) if tagged.tracks else None
    return payload[0] & 0x0F


def audio_codec_id(payload: bytes) -> int | None:
    """``audiocodecid`` for an audio tag body: the legacy sound format, or a FourCC number."""
    if not payload:
        return None
    if payload[0] >> 4 == LEGACY_SOUND_EX:
        tagged = split(TAG_AUDIO, payload)
        return fourcc_number(tagged.tracks[0].codec) if tagged.tracks else None
    return payload[0] >> 4


def picture_size(payload: bytes) -> tuple[int, int] | None:
    """(width, height) in pixels from a video sequence header, when its codec says so."""
    tagged = split(TAG_VIDEO, payload)
    if tagged.role is not CONFIG or not tagged.tracks:
        return None
    track = tagged.tracks[0]
    parser = _SIZE_PARSERS.get(track.codec)
    if parser is None:
        return None
    record = payload[5:] if not payload[0] & 0x80 else payload[track.start : track.end]
    try:
        config = parser(record)
    except (ValueError, IndexError):
        return None
    if config is None or not config.width or not config.height:
        return None
    return config.width, config.height


@dataclass(slots=True)
class IndexBuilder:
    """The figures of a recording so far: ``keyframes`` as (ms, byte offset of the tag) of
    the video keyframes of the main track (the lowest track id; a multitrack stream's other
    tracks have keyframes of their own, and a seek must land where the main one can start),
    the first tag of each time only; codec ids, picture size, the duration (ms) and which kinds
    of media were seen."""

    keyframes: list[tuple[int, int]] = field(default_factory=list)
    video_codec: int | None = None
    audio_codec: int | None = None
    size: tuple[int, int] | None = None
    main_track: int | None = None
    _ends: dict[int, _TrackEnd] = field(default_factory=dict)

    def add(self, offset: int, tag_type: int, timestamp: int, body: bytes) -> None:
        """One tag written (or read) at byte ``offset`` with ``timestamp`` in ms."""
        if tag_type == TAG_VIDEO:
            video = parse_video(body)
            track = split(TAG_VIDEO, body).lowest_track
            if video.sequence_header or video.keyframe:
                if self.main_track is None or track < self.main_track:
                    self.main_track = track
                if self.video_codec is None:
                    self.video_codec = video_codec_id(body)
            if video.sequence_header and track == self.main_track:
                self.size = picture_size(body) or self.size
            if (
                video.keyframe
                and track == self.main_track
                and (not self.keyframes or self.keyframes[-1][0] != timestamp)
            ):
                self.keyframes.append((timestamp, offset))
        elif tag_type == TAG_AUDIO:
            if self.audio_codec is None:
                self.audio_codec = audio_codec_id(body)
        else:
            return
        self._ends.setdefault(tag_type, _TrackEnd()).add(timestamp)

    @property
    def duration(self) -> int:
        """The recording's length (ms): where its longest kind of media ends."""
        return max((end.end for end in self._ends.values()), default=0)

    @property
    def last(self) -> int | None:
        """The latest audio or video timestamp (ms), None before any."""
        lasts = [end.last for end in self._ends.values() if end.last is not None]
        return max(lasts) if lasts else None

    @property
    def has_video(self) -> bool:
        return TAG_VIDEO in self._ends

    @property
    def has_audio(self) -> bool:
        return TAG_AUDIO in self._ends

    def figures(self, filesize: int, *, indexed: bool) -> dict[str, Any]:
        """The recorder's own ``onMetaData`` keys for a file of ``filesize`` bytes."""
        figures: dict[str, Any] = {
            "duration": self.duration / 1000,
            "filesize": float(filesize),
            "videocodecid": self.video_codec,
            "audiocodecid": self.audio_codec,
            # a recording still being written does not know yet what it will not carry
            "hasVideo": self.has_video if indexed or self.has_video else None,
            "hasAudio": self.has_audio if indexed or self.has_audio else None,
            "indexed": indexed,
        }
        if self.size is not None:
            figures["width"], figures["height"] = self.size
        return figures
