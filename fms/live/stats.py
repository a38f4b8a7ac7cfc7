"""Figures of a live stream and of its players, for the HTTP API, metrics and plugins.

Computed from what the server already receives (FLV tag headers, codec configuration records,
``onMetaData``), never by decoding media. Sans-IO: time is an argument, seconds as a float from
the reactor clock (``now``); media time is the messages' timestamps (ms).

**Windows.** Bitrates are the payload bytes that *arrived* during the last
:data:`WINDOW` seconds of reactor time, divided by that window (or by the time since the
publish started, when it is younger). Frame rates are measured on the media timestamps of the
frames that arrived in the same window: ``(frames - 1) / (last - first)``, so a publisher that
sends in bursts still shows its true rate. The keyframe interval is the media time between the
last two keyframes of a track.

**Tracks.** Enhanced RTMP multitrack messages carry one or several tracks (a one-byte track
id each); every track gets its own figures, and the stream's ``video``/``audio`` figures are
those of its default track (track id 0, else the lowest id), with every track under
``"tracks"``. A legacy or single-track stream has one track, id 0.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterator
from typing import Any, NamedTuple

from fms.live import codecs
from fms.live.log import Player
from fms.live.media import MediaInfo
from fms.rtmp.constants import U32_MASK
from fms.rtmp.messages import Data, Media

WINDOW = 5.0
"""Seconds of reactor time over which bitrates and frame rates are measured."""

VIDEO_FOURCC_CODECS = {
    "avc1": "h264",
    "hvc1": "hevc",
    "av01": "av1",
    "vp09": "vp9",
    "vp08": "vp8",
    "vvc1": "vvc",
}
AUDIO_FOURCC_CODECS = {
    "mp4a": "aac",
    "Opus": "opus",
    "fLaC": "flac",
    "ac-3": "ac3",
    "ec-3": "eac3",
    ".mp3": "mp3",
}
LEGACY_VIDEO = {
    2: ("h263", None),
    3: ("screen", None),
    4: ("vp6", None),
    5: ("vp6a", None),
    6: ("screen2", None),
    7: ("h264", "avc1"),
    12: ("hevc", "hvc1"),
}
"""Legacy FLV video codec id -> (codec, FourCC); ids 7 and 12 have FourCC equivalents."""
LEGACY_AUDIO = {
    0: "pcm",
    1: "adpcm",
    2: "mp3",
    3: "pcm_le",
    4: "nellymoser",
    5: "nellymoser",
    6: "nellymoser",
    7: "pcm_alaw",
    8: "pcm_mulaw",
    10: "aac",
    11: "speex",
    14: "mp3",
    15: "native",
}
"""Legacy FLV SoundFormat -> codec (9 is the Enhanced RTMP ExHeader)."""

# Packet kinds of one track of one message.
CONFIG = 0  # a sequence start: decoder configuration
FRAME = 1  # coded media
OTHER = 2  # sequence end, metadata, command frames...
CHANNELS = 3  # an audio MultichannelConfig: channel order, then the channel count

_VIDEO_SEQUENCE_START = 0
_VIDEO_CODED = (1, 3)
_VIDEO_MPEG2TS_START = 5
_VIDEO_MULTITRACK = 6
_MODEX = 7
_AUDIO_MULTITRACK = 5
_MANY_CODECS = 2
_ONE_TRACK = 0
_COMMAND_FRAME = 5


class TrackPacket(NamedTuple):
    """One track's part of one audio or video message (a tuple: one is made per message)."""

    track_id: int
    fourcc: str | None
    codec: str
    kind: int
    """:data:`CONFIG`, :data:`FRAME` or :data:`OTHER`."""
    keyframe: bool
    start: int
    """Offset of the packet's body (configuration record or frame) in the payload."""
    end: int
    """Offset just past the body."""
    composition: int = 0
    """Composition time offset (ms) of an AVC/HEVC/VVC frame: its presentation time is the
    message timestamp plus this."""


def _si24(data: bytes) -> int:
    value = int.from_bytes(data, "big")
    return value - (1 << 24) if value & 0x800000 else value


def _modex(payload: bytes, pos: int, packet_type: int) -> tuple[int, int]:
    """Skip ModEx prefixes (Enhanced RTMP v2): the real packet type and where it ends."""
    while packet_type == _MODEX:
        size = payload[pos] + 1
        pos += 1
        if size == 256:
            size = int.from_bytes(payload[pos : pos + 2], "big") + 1
            pos += 2
        pos += size
        packet_type = payload[pos] & 0x0F
        pos += 1
    return packet_type, pos


def _tracks(
    payload: bytes, pos: int, mode: int | None, fourcc: str
) -> Iterator[tuple[int, str, int, int]]:
    """(track id, FourCC, body start, body end) of each track of an Enhanced RTMP body;
    ``mode`` is the AvMultitrackType, None for a message that is not multitrack."""
    if mode is None:
        yield 0, fourcc, pos, len(payload)
        return
    while pos < len(payload):
        if mode == _MANY_CODECS:
            fourcc = payload[pos : pos + 4].decode("latin-1")
            pos += 4
        track_id = payload[pos]
        pos += 1
        if mode == _ONE_TRACK:
            yield track_id, fourcc, pos, len(payload)
            return
        size = int.from_bytes(payload[pos : pos + 3], "big")
        pos += 3
        yield track_id, fourcc, pos, min(pos + size, len(payload))
        pos += size


def _ex_header(
    payload: bytes, pos: int, packet_type: int, multitrack: int
) -> tuple[int, int | None, str, int]:
    """After the first byte (and ModEx) of an Enhanced RTMP header: the packet type, the
    multitrack mode (None when not multitrack), the FourCC ("" when per track) and where the
    body starts."""
    mode = None
    fourcc = ""
    if packet_type == multitrack:
        mode = payload[pos] >> 4
        packet_type = payload[pos] & 0x0F
        pos += 1
        if mode == _MANY_CODECS:
            return packet_type, mode, fourcc, pos
    fourcc = payload[pos : pos + 4].decode("latin-1")
    return packet_type, mode, fourcc, pos + 4


def video_packets(payload: bytes) -> list[TrackPacket]:
    """Split a video message into its tracks (one for legacy and single-track messages).
    Malformed bytes give fewer packets, never an exception."""
    try:
        return _video_packets(payload)
    except (IndexError, UnicodeDecodeError):
        return []


def _video_packets(payload: bytes) -> list[TrackPacket]:
    if not payload:
        return []
    first = payload[0]
    if not first & 0x80:
        frame_type, codec_id = first >> 4, first & 0x0F
        codec, fourcc = LEGACY_VIDEO.get(codec_id, (str(codec_id), None))
        if frame_type == _COMMAND_FRAME:
            return [TrackPacket(0, fourcc, codec, OTHER, False, 1, len(payload))]
        if fourcc is not None:  # AVC / legacy HEVC: AVCPacketType and composition time
            packet = payload[1]
            kind = CONFIG if packet == 0 else FRAME if packet == 1 else OTHER
            composition = _si24(payload[2:5]) if kind == FRAME else 0
            keyframe = frame_type == 1
            return [TrackPacket(0, fourcc, codec, kind, keyframe, 5, len(payload), composition)]
        start = 2 if codec_id in (4, 5) else 1  # VP6: a byte of adjustment (two with alpha)
        return [TrackPacket(0, None, codec, FRAME, frame_type == 1, start, len(payload))]
    frame_type = (first >> 4) & 0x07
    packet_type, pos = _modex(payload, 1, first & 0x0F)
    if frame_type == _COMMAND_FRAME and packet_type != 4:
        return []
    packet_type, mode, fourcc, pos = _ex_header(payload, pos, packet_type, _VIDEO_MULTITRACK)
    if packet_type in (_VIDEO_SEQUENCE_START, _VIDEO_MPEG2TS_START):
        kind = CONFIG
    elif packet_type in _VIDEO_CODED:
        kind = FRAME
    else:
        kind = OTHER
    out = []
    for track_id, track_fourcc, start, end in _tracks(payload, pos, mode, fourcc):
        composition = 0
        if kind == FRAME and packet_type == 1 and track_fourcc in ("avc1", "hvc1", "vvc1"):
            composition = _si24(payload[start : start + 3])
            start += 3
        codec = VIDEO_FOURCC_CODECS.get(track_fourcc, track_fourcc)
        keyframe = frame_type == 1
        out.append(
            TrackPacket(track_id, track_fourcc, codec, kind, keyframe, start, end, composition)
        )
    return out


def audio_packets(payload: bytes) -> list[TrackPacket]:
    """Split an audio message into its tracks (one for legacy and single-track messages).
    Malformed bytes give fewer packets, never an exception."""
    try:
        return _audio_packets(payload)
    except (IndexError, UnicodeDecodeError):
        return []


def _audio_packets(payload: bytes) -> list[TrackPacket]:
    if not payload:
        return []
    first = payload[0]
    sound_format = first >> 4
    if sound_format != 9:
        codec = LEGACY_AUDIO.get(sound_format, str(sound_format))
        if sound_format == 10:
            kind = CONFIG if payload[1] == 0 else FRAME
            return [TrackPacket(0, "mp4a", codec, kind, True, 2, len(payload))]
        return [TrackPacket(0, None, codec, FRAME, True, 1, len(payload))]
    packet_type, pos = _modex(payload, 1, first & 0x0F)
    packet_type, mode, fourcc, pos = _ex_header(payload, pos, packet_type, _AUDIO_MULTITRACK)
    kind = {0: CONFIG, 1: FRAME, 4: CHANNELS}.get(packet_type, OTHER)
    out = []
    for track_id, track_fourcc, start, end in _tracks(payload, pos, mode, fourcc):
        codec = AUDIO_FOURCC_CODECS.get(track_fourcc, track_fourcc)
        out.append(TrackPacket(track_id, track_fourcc, codec, kind, True, start, end))
    return out


class _Track:
    """Figures of one track of one kind."""

    __slots__ = (
        "bytes_window",
        "channels",
        "codec",
        "config_seen",
        "fourcc",
        "frames",
        "height",
        "keyframe_interval",
        "last_keyframe",
        "level",
        "profile",
        "sample_rate",
        "size_source",
        "track_id",
        "width",
    )

    def __init__(self, track_id: int) -> None:
        self.track_id = track_id
        self.codec: str | None = None
        self.fourcc: str | None = None
        self.profile: str | None = None
        self.level: str | None = None
        self.width: int | None = None
        self.height: int | None = None
        self.sample_rate: int | None = None
        self.channels: int | None = None
        self.size_source: str | None = None
        """Where width/height or sample rate/channels came from: "config", "frame",
        "flags" or "metadata"."""
        self.config_seen = False
        self.frames: deque[tuple[float, int]] = deque()
        """(arrival, media timestamp) of coded frames that arrived in the window."""
        self.bytes_window: deque[tuple[float, int]] = deque()
        self.last_keyframe: int | None = None
        self.keyframe_interval: float | None = None

    def trim(self, since: float) -> None:
        frames = self.frames
        while frames and frames[0][0] <= since:
            frames.popleft()
        window = self.bytes_window
        while window and window[0][0] <= since:
            window.popleft()

    def fps(self) -> float | None:
        frames = self.frames
        if len(frames) < 2:
            return None
        span = (frames[-1][1] - frames[0][1]) & U32_MASK
        if span == 0:
            return None
        return round((len(frames) - 1) * 1000.0 / span, 3)


def _kbps(size: int, span: float) -> float:
    return round(size * 8 / 1000.0 / span, 3) if span > 0 else 0.0


def json_safe(value: Any, depth: int = 0) -> Any:
    """The JSON-able part of an AMF value: numbers (finite), strings, booleans, None, and
    lists and string-keyed dicts of them; anything else (dates, byte arrays, NaN) is left out
    (None inside a list)."""
    if value is None or isinstance(value, (bool, str, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if depth > 8:
        return None
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if isinstance(key, str):
                safe = json_safe(item, depth + 1)
                if safe is not None or item is None:
                    out[key] = safe
        return out
    if isinstance(value, (list, tuple)):
        return [json_safe(item, depth + 1) for item in value]
    return None


class StreamStats:
    """Figures of one publish of a stream: fed every published message (:meth:`observe`),
    read with :meth:`snapshot`. A new publish gets a new :class:`StreamStats`."""

    def __init__(self, started: float | None = None) -> None:
        self.started = started
        """Reactor time the publish started (seconds), or None until its first message."""
        self.bytes_in = 0
        """Audio and video payload bytes (FLV tag bodies) received."""
        self.messages_in = 0
        """Audio, video and data messages received."""
        self.metadata: dict[str, Any] | None = None
        self._window: deque[tuple[float, int, int]] = deque()
        """(arrival, bytes, kind) of media messages in the window; kind 8 audio, 9 video."""
        self._video: dict[int, _Track] = {}
        self._audio: dict[int, _Track] = {}

    # ---------------------------------------------------------------------------- feeding

    def observe(self, message: Media | Data, info: MediaInfo, now: float) -> None:
        """Count one published message that arrived at ``now`` (reactor seconds)."""
        if self.started is None:
            self.started = now
        self.messages_in += 1
        if isinstance(message, Data):
            if message.name == "onMetaData":
                self._metadata(message.values)
            return
        payload = message.payload
        size = len(payload)
        self.bytes_in += size
        window = self._window
        window.append((now, size, message.type_id))
        since = now - WINDOW
        while window[0][0] <= since:
            window.popleft()
        if message.type_id == 9:
            packets = video_packets(payload)
            for packet in packets:
                share = size if len(packets) == 1 else packet.end - packet.start
                self._video_packet(packet, payload, message.timestamp, now, share)
        elif message.type_id == 8:
            packets = audio_packets(payload)
            for packet in packets:
                share = size if len(packets) == 1 else packet.end - packet.start
                self._audio_packet(packet, payload, now, share)

    def _track(self, tracks: dict[int, _Track], packet: TrackPacket) -> _Track:
        track = tracks.get(packet.track_id)
        if track is None:
            track = tracks[packet.track_id] = _Track(packet.track_id)
        if track.codec != packet.codec:
            track.codec = packet.codec
            track.fourcc = packet.fourcc
            track.config_seen = False
        return track

    def _video_packet(
        self, packet: TrackPacket, payload: bytes, timestamp: int, now: float, size: int
    ) -> None:
        """One video track's packet; ``size`` is its share of the message's bytes."""
        track = self._track(self._video, packet)
        track.bytes_window.append((now, size))
        if packet.kind == CONFIG:
            self._video_config(track, payload[packet.start : packet.end])
            return
        if packet.kind != FRAME:
            return
        track.frames.append((now, timestamp))
        track.trim(now - WINDOW)
        if packet.keyframe:
            shown = (timestamp + packet.composition) & U32_MASK  # presentation time
            if track.last_keyframe is not None:
                interval = ((shown - track.last_keyframe) & U32_MASK) / 1000.0
                if interval > 0:
                    track.keyframe_interval = interval
            track.last_keyframe = shown
            if packet.codec == "vp9" and track.width is None:
                found = codecs.parse_vp9_keyframe(payload[packet.start : packet.start + 16])
                if found is not None:
                    track.width, track.height = found.width, found.height
                    track.profile = track.profile or found.profile
                    track.size_source = "frame"

    def _video_config(self, track: _Track, record: bytes) -> None:
        parser = {
            "h264": codecs.parse_avc_config,
            "hevc": codecs.parse_hevc_config,
            "av1": codecs.parse_av1_config,
            "vp9": codecs.parse_vp_config,
            "vp8": codecs.parse_vp_config,
        }.get(track.codec or "")
        found = parser(record) if parser is not None else None
        track.config_seen = True
        if found is None:
            return
        track.profile, track.level = found.profile, found.level
        if found.width is not None:
            track.width, track.height = found.width, found.height
            track.size_source = "config"

    def _audio_packet(self, packet: TrackPacket, payload: bytes, now: float, size: int) -> None:
        track = self._track(self._audio, packet)
        track.bytes_window.append((now, size))
        track.trim(now - WINDOW)
        body = payload[packet.start : packet.end]
        if packet.kind == CHANNELS:  # channel order, then the channel count
            if len(body) >= 2 and body[1]:
                track.channels = body[1]
                track.size_source = "config"
            return
        found: codecs.AudioConfig | None = None
        source = "config"
        codec = track.codec
        if packet.kind == CONFIG:
            if codec == "aac":
                found = codecs.parse_aac_config(body)
            elif codec == "opus":
                found = codecs.parse_opus_head(body)
            elif codec == "flac":
                found = codecs.parse_flac_config(body)
            track.config_seen = found is not None
        elif packet.kind == FRAME and track.sample_rate is None and not track.config_seen:
            # No configuration says it (yet): frame headers do, or the legacy flags.
            source = "frame"
            if codec == "mp3":
                found = codecs.parse_mp3_frame(body)
            elif codec in ("ac3", "eac3"):
                found = codecs.parse_ac3_frame(body)
            elif packet.fourcc is None:
                found = codecs.legacy_audio(payload[0])
                source = "flags"
        if found is not None:
            track.profile = found.profile or track.profile
            track.sample_rate = found.sample_rate or track.sample_rate
            track.channels = found.channels or track.channels
            track.size_source = source

    def _metadata(self, values: tuple[Any, ...]) -> None:
        for value in values[1:]:
            if isinstance(value, dict):
                self.metadata = json_safe(value)
                return

    # ---------------------------------------------------------------------------- reading

    def snapshot(self, now: float) -> dict[str, Any]:
        """The figures at ``now`` (reactor seconds), as a JSON-able dict:

        - ``uptime``: seconds since the publish started;
        - ``bytes_in``, ``messages_in``: totals of this publish;
        - ``bitrate_kbps``: ``{"total", "video", "audio"}`` over the last :data:`WINDOW`
          seconds (kilobits per second, 1 kbit = 1000 bits);
        - ``video``: None without video, else the default track's ``codec``, ``fourcc``
          (None for legacy ids without one), ``profile``, ``level``, ``width``, ``height``,
          ``source`` (where the size came from: "config" for the SPS / sequence header,
          "frame" for a VP9 keyframe header, "metadata" for onMetaData), ``fps``,
          ``keyframe_interval`` (seconds), ``bitrate_kbps``, and ``tracks``: every track's
          figures with its ``track_id``;
        - ``audio``: None without audio, else ``codec``, ``fourcc``, ``profile``,
          ``sample_rate`` (Hz), ``channels``, ``source`` ("config", "frame", "flags" or
          "metadata"), ``bitrate_kbps`` and ``tracks``;
        - ``metadata``: the last onMetaData object (its JSON-able part), or None.
        """
        since = now - WINDOW
        window = self._window
        while window and window[0][0] <= since:
            window.popleft()
        span = WINDOW if self.started is None else min(WINDOW, now - self.started)
        video = audio = 0
        for _, size, kind in window:
            if kind == 9:
                video += size
            else:
                audio += size
        metadata = self.metadata or {}
        return {
            "uptime": 0.0 if self.started is None else round(max(now - self.started, 0.0), 3),
            "bytes_in": self.bytes_in,
            "messages_in": self.messages_in,
            "bitrate_kbps": {
                "total": _kbps(video + audio, span),
                "video": _kbps(video, span),
                "audio": _kbps(audio, span),
            },
            "video": self._kind(self._video, since, span, metadata, True),
            "audio": self._kind(self._audio, since, span, metadata, False),
            "metadata": self.metadata,
        }

    def _kind(
        self,
        tracks: dict[int, _Track],
        since: float,
        span: float,
        metadata: dict[str, Any],
        video: bool,
    ) -> dict[str, Any] | None:
        if not tracks:
            return None
        figures = []
        for track_id in sorted(tracks):
            track = tracks[track_id]
            track.trim(since)
            figures.append(
                self._figures(track, span, metadata if track_id == min(tracks) else {}, video)
            )
        top = dict(figures[0])
        del top["track_id"]
        top["tracks"] = figures
        return top

    @staticmethod
    def _figures(
        track: _Track, span: float, metadata: dict[str, Any], video: bool
    ) -> dict[str, Any]:
        size = sum(item[1] for item in track.bytes_window)
        out: dict[str, Any] = {
            "track_id": track.track_id,
            "codec": track.codec,
            "fourcc": track.fourcc,
            "profile": track.profile,
        }
        if video:
            width, height, source = track.width, track.height, track.size_source
            if width is None and _number(metadata.get("width")) and _number(metadata.get("height")):
                width, height = int(metadata["width"]), int(metadata["height"])
                source = "metadata"
            out.update(
                level=track.level,
                width=width,
                height=height,
                source=source,
                fps=track.fps(),
                keyframe_interval=track.keyframe_interval,
            )
        else:
            rate, channels, source = track.sample_rate, track.channels, track.size_source
            if rate is None and _number(metadata.get("audiosamplerate")):
                rate = int(metadata["audiosamplerate"])
                source = "metadata"
            if channels is None:
                if _number(metadata.get("audiochannels")):
                    channels = int(metadata["audiochannels"])
                elif isinstance(metadata.get("stereo"), bool):
                    channels = 2 if metadata["stereo"] else 1
            out.update(sample_rate=rate, channels=channels, source=source)
        out["bitrate_kbps"] = _kbps(size, span)
        return out


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


def player_snapshot(player: Player) -> dict[str, Any]:
    """Figures of one player: ``state``, ``bytes_sent`` (bytes handed to its connection),
    ``messages_sent`` (whole messages handed to it, sequence headers and metadata included),
    ``lag_bytes`` and ``lag_seconds`` (media seconds) behind the live edge of its log,
    ``skipped_messages`` (messages it never got because it was too slow: it was moved to a
    newer keyframe or parked until the next one) and ``skips`` (how many times that
    happened), ``audio``/``video`` (what it receives)."""
    lag_bytes, lag_seconds = 0, 0.0
    log = player.log
    if log is not None:
        lag_bytes, lag_seconds = log.behind(player.cursor, player.offset)
    return {
        "state": player.state.value,
        "bytes_sent": player.bytes_sent,
        "messages_sent": player.messages_sent,
        "lag_bytes": lag_bytes,
        "lag_seconds": lag_seconds,
        "skipped_messages": player.skipped_messages,
        "skips": player.skips,
        "audio": player.audio,
        "video": player.video,
    }
