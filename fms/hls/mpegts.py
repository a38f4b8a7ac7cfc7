"""An MPEG-TS muxer for HLS segments of H.264 + AAC: the format every HLS player has read
since the first one, kept as the option for players that predate fragmented MP4.

A :class:`TransportStreamMuxer` is made once per stream from its track configurations and turns
each segment's samples (:mod:`fms.hls.samples`, decode order, ms) into the bytes of one
segment: 188-byte transport packets (ISO/IEC 13818-1) that begin with a PAT and a PMT, so that
every segment can be decoded alone, followed by one PES packet per video access unit (stream_id
0xE0, PTS and DTS) and one per few AAC frames (stream_id 0xC0, PTS). The video becomes Annex B
(:mod:`fms.hls.annexb`), the audio ADTS (:mod:`fms.hls.adts`).

The muxer's only state is the continuity counter of each PID, which carries on from one
segment to the next of the same stream, so that the segments of a playlist read one after the
other are one continuous transport stream. A segment that follows an HLS discontinuity (a
publisher back, a new codec configuration: a new muxer whose counters and clock start anew)
is made with ``discontinuity=True``: the first packet of each of its PIDs carries
discontinuity_indicator (ISO/IEC 13818-1 2.4.3.5), which tells a demuxer that the continuity
counter and, on the PCR PID, the time base start anew there.

Times: a sample's ms become 90 kHz ticks plus :data:`TIMESTAMP_OFFSET`, modulo 2**33 (PTS and
DTS wrap there, every 26.5 hours); the program clock reference rides on the video PID (the
audio PID for audio-only streams) in the first packet of each PES, :data:`PCR_LEAD` before the
frame's decode time, so that the audio frames held back to share a PES still arrive before
they are due. That is a PCR at least every 100 ms (ISO/IEC 13818-1's bound) for video of 10
frames per second or more, and for audio-only streams, whose frames each get a PES. No Twisted,
no I/O.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

from fms.hls import adts, annexb
from fms.hls.samples import Sample, TrackConfig

PACKET_SIZE = 188
"""Bytes of one transport packet."""
PAYLOAD_SIZE = 184
"""Bytes after the 4-byte packet header: adaptation field and payload share them."""
SYNC_BYTE = 0x47

PAT_PID = 0x0000
PMT_PID = 0x1000
VIDEO_PID = 0x0100
AUDIO_PID = 0x0101
PROGRAM_NUMBER = 1
TRANSPORT_STREAM_ID = 1

STREAM_TYPE_H264 = 0x1B
STREAM_TYPE_AAC_ADTS = 0x0F
STREAM_ID_VIDEO = 0xE0
STREAM_ID_AUDIO = 0xC0

CLOCK_HZ = 90_000
"""PTS, DTS and the PCR base count 90 kHz ticks."""
TIMESTAMP_MASK = (1 << 33) - 1
"""PTS, DTS and the PCR base have 33 bits."""
TIMESTAMP_OFFSET = 90_000
"""Ticks (1 s) added to every sample time, so that the PCR, which runs ahead of the first
decode time, does not start below zero."""
PCR_LEAD = 45_000
"""Ticks (0.5 s) by which the PCR of a packet precedes the decode time of its frame."""

MAX_AUDIO_FRAMES_PER_PES = 4
"""AAC frames (about 21-23 ms each at 44.1-48 kHz) gathered into one PES when there is video:
one PES of two packets per 200-byte frame would almost double the audio's bytes."""
_MAX_PES_PAYLOAD = 0xFFFF - 13
"""The largest PES payload whose PES_packet_length (16 bits) still counts it (bytes)."""


class UnsupportedTrackError(ValueError):
    """A track this muxer cannot carry (only H.264 video and AAC audio, one of each)."""


def _crc32_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x80000000 else crc << 1
        table.append(crc & 0xFFFFFFFF)
    return tuple(table)


_CRC_TABLE = _crc32_table()


def crc32_mpeg2(data: bytes) -> int:
    """The CRC_32 of PSI sections (ISO/IEC 13818-1 annex A: polynomial 0x04C11DB7, initial
    value 0xFFFFFFFF, no reflection, no final XOR): a section with its CRC gives 0."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ _CRC_TABLE[((crc >> 24) ^ byte) & 0xFF]
    return crc


def _section(table_id: int, id_field: int, body: bytes) -> bytes:
    """A long-form PSI section (version 0, current, section 0 of 0) with its CRC."""
    length = 5 + len(body) + 4  # the fields after section_length, CRC included
    head = bytes(
        (
            table_id,
            0xB0 | (length >> 8),  # section_syntax_indicator, '0', reserved
            length & 0xFF,
            id_field >> 8,
            id_field & 0xFF,
            0xC1,  # reserved, version_number 0, current_next_indicator 1
            0,
            0,
        )
    )
    section = head + body
    return section + crc32_mpeg2(section).to_bytes(4, "big")


def program_association_section() -> bytes:
    """The PAT: program :data:`PROGRAM_NUMBER` has its PMT on :data:`PMT_PID`."""
    body = PROGRAM_NUMBER.to_bytes(2, "big") + bytes((0xE0 | (PMT_PID >> 8), PMT_PID & 0xFF))
    return _section(0x00, TRANSPORT_STREAM_ID, body)


def program_map_section(pcr_pid: int, streams: Iterable[tuple[int, int]]) -> bytes:
    """The PMT of the program: its PCR PID and each ``(stream_type, pid)``, no descriptors."""
    body = bytes((0xE0 | (pcr_pid >> 8), pcr_pid & 0xFF, 0xF0, 0x00))
    for stream_type, pid in streams:
        body += bytes((stream_type, 0xE0 | (pid >> 8), pid & 0xFF, 0xF0, 0x00))
    return _section(0x02, PROGRAM_NUMBER, body)


def encode_timestamp(prefix: int, ticks: int) -> bytes:
    """A 5-byte PTS or DTS field: the 4-bit ``prefix`` ('0010' PTS alone, '0011' PTS before a
    DTS, '0001' DTS) and 33 bits of 90 kHz ``ticks`` between marker bits."""
    ticks &= TIMESTAMP_MASK
    return bytes(
        (
            (prefix << 4) | ((ticks >> 29) & 0x0E) | 1,
            (ticks >> 22) & 0xFF,
            ((ticks >> 14) & 0xFE) | 1,
            (ticks >> 7) & 0xFF,
            ((ticks << 1) & 0xFE) | 1,
        )
    )


def encode_pcr(ticks: int) -> bytes:
    """The 6-byte program_clock_reference: a 33-bit base of 90 kHz ``ticks``, six reserved
    bits and a 9-bit 27 MHz extension of 0."""
    base = ticks & TIMESTAMP_MASK
    return bytes(
        (
            base >> 25,
            (base >> 17) & 0xFF,
            (base >> 9) & 0xFF,
            (base >> 1) & 0xFF,
            ((base & 1) << 7) | 0x7E,
            0,
        )
    )


def pes_header(stream_id: int, payload_size: int, pts: int, dts: int | None) -> bytes:
    """A PES packet header with data_alignment_indicator set, the PTS, and the DTS when it
    differs from the PTS. PES_packet_length counts the bytes after it; when they do not fit
    in 16 bits it is 0, which the standard allows for video only."""
    if dts is None or dts == pts:
        fields = encode_timestamp(0b0010, pts)
        flags = 0x80
    else:
        fields = encode_timestamp(0b0011, pts) + encode_timestamp(0b0001, dts)
        flags = 0xC0
    length = 3 + len(fields) + payload_size
    if length > 0xFFFF:
        if stream_id != STREAM_ID_VIDEO:
            raise ValueError(f"an audio PES of {payload_size} bytes does not fit its length")
        length = 0
    return (
        b"\x00\x00\x01"
        + bytes((stream_id, length >> 8, length & 0xFF, 0x84, flags, len(fields)))
        + fields
    )


def to_ticks(ms: int) -> int:
    """A sample time in ms as 90 kHz ticks on the stream's clock (offset, 33 bits)."""
    return (ms * 90 + TIMESTAMP_OFFSET) & TIMESTAMP_MASK


_CHUNK = f"{PAYLOAD_SIZE}s"
"""A struct format of one packet's payload: unpacking it ``n`` times cuts ``n`` payloads."""
_COUNTERS = bytes(0x10 | counter for counter in range(16))
"""The fourth header byte of payload-only packets for each continuity counter, in order."""


class _Pid:
    """One PID's packet headers, indexed by continuity counter, and its counter."""

    __slots__ = ("counter", "headers", "pid")

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.counter = 0
        hi, lo = pid >> 8, pid & 0xFF
        # [adaptation_field_control << 4 | cc] for payload-only (0x10) and AF + payload (0x30),
        # without and with payload_unit_start_indicator
        self.headers = {
            (control, start): tuple(
                bytes((SYNC_BYTE, (0x40 if start else 0) | hi, lo, control | cc))
                for cc in range(16)
            )
            for control in (0x10, 0x30)
            for start in (False, True)
        }


class TransportStreamMuxer:
    """Segments of one stream's H.264 and AAC samples as MPEG-TS bytes.

    ``tracks`` holds at most one video track (codec ``"avc1"``) and one audio track
    (``"mp4a"``); others raise :class:`UnsupportedTrackError`, as do malformed configuration
    records. Call :meth:`segment` once per segment, in order: continuity counters run on.
    """

    def __init__(self, tracks: Iterable[TrackConfig]) -> None:
        self.video: TrackConfig | None = None
        self.audio: TrackConfig | None = None
        for track in tracks:
            if track.kind == "video" and track.codec == "avc1" and self.video is None:
                self.video = track
            elif track.kind == "audio" and track.codec == "mp4a" and self.audio is None:
                self.audio = track
            else:
                raise UnsupportedTrackError(
                    f"MPEG-TS here carries one H.264 and one AAC track, not {track.kind} "
                    f"{track.codec!r} (track {track.track})"
                )
        if self.video is None and self.audio is None:
            raise UnsupportedTrackError("a transport stream needs a track")
        try:
            self._avc = (
                annexb.parse_decoder_configuration(self.video.config) if self.video else None
            )
            self._aac = adts.parse_audio_specific_config(self.audio.config) if self.audio else None
        except ValueError as error:
            raise UnsupportedTrackError(str(error)) from error
        streams = []
        if self.video is not None:
            streams.append((STREAM_TYPE_H264, VIDEO_PID))
        if self.audio is not None:
            streams.append((STREAM_TYPE_AAC_ADTS, AUDIO_PID))
        self.pcr_pid = VIDEO_PID if self.video is not None else AUDIO_PID
        self._pids = {pid: _Pid(pid) for pid in (PAT_PID, PMT_PID, VIDEO_PID, AUDIO_PID)}
        self._pat_section = b"\x00" + program_association_section()
        self._pmt_section = b"\x00" + program_map_section(self.pcr_pid, streams)
        self._pat = self._psi_payload(program_association_section())
        self._pmt = self._psi_payload(program_map_section(self.pcr_pid, streams))
        self._flag: set[int] = set()
        """PIDs whose next packet carries discontinuity_indicator."""
        self._audio_frames_per_pes = MAX_AUDIO_FRAMES_PER_PES if self.video is not None else 1

    @staticmethod
    def _psi_payload(section: bytes) -> bytes:
        """pointer_field 0, the section, then 0xFF to fill the packet (PSI's own stuffing)."""
        return (b"\x00" + section).ljust(PAYLOAD_SIZE, b"\xff")

    def segment(self, samples: Iterable[Sample], discontinuity: bool = False) -> bytes:
        """The transport packets of one segment: PAT, PMT, then the samples' PES packets;
        with ``discontinuity``, the first packet of every PID has discontinuity_indicator set.

        Video samples become one PES each, in the order given; audio frames are gathered (at
        most :data:`MAX_AUDIO_FRAMES_PER_PES` in a row, or one for audio-only streams) and
        written when their PES is full, and at the end of the segment. Raises ``ValueError``
        for a sample of a kind or track id the muxer has no track for, or whose data does not
        parse as its codec's frames; then the continuity counters are left as they were, so
        that the next segment still follows the last one returned."""
        counters = {pid: state.counter for pid, state in self._pids.items()}
        self._flag = set(self._pids) if discontinuity else set()
        try:
            return self._segment(samples)
        except ValueError:
            for pid, counter in counters.items():
                self._pids[pid].counter = counter
            raise
        finally:
            self._flag = set()

    def _segment(self, samples: Iterable[Sample]) -> bytes:
        out: list[bytes | bytearray | memoryview] = []
        # With a discontinuity the PSI packets carry an adaptation field: the sections go
        # unpadded and the packet is filled with adaptation-field stuffing instead.
        flagged = bool(self._flag)
        self._packets(out, PAT_PID, self._pat_section if flagged else self._pat, b"")
        self._packets(out, PMT_PID, self._pmt_section if flagged else self._pmt, b"")
        pending: list[Sample] = []
        video, audio = self.video, self.audio
        for sample in samples:
            if sample.kind == "video" and video is not None and sample.track == video.track:
                self._video(out, sample)
            elif sample.kind == "audio" and audio is not None and sample.track == audio.track:
                pending.append(sample)
                if len(pending) >= self._audio_frames_per_pes:
                    self._audio(out, pending)
                    pending = []
            else:
                raise ValueError(f"no {sample.kind} track {sample.track} in this stream")
        if pending:
            self._audio(out, pending)
        return b"".join(out)

    def _video(self, out: list[bytes | bytearray | memoryview], sample: Sample) -> None:
        assert self._avc is not None
        parts = annexb.access_unit_parts(self._avc, sample.data, sample.keyframe)
        dts = to_ticks(sample.dts)
        pts = to_ticks(sample.dts + sample.cts)
        flags = 0x40 if sample.keyframe else 0  # random_access_indicator
        if self.pcr_pid == VIDEO_PID:
            fields = bytes((flags | 0x10,)) + encode_pcr(dts - PCR_LEAD)
        else:
            fields = bytes((flags,)) if flags else b""
        header = pes_header(STREAM_ID_VIDEO, sum(map(len, parts)), pts, dts)
        self._packets(out, VIDEO_PID, b"".join([header, *parts]), fields)

    def _audio(self, out: list[bytes | bytearray | memoryview], frames: list[Sample]) -> None:
        assert self._aac is not None
        config = self._aac
        payload = b"".join(adts.header(config, len(frame.data)) + frame.data for frame in frames)
        if len(payload) > _MAX_PES_PAYLOAD and len(frames) > 1:
            half = len(frames) // 2
            self._audio(out, frames[:half])
            self._audio(out, frames[half:])
            return
        first = frames[0]
        pts = to_ticks(first.dts + first.cts)
        fields = b""
        if self.pcr_pid == AUDIO_PID:
            fields = b"\x50" + encode_pcr(pts - PCR_LEAD)  # random access, PCR
        self._packets(
            out, AUDIO_PID, pes_header(STREAM_ID_AUDIO, len(payload), pts, None) + payload, fields
        )

    def _packets(
        self, out: list[bytes | bytearray | memoryview], pid: int, unit: bytes, fields: bytes
    ) -> None:
        """Cut one PES packet or PSI section ``unit`` into transport packets on ``pid``; the
        first carries payload_unit_start_indicator and the adaptation ``fields`` (flags byte
        and what the flags announce; empty: none), the last is filled to 188 bytes with
        adaptation-field stuffing."""
        state = self._pids[pid]
        counter = state.counter
        if pid in self._flag:
            self._flag.discard(pid)
            fields = bytes((fields[0] | 0x80,)) + fields[1:] if fields else b"\x80"
        view = memoryview(unit)
        size = len(unit)
        room = PAYLOAD_SIZE - (1 + len(fields) if fields else 0)
        first = min(room, size)
        out.append(self._packet(state, counter, True, view[:first], fields))
        counter = (counter + 1) & 0x0F
        at = first
        whole = (size - at) // PAYLOAD_SIZE
        if whole:
            # The full packets in three C-speed steps: the 184-byte chunks joined with one
            # header (counter 0) in front of each, then every header's counter byte (at 3 +
            # 188 k) set from the repeating 0x10..0x1F pattern, starting at ``counter``.
            end = at + whole * PAYLOAD_SIZE
            header = state.headers[(0x10, False)][0]
            chunks = struct.unpack(_CHUNK * whole, view[at:end])
            run = bytearray(header).join((b"", *chunks))
            run[3::PACKET_SIZE] = (_COUNTERS * (whole // 16 + 2))[counter : counter + whole]
            out.append(run)
            counter = (counter + whole) & 0x0F
            at = end
        if at < size:
            out.append(self._packet(state, counter, False, view[at:], b""))
            counter = (counter + 1) & 0x0F
        state.counter = counter

    @staticmethod
    def _packet(
        state: _Pid, counter: int, start: bool, payload: memoryview, fields: bytes
    ) -> bytes:
        """One packet with ``payload`` and an adaptation field of ``fields`` stuffed with 0xFF
        to fill 188 bytes (a lone length byte of 0 when a single byte is left over)."""
        spare = PAYLOAD_SIZE - len(payload)
        if spare == 0 and not fields:
            return state.headers[(0x10, start)][counter] + payload
        if spare == 1 and not fields:
            adaptation = b"\x00"
        else:
            fields = fields or b"\x00"
            adaptation = bytes((spare - 1,)) + fields + b"\xff" * (spare - 1 - len(fields))
        return state.headers[(0x30, start)][counter] + adaptation + payload
