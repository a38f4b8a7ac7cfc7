"""One live stream's HLS as MPEG-TS segments (``seg<N>.ts``): the container for players that
predate fragmented MP4 (``[hls] container = "mpegts"``), H.264 and AAC only.

:class:`TsStreamSegments` is :class:`~fms.hls.segmenter.StreamSegments` (same cutting at
keyframes, window, byte bound, generations, numbering) with
:class:`~fms.hls.mpegts.TransportStreamMuxer` as each generation's muxer, and a playlist
without ``#EXT-X-MAP`` (every segment starts with its PAT and PMT) at ``#EXT-X-VERSION:3``
(decimal ``#EXTINF`` durations; nothing later is used).

**Which streams.** HLS carries the main video and audio tracks (:mod:`fms.hls.tracks`); a
generation whose main tracks are not H.264 and AAC (HEVC, AV1, Opus, ...) gets *no* segments:
its frames are counted in ``dropped_frames`` and ``refused`` says why (the HTTP side logs it
once). Not fMP4 instead: a playlist that mixed the two containers would need an
``#EXT-X-MAP`` that the TS segments after it cannot shed (RFC 8216 4.3.2.5: a map applies to
every segment that follows), and a player that asked for TS may not read fMP4 anyway. An
application whose publishers send other codecs is configured ``fmp4``.

**Discontinuities.** Each generation has its own muxer, so its continuity counters start at 0
and its clock at the publisher's timestamps; its first segment, listed after
``#EXT-X-DISCONTINUITY``, carries the discontinuity_indicator on the first packet of every
PID (ISO/IEC 13818-1 2.4.3.5: the counters and the time base start anew).
"""

from __future__ import annotations

from collections.abc import Callable

from fms.hls.mpegts import TransportStreamMuxer, UnsupportedTrackError
from fms.hls.playlist import PlaylistEntry, media_playlist
from fms.hls.samples import Kind, Sample
from fms.hls.segmenter import Segment, SegmentSettings, StreamSegments, _Open
from fms.hls.tracks import main_tracks

VERSION = 3
"""``#EXT-X-VERSION`` of a TS playlist: decimal durations (version 3), nothing later."""
SUFFIX = ".ts"


class TsStreamSegments(StreamSegments):
    """One stream's HLS in MPEG-TS (see the module docstring). ``refused`` is called with a
    reason when a generation's tracks cannot be carried (once per configuration)."""

    def __init__(
        self,
        settings: SegmentSettings,
        first_sequence: int = 0,
        refused: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(settings, first_sequence)
        self.refused: str | None = None
        """Why the current generation has no segments, or None."""
        self._on_refused = refused
        self._ts: TransportStreamMuxer | None = None
        self._carried: frozenset[tuple[Kind, int]] = frozenset()

    def start(self) -> None:
        super().start()
        self._ts = None

    def stop(self) -> Segment | None:
        closed = super().stop()
        self._ts = None
        return closed

    def _carries(self, key: tuple[Kind, int]) -> bool:
        return self._ts is not None and key in self._carried

    def _begin(self, sample: Sample, now: float) -> None:
        if self._ts is None or self._changed():
            if self._ts is None and not self._changed() and self.refused is not None:
                return  # these tracks were refused already: wait for another configuration
            self._muxer_configs = dict(self._configs)
            self._generation = self.next_sequence
            self._new_muxer(sample.dts)
            if self._ts is None:
                return
        self._open = _Open(sample.dts, now, last_dts=sample.dts)

    def _new_muxer(self, base: int) -> None:
        tracks = main_tracks(self._configs.values())
        try:
            self._ts = TransportStreamMuxer(tracks)
        except UnsupportedTrackError as error:
            self._ts = None
            self._carried = frozenset()
            reason = f"no MPEG-TS segments: {error}"
            if reason != self.refused and self._on_refused is not None:
                self._on_refused(reason)
            self.refused = reason
            return
        self.refused = None
        self._carried = frozenset((track.kind, track.track) for track in tracks)

    def _mux(self, current: _Open, end: int | None) -> bytes:
        if self._ts is None:
            return b""
        # One stream in decode order: RTMP interleaves by time, the runs are per track.
        samples = sorted(
            (sample for run in current.samples.values() for sample in run),
            key=lambda sample: (sample.dts, sample.kind != "video"),
        )
        return self._ts.segment(samples, discontinuity=self._discontinuity)

    def _segment_bytes(self, current: _Open, last: bytes) -> bytes:
        return last  # the whole segment: TS has no parts here (no fMP4 muxer to cut them)

    @property
    def init(self) -> bytes | None:
        return None  # TS segments carry their PAT and PMT

    def playlist(self, query: str = "", prefix: str = "") -> str:
        """The media playlist of the window (``query`` and ``prefix`` as for fMP4)."""
        entries = [
            PlaylistEntry(
                f"{prefix}seg{s.sequence}{SUFFIX}",
                s.duration,
                None,
                s.discontinuity,
                s.started if self.settings.program_date_time else None,
            )
            for s in self.segments
        ]
        first = self.segments[0].sequence if self.segments else self.next_sequence
        return media_playlist(
            entries,
            target_duration=self._target,
            media_sequence=first,
            discontinuity_sequence=self.discontinuity_sequence,
            ended=self.ended,
            query=query,
            version=VERSION,
        )


__all__ = ["SUFFIX", "VERSION", "TsStreamSegments"]
