"""The fMP4 muxer's boxes, read back by a reader of our own (tests/hls/boxreader.py): sizes
add up, and the fragments say exactly what was muxed (counts, sizes, times, flags, bytes)."""

from __future__ import annotations

import struct

from hypothesis import given
from hypothesis import strategies as st

from fms.hls.fmp4 import NON_SYNC_FLAGS, SYNC_FLAGS, Fmp4Muxer
from fms.hls.samples import Sample, TrackConfig
from tests.hls.boxreader import Box, parse, read_traf

AAC_LC_44100_STEREO = bytes.fromhex("1210")
AVC = TrackConfig(
    "video", "avc1", bytes.fromhex("0164001fffe1000467640 01f01000468ee3cb0".replace(" ", ""))
)
AAC = TrackConfig("audio", "mp4a", AAC_LC_44100_STEREO)
OPUS_HEAD = b"OpusHead" + bytes((1, 2)) + struct.pack("<HIhB", 312, 48000, 0, 0)


@st.composite
def runs(draw: st.DrawFn, kind: str, start: int) -> list[Sample]:
    count = draw(st.integers(1, 25))
    dts = start
    out = []
    for i in range(count):
        dts += draw(st.integers(0, 100)) if i else 0
        keyframe = True if kind == "audio" else (i == 0 or draw(st.booleans()))
        cts = draw(st.integers(0, 200)) if kind == "video" else 0
        data = draw(st.binary(min_size=1, max_size=64))
        out.append(Sample(kind, dts, cts, keyframe, data))  # type: ignore[arg-type]
    return out


def top(data: bytes) -> list[Box]:
    return parse(data)


def test_init_segment_declares_each_track_with_its_sample_entry() -> None:
    """ftyp + moov; one trak per carried track (video first), stsd entries avc1 and mp4a with
    their configuration boxes, one trex per track; every size adds up (the reader checks)."""
    muxer = Fmp4Muxer([AAC, AVC])
    ftyp, moov = top(muxer.init)
    assert ftyp.kind == b"ftyp" and moov.kind == b"moov"
    traks = moov.find(b"trak")
    entries = []
    for trak in traks:
        stbl = trak.one(b"mdia").one(b"minf").one(b"stbl")
        stsd = stbl.one(b"stsd").body
        assert struct.unpack_from(">I", stsd, 4)[0] == 1
        entry = parse(stsd[8:])[0]
        entries.append(entry.kind)
        track_id = struct.unpack_from(">I", trak.one(b"tkhd").body, 12)[0]
        timescale = struct.unpack_from(">I", trak.one(b"mdia").one(b"mdhd").body, 12)[0]
        entries.append((track_id, timescale))
        body = entry.body[78:] if entry.kind == b"avc1" else entry.body[28:]
        inner = parse(body)[0]
        entries.append(inner.kind)
        if inner.kind == b"avcC":
            assert inner.body == AVC.config
        else:
            assert AAC_LC_44100_STEREO in inner.body
    assert entries == [b"avc1", (1, 90000), b"avcC", b"mp4a", (2, 44100), b"esds"]
    trex = moov.one(b"mvex").find(b"trex")
    assert [struct.unpack_from(">I", t.body, 4)[0] for t in trex] == [1, 2]


def test_opus_track_gets_a_dops_box_with_the_id_header_fields_big_endian() -> None:
    muxer = Fmp4Muxer([TrackConfig("audio", "Opus", OPUS_HEAD)])
    moov = top(muxer.init)[1]
    stsd = moov.one(b"trak").one(b"mdia").one(b"minf").one(b"stbl").one(b"stsd").body
    entry = parse(stsd[8:])[0]
    assert entry.kind == b"Opus"
    dops = parse(entry.body[28:])[0]
    assert dops.kind == b"dOps"
    assert dops.body == struct.pack(">BBHIhB", 0, 2, 312, 48000, 0, 0)


@given(video=runs("video", 1000), audio=runs("audio", 990), gap=st.integers(0, 100))
def test_fragment_lists_every_sample_as_muxed(
    video: list[Sample], audio: list[Sample], gap: int
) -> None:
    """moof + mdat; per track a trun with one entry per sample: the sizes of the data, flags
    sync exactly for keyframes, composition offsets in ticks, durations summing to the span up
    to the given end; each trun's data offset points at its samples' bytes."""
    muxer = Fmp4Muxer([AVC, AAC])
    ends = {("video", 0): video[-1].dts + gap, ("audio", 0): audio[-1].dts + gap}
    data = muxer.fragment({("video", 0): video, ("audio", 0): audio}, ends)
    moof, mdat = top(data)
    assert (moof.kind, mdat.kind) == (b"moof", b"mdat")
    assert struct.unpack_from(">I", moof.one(b"mfhd").body, 4)[0] == 1
    assert mdat.body == b"".join(s.data for s in video + audio)
    base = min(video[0].dts, audio[0].dts)
    for traf, samples, scale in zip(
        moof.find(b"traf"), (video, audio), (90000, 44100), strict=True
    ):
        run = read_traf(traf)
        kind = samples[0].kind
        assert run.sizes == [len(s.data) for s in samples]
        assert run.base_time == (samples[0].dts - base) * scale // 1000
        end = (ends[(kind, 0)] - base) * scale // 1000
        assert run.base_time + sum(run.durations) == end
        expected = [SYNC_FLAGS if s.keyframe else NON_SYNC_FLAGS for s in samples]
        assert run.flags == expected
        if kind == "video":
            assert run.offsets == [s.cts * 90 for s in samples]
        start = run.data_offset
        assert data[start : start + sum(run.sizes)] == b"".join(s.data for s in samples)


@given(first=runs("video", 0), second_gap=st.integers(1, 100), second=runs("video", 0))
def test_consecutive_fragments_leave_no_gap_in_decode_time(
    first: list[Sample], second_gap: int, second: list[Sample]
) -> None:
    """A fragment whose end is the next fragment's first decode time ends exactly where the
    next one's tfdt starts (no rounding drift), and sequence numbers count up."""
    muxer = Fmp4Muxer([AVC])
    shift = first[-1].dts + second_gap
    later = [Sample("video", s.dts + shift, s.cts, s.keyframe, s.data) for s in second]
    one = muxer.fragment({("video", 0): first}, {("video", 0): later[0].dts})
    two = muxer.fragment({("video", 0): later})
    run1 = read_traf(top(one)[0].one(b"traf"))
    moof2 = top(two)[0]
    run2 = read_traf(moof2.one(b"traf"))
    assert run1.base_time + sum(run1.durations) == run2.base_time
    assert struct.unpack_from(">I", moof2.one(b"mfhd").body, 4)[0] == 2


def test_tracks_of_other_codecs_are_left_out() -> None:
    """A VP9 track is not carried: no trak for it, its samples do not reach the fragment."""
    vp9 = TrackConfig("video", "vp09", b"\x01\x00\x00\x00", track=0)
    muxer = Fmp4Muxer([vp9, AAC])
    assert [t.config.codec for t in muxer.tracks] == ["mp4a"]
    frame = Sample("video", 0, 0, True, b"x")
    sound = Sample("audio", 0, 0, True, b"y")
    moof, mdat = top(muxer.fragment({("video", 0): [frame], ("audio", 0): [sound]}))
    assert len(moof.find(b"traf")) == 1 and mdat.body == b"y"


def test_nothing_to_mux_is_no_fragment() -> None:
    muxer = Fmp4Muxer([AVC])
    assert muxer.fragment({("video", 0): []}) == b""
    assert muxer.sequence == 0
