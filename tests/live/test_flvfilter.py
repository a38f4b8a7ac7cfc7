"""The side-information filter of HTTP-FLV viewers that ask for ``?packets=media``
(fms.live.flvfilter): it leaves out exactly the Enhanced RTMP video Metadata and audio
MultichannelConfig tags, passes every other tag byte for byte, in order, whatever the pieces
the bytes arrive in, and holds back no more than the one tag not yet whole. In memory."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from fms.live import flv
from fms.live.flvfilter import SideDataFilter, is_side_data

# Enhanced RTMP bodies as FFmpeg 9 sends them (an AV1 and Opus publish).
AV1_START = b"\x90av01\x81\x00\x0c\x00"
AV1_METADATA = b"\xd4av01\x02\x00\tcolorInfo\x03\x00\x0bcolorConfig\x03\x00\x00\t\x00\x00\t"
AV1_KEY = b"\x91av01\x12\x00\x0a\x0b" + b"k" * 40
AV1_INTER = b"\xa1av01\x12\x00" + b"i" * 30
OPUS_START = b"\x90OpusOpusHead\x01\x02\x38\x01\x80\xbb\x00\x00\x00\x00\x00"
OPUS_MULTICHANNEL = b"\x94Opus\x01\x02\x00\x00\x00\x03"
OPUS_FRAME = b"\x91Opus" + b"o" * 20
# A ModEx prefix (3 bytes of nanosecond offset) in front of a Metadata packet.
MODEX_METADATA = b"\xd7\x02\x00\x00\x01\x14av01" + AV1_METADATA[5:]
AVC_KEY = b"\x17\x01\x00\x00\x00" + b"k" * 10
AAC_FRAME = b"\xaf\x01" + b"a" * 10
SCRIPT = b"\x02\x00\x0aonMetaData\x05"

SIDE = [(9, AV1_METADATA), (8, OPUS_MULTICHANNEL), (9, MODEX_METADATA)]
KEPT = [
    (9, AV1_START),
    (9, AV1_KEY),
    (9, AV1_INTER),
    (8, OPUS_START),
    (8, OPUS_FRAME),
    (9, AVC_KEY),
    (8, AAC_FRAME),
    (18, SCRIPT),
    (18, b"\x94Opus"),  # script data is never side data, whatever its bytes
]
BODIES = st.sampled_from(SIDE + KEPT)


def tags(entries: list[tuple[int, bytes]]) -> list[bytes]:
    return [flv.encode_tag(kind, 40 * n, body) for n, (kind, body) in enumerate(entries)]


def test_side_data_is_video_metadata_and_audio_multichannel_config_only() -> None:
    assert [is_side_data(kind, body) for kind, body in SIDE] == [True] * len(SIDE)
    assert [is_side_data(kind, body) for kind, body in KEPT] == [False] * len(KEPT)


def test_whole_tags_in_one_piece_come_out_without_the_side_data() -> None:
    entries = [KEPT[0], SIDE[0], KEPT[1], KEPT[3], SIDE[1], KEPT[4], KEPT[2]]
    encoded = tags(entries)
    side_data = SideDataFilter()
    out = side_data.feed(b"".join(encoded))
    assert out == b"".join(t for t, e in zip(encoded, entries, strict=True) if e not in SIDE)
    assert side_data.dropped == 2 and side_data.waiting == 0


@given(st.lists(BODIES, max_size=12), st.data())
def test_pieces_cut_anywhere_give_the_same_bytes_as_whole_tags(
    entries: list[tuple[int, bytes]], data: st.DataObject
) -> None:
    """Fed in pieces that end anywhere (inside headers, bodies, trailers), the output is the
    kept tags, whole and in order, and what waits is only the unfinished tag."""
    encoded = tags(entries)
    stream = b"".join(encoded)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    ends = [0]
    for tag in encoded:
        ends.append(ends[-1] + len(tag))
    side_data = SideDataFilter()
    out = b""
    start = 0
    for cut in [*cuts, len(stream)]:
        out += side_data.feed(stream[start:cut])
        start = cut
        assert side_data.waiting == cut - max(end for end in ends if end <= cut)
    kept = [t for t, e in zip(encoded, entries, strict=True) if e not in SIDE]
    assert out == b"".join(kept)
    assert side_data.dropped == len(encoded) - len(kept)
    assert side_data.waiting == 0
    _, read = flv.read_file(flv.file_header(audio=True, video=True) + out)
    assert len(read) == len(kept)


def test_a_tag_cut_short_waits_for_the_rest_and_nothing_of_it_comes_out() -> None:
    whole = flv.encode_tag(9, 0, AV1_KEY)
    side_data = SideDataFilter()
    assert side_data.feed(whole[:5]) == b""
    assert side_data.feed(whole[5:-1]) == b""
    assert side_data.waiting == len(whole) - 1
    assert side_data.feed(whole[-1:]) == whole
    assert side_data.waiting == 0
