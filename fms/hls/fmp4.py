"""Fragmented MP4 (CMAF) muxing of a live stream's samples: one init segment per publish
(:mod:`fms.hls.boxes`) and a movie fragment (``moof`` + ``mdat``) per run of samples.

A fragment holds, per track, a ``traf`` with ``tfhd`` (default-base-is-moof: data offsets
count from the ``moof``'s first byte), ``tfdt`` (the first sample's decode time in the track's
timescale, 64 bits) and one ``trun`` listing every sample's duration, size, flags (sync or
not) and composition offset (signed, version 1); the ``mdat`` then holds the samples, track
after track, in that order. An HLS media segment is an optional ``styp`` and one or more
fragments: a Low-Latency HLS part is one fragment, so a segment made of parts is the parts
concatenated (:func:`segment_header` then :meth:`Fmp4Muxer.fragment` once per part).

Times: samples carry milliseconds (RTMP timestamps); a track's ticks are ``(dts - base) *
timescale // 1000``, with ``base`` the publish's first decode time, so that a fragment's
``tfdt`` is exactly the previous fragment's end and rounding never accumulates. A sample's
duration is the distance to the next sample's decode time, which the caller gives for the last
one (``ends``); without it the track's previous duration is repeated.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from fms.hls.boxes import TrackInfo, box, full_box, init_segment, supported, track_info
from fms.hls.samples import Kind, Sample, TrackConfig

SYNC_FLAGS = 0x02000000
"""``sample_depends_on`` = 2: decodes alone (a keyframe, every audio frame)."""
NON_SYNC_FLAGS = 0x01010000
"""``sample_depends_on`` = 1 and ``sample_is_non_sync_sample``: needs earlier frames."""

TFHD_DEFAULT_BASE_IS_MOOF = 0x020000
TRUN_DATA_OFFSET = 0x000001
TRUN_DURATION = 0x000100
TRUN_SIZE = 0x000200
TRUN_FLAGS = 0x000400
TRUN_COMPOSITION = 0x000800
_TRUN_VIDEO = TRUN_DATA_OFFSET | TRUN_DURATION | TRUN_SIZE | TRUN_FLAGS | TRUN_COMPOSITION
_TRUN_AUDIO = TRUN_DATA_OFFSET | TRUN_DURATION | TRUN_SIZE | TRUN_FLAGS

_DEFAULT_DURATION = {"avc1": 3000, "hvc1": 3000, "av01": 3000, "mp4a": 1024, "Opus": 960}
"""Ticks of a lone sample's duration when nothing tells it (a 30 fps frame at 90 kHz, an
AAC frame, a 20 ms Opus packet): only the last sample of a stream ever needs it."""

STYP = box(b"styp", b"msdh", struct.pack(">I", 0), b"msdhmsix")
"""The segment type box that starts a media segment (CMAF ``msdh``/``msix`` brands)."""


def segment_header() -> bytes:
    """What a media segment starts with, before its first fragment (the ``styp`` box)."""
    return STYP


@dataclass(slots=True)
class _Track:
    info: TrackInfo
    last_duration: int


class Fmp4Muxer:
    """Muxes one publish: its init segment at once, then fragments as the caller cuts them.

    ``configs`` are the tracks to carry (one per kind is the usual stream; tracks of codecs
    this muxer does not carry are left out, see :attr:`tracks`); video tracks get the lower
    MP4 track ids. ``base`` is the decode time (ms) that is tick 0 of every track; None: the
    first fragment's earliest sample.
    """

    def __init__(self, configs: Sequence[TrackConfig], base: int | None = None) -> None:
        kept = sorted(
            (c for c in configs if supported(c)), key=lambda c: (c.kind != "video", c.track)
        )
        self._tracks: dict[tuple[Kind, int], _Track] = {}
        for number, config in enumerate(kept, start=1):
            info = track_info(number, config)
            self._tracks[(config.kind, config.track)] = _Track(
                info, _DEFAULT_DURATION[config.codec]
            )
        self.tracks: tuple[TrackInfo, ...] = tuple(t.info for t in self._tracks.values())
        """What the init segment declares, in MP4 track id order."""
        self.init: bytes = init_segment(list(self.tracks))
        """The init segment (``ftyp`` + ``moov``)."""
        self.base = base
        self.sequence = 0
        """The last fragment's sequence number (``mfhd``; the first fragment is 1)."""

    def carries(self, kind: Kind, track: int = 0) -> bool:
        """True when samples of (``kind``, ``track``) go into the fragments."""
        return (kind, track) in self._tracks

    def ticks(self, info: TrackInfo, ms: int) -> int:
        """Decode time ``ms`` in ``info``'s timescale, counted from :attr:`base` (never
        negative: a sample older than the base is stamped at it)."""
        base = self.base or 0
        return max(0, (ms - base) * info.timescale // 1000)

    def fragment(
        self,
        samples: Mapping[tuple[Kind, int], Sequence[Sample]],
        ends: Mapping[tuple[Kind, int], int] | None = None,
    ) -> bytes:
        """One ``moof`` + ``mdat`` of ``samples`` (per (kind, track): decode order).

        ``ends`` gives, per track, the decode time (ms) right after its last sample (the next
        sample's, when known). Tracks this muxer does not carry and empty runs are left out;
        with no sample at all the result is empty (no fragment, no sequence number used).
        """
        runs = [
            (self._tracks[key], run) for key, run in samples.items() if run and key in self._tracks
        ]
        if not runs:
            return b""
        runs.sort(key=lambda item: item[0].info.track_id)
        if self.base is None:
            self.base = min(run[0].dts for _, run in runs)
        ends = ends or {}
        self.sequence += 1
        trafs: list[bytes] = []
        offsets_at: list[int] = []  # where each trun's data_offset field lies in its traf
        sizes: list[int] = []
        for track, run in runs:
            info = track.info
            key = (info.config.kind, info.config.track)
            traf, offset_at, size = self._traf(track, run, ends.get(key))
            trafs.append(traf)
            offsets_at.append(offset_at)
            sizes.append(size)
        mfhd = full_box(b"mfhd", 0, 0, struct.pack(">I", self.sequence))
        moof_size = 8 + len(mfhd) + sum(len(t) for t in trafs)
        data_offset = moof_size + 8  # past the moof and the mdat header
        patched: list[bytes] = []
        for traf, offset_at, size in zip(trafs, offsets_at, sizes, strict=True):
            patched.append(
                traf[:offset_at] + struct.pack(">i", data_offset) + traf[offset_at + 4 :]
            )
            data_offset += size
        moof = box(b"moof", mfhd, *patched)
        payload = [s.data for _, run in runs for s in run]
        mdat_size = 8 + sum(sizes)
        return b"".join((moof, struct.pack(">I4s", mdat_size, b"mdat"), *payload))

    def _traf(
        self, track: _Track, run: Sequence[Sample], end: int | None
    ) -> tuple[bytes, int, int]:
        """The ``traf`` of one run, where its ``trun`` data offset lies (to be patched) and the
        bytes its samples take in the ``mdat``."""
        info = track.info
        video = info.config.kind == "video"
        times = [self.ticks(info, s.dts) for s in run]
        if end is not None:
            times.append(max(self.ticks(info, end), times[-1]))
        fields: list[int] = []
        scale = info.timescale
        total = 0
        count = len(run)
        for i, sample in enumerate(run):
            if i + 1 < len(times):
                duration = max(0, times[i + 1] - times[i])
                track.last_duration = duration or track.last_duration
            else:
                duration = track.last_duration
            size = len(sample.data)
            total += size
            if video:
                flags = SYNC_FLAGS if sample.keyframe else NON_SYNC_FLAGS
                offset = (sample.cts * scale // 1000) & 0xFFFFFFFF
                fields += (duration, size, flags, offset)
            else:
                fields += (duration, size, SYNC_FLAGS)
        tfhd = full_box(b"tfhd", 0, TFHD_DEFAULT_BASE_IS_MOOF, struct.pack(">I", info.track_id))
        tfdt = full_box(b"tfdt", 1, 0, struct.pack(">Q", times[0]))
        trun = full_box(
            b"trun",
            1,
            _TRUN_VIDEO if video else _TRUN_AUDIO,
            struct.pack(">Ii", count, 0),
            struct.pack(f">{len(fields)}I", *fields),
        )
        # traf header (8) + tfhd + tfdt + trun header (8) + version/flags (4) + count (4)
        offset_at = 8 + len(tfhd) + len(tfdt) + 16
        return box(b"traf", tfhd, tfdt, trun), offset_at, total


__all__ = [
    "NON_SYNC_FLAGS",
    "STYP",
    "SYNC_FLAGS",
    "Fmp4Muxer",
    "segment_header",
]
