"""The MPEG-TS muxer read back by the tests' own reader (tests/hls/ts_reader.py): framing,
tables, counters, PES lengths, timestamps, Annex B and ADTS, over generated streams."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fms.hls import adts, annexb, mpegts
from fms.hls.mpegts import TransportStreamMuxer, UnsupportedTrackError
from fms.hls.samples import Sample, TrackConfig
from tests.hls import ts_reader
from tests.hls.ts_reader import TSReadError

AUD = bytes.fromhex("09f0")
WRAP_MS = (1 << 33) // 90
"""About when the 33-bit 90 kHz clock wraps (ms)."""


def nal_body(prefix: int) -> st.SearchStrategy[bytes]:
    """A NAL unit of header byte ``prefix`` and up to 3000 bytes (so that PES packets often
    span many transport packets) whose body has no zero byte, so that no start code can
    appear inside it (real NAL units have emulation prevention for that)."""

    def unit(pattern: bytes, size: int) -> bytes:
        body = (pattern * (size // len(pattern) + 1))[:size]
        return bytes((prefix,)) + body.replace(b"\0", b"\1")

    return st.builds(unit, st.binary(min_size=1, max_size=32), st.integers(0, 3000))


def avc_record(sps: list[bytes], pps: list[bytes], length_size: int = 4) -> bytes:
    record = bytes((1, 0x64, 0, 0x1F, 0xFC | (length_size - 1), 0xE0 | len(sps)))
    for unit in sps:
        record += len(unit).to_bytes(2, "big") + unit
    record += bytes((len(pps),))
    for unit in pps:
        record += len(unit).to_bytes(2, "big") + unit
    return record


def asc(object_type: int, frequency_index: int, channels: int) -> bytes:
    bits = object_type << 11 | frequency_index << 7 | channels << 3
    return bits.to_bytes(2, "big")


def length_prefixed(units: list[bytes], length_size: int = 4) -> bytes:
    return b"".join(len(u).to_bytes(length_size, "big") + u for u in units)


@dataclass
class Stream:
    video: TrackConfig | None
    audio: TrackConfig | None
    sps: list[bytes]
    pps: list[bytes]
    aac: tuple[int, int, int]
    segments: list[list[Sample]]
    units: dict[int, list[bytes]]  # id(sample) -> its NAL units

    @property
    def tracks(self) -> list[TrackConfig]:
        return [t for t in (self.video, self.audio) if t is not None]


@st.composite
def streams(draw: st.DrawFn, video: bool = True, audio: bool = True) -> Stream:
    """One stream's configuration and a few segments of interleaved samples whose decode
    times grow (ms, starting anywhere up to past the 33-bit wrap)."""
    sps = [draw(nal_body(0x67).filter(lambda b: len(b) > 3))]
    pps = draw(st.lists(nal_body(0x68).filter(lambda b: len(b) > 1), min_size=1, max_size=2))
    aac = (draw(st.integers(1, 4)), draw(st.integers(0, 12)), draw(st.integers(1, 7)))
    video_track = TrackConfig("video", "avc1", avc_record(sps, pps)) if video else None
    audio_track = TrackConfig("audio", "mp4a", asc(*aac)) if audio else None
    kinds = [k for k, on in (("video", video), ("audio", audio)) if on]
    dts = draw(st.integers(0, 2 * WRAP_MS))
    units: dict[int, list[bytes]] = {}
    segments = []
    for _ in range(draw(st.integers(1, 4))):
        segment = []
        for index in range(draw(st.integers(1, 12))):
            kind = draw(st.sampled_from(kinds))
            dts += draw(st.integers(0, 60))
            if kind == "video":
                keyframe = index == 0 or draw(st.booleans())
                first = 0x65 if keyframe else 0x41
                nal = st.one_of(nal_body(first), nal_body(0x06))
                found = draw(st.lists(nal, min_size=1, max_size=3))
                sample = Sample(
                    "video",
                    dts,
                    draw(st.integers(0, 300)),
                    keyframe,
                    length_prefixed(found),
                )
                units[id(sample)] = found
            else:
                frame = draw(st.binary(min_size=1, max_size=1500))
                sample = Sample("audio", dts, 0, True, frame)
            segment.append(sample)
        segments.append(segment)
    return Stream(video_track, audio_track, sps, pps, aac, segments, units)


def mux(stream: Stream) -> list[bytes]:
    muxer = TransportStreamMuxer(stream.tracks)
    return [muxer.segment(segment) for segment in stream.segments]


def ticks(ms: int) -> int:
    """The reader's expectation of a sample time on the wire, computed apart from the muxer."""
    return (ms * 90 + 90_000) % (1 << 33)


@given(streams())
def test_every_packet_is_188_bytes_behind_a_sync_byte(stream: Stream) -> None:
    for data in mux(stream):
        assert len(data) % 188 == 0
        found = ts_reader.packets(data)  # checks 0x47 and the adaptation fields
        assert len(found) == len(data) // 188


@given(streams())
def test_each_segment_begins_with_a_pat_and_a_pmt_of_both_tracks(stream: Stream) -> None:
    for data in mux(stream):
        pcr_pid, pids = ts_reader.program(data)  # checks both CRCs too
        assert pcr_pid == mpegts.VIDEO_PID
        assert pids == {mpegts.VIDEO_PID: 0x1B, mpegts.AUDIO_PID: 0x0F}


@given(streams())
def test_continuity_counters_run_on_from_one_segment_to_the_next(stream: Stream) -> None:
    counters: dict[int, int] = {}
    for index, data in enumerate(mux(stream)):
        counters = ts_reader.check_continuity(ts_reader.packets(data), counters)
        assert counters[mpegts.PAT_PID] == index % 16  # one PAT packet per segment


def test_a_segment_that_restarts_its_counters_is_caught_by_the_reader() -> None:
    """The continuity check itself: a second muxer's first segment after the first's."""
    tracks = [TrackConfig("audio", "mp4a", asc(2, 4, 2))]
    first = TransportStreamMuxer(tracks).segment([Sample("audio", 0, 0, True, b"x" * 100)])
    again = TransportStreamMuxer(tracks).segment([Sample("audio", 0, 0, True, b"x" * 100)])
    with pytest.raises(TSReadError, match="counter"):
        ts_reader.check_continuity(ts_reader.packets(first + again))


@given(streams())
def test_video_samples_come_back_as_pes_with_their_times_and_annex_b(stream: Stream) -> None:
    sent = [s for segment in stream.segments for s in segment if s.kind == "video"]
    got = [p for data in mux(stream) for p in ts_reader.pes_packets(data, {mpegts.VIDEO_PID})]
    assert len(got) == len(sent)
    for sample, pes in zip(sent, got, strict=True):
        assert pes.stream_id == 0xE0
        assert pes.pts == ticks(sample.dts + sample.cts)
        assert pes.dts == (ticks(sample.dts) if sample.cts else None)
        assert pes.random_access == sample.keyframe
        assert pes.pcr == (ticks(sample.dts) - 45_000) % (1 << 33)
        expected = [AUD]
        if sample.keyframe:
            expected += stream.sps + stream.pps
        assert ts_reader.annexb_units(pes.data) == expected + stream.units[id(sample)]
        assert pes.declared_length == (pes.body_size if pes.body_size <= 0xFFFF else 0)


@given(streams())
def test_audio_frames_come_back_in_adts_with_the_configs_fields(stream: Stream) -> None:
    sent = [s for segment in stream.segments for s in segment if s.kind == "audio"]
    got = [p for data in mux(stream) for p in ts_reader.pes_packets(data, {mpegts.AUDIO_PID})]
    frames = [frame for pes in got for frame in ts_reader.adts_frames(pes.data)]
    assert [raw for _, raw in frames] == [s.data for s in sent]
    object_type, frequency_index, channels = stream.aac
    for fields, raw in frames:
        assert fields == {
            "id": 0,
            "layer": 0,
            "protection_absent": 1,
            "profile": object_type - 1,
            "frequency_index": frequency_index,
            "channels": channels,
            "length": len(raw) + 7,
            "fullness": 0x7FF,
            "blocks": 0,
        }
    at = 0
    for pes in got:
        count = len(ts_reader.adts_frames(pes.data))
        assert 1 <= count <= mpegts.MAX_AUDIO_FRAMES_PER_PES
        assert pes.stream_id == 0xC0 and pes.dts is None and pes.pcr is None
        assert pes.pts == ticks(sent[at].dts)
        at += count


@given(streams())
def test_pes_packet_length_counts_the_bytes_after_it(stream: Stream) -> None:
    """The reader rejects a declared length that differs from what came; audio never uses 0."""
    for data in mux(stream):
        pids = {mpegts.VIDEO_PID, mpegts.AUDIO_PID}
        for pes in ts_reader.pes_packets(data, pids):
            if pes.pid == mpegts.AUDIO_PID:
                assert pes.declared_length > 0


def test_a_video_pes_too_long_for_its_length_field_declares_zero() -> None:
    """PES_packet_length has 16 bits; a larger access unit is written with 0 (video only)."""
    units = [b"\x65" + b"\x01" * 70_000]
    tracks = [TrackConfig("video", "avc1", avc_record([b"\x67abc"], [b"\x68d"]))]
    data = TransportStreamMuxer(tracks).segment(
        [Sample("video", 0, 0, True, length_prefixed(units))]
    )
    (pes,) = ts_reader.pes_packets(data, {mpegts.VIDEO_PID})
    assert pes.declared_length == 0
    assert ts_reader.annexb_units(pes.data) == [AUD, b"\x67abc", b"\x68d", *units]


@given(streams(video=False))
def test_an_audio_only_stream_carries_the_pcr_on_audio(stream: Stream) -> None:
    for data in mux(stream):
        pcr_pid, pids = ts_reader.program(data)
        assert (pcr_pid, pids) == (mpegts.AUDIO_PID, {mpegts.AUDIO_PID: 0x0F})
        for pes in ts_reader.pes_packets(data, {mpegts.AUDIO_PID}):
            assert pes.random_access
            assert pes.pcr == (pes.pts - 45_000) % (1 << 33)
            assert len(ts_reader.adts_frames(pes.data)) == 1


def test_timestamps_wrap_at_33_bits() -> None:
    """A stream that runs past 2**33 ticks (26.5 h) goes on from 0, PCR included."""
    tracks = [TrackConfig("video", "avc1", avc_record([b"\x67abc"], [b"\x68d"]))]
    muxer = TransportStreamMuxer(tracks)
    start = WRAP_MS - 1_000 - 40  # 90 kHz time of this sample: 2**33 - 40 ms - a few ticks
    samples = [
        Sample("video", start + 40 * i, 80, i == 0, length_prefixed([b"\x41xy"])) for i in range(4)
    ]
    pes = ts_reader.pes_packets(muxer.segment(samples), {mpegts.VIDEO_PID})
    base = start * 90 + 90_000
    assert [p.dts for p in pes] == [(base + 3600 * i) % (1 << 33) for i in range(4)]
    assert pes[0].dts > pes[2].dts  # wrapped in between
    assert [p.pts for p in pes] == [(base + 7200 + 3600 * i) % (1 << 33) for i in range(4)]


def test_a_keyframe_that_carries_its_own_aud_and_sps_gets_no_second_copy() -> None:
    tracks = [TrackConfig("video", "avc1", avc_record([b"\x67abc"], [b"\x68d"], length_size=2))]
    units = [AUD, b"\x67own", b"\x68own", b"\x65frame"]
    data = TransportStreamMuxer(tracks).segment(
        [Sample("video", 0, 0, True, length_prefixed(units, 2))]
    )
    (pes,) = ts_reader.pes_packets(data, {mpegts.VIDEO_PID})
    assert ts_reader.annexb_units(pes.data) == units


def test_he_aac_is_written_as_its_core_object_type_at_the_core_rate() -> None:
    """AudioSpecificConfig with explicit SBR (object type 5, 24 kHz core, 48 kHz extension,
    then AAC LC): ADTS says LC at 24 kHz and the decoder finds SBR itself."""
    bits = 5 << 27 | 6 << 23 | 2 << 19 | 3 << 15 | 2 << 10
    config = adts.parse_audio_specific_config(bits.to_bytes(4, "big"))
    assert config == adts.AudioConfig(2, 6, 2)
    assert config.sample_rate == 24_000


def test_a_sampling_rate_given_explicitly_maps_to_its_index() -> None:
    bits = 2 << 35 | 15 << 31 | 44_100 << 7 | 1 << 3
    assert adts.parse_audio_specific_config(bits.to_bytes(5, "big")) == adts.AudioConfig(2, 4, 1)


@pytest.mark.parametrize(
    "track",
    [
        TrackConfig("video", "hvc1", b"\x01"),
        TrackConfig("audio", "Opus", b"OpusHead"),
        TrackConfig("audio", "mp4a", asc(2, 4, 0)),  # channels in a program config element
        TrackConfig("audio", "mp4a", asc(7, 4, 2)),  # TwinVQ: no ADTS profile for it
        TrackConfig("audio", "mp4a", b"\x12"),  # cut short
        TrackConfig("video", "avc1", b"\x01\x64\x00"),  # cut short
    ],
)
def test_tracks_it_cannot_carry_are_refused_when_the_muxer_is_made(track: TrackConfig) -> None:
    with pytest.raises(UnsupportedTrackError):
        TransportStreamMuxer([track])


def test_a_sample_of_a_track_the_stream_lacks_is_refused() -> None:
    muxer = TransportStreamMuxer([TrackConfig("audio", "mp4a", asc(2, 4, 2))])
    with pytest.raises(ValueError, match="no video track"):
        muxer.segment([Sample("video", 0, 0, True, b"")])


def test_an_aac_frame_too_long_for_adts_is_refused() -> None:
    muxer = TransportStreamMuxer([TrackConfig("audio", "mp4a", asc(2, 4, 2))])
    with pytest.raises(adts.AudioConfigError):
        muxer.segment([Sample("audio", 0, 0, True, b"x" * (adts.MAX_FRAME_LENGTH - 6))])


@given(st.binary(max_size=64))
def test_any_bytes_as_an_audio_specific_config_parse_or_raise_audio_config_error(
    data: bytes,
) -> None:
    try:
        config = adts.parse_audio_specific_config(data)
    except adts.AudioConfigError:
        return
    assert 1 <= config.object_type <= 4 and 1 <= config.channels <= 7
    assert config.frequency_index < len(adts.SAMPLING_FREQUENCIES)


@given(st.binary(max_size=64))
def test_any_bytes_as_an_avc_record_parse_or_raise_avc_config_error(data: bytes) -> None:
    try:
        config = annexb.parse_decoder_configuration(data)
    except annexb.AVCConfigError:
        return
    assert config.length_size in (1, 2, 4)
    assert all(unit for unit in config.sps + config.pps)


@given(st.binary(max_size=300), st.booleans())
def test_any_bytes_as_a_video_sample_mux_or_raise_avc_config_error(
    data: bytes, keyframe: bool
) -> None:
    """A frame whose NAL lengths run past its end is refused, never muxed half."""
    muxer = TransportStreamMuxer([TrackConfig("video", "avc1", avc_record([b"\x67a"], [b"\x68"]))])
    try:
        segment = muxer.segment([Sample("video", 0, 0, keyframe, data)])
    except annexb.AVCConfigError:
        return
    (pes,) = ts_reader.pes_packets(segment, {mpegts.VIDEO_PID})
    assert pes.data.startswith(b"\x00\x00\x00\x01\x09\xf0")


def test_a_segment_refused_halfway_leaves_the_counters_where_the_last_segment_left_them() -> None:
    """A broken frame after good ones: nothing of that segment is returned, so the next segment
    must follow the previous one without a counter jump."""
    tracks = [TrackConfig("video", "avc1", avc_record([b"\x67abc"], [b"\x68d"]))]
    muxer = TransportStreamMuxer(tracks)
    good = [Sample("video", 40 * i, 0, i == 0, length_prefixed([b"\x41" * 400])) for i in range(3)]
    first = muxer.segment(good)
    with pytest.raises(annexb.AVCConfigError):
        muxer.segment([*good, Sample("video", 200, 0, False, b"\x00\x00\x01\x00")])
    second = muxer.segment(good)
    ts_reader.check_continuity(ts_reader.packets(first + second))
