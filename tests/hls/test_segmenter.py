"""One stream's HLS (fms.hls.segmenter): cutting at keyframes, the window, the byte bound,
ends and returns of the publisher. Messages are legacy FLV payloads; time is an argument."""

from __future__ import annotations

import struct

from fms.hls.fmp4 import NON_SYNC_FLAGS, SYNC_FLAGS
from fms.hls.segmenter import SegmentSettings, StreamSegments
from tests.hls.boxreader import parse, read_traf

AVC_RECORD = bytes.fromhex("0164001effe1000467640 01e01000468ee3cb0".replace(" ", ""))
AVC_HEADER = b"\x17\x00\x00\x00\x00" + AVC_RECORD
AAC_HEADER = b"\xaf\x00\x12\x10"
FPS = 25
T0 = 1_800_000_000.0
"""Wall-clock seconds of the first message (the tests' now)."""


def frame(key: bool, size: int = 100) -> bytes:
    return (b"\x17" if key else b"\x27") + b"\x01\x00\x00\x00" + bytes(size)


def feed(
    hls: StreamSegments, seconds: float, gop: int = FPS, start: int = 0, size: int = 100
) -> int:
    """Publish ``seconds`` of 25 fps video (a keyframe every ``gop`` frames) with AAC frames
    every 23 ms interleaved, from ``start`` ms; returns the ms after the last frame."""
    hls.publish(9, start, AVC_HEADER, T0)
    hls.publish(8, start, AAC_HEADER, T0)
    audio = start
    count = int(seconds * FPS)
    for i in range(count):
        dts = start + i * 1000 // FPS
        while audio <= dts:
            hls.publish(8, audio, b"\xaf\x01" + bytes(10), T0 + audio / 1000)
            audio += 23
        hls.publish(9, dts, frame(i % gop == 0, size), T0 + dts / 1000)
    return start + count * 1000 // FPS


def video_runs(data: bytes) -> list[list[int]]:
    """Per fragment of a segment, the video trun's sample flags."""
    boxes = parse(data)
    assert boxes[0].kind == b"styp"
    runs = []
    for moof in (b for b in boxes if b.kind == b"moof"):
        for traf in moof.find(b"traf"):
            run = read_traf(traf)
            if run.offsets:  # the video track (composition offsets present)
                runs.append(run.flags)
    return runs


def test_segments_start_at_keyframes_once_target_duration_is_reached() -> None:
    """Keyframes every second, target 2 s: every closed segment is 2 s long and its first
    video sample is the only sync sample it starts with."""
    hls = StreamSegments(SegmentSettings(segment_duration=2.0, window=10))
    feed(hls, 9)
    assert [s.duration for s in hls.segments] == [2.0, 2.0, 2.0, 2.0]
    for segment in hls.segments:
        (flags,) = video_runs(segment.data)
        assert flags[0] == SYNC_FLAGS
        assert flags.count(SYNC_FLAGS) == 2 and flags[FPS] == SYNC_FLAGS
        assert len(flags) == 2 * FPS and flags[1] == NON_SYNC_FLAGS


def test_segments_are_as_long_as_the_keyframe_interval_when_it_is_longer() -> None:
    """Keyframes every 3 s, target 2 s: 3 s segments, and the playlist's target duration
    covers them."""
    hls = StreamSegments(SegmentSettings(segment_duration=2.0))
    feed(hls, 10, gop=3 * FPS)
    assert [s.duration for s in hls.segments] == [3.0, 3.0, 3.0]
    assert "#EXT-X-TARGETDURATION:3\n" in hls.playlist()


def test_frames_before_the_first_keyframe_are_dropped() -> None:
    hls = StreamSegments(SegmentSettings())
    hls.publish(9, 0, AVC_HEADER, T0)
    hls.publish(9, 0, frame(False), T0)
    hls.publish(9, 40, frame(False), T0)
    assert hls.dropped_frames == 2
    feed(hls, 5, start=80)
    (flags,) = video_runs(hls.segments[0].data)
    assert flags[0] == SYNC_FLAGS and hls.segments[0].duration == 2.0


def test_window_keeps_the_newest_segments_and_forgets_the_rest() -> None:
    """Window 3 after 5 closed segments: the playlist lists the last 3 from media sequence
    first+2; the segments that left are gone (404 for the viewer)."""
    hls = StreamSegments(SegmentSettings(segment_duration=1.0, window=3), first_sequence=500)
    feed(hls, 5.5)
    assert [s.sequence for s in hls.segments] == [502, 503, 504]
    text = hls.playlist()
    assert "#EXT-X-MEDIA-SEQUENCE:502\n" in text
    assert [line for line in text.splitlines() if line.startswith("seg")] == [
        "seg502.m4s",
        "seg503.m4s",
        "seg504.m4s",
    ]
    assert hls.segment(501) is None and hls.segment(502) is hls.segments[0]
    assert hls.segment(505) is None


def test_publisher_leaving_closes_the_open_segment_and_ends_the_playlist() -> None:
    hls = StreamSegments(SegmentSettings(segment_duration=2.0))
    feed(hls, 5)
    assert len(hls.segments) == 2 and "#EXT-X-ENDLIST" not in hls.playlist()
    last = hls.stop()
    assert last is not None and last.duration == 1.0  # 4.00 s .. 4.96 s + one frame
    assert hls.playlist().endswith("seg2.m4s\n#EXT-X-ENDLIST\n")


def test_publisher_coming_back_starts_a_discontinuity_with_a_new_init_segment() -> None:
    """The second publish restarts its timestamps at 0: its first segment follows an
    EXT-X-DISCONTINUITY and an EXT-X-MAP naming a new init segment; the ENDLIST goes."""
    hls = StreamSegments(SegmentSettings(segment_duration=2.0, window=10))
    feed(hls, 4.5)
    hls.stop()
    hls.start()
    feed(hls, 4.5)
    lines = hls.playlist().splitlines()
    assert "#EXT-X-ENDLIST" not in lines
    assert lines.count("#EXT-X-DISCONTINUITY") == 1
    at = lines.index("#EXT-X-DISCONTINUITY")
    assert lines[at + 1] == '#EXT-X-MAP:URI="init3.mp4"'
    assert [line for line in lines if line.startswith("#EXT-X-MAP")] == [
        '#EXT-X-MAP:URI="init0.mp4"',
        '#EXT-X-MAP:URI="init3.mp4"',
    ]
    assert set(hls.inits) == {0, 3} and hls.init == hls.inits[3]


def test_a_discontinuity_leaving_the_window_is_counted() -> None:
    hls = StreamSegments(SegmentSettings(segment_duration=2.0, window=2))
    feed(hls, 4.5)
    hls.stop()
    hls.start()
    feed(hls, 8.5)
    text = hls.playlist()
    assert "#EXT-X-DISCONTINUITY-SEQUENCE:1\n" in text
    assert "#EXT-X-DISCONTINUITY\n" not in text
    assert set(hls.inits) == {3}  # the first publish's init left with its segments


def test_memory_stays_within_max_bytes_whatever_the_window() -> None:
    """Segments of about 50 kB, max_bytes 120 kB, window 6: the oldest segments go before
    the window is full, and what the stream holds never exceeds max_bytes plus its init."""
    settings = SegmentSettings(segment_duration=1.0, window=6, max_bytes=120_000)
    hls = StreamSegments(settings)
    peak = 0
    hls.publish(9, 0, AVC_HEADER, T0)
    for i in range(FPS * 10):
        hls.publish(9, i * 40, frame(i % FPS == 0, 2000), T0)
        peak = max(peak, hls.memory - sum(len(init) for init in hls.inits.values()))
    assert peak <= settings.max_bytes
    assert 1 <= len(hls.segments) < settings.window
    assert peak > settings.max_bytes - 2 * 2000 * FPS  # the bound, not the window, decided


def test_an_open_segment_without_keyframes_is_dropped_past_max_bytes() -> None:
    """After one keyframe, only inter frames: the open segment may not grow past max_bytes;
    the frames are dropped and the stream waits for the next keyframe (a discontinuity)."""
    settings = SegmentSettings(segment_duration=1.0, max_bytes=50_000)
    hls = StreamSegments(settings)
    hls.publish(9, 0, AVC_HEADER, T0)
    hls.publish(9, 0, frame(True, 1000), T0)
    for i in range(1, 200):
        hls.publish(9, i * 40, frame(False, 1000), T0)
        assert hls.memory - len(hls.inits[0]) <= settings.max_bytes
    assert hls.dropped_frames > 100
    closed = [hls.publish(9, i * 40, frame(i % FPS == 0, 1000), T0) for i in range(200, 240)]
    (segment,) = [s for s in closed if s is not None]
    assert segment.discontinuity and segment.duration == 1.0


def test_audio_only_streams_are_cut_on_duration() -> None:
    hls = StreamSegments(SegmentSettings(segment_duration=2.0))
    hls.publish(8, 0, AAC_HEADER, T0)
    for i in range(300):  # 6.9 s of AAC frames
        hls.publish(8, i * 23, b"\xaf\x01" + bytes(10), T0)
    assert [round(s.duration, 3) for s in hls.segments] == [2.001, 2.001, 2.001]


def test_query_is_carried_by_every_uri_and_cannot_break_a_line() -> None:
    hls = StreamSegments(SegmentSettings(segment_duration=1.0))
    feed(hls, 2.5)
    text = hls.playlist('token=a b"\nX')
    assert '#EXT-X-MAP:URI="init0.mp4?token=a%20b%22%0AX"' in text
    assert "seg1.m4s?token=a%20b%22%0AX\n" in text
    assert "\nX" not in text


def test_program_date_time_is_the_arrival_of_each_segments_first_frame() -> None:
    hls = StreamSegments(SegmentSettings(segment_duration=2.0))
    feed(hls, 4.5)
    stamps = [line for line in hls.playlist().splitlines() if "PROGRAM-DATE-TIME" in line]
    assert stamps == [
        "#EXT-X-PROGRAM-DATE-TIME:2027-01-15T08:00:00.000Z",
        "#EXT-X-PROGRAM-DATE-TIME:2027-01-15T08:00:02.000Z",
    ]


def test_playlist_follows_rfc_8216_ordering() -> None:
    """#EXTM3U first; the header tags once, before any segment; every #EXTINF is followed by
    its URI; the target duration is at least every segment's rounded duration."""
    hls = StreamSegments(SegmentSettings(segment_duration=2.0))
    feed(hls, 13, gop=FPS + 5)
    lines = hls.playlist().splitlines()
    assert lines[0] == "#EXTM3U" and lines[1] == "#EXT-X-VERSION:7"
    target = int(next(line for line in lines if line.startswith("#EXT-X-TARGETDURATION:"))[22:])
    first_segment = next(i for i, line in enumerate(lines) if line.startswith("#EXTINF"))
    for i, line in enumerate(lines):
        if line.startswith("#EXTINF:"):
            assert round(float(line[8:].rstrip(","))) <= target
            assert not lines[i + 1].startswith("#")
        if line.startswith(("#EXT-X-TARGETDURATION", "#EXT-X-MEDIA-SEQUENCE", "#EXT-X-VERSION")):
            assert i < first_segment
    assert struct.unpack(">I", hls.segments[0].data[:4])[0] > 0


def test_rtmp_time_wrapping_past_32_bits_keeps_segments_going() -> None:
    """Timestamps that wrap from 2**32 - 1 to 0 are one timeline: the segment spanning the
    wrap is 2 s like the others, not negative or 49 days long."""
    hls = StreamSegments(SegmentSettings(segment_duration=2.0))
    start = (1 << 32) - 3000
    hls.publish(9, start, AVC_HEADER, T0)
    for i in range(FPS * 7):
        hls.publish(9, (start + i * 40) & 0xFFFFFFFF, frame(i % FPS == 0), T0)
    assert [s.duration for s in hls.segments] == [2.0, 2.0, 2.0]
