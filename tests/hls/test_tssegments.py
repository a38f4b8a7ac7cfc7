"""One stream's HLS in MPEG-TS (fms.hls.tssegments): the playlist (RFC 8216 for TS segments:
no #EXT-X-MAP, version 3, seg<N>.ts URIs), the segments as one continuous transport stream
within a publish and the discontinuity_indicator after a return, codecs TS cannot carry, and
which tracks of a multitrack stream HLS carries (fms.hls.tracks). Time is an argument."""

from __future__ import annotations

import struct

from fms.hls.samples import TrackConfig
from fms.hls.segmenter import SegmentSettings, StreamSegments
from fms.hls.tracks import main_tracks
from fms.hls.tssegments import TsStreamSegments
from tests.hls import ts_reader
from tests.hls.boxreader import parse

SPS = bytes.fromhex("6764001eacd940a0")
PPS = bytes.fromhex("68ebe3cb22c0")
AVC_RECORD = (
    bytes((1, 0x64, 0, 0x1E, 0xFF, 0xE1))
    + struct.pack(">H", len(SPS))
    + SPS
    + b"\x01"
    + struct.pack(">H", len(PPS))
    + PPS
)
AVC_HEADER = b"\x17\x00\x00\x00\x00" + AVC_RECORD
AAC_HEADER = b"\xaf\x00\x12\x10"
HEVC_HEADER = b"\x90hvc1" + bytes(23)  # Enhanced RTMP SequenceStart of hvc1
FPS = 25
T0 = 1_800_000_000.0


def frame(key: bool) -> bytes:
    """A legacy AVC frame: one NAL unit (IDR or not) of 60 bytes, 4-byte length."""
    nal = (b"\x65" if key else b"\x41") + bytes(range(1, 60))
    return (b"\x17" if key else b"\x27") + b"\x01\x00\x00\x00" + struct.pack(">I", len(nal)) + nal


def feed(hls: StreamSegments, seconds: float, start: int = 0) -> int:
    """``seconds`` of 25 fps H.264 (a keyframe a second) and AAC every 23 ms from ``start``."""
    hls.publish(9, start, AVC_HEADER, T0)
    hls.publish(8, start, AAC_HEADER, T0)
    audio = start
    for i in range(int(seconds * FPS)):
        dts = start + i * 1000 // FPS
        while audio <= dts:
            hls.publish(8, audio, b"\xaf\x01" + bytes(10), T0)
            audio += 23
        hls.publish(9, dts, frame(i % FPS == 0), T0 + dts / 1000)
    return start + int(seconds * FPS) * 1000 // FPS


def settings() -> SegmentSettings:
    return SegmentSettings(segment_duration=2.0, window=10, program_date_time=False)


def test_ts_playlist_lists_ts_segments_without_a_map_at_version_3() -> None:
    """RFC 8216 for TS segments: #EXT-X-VERSION:3, no #EXT-X-MAP (every segment has its
    PAT/PMT), seg<N>.ts URIs with the query, #EXTINF with decimal durations."""
    hls = TsStreamSegments(settings(), first_sequence=100)
    feed(hls, 6.5)
    text = hls.playlist(query="token=a b")
    lines = text.splitlines()
    assert lines[:5] == [
        "#EXTM3U",
        "#EXT-X-VERSION:3",
        "#EXT-X-TARGETDURATION:2",
        "#EXT-X-MEDIA-SEQUENCE:100",
        "#EXT-X-INDEPENDENT-SEGMENTS",
    ]
    assert "#EXT-X-MAP" not in text
    assert lines[5:] == [
        "#EXTINF:2.000,",
        "seg100.ts?token=a%20b",
        "#EXTINF:2.000,",
        "seg101.ts?token=a%20b",
        "#EXTINF:2.000,",
        "seg102.ts?token=a%20b",
    ]
    assert hls.init is None


def test_ts_segments_of_one_publish_are_one_continuous_transport_stream() -> None:
    """Each segment starts with PAT and PMT (H.264 and AAC, PCR on video) and a keyframe;
    continuity counters run on from one segment to the next; no discontinuity_indicator."""
    hls = TsStreamSegments(settings())
    feed(hls, 6.5)
    counters: dict[int, int] = {}
    for segment in hls.segments:
        pcr_pid, streams = ts_reader.program(segment.data)
        assert streams == {0x100: 0x1B, 0x101: 0x0F} and pcr_pid == 0x100
        found = ts_reader.packets(segment.data)
        counters = ts_reader.check_continuity(found, counters)
        assert not any(packet.discontinuity for packet in found)
        video = ts_reader.pes_packets(segment.data, {0x100})
        assert video[0].random_access
        assert len(video) == 50  # 2 s of 25 fps


def test_a_publisher_back_gets_a_discontinuity_and_the_indicator_on_every_pid() -> None:
    """After a return: #EXT-X-DISCONTINUITY before the first new segment, whose first packet
    of every PID carries discontinuity_indicator (counters restart at 0); later ones do not."""
    hls = TsStreamSegments(settings())
    hls.start()
    end = feed(hls, 4.5)
    hls.stop()
    assert hls.playlist().rstrip().endswith("#EXT-X-ENDLIST")
    hls.start()
    feed(hls, 4.5, start=end + 5000)
    text = hls.playlist()
    assert "#EXT-X-ENDLIST" not in text
    lines = text.splitlines()
    back = hls.segments[3]
    assert back.discontinuity
    assert lines[lines.index("#EXT-X-DISCONTINUITY") + 2] == f"seg{back.sequence}.ts"
    assert text.count("#EXT-X-DISCONTINUITY\n") == 1
    found = ts_reader.packets(back.data)
    flagged = [packet for packet in found if packet.discontinuity]
    firsts = {}
    for packet in found:
        firsts.setdefault(packet.pid, packet)
    assert flagged == list(firsts.values())
    assert set(firsts) == {0, 0x1000, 0x100, 0x101}
    assert all(packet.counter == 0 for packet in flagged)
    ts_reader.check_continuity(found)
    after = ts_reader.packets(hls.segments[4].data)
    assert not any(packet.discontinuity for packet in after)
    ts_reader.check_continuity(after, ts_reader.check_continuity(found))


def test_a_stream_ts_cannot_carry_gets_no_segments_and_one_reason() -> None:
    """HEVC video under MPEG-TS: no segment, every frame counted as dropped, the reason told
    once however many keyframes come."""
    reasons: list[str] = []
    hls = TsStreamSegments(settings(), refused=reasons.append)
    hls.publish(9, 0, HEVC_HEADER, T0)
    for i in range(100):
        head = b"\x91hvc1" if i % 25 == 0 else b"\xa1hvc1"  # CodedFrames, key or not
        hls.publish(9, i * 40, head + bytes(20), T0)
    assert not hls.segments and hls.dropped_frames == 100
    assert len(reasons) == 1 and "hvc1" in reasons[0]
    assert hls.refused == reasons[0]


def test_main_tracks_are_the_lowest_track_id_of_each_kind() -> None:
    configs = [
        TrackConfig("audio", "mp4a", b"\x12\x10", 2),
        TrackConfig("video", "avc1", b"b", 1),
        TrackConfig("video", "hvc1", b"a", 0),
        TrackConfig("audio", "Opus", b"o", 1),
    ]
    assert main_tracks(configs) == [configs[2], configs[3]]


def multitrack_feed(hls: StreamSegments) -> None:
    """Two H.264 video tracks (0 and 1, Enhanced RTMP OneTrack packets) and AAC, 4.5 s."""
    for track in (0, 1):
        hls.publish(9, 0, b"\x96\x00avc1" + bytes((track,)) + AVC_RECORD, T0)
    hls.publish(8, 0, AAC_HEADER, T0)
    for i in range(int(4.5 * FPS)):
        dts = i * 40
        hls.publish(8, dts, b"\xaf\x01" + bytes(10), T0)
        nal = (b"\x65" if i % FPS == 0 else b"\x41") + bytes(range(1, 60))
        body = b"\x00\x00\x00" + struct.pack(">I", len(nal)) + nal
        head = 0x90 if i % FPS == 0 else 0xA0
        for track in (0, 1):
            hls.publish(9, dts, bytes((head | 6, 0x01)) + b"avc1" + bytes((track,)) + body, T0)


def test_hls_carries_the_main_video_and_audio_tracks_of_a_multitrack_stream() -> None:
    """Two video tracks + AAC: the fMP4 init segment declares one video and one audio track,
    and the TS segments carry one video and one audio PID, video frames of track 0 only."""
    fmp4 = StreamSegments(settings())
    multitrack_feed(fmp4)
    moov = next(b for b in parse(fmp4.inits[fmp4.segments[0].init]) if b.kind == b"moov")
    assert len(moov.find(b"trak")) == 2
    ts = TsStreamSegments(settings())
    multitrack_feed(ts)
    assert ts.segments
    _, streams = ts_reader.program(ts.segments[0].data)
    assert streams == {0x100: 0x1B, 0x101: 0x0F}
    assert len(ts_reader.pes_packets(ts.segments[0].data, {0x100})) == 50
