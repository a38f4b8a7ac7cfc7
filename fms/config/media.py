"""The configuration of what the HTTP listener and the server make of streams beyond live RTMP:
HLS of live streams (``[hls]``) and the playback of recordings (``[apps.NAME.vod]``)."""

from __future__ import annotations

from dataclasses import dataclass

from fms.config.fields import option as _opt


@dataclass(frozen=True, slots=True)
class HLSConfig:
    """HLS (fragmented MP4) of live streams on the HTTP listener (``/APP/STREAM/index.m3u8``):
    on when the listener is, see ``conf/fms.toml`` for why; :mod:`fms.hls` for the design."""

    enabled: bool = _opt(True, doc="mux every published stream into HLS segments")
    apps: tuple[str, ...] = _opt(
        (), doc="applications (or first path segments) whose streams are muxed; empty: all"
    )
    segment_duration: float = _opt(
        2.0,
        minimum=1.0,
        maximum=30.0,
        doc="target segment duration (seconds); segments are cut at the first keyframe after",
    )
    window: int = _opt(6, minimum=2, maximum=100, doc="segments a playlist lists and memory keeps")
    max_bytes_per_stream: int = _opt(
        32 * 1024 * 1024,
        minimum=1024 * 1024,
        doc="bytes of segments one stream keeps at most; the oldest leave first",
    )
    program_date_time: bool = _opt(
        True, doc="stamp segments with #EXT-X-PROGRAM-DATE-TIME (arrival of their first frame)"
    )
    wait: float = _opt(
        10.0,
        minimum=0.0,
        doc="seconds a playlist request for a published stream without segments yet waits",
    )
    viewer_timeout: float = _opt(
        10.0,
        minimum=1.0,
        maximum=3600.0,
        doc="seconds after its last HLS request that a stream counts as watched (on-demand"
        " pulls); at least three target durations",
    )
    linger: float = _opt(
        60.0,
        minimum=0.0,
        doc="seconds an ended stream's playlist stays served (a return continues it)",
    )
    part_duration: float = _opt(
        0.5,
        minimum=0.0,
        maximum=5.0,
        doc="Low-Latency HLS part target (seconds) of ll.m3u8; 0: no parts, no ll.m3u8",
    )
    max_blocked_requests: int = _opt(
        1000,
        minimum=0,
        doc="LL-HLS requests held open at once (blocking reloads, preload-hinted parts);"
        " more are answered 503 at once",
    )
    max_bytes_total: int = _opt(
        1024 * 1024 * 1024,
        minimum=1024 * 1024,
        doc="bytes of segments all streams keep together; past it the largest stream loses"
        " its oldest segment first",
    )

    container: str = _opt(
        "fmp4",
        choices=("fmp4", "mpegts"),
        doc="segments' container: fmp4 (every codec) or mpegts (H.264 + AAC, for old players)",
    )
    mpegts_apps: tuple[str, ...] = _opt(
        (), doc="applications (or first path segments) served as mpegts whatever container says"
    )

    def container_for(self, app: str) -> str:
        """``"mpegts"`` or ``"fmp4"``: the container of ``app``'s segments."""
        if app in self.mpegts_apps or app.split("/", 1)[0] in self.mpegts_apps:
            return "mpegts"
        return self.container

    def muxes(self, app: str) -> bool:
        """True when streams of ``app`` are muxed (``live/room1`` matches ``live``)."""
        if not self.enabled:
            return False
        return not self.apps or app in self.apps or app.split("/", 1)[0] in self.apps


@dataclass(frozen=True, slots=True)
class VodConfig:
    """Recorded streams played back (``[apps.NAME.vod]``): off until a folder is named."""

    folder: str = _opt(
        "",
        doc="folder of FLV recordings this app plays (relative to the configuration file);"
        " empty: no playback of recordings",
    )
    max_tag_bytes: int = _opt(
        16 << 20,
        minimum=1024,
        doc="largest tag a recording may hold (bytes); a bigger size field ends that playback"
        " as a damaged file",
    )
    max_pending: int = _opt(
        1 << 20,
        minimum=16384,
        doc="bytes a viewer's socket may hold before the file is read further (the viewer"
        " that does not read costs a file position, not memory)",
    )
    max_open: int = _opt(
        512, minimum=1, doc="recordings played at once by this process (more: Play.Failed)"
    )
