"""One live stream's HLS: its messages cut into fragmented MP4 segments at video keyframes,
kept in memory in a sliding window, with the media playlist that lists them.

The server feeds every published audio/video message (:meth:`StreamSegments.publish`) and
the publish's start and end; viewers' requests read :meth:`StreamSegments.playlist`,
:meth:`StreamSegments.segment` and :meth:`StreamSegments.init`. Muxing happens here once per
stream, however many viewers ask. Time is an argument (``now``: wall-clock seconds since the
epoch, for ``#EXT-X-PROGRAM-DATE-TIME``); nothing here reads a clock.

**Cutting.** A segment starts at a video keyframe (with audio only: at any frame) and is cut
at the first keyframe at least ``segment_duration`` seconds after its start; its duration is
the distance between the two keyframes' decode times. Audio frames go to the segment open when
they arrive (RTMP interleaves by time). Frames before the first keyframe are dropped: a
segment must decode on its own (``#EXT-X-INDEPENDENT-SEGMENTS``).

**Generations.** Each publish (and each change of a codec configuration within one) starts a
new muxer with its own init segment, named after the first segment that uses it
(``init<N>.mp4``); the first segment of a publisher that came back is marked
``#EXT-X-DISCONTINUITY`` (timestamps restart, codecs may differ).

**Numbers that never repeat.** ``seg<N>.m4s`` names are cached for long by players and
proxies, so a stream's numbering starts at ``first_sequence`` (the HTTP side passes the wall
clock's seconds when the stream's HLS state is created), never at 0 again for a stream that
was forgotten and published anew: segments are at least a second long, so numbers stay ahead.

**Bounded memory** (per stream): the closed segments in the window (at most ``window``; the
oldest leave earlier when their bytes with the open segment's exceed ``max_bytes``) and the
open segment, which is dropped (and the next one marked discontinuous) if it alone grows past
``max_bytes`` without a keyframe to cut at. Plus one init segment per generation in the window
(a few hundred bytes each).

**Parts (Low-Latency HLS).** With ``part_duration`` set, the open segment is cut into parts
(one ``moof`` + ``mdat`` each, same muxer) as its frames arrive: a part ends before the frame
of the main track that would take it past ``part_duration`` (so parts stay within the
playlist's ``PART-TARGET``), and the segment's last part ends at the keyframe that closes it.
A closed segment is ``styp`` + its parts concatenated (a plain player fetches it whole);
its parts are served as slices of it (no second copy). A part is *independent* when its first
frame of the main track is a keyframe.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from fms.hls.fmp4 import Fmp4Muxer, segment_header
from fms.hls.llplaylist import LowLatencyEntry, OpenEntry, PartEntry, low_latency_playlist, recent
from fms.hls.playlist import PlaylistEntry, media_playlist
from fms.hls.samples import Kind, Sample, TrackConfig
from fms.hls.source import read_message
from fms.hls.tracks import main_tracks
from fms.live.tracks import TaggedPayload


@dataclass(frozen=True, slots=True)
class SegmentSettings:
    """What the ``[hls]`` configuration decides for every stream."""

    segment_duration: float = 2.0
    """Target duration (seconds): a segment is cut at the first keyframe this long after its
    start, so it is longer when keyframes are further apart."""
    window: int = 6
    """Segments the playlist lists (and memory keeps)."""
    max_bytes: int = 64 * 1024 * 1024
    """Bytes of segments one stream keeps at most (window and open segment together)."""
    program_date_time: bool = True
    """Stamp each segment with ``#EXT-X-PROGRAM-DATE-TIME`` (its first frame's arrival)."""
    part_duration: float = 0.0
    """Low-Latency HLS part target (seconds); 0: segments are one fragment, no parts."""


@dataclass(frozen=True, slots=True)
class Part:
    """One part of a segment (a ``moof`` + ``mdat``): its duration (seconds), whether it
    starts with a keyframe of the main track, and its size (bytes)."""

    duration: float
    independent: bool
    size: int


@dataclass(frozen=True, slots=True)
class Segment:
    """A closed media segment: its number, duration (seconds), bytes, init segment (the
    number of its generation's first segment), whether a discontinuity precedes it, and the
    wall-clock time (seconds since the epoch) its first frame arrived."""

    sequence: int
    duration: float
    data: bytes
    init: int
    discontinuity: bool
    started: float
    parts: tuple[Part, ...] = ()
    """Its parts (empty without ``part_duration``); part ``i`` is at
    :meth:`StreamSegments.part`."""


@dataclass(slots=True)
class _Open:
    """The segment being filled: its finished parts and the frames of the part being made."""

    start_dts: int
    started: float
    samples: dict[tuple[Kind, int], list[Sample]] = field(default_factory=dict)
    size: int = 0
    last_dts: int = 0
    parts: list[Part] = field(default_factory=list)
    part_data: list[bytes] = field(default_factory=list)
    part_start: int = 0
    """Decode time (ms) where the part being made starts."""
    part_independent: bool | None = None
    """Whether the part being made starts with a keyframe (None: no main-track frame yet)."""
    main_dts: int | None = None
    """Decode time (ms) of the main track's last frame."""


class StreamSegments:
    """One stream's HLS state across its publishes (see the module docstring)."""

    def __init__(self, settings: SegmentSettings, first_sequence: int = 0) -> None:
        self.settings = settings
        self.segments: deque[Segment] = deque()
        """The window, oldest first."""
        self.next_sequence = first_sequence
        self.discontinuity_sequence = 0
        """Discontinuities that have left the window (``#EXT-X-DISCONTINUITY-SEQUENCE``)."""
        self.ended = False
        """The publisher left: the playlist ends (``#EXT-X-ENDLIST``) until one comes back."""
        self.inits: dict[int, bytes] = {}
        """Init segments of the generations still in the window (and the current one)."""
        self.dropped_frames = 0
        """Frames that went into no segment (before the first keyframe, past the byte bound)."""
        self.made = 0
        """Parts and segments made so far: a change tells waiting requests to look again."""
        self._configs: dict[tuple[Kind, int], TrackConfig] = {}
        self._muxer: Fmp4Muxer | None = None
        self._muxer_configs: dict[tuple[Kind, int], TrackConfig] = {}
        self._generation = -1
        self._open: _Open | None = None
        self._discontinuity = False
        self._target = max(1, round(settings.segment_duration))
        self._bytes = 0
        self._last_timestamp: int | None = None
        self._wraps = 0

    # ------------------------------------------------------------------ the publisher side

    def start(self) -> None:
        """A publish starts: new tracks, new muxer; a discontinuity if segments came before."""
        self.ended = False
        self._configs.clear()
        self._muxer = None
        self._open = None
        self._discontinuity = bool(self.segments) or self._discontinuity
        self._last_timestamp = None
        self._wraps = 0

    def stop(self) -> Segment | None:
        """The publisher left: the open segment is closed and the playlist ends. Returns the
        segment closed, if any."""
        closed = self._close(None) if self._open is not None else None
        self._muxer = None
        self.ended = True
        return closed

    def publish(
        self,
        type_id: int,
        timestamp: int,
        payload: bytes,
        now: float,
        tagged: TaggedPayload | None = None,
    ) -> Segment | None:
        """One audio (8) or video (9) message at ``timestamp`` (RTMP ms) arrived at
        ``now``; ``tagged``: its header's reading if known. Returns the segment this message
        closed, if any."""
        timestamp = self._unwrap(timestamp)
        closed: Segment | None = None
        for item in read_message(type_id, timestamp, payload, tagged):
            if isinstance(item, TrackConfig):
                self._configs[(item.kind, item.track)] = item
            else:
                closed = self._sample(item, now) or closed
        return closed

    def _unwrap(self, timestamp: int) -> int:
        """RTMP time (32 bits of ms) made to keep growing past 2**32 (49.7 days)."""
        last = self._last_timestamp
        if last is not None and timestamp < last - 0x80000000:
            self._wraps += 1
        self._last_timestamp = timestamp
        return timestamp + (self._wraps << 32)

    def _sample(self, sample: Sample, now: float) -> Segment | None:
        key = (sample.kind, sample.track)
        if key not in self._configs:
            self.dropped_frames += 1
            return None
        closed: Segment | None = None
        video = self._has_video()
        cut_here = sample.keyframe and (sample.kind == "video" or not video)
        if cut_here and self._main(key):
            current = self._open
            if current is None:
                self._begin(sample, now)
            elif self._changed():
                closed = self._close(sample.dts)
                self._discontinuity = True
                self._begin(sample, now)
            elif sample.dts - current.start_dts >= self.settings.segment_duration * 1000:
                closed = self._close(sample.dts)
                self._begin(sample, now)
        current = self._open
        if current is None or not self._carries(key):
            self.dropped_frames += 1
            return closed
        if self._main(key):
            if self.settings.part_duration > 0:
                self._maybe_cut_part(current, sample)
            if current.part_independent is None:
                current.part_independent = sample.keyframe
            current.main_dts = sample.dts
        current.samples.setdefault(key, []).append(sample)
        current.size += len(sample.data)
        current.last_dts = max(current.last_dts, sample.dts)
        if current.size + self._bytes > self.settings.max_bytes:
            self._trim(current.size)
            if current.size > self.settings.max_bytes:
                self.dropped_frames += sum(len(run) for run in current.samples.values())
                self._open = None  # no keyframe to cut at in max_bytes: start over at one
                self._discontinuity = True
        return closed

    def _maybe_cut_part(self, current: _Open, sample: Sample) -> None:
        """End the part being made before ``sample`` (of the main track) when that frame, with
        its likely duration (the previous frame's), would take the part past
        ``part_duration``."""
        if current.main_dts is None or not current.samples or self._muxer is None:
            return
        gap = sample.dts - current.main_dts
        if sample.dts + gap - current.part_start <= self.settings.part_duration * 1000:
            return
        ends = {k: sample.dts for k, run in current.samples.items() if run[0].kind == "video"}
        data = self._muxer.fragment(current.samples, ends)
        if data:
            duration = max(0, sample.dts - current.part_start) / 1000
            current.parts.append(Part(duration, bool(current.part_independent), len(data)))
            current.part_data.append(data)
            self.made += 1
        current.samples = {}
        current.part_start = sample.dts
        current.part_independent = None

    def _has_video(self) -> bool:
        return any(kind == "video" for kind, _ in self._configs)

    def _main(self, key: tuple[Kind, int]) -> bool:
        """True for the track whose keyframes cut segments: the lowest video track, or the
        lowest audio track of a stream without video."""
        kind = "video" if self._has_video() else "audio"
        tracks = [track for k, track in self._configs if k == kind]
        return key == (kind, min(tracks))

    def _changed(self) -> bool:
        """A configuration differs from what the muxer was built with (a new codec, a new
        SPS, a track that came late): the next segment needs a new init segment."""
        return self._configs != self._muxer_configs

    def _carries(self, key: tuple[Kind, int]) -> bool:
        """True when the current generation's muxer takes samples of ``key``."""
        return self._muxer is not None and self._muxer.carries(*key)

    def _begin(self, sample: Sample, now: float) -> None:
        if self._muxer is None or self._changed():
            self._muxer_configs = dict(self._configs)
            self._generation = self.next_sequence
            self._new_muxer(sample.dts)
        self._open = _Open(sample.dts, now, last_dts=sample.dts, part_start=sample.dts)

    def _new_muxer(self, base: int) -> None:
        """A new generation's muxer (and init segment) for ``self._configs``' main tracks
        (:func:`fms.hls.tracks.main_tracks`), its times counted from ``base`` (ms)."""
        self._muxer = Fmp4Muxer(main_tracks(self._configs.values()), base=base)
        self.inits[self._generation] = self._muxer.init

    def _mux(self, current: _Open, end: int | None) -> bytes:
        """The bytes of the frames of ``current`` not in a finished part yet: its last part
        (fMP4: one moof+mdat; empty: nothing left)."""
        if self._muxer is None:
            return b""
        ends: dict[tuple[Kind, int], int] = {}
        if end is not None:
            ends = {key: end for key, run in current.samples.items() if run[0].kind == "video"}
        return self._muxer.fragment(current.samples, ends)

    def _segment_bytes(self, current: _Open, last: bytes) -> bytes:
        """A whole segment: ``styp``, its finished parts, then its ``last`` part."""
        return b"".join([segment_header(), *current.part_data, last])

    def _close(self, end: int | None) -> Segment | None:
        """Mux the open segment; ``end`` is the decode time (ms) of the keyframe that starts
        the next one (None: the stream ends here)."""
        current, self._open = self._open, None
        if current is None:
            return None
        data = self._mux(current, end)
        stop = end if end is not None else current.last_dts + self._frame_ms(current)
        parts = list(current.parts)
        if data and self.settings.part_duration > 0 and self._muxer is not None:
            last = Part(
                max(0, stop - current.part_start) / 1000, bool(current.part_independent), len(data)
            )
            parts.append(last)
        if not data and not parts:
            return None
        duration = max(0, stop - current.start_dts) / 1000
        segment = Segment(
            self.next_sequence,
            duration,
            self._segment_bytes(current, data),
            self._generation,
            self._discontinuity,
            current.started,
            tuple(parts),
        )
        self._discontinuity = False
        self.next_sequence += 1
        self.made += 1
        self._target = max(self._target, round(duration))
        self.segments.append(segment)
        self._bytes += len(segment.data)
        self._trim(0)
        return segment

    @staticmethod
    def _frame_ms(current: _Open) -> int:
        """The last frame's duration (ms) when nothing follows it: its track's last gap."""
        for run in current.samples.values():
            if len(run) > 1 and run[-1].dts == current.last_dts:
                return run[-1].dts - run[-2].dts
        return 0

    def _trim(self, extra: int) -> None:
        """Drop the oldest segments beyond the window or beyond ``max_bytes`` (with ``extra``
        bytes held elsewhere), and the init segments no segment uses any more."""
        settings = self.settings
        while self.segments and (
            len(self.segments) > settings.window or self._bytes + extra > settings.max_bytes
        ):
            gone = self.segments.popleft()
            self._bytes -= len(gone.data)
            if gone.discontinuity:
                self.discontinuity_sequence += 1
        used = {segment.init for segment in self.segments}
        for generation in [g for g in self.inits if g not in used and g != self._generation]:
            del self.inits[generation]

    def drop_oldest(self) -> int:
        """Forget the oldest closed segment (a memory bound across streams asks); returns the
        bytes freed (0 when there is none)."""
        if not self.segments:
            return 0
        before = self.memory
        gone = self.segments.popleft()
        self._bytes -= len(gone.data)
        if gone.discontinuity:
            self.discontinuity_sequence += 1
        self._trim(0)
        return before - self.memory

    # ------------------------------------------------------------------ the viewer side

    @property
    def memory(self) -> int:
        """Bytes held: closed segments, the open one's frames, init segments."""
        open_size = self._open.size if self._open is not None else 0
        return self._bytes + open_size + sum(len(init) for init in self.inits.values())

    @property
    def init(self) -> bytes | None:
        """The current generation's init segment (``init.mp4``), if any."""
        return self.inits.get(self._generation)

    def segment(self, sequence: int) -> Segment | None:
        """Segment ``sequence`` if it is still in the window."""
        if not self.segments:
            return None
        index = sequence - self.segments[0].sequence
        if 0 <= index < len(self.segments):
            return self.segments[index]
        return None

    @property
    def target_duration(self) -> int:
        """``#EXT-X-TARGETDURATION`` (whole seconds) as the playlists say it now."""
        return max([self._target, *(round(s.duration) for s in self.segments)])

    @property
    def open_sequence(self) -> int:
        """The number the segment being made will have (the next one's, when none is)."""
        return self.next_sequence

    def open_parts(self) -> list[Part]:
        """The finished parts of the segment being made (empty when none is)."""
        return list(self._open.parts) if self._open is not None else []

    def part(self, sequence: int, index: int) -> bytes | None:
        """Part ``index`` of segment ``sequence``, if the segment is in the window or being
        made and has that part yet."""
        current = self._open
        if current is not None and sequence == self.next_sequence:
            if 0 <= index < len(current.part_data):
                return current.part_data[index]
            return None
        segment = self.segment(sequence)
        if segment is None or not 0 <= index < len(segment.parts):
            return None
        start = len(segment_header()) + sum(p.size for p in segment.parts[:index])
        return segment.data[start : start + segment.parts[index].size]

    def playlist(self, query: str = "", prefix: str = "") -> str:
        """The media playlist of the window (``query``, e.g. a viewer's token, is appended to
        every URI so that it reaches the segment and init requests too; ``prefix`` goes before
        every URI, e.g. ``../other/`` when a plugin renamed the stream asked for)."""
        entries = [
            PlaylistEntry(
                f"{prefix}seg{s.sequence}.m4s",
                s.duration,
                f"{prefix}init{s.init}.mp4",
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
        )

    def low_latency_playlist(self, query: str = "", prefix: str = "") -> str:
        """The Low-Latency HLS playlist (:mod:`fms.hls.llplaylist`): the window, the parts of
        the segments ending within three target durations of the end (part ``P`` of segment
        ``N`` is ``seg<N>.<P>.m4s``), the parts of the segment being made and a preload hint
        for its next part."""
        pdt = self.settings.program_date_time

        def parts(sequence: int, items: list[Part] | tuple[Part, ...]) -> tuple[PartEntry, ...]:
            return tuple(
                PartEntry(f"{prefix}seg{sequence}.{i}.m4s", p.duration, p.independent)
                for i, p in enumerate(items)
            )

        current = self._open
        open_parts = current.parts if current is not None else []
        horizon = 3 * self._target - sum(p.duration for p in open_parts)
        with_parts = recent([s.duration for s in self.segments], horizon)
        entries = [
            LowLatencyEntry(
                PlaylistEntry(
                    f"{prefix}seg{s.sequence}.m4s",
                    s.duration,
                    f"{prefix}init{s.init}.mp4",
                    s.discontinuity,
                    s.started if pdt else None,
                ),
                parts(s.sequence, s.parts) if i >= len(self.segments) - with_parts else (),
            )
            for i, s in enumerate(self.segments)
        ]
        open_entry = None
        if current is not None:
            open_entry = OpenEntry(
                f"{prefix}init{self._generation}.mp4",
                self._discontinuity,
                current.started if pdt else None,
                parts(self.next_sequence, open_parts),
            )
        first = self.segments[0].sequence if self.segments else self.next_sequence
        hint = f"{prefix}seg{self.next_sequence}.{len(open_parts)}.m4s"
        return low_latency_playlist(
            entries,
            open_entry,
            part_duration=self.settings.part_duration,
            target_duration=self._target,
            media_sequence=first,
            preload_hint=hint,
            discontinuity_sequence=self.discontinuity_sequence,
            ended=self.ended,
            query=query,
        )
