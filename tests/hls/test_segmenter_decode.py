"""The segmenter's output decodes: an FFmpeg-made H.264+AAC FLV, message by message through
StreamSegments, then init + every segment as one file to ffprobe/ffmpeg."""

from __future__ import annotations

from pathlib import Path

from fms.hls.fmp4 import STYP
from fms.hls.samples import Sample
from fms.hls.segmenter import SegmentSettings, StreamSegments
from fms.hls.source import read_message
from fms.live.flv import read_file
from tests.hls.test_fmp4_decode import (
    HEIGHT,
    WIDTH,
    decode_errors,
    h264_aac_flv,  # noqa: F401  (a fixture)
    probe,
)


def test_segments_of_a_real_stream_decode_with_every_frame(
    h264_aac_flv: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Every frame published goes into some segment (the FLV starts with a keyframe), each
    segment but the last is 1 s (the GOP) and the whole decodes frame for frame."""
    hls = StreamSegments(SegmentSettings(segment_duration=1.0, window=100))
    _, tags = read_file(h264_aac_flv.read_bytes())
    counts = {"audio": 0, "video": 0}
    hls.start()
    for tag in tags:
        if tag.tag_type in (8, 9):
            hls.publish(tag.tag_type, tag.timestamp, tag.payload, 0.0)
            for item in read_message(tag.tag_type, tag.timestamp, tag.payload):
                if isinstance(item, Sample):
                    counts[item.kind] += 1
    hls.stop()
    assert hls.dropped_frames == 0
    assert [s.duration for s in hls.segments][:-1] == [1.0] * (len(hls.segments) - 1)
    assert hls.init is not None
    out = tmp_path / "all.mp4"
    out.write_bytes(hls.init + b"".join(s.data for s in hls.segments))
    streams = {s["codec_name"]: s for s in probe(out)}
    assert (streams["h264"]["width"], streams["h264"]["height"]) == (WIDTH, HEIGHT)
    assert int(str(streams["h264"]["nb_read_frames"])) == counts["video"]
    assert int(str(streams["aac"]["nb_read_frames"])) == counts["audio"]
    assert decode_errors(out) == ""


def test_init_and_the_parts_concatenated_decode_with_every_frame(
    h264_aac_flv: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Low-Latency parts (0.3 s target, 1 s segments) of a real stream: the init segment and
    every part, one after another as a player in low-latency mode fetches them, decode with
    every published frame and no error; the segment made of those parts is byte for byte the
    parts after its ``styp``."""
    hls = StreamSegments(SegmentSettings(segment_duration=1.0, window=100, part_duration=0.3))
    _, tags = read_file(h264_aac_flv.read_bytes())
    counts = {"audio": 0, "video": 0}
    hls.start()
    for tag in tags:
        if tag.tag_type in (8, 9):
            hls.publish(tag.tag_type, tag.timestamp, tag.payload, 0.0)
            for item in read_message(tag.tag_type, tag.timestamp, tag.payload):
                if isinstance(item, Sample):
                    counts[item.kind] += 1
    hls.stop()
    assert hls.dropped_frames == 0 and hls.init is not None
    parts = [hls.part(s.sequence, i) or b"" for s in hls.segments for i in range(len(s.parts))]
    assert len(parts) >= 3 * len(hls.segments)  # 1 s segments of 0.3 s parts: 3 or 4 each
    assert b"".join(s.data[len(STYP) :] for s in hls.segments) == b"".join(parts)
    out = tmp_path / "parts.mp4"
    out.write_bytes(hls.init + b"".join(parts))
    streams = {s["codec_name"]: s for s in probe(out)}
    assert (streams["h264"]["width"], streams["h264"]["height"]) == (WIDTH, HEIGHT)
    assert int(str(streams["h264"]["nb_read_frames"])) == counts["video"]
    assert int(str(streams["aac"]["nb_read_frames"])) == counts["audio"]
    assert decode_errors(out) == ""
