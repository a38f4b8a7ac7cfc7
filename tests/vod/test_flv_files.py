"""fms.vod's FLV files: what the writer writes reads back, truncated files give a prefix of their
tags, damaged ones raise only FLVReadError, and an interrupted recording is repaired to what a
clean close would have written."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fms.amf import ECMAArray, encode_values
from fms.live.flv import TAG_AUDIO, TAG_SCRIPT, TAG_VIDEO
from fms.vod.metadata import (
    KEYFRAME_ENTRY_SIZE,
    fourcc_number,
    keyframes_of,
    metadata_body,
    read_metadata,
)
from fms.vod.reader import (
    FileTag,
    FLVReadError,
    Read,
    index_file,
    iter_tags,
    keyframe_at_or_before,
    plan_repair,
)
from fms.vod.writer import HEADER_SIZE, MIN_INDEX_ROOM, FLVWriter, Patch
from tests.test_codecs import avc_sps


@dataclass(frozen=True)
class Spec:
    """A tag to write and whether it is a video keyframe (known by construction)."""

    tag_type: int
    timestamp: int
    body: bytes
    keyframe: bool = False


def reader(data: bytes) -> Read:
    return lambda offset, size: data[offset : offset + size]


def apply(data: bytes, patches: list[Patch] | tuple[Patch, ...]) -> bytes:
    out = bytearray(data)
    for patch in patches:
        out[patch.offset : patch.offset + len(patch.data)] = patch.data
    return bytes(out)


CT = b"\x00\x00\x00"
payloads = st.binary(max_size=40)


@st.composite
def tag_specs(draw: st.DrawFn) -> Spec:
    kind = draw(
        st.sampled_from(
            ["avc-key", "avc-inter", "hevc-key", "hevcx-inter", "multi-key", "aac", "opus", "data"]
        )
    )
    ts = draw(st.integers(0, 2**32 - 1))
    data = draw(payloads)
    if kind == "avc-key":
        return Spec(TAG_VIDEO, ts, b"\x17\x01" + CT + data, True)
    if kind == "avc-inter":
        return Spec(TAG_VIDEO, ts, b"\x27\x01" + CT + data)
    if kind == "hevc-key":
        return Spec(TAG_VIDEO, ts, b"\x91hvc1" + CT + data, True)
    if kind == "hevcx-inter":
        return Spec(TAG_VIDEO, ts, b"\xa3hvc1" + data)
    if kind == "multi-key":  # ManyTracks CodedFramesX, two AVC tracks
        tracks = b"".join(bytes((i,)) + len(data).to_bytes(3, "big") + data for i in (0, 1))
        return Spec(TAG_VIDEO, ts, b"\x96\x13avc1" + tracks, True)
    if kind == "aac":
        return Spec(TAG_AUDIO, ts, b"\xaf\x01" + data)
    if kind == "opus":
        return Spec(TAG_AUDIO, ts, b"\x91Opus" + data)
    return Spec(TAG_SCRIPT, ts, encode_values(("onTextData", {"text": data.hex()})))


def record(specs: list[Spec], *, room: int = 4096, finish: bool = True) -> tuple[bytes, list[int]]:
    """A recording of ``specs`` and the byte offset of each of their tags."""
    writer = FLVWriter({"encoder": "test", "framerate": 25.0}, room=room)
    out = bytearray(writer.start())
    offsets = []
    for spec in specs:
        offsets.append(len(out))
        out += writer.tag(spec.tag_type, spec.timestamp, spec.body)
    assert writer.size == len(out)
    data = bytes(out)
    return (apply(data, writer.finish()) if finish else data), offsets


@given(st.lists(tag_specs(), max_size=30))
def test_written_tags_read_back_after_the_metadata_with_an_index_of_their_keyframes(
    specs: list[Spec],
) -> None:
    data, offsets = record(specs)
    tags = list(iter_tags(reader(data)))
    assert tags[0].offset == HEADER_SIZE and tags[0].tag_type == TAG_SCRIPT
    assert [(t.tag_type, t.timestamp, t.body) for t in tags[1:]] == [
        (s.tag_type, s.timestamp, s.body) for s in specs
    ]
    metadata = read_metadata(tags[0].body)
    assert metadata is not None
    assert metadata["indexed"] is True and metadata["filesize"] == len(data)
    assert metadata["encoder"] == "test"
    expected: list[tuple[int, int]] = []
    for spec, at in zip(specs, offsets, strict=True):
        if spec.keyframe and (not expected or expected[-1][0] != spec.timestamp):
            expected.append((spec.timestamp, at))
    assert keyframes_of(metadata) == expected
    media = [s.timestamp for s in specs if s.tag_type != TAG_SCRIPT]
    assert (
        (round(metadata["duration"] * 1000) >= max(media)) if media else metadata["duration"] == 0
    )


def test_only_the_main_tracks_keyframes_are_indexed_once_per_time() -> None:
    """OneTrack keyframes of track 1 beside track 0's (what FFmpeg 9 sends for a second video
    track) are not seek points of their own."""
    track1 = b"\x96\x03hvc1\x01" + b"frame"  # OneTrack, CodedFramesX, track 1
    specs = [
        Spec(TAG_VIDEO, 0, b"\x17\x01" + CT),
        Spec(TAG_VIDEO, 0, track1),
        Spec(TAG_VIDEO, 0, b"\x17\x01" + CT),
        Spec(TAG_VIDEO, 1000, track1),
        Spec(TAG_VIDEO, 1000, b"\x17\x01" + CT),
    ]
    data, offsets = record(specs)
    metadata = read_metadata(next(iter_tags(reader(data))).body)
    assert metadata is not None
    assert keyframes_of(metadata) == [(0, offsets[0]), (1000, offsets[4])]


def test_the_duration_is_the_last_timestamp_plus_one_frame() -> None:
    specs = [Spec(TAG_VIDEO, ts, b"\x27\x01" + CT) for ts in (0, 40, 80, 120)]
    specs += [Spec(TAG_AUDIO, ts, b"\xaf\x01x") for ts in (0, 21, 42, 63)]
    data, _ = record(specs)
    metadata = read_metadata(next(iter_tags(reader(data))).body)
    assert metadata is not None and metadata["duration"] == 0.16


def test_enhanced_codecs_are_named_by_their_fourcc_number() -> None:
    data, _ = record([Spec(TAG_VIDEO, 0, b"\x90hvc1rec"), Spec(TAG_AUDIO, 0, b"\x90Opushead")])
    metadata = read_metadata(next(iter_tags(reader(data))).body)
    assert metadata is not None
    assert metadata["videocodecid"] == int.from_bytes(b"hvc1", "big") == fourcc_number("hvc1")
    assert metadata["audiocodecid"] == int.from_bytes(b"Opus", "big")


def test_legacy_codecs_keep_their_flv_numbers() -> None:
    data, _ = record([Spec(TAG_VIDEO, 0, b"\x17\x00" + CT), Spec(TAG_AUDIO, 0, b"\xaf\x00\x12")])
    metadata = read_metadata(next(iter_tags(reader(data))).body)
    assert metadata is not None and (metadata["videocodecid"], metadata["audiocodecid"]) == (7, 10)


@given(avc_sps())
def test_the_picture_size_comes_from_the_avc_sequence_header(case: tuple[bytes, int, int]) -> None:
    sps, width, height = case
    record_ = bytes([1, sps[1], sps[2], sps[3], 0xFF, 0xE1]) + len(sps).to_bytes(2, "big") + sps
    data, _ = record([Spec(TAG_VIDEO, 0, b"\x17\x00" + CT + record_)])
    metadata = read_metadata(next(iter_tags(reader(data))).body)
    assert metadata is not None and (metadata["width"], metadata["height"]) == (width, height)


@given(st.lists(tag_specs(), max_size=8), st.data())
def test_a_file_cut_anywhere_reads_as_a_prefix_of_its_tags(
    specs: list[Spec], data: st.DataObject
) -> None:
    """The reader stops cleanly after the last complete tag (trailer included); only a cut
    inside the 13-byte file header raises, and only FLVReadError."""
    whole, _ = record(specs)
    full = list(iter_tags(reader(whole)))
    for cut in range(len(whole) + 1):
        try:
            got = list(iter_tags(reader(whole[:cut])))
        except FLVReadError:
            assert cut < HEADER_SIZE
            continue
        assert got == [t for t in full if t.end <= cut]


@given(st.binary(max_size=300))
def test_arbitrary_bytes_raise_only_flvreaderror(garbage: bytes) -> None:
    """Whatever the bytes: the tags read are whole, back to back inside the data and within
    the size limit, and any error is FLVReadError naming an offset inside the data."""
    for data in (garbage, b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00" + garbage):
        tags: list[FileTag] = []
        try:
            for tag in iter_tags(reader(data), max_tag_size=1000):
                tags.append(tag)
        except FLVReadError as error:
            assert 0 <= error.offset <= len(data)
        at = HEADER_SIZE
        for tag in tags:
            assert tag.offset == at and len(tag.body) <= 1000 and tag.end <= len(data)
            at = tag.end
        try:
            found = index_file(reader(data), max_tag_size=1000)
        except FLVReadError as error:
            assert error.offset == 0  # only a bad file header stops the scan itself
        else:
            assert HEADER_SIZE <= found.end <= len(data)


def test_a_tag_over_the_configured_size_limit_is_refused_at_its_offset() -> None:
    data, offsets = record([Spec(TAG_VIDEO, 0, b"\x17\x01" + CT + b"k" * 9995)])
    assert len(list(iter_tags(reader(data), max_tag_size=10_000))) == 2
    with pytest.raises(FLVReadError) as caught:
        list(iter_tags(reader(data), max_tag_size=9_999))
    assert caught.value.offset == offsets[0]


def test_an_absurd_tag_size_is_refused_without_reading_that_much() -> None:
    data, _ = record([])
    data += b"\x09\xff\xff\xff" + bytes(7)  # a video tag of 16 MiB - 1
    asked: list[int] = []

    def read(offset: int, size: int) -> bytes:
        asked.append(size)
        return data[offset : offset + size]

    with pytest.raises(FLVReadError) as caught:
        list(iter_tags(read))
    assert caught.value.offset == len(data) - 11
    assert max(asked) <= 64 * 1024


def test_a_damaged_tag_ends_the_scan_where_the_good_part_ends() -> None:
    data, offsets = record([Spec(TAG_AUDIO, ts, b"\xaf\x01abc") for ts in range(0, 100, 20)])
    damaged = data[: offsets[3]] + b"\x00" * 64  # a power loss leaves zeros
    found = index_file(reader(damaged))
    assert found.end == offsets[3] and found.damage is not None


def test_repair_of_an_interrupted_recording_gives_what_a_clean_close_writes() -> None:
    specs = [Spec(TAG_VIDEO, i * 40, b"\x17\x01" + CT if i % 5 == 0 else b"\x27\x01" + CT)
             for i in range(20)]  # fmt: skip
    clean, _ = record(specs)
    crashed, _ = record(specs, finish=False)
    assert index_file(reader(crashed)).indexed is False
    plan = plan_repair(reader(crashed), len(crashed))
    assert plan is not None and plan.truncate == len(crashed)
    assert apply(crashed, plan.patches) == clean
    assert plan_repair(reader(clean), len(clean)) is None


def test_repair_cuts_a_partial_last_tag_and_indexes_what_is_left() -> None:
    specs = [Spec(TAG_VIDEO, i * 40, b"\x17\x01" + CT + b"k" * 10) for i in range(10)]
    crashed, offsets = record(specs, finish=False)
    cut = crashed[: offsets[7] + 5]
    plan = plan_repair(reader(cut), len(cut))
    assert plan is not None and plan.truncate == offsets[7]
    repaired = apply(cut[: plan.truncate], plan.patches)
    found = index_file(reader(repaired))
    assert found.indexed and found.damage is None and found.end == len(repaired)
    assert found.metadata is not None
    assert keyframes_of(found.metadata) == [(i * 40, offsets[i]) for i in range(7)]
    assert found.metadata["duration"] == 0.28 and found.metadata["filesize"] == len(repaired)


def test_a_file_the_recorder_did_not_write_is_not_repaired() -> None:
    data = b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00"
    from fms.live.flv import encode_tag

    data += encode_tag(TAG_SCRIPT, 0, encode_values(("onMetaData", ECMAArray(duration=0.0))))
    assert plan_repair(reader(data), len(data)) is None


def test_an_index_too_long_for_the_reserve_is_thinned_to_real_keyframes() -> None:
    specs = [Spec(TAG_VIDEO, i * 40, b"\x17\x01" + CT) for i in range(200)]
    data, offsets = record(specs, room=MIN_INDEX_ROOM)
    first = next(iter_tags(reader(data)))
    metadata = read_metadata(first.body)
    assert metadata is not None
    kept = keyframes_of(metadata)
    assert 0 < len(kept) < 200 and len(kept) * KEYFRAME_ENTRY_SIZE <= MIN_INDEX_ROOM
    real = {(i * 40, at) for i, at in enumerate(offsets)}
    assert kept[0] == (0, offsets[0]) and set(kept) <= real


@given(st.integers(0, 70_000), st.dictionaries(st.text(max_size=8), st.integers(), max_size=4))
def test_the_metadata_body_has_exactly_the_reserved_size(extra: int, publisher: dict) -> None:
    natural = len(metadata_body(publisher, {"duration": 1.0}))
    body = metadata_body(publisher, {"duration": 1.0}, size=natural + extra)
    assert len(body) == natural + extra
    assert (read_metadata(body) or {}).get("duration") == 1.0


@given(st.lists(tag_specs(), max_size=30), st.integers(0, 2**32))
def test_a_seek_reads_from_the_last_keyframe_at_or_before_it(specs: list[Spec], ms: int) -> None:
    specs = sorted(specs, key=lambda s: s.timestamp)
    data, offsets = record(specs)
    index = index_file(reader(data)).index.keyframes
    found = keyframe_at_or_before(index, ms)
    before = [(s.timestamp, at) for s, at in zip(specs, offsets, strict=True)
              if s.keyframe and s.timestamp <= ms]  # fmt: skip
    if not before:
        assert found is None
        return
    assert found is not None and found[0] == before[-1][0]
    first = next(iter_tags(reader(data), start=found[1]))
    assert (first.offset, first.timestamp, first.tag_type) == (found[1], found[0], TAG_VIDEO)


@given(st.binary(max_size=400), st.integers(0, 80))
def test_repair_of_a_damaged_recording_raises_nothing_but_flvreaderror(
    tail: bytes, metadata_size: int
) -> None:
    """Whatever follows a recorder's header (and even a placeholder shrunk to a few bytes),
    planning the repair returns a plan or None, or raises FLVReadError."""
    head, _ = record([Spec(TAG_VIDEO, 0, b"\x17\x01" + CT)], finish=False)
    tags = list(iter_tags(reader(head)))
    small = encode_values(("onMetaData", ECMAArray(metadatacreator="pyFMS", indexed=False)))
    from fms.live.flv import encode_tag

    shrunk = head[:HEADER_SIZE] + encode_tag(TAG_SCRIPT, 0, small + bytes(metadata_size))
    for data in (head + tail, head[: tags[1].offset] + tail, shrunk + tail):
        try:
            plan = plan_repair(reader(data), len(data))
        except FLVReadError:
            continue
        if plan is not None:
            repaired = apply(data[: plan.truncate], plan.patches)
            assert index_file(reader(repaired)).indexed


@pytest.mark.parametrize(
    ("publisher", "placeholder", "final"),
    [({"audiocodecid": 10}, 0x04, 0x01), ({}, 0x05, 0x01), ({"hasVideo": True}, 0x01, 0x01)],
)
def test_header_flags_follow_the_announced_tracks_then_the_written_ones(
    publisher: dict[str, int], placeholder: int, final: int
) -> None:
    writer = FLVWriter(publisher)
    data = writer.start() + writer.tag(TAG_VIDEO, 0, b"\x17\x01" + CT)
    assert data[4] == placeholder
    assert apply(data, writer.finish())[4] == final
