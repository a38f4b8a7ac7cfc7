"""Low-Latency HLS parts (fms.hls.segmenter with ``part_duration``) and the LL playlist
(fms.hls.llplaylist) against RFC 8216bis's rules: tag order and attribute formats, every
part within ``PART-TARGET`` and every part but a segment's last at least 85 % of it,
``PART-HOLD-BACK`` at least three part targets, parts listed for the last three target
durations, ``INDEPENDENT=YES`` exactly for parts that start with a keyframe, and a segment's
bytes being its parts'. Messages are legacy FLV payloads; time is an argument."""

from __future__ import annotations

import re

import pytest

from fms.hls.fmp4 import SYNC_FLAGS, segment_header
from fms.hls.llplaylist import LowLatencyEntry, PartEntry, low_latency_playlist
from fms.hls.playlist import PlaylistEntry
from fms.hls.segmenter import SegmentSettings, StreamSegments
from tests.hls.boxreader import parse, read_traf
from tests.hls.test_segmenter import AAC_HEADER, T0, feed

DECIMAL = r"[0-9]+(?:\.[0-9]+)?"


def ll(part: float = 0.5, segment: float = 2.0, window: int = 6) -> StreamSegments:
    return StreamSegments(
        SegmentSettings(segment_duration=segment, window=window, part_duration=part), 100
    )


def attributes(line: str) -> dict[str, str]:
    """The attribute list of a tag line (quoted strings unquoted)."""
    _, _, rest = line.partition(":")
    found = re.findall(r'([A-Z0-9-]+)=("[^"]*"|[^,]*)', rest)
    return {name: value.strip('"') for name, value in found}


def tag_values(text: str, tag: str) -> list[dict[str, str]]:
    return [attributes(line) for line in text.splitlines() if line.startswith(tag + ":")]


def test_header_tags_come_in_the_order_the_spec_allows() -> None:
    hls = ll()
    feed(hls, 5.3)
    lines = hls.low_latency_playlist().splitlines()
    names = [line.split(":")[0] for line in lines[:7]]
    assert names == [
        "#EXTM3U",
        "#EXT-X-VERSION",
        "#EXT-X-TARGETDURATION",
        "#EXT-X-SERVER-CONTROL",
        "#EXT-X-PART-INF",
        "#EXT-X-MEDIA-SEQUENCE",
        "#EXT-X-INDEPENDENT-SEGMENTS",
    ]
    assert lines[1] == "#EXT-X-VERSION:9"
    assert lines[-1].startswith("#EXT-X-PRELOAD-HINT:")


def test_part_lines_have_a_decimal_duration_a_quoted_uri_and_come_before_their_segment() -> None:
    """Every ``#EXT-X-PART`` is ``DURATION=<decimal>,URI="<uri>"[,INDEPENDENT=YES]``, names
    ``seg<N>.<P>.m4s`` with P counting from 0 in its segment, and the segment ``N`` it
    belongs to is the next ``#EXTINF`` URI (or the segment being made)."""
    hls = ll()
    feed(hls, 5.3)
    text = hls.low_latency_playlist("k=1")
    pattern = re.compile(
        rf'^#EXT-X-PART:DURATION={DECIMAL},URI="seg(\d+)\.(\d+)\.m4s\?k=1"(,INDEPENDENT=YES)?$'
    )
    pending: list[tuple[int, int]] = []
    for line in text.splitlines():
        if line.startswith("#EXT-X-PART:"):
            match = pattern.match(line)
            assert match is not None, line
            pending.append((int(match.group(1)), int(match.group(2))))
        elif line.startswith("seg"):
            number = int(line.split(".")[0][3:])
            assert pending == [(number, i) for i in range(len(pending))], line
            pending = []
    assert pending and {n for n, _ in pending} == {hls.open_sequence}
    assert [i for _, i in pending] == list(range(len(pending)))


def test_parts_stay_within_part_target_and_only_a_segments_last_part_is_short() -> None:
    """25 fps, part target 0.5 s: no part is longer than ``PART-TARGET`` (which is the
    configured value), and every part that is not its segment's last is at least 85 % of
    it (RFC 8216bis)."""
    hls = ll(part=0.5, window=10)
    feed(hls, 9.3)
    text = hls.low_latency_playlist()
    target = float(tag_values(text, "#EXT-X-PART-INF")[0]["PART-TARGET"])
    assert target == 0.5
    assert hls.segments
    for segment in hls.segments:
        durations = [p.duration for p in segment.parts]
        assert len(durations) > 1
        assert max(durations) <= target
        assert min(durations[:-1]) >= 0.85 * target
        assert sum(durations) == pytest.approx(segment.duration)


def test_part_hold_back_is_three_part_targets_and_hold_back_three_target_durations() -> None:
    hls = ll(part=0.3, segment=2.0)
    feed(hls, 5.3)
    text = hls.low_latency_playlist()
    control = tag_values(text, "#EXT-X-SERVER-CONTROL")[0]
    part_target = float(tag_values(text, "#EXT-X-PART-INF")[0]["PART-TARGET"])
    target = int(text.split("#EXT-X-TARGETDURATION:")[1].split("\n")[0])
    assert control["CAN-BLOCK-RELOAD"] == "YES"
    assert float(control["PART-HOLD-BACK"]) >= 3 * part_target
    assert float(control["HOLD-BACK"]) >= 3 * target


def test_parts_are_listed_for_the_segments_of_the_last_three_target_durations_only() -> None:
    """A window of 10 two-second segments: the older ones are listed without parts; parts
    cover at least the last three target durations (6 s) and no segment more than needed."""
    hls = ll(part=0.5, window=10)
    feed(hls, 20.7)  # the segment being made has a part
    text = hls.low_latency_playlist()
    listed = {int(a["URI"].split(".")[0][3:]) for a in tag_values(text, "#EXT-X-PART")}
    closed = [s.sequence for s in hls.segments]
    open_parts = sum(p.duration for p in hls.open_parts())
    with_parts = [n for n in closed if n in listed]
    assert with_parts == closed[-len(with_parts) :]  # the newest ones
    covered = open_parts + 2.0 * len(with_parts)
    assert covered >= 6.0 and covered - 2.0 < 6.0
    assert hls.open_sequence in listed


def test_a_segment_is_its_parts_concatenated_and_parts_are_served_as_slices() -> None:
    hls = ll()
    feed(hls, 5.3)
    for segment in hls.segments:
        parts = [hls.part(segment.sequence, i) for i in range(len(segment.parts))]
        assert all(p is not None for p in parts)
        assert segment.data == segment_header() + b"".join(p or b"" for p in parts)
        assert [len(p or b"") for p in parts] == [p.size for p in segment.parts]
        assert hls.part(segment.sequence, len(segment.parts)) is None


def test_independent_exactly_when_the_part_starts_with_a_keyframe() -> None:
    """Keyframes every 0.4 s with 2 s segments and 1 s parts: parts start on and off
    keyframes; each part's video run starts with a sync sample exactly when it is flagged
    independent, and each part is one moof + mdat."""
    hls = ll(part=1.0, segment=2.0, window=10)
    feed(hls, 8.3, gop=10)
    seen = set()
    for segment in hls.segments:
        for index, part in enumerate(segment.parts):
            data = hls.part(segment.sequence, index)
            assert data is not None
            boxes = parse(data)
            assert [b.kind for b in boxes] == [b"moof", b"mdat"]
            video = [read_traf(t) for t in boxes[0].find(b"traf")]
            flags = next(run.flags for run in video if run.offsets)
            assert part.independent == (flags[0] == SYNC_FLAGS)
            seen.add(part.independent)
    assert seen == {True, False}


def test_the_preload_hint_names_the_next_part_of_the_segment_being_made() -> None:
    hls = ll()
    feed(hls, 5.3)
    text = hls.low_latency_playlist()
    hint = tag_values(text, "#EXT-X-PRELOAD-HINT")[0]
    assert hint == {"TYPE": "PART", "URI": f"seg{hls.open_sequence}.{len(hls.open_parts())}.m4s"}
    assert hls.part(hls.open_sequence, len(hls.open_parts())) is None
    assert hls.part(hls.open_sequence, len(hls.open_parts()) - 1) is not None


def test_an_ended_stream_has_no_preload_hint_and_ends_the_list() -> None:
    hls = ll()
    feed(hls, 5.3)
    hls.stop()
    text = hls.low_latency_playlist()
    assert text.endswith("#EXT-X-ENDLIST\n")
    assert "PRELOAD-HINT" not in text
    assert hls.segments[-1].parts  # the closed last segment keeps its parts


def test_audio_only_parts_are_all_independent() -> None:
    hls = ll(part=0.5, segment=1.0)
    hls.publish(8, 0, AAC_HEADER, T0)
    for i in range(200):
        hls.publish(8, i * 23, b"\xaf\x01" + bytes(10), T0)
    parts = [p for s in hls.segments for p in s.parts] + hls.open_parts()
    assert len(parts) > 4 and all(p.independent for p in parts)


def test_without_part_duration_segments_have_no_parts_and_one_fragment() -> None:
    hls = StreamSegments(SegmentSettings(segment_duration=2.0, window=6))
    feed(hls, 5.3)
    assert all(s.parts == () for s in hls.segments)
    assert [b.kind for b in parse(hls.segments[0].data)] == [b"styp", b"moof", b"mdat"]


def test_the_writer_raises_part_target_to_cover_a_longer_part() -> None:
    """Frames further apart than the part target make a longer part: PART-TARGET covers it
    (the spec: every part's duration is at most PART-TARGET)."""
    entry = LowLatencyEntry(
        PlaylistEntry("seg1.m4s", 2.0, "init1.mp4"),
        (PartEntry("seg1.0.m4s", 0.7, True), PartEntry("seg1.1.m4s", 0.5, False)),
    )
    text = low_latency_playlist(
        [entry], None, part_duration=0.5, target_duration=2, media_sequence=1, preload_hint=None
    )
    assert tag_values(text, "#EXT-X-PART-INF")[0]["PART-TARGET"] == "0.700"
    assert float(tag_values(text, "#EXT-X-SERVER-CONTROL")[0]["PART-HOLD-BACK"]) >= 2.1
