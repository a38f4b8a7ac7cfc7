"""split_aggregate: FLV tags inside a type-22 message become audio/video/data messages."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fms.errors import LocalProtocolError, RemoteProtocolError
from fms.rtmp.aggregate import AggregateError, split_aggregate
from fms.rtmp.chunks import RawMessage


def tag(type_id: int, timestamp: int, data: bytes, back_pointer: int | None = None) -> bytes:
    """One FLV tag as an aggregate carries it."""
    return (
        bytes((type_id,))
        + len(data).to_bytes(3, "big")
        + (timestamp & 0xFFFFFF).to_bytes(3, "big")
        + bytes((timestamp >> 24,))
        + b"\x00\x00\x00"
        + data
        + (len(data) + 11 if back_pointer is None else back_pointer).to_bytes(4, "big")
    )


def aggregate(body: bytes, timestamp: int = 5000, stream_id: int = 1, csid: int = 7) -> RawMessage:
    return RawMessage(22, stream_id, timestamp, body, csid)


def test_golden_aggregate_splits_into_its_tags() -> None:
    body = bytes.fromhex(
        "09 000002 0003e8 00 000000 1700 0000000d"  # video, ts 1000
        "08 000001 000402 00 000000 af 0000000c"  # audio, ts 1026
    )
    assert split_aggregate(aggregate(body)) == [
        RawMessage(9, 1, 5000, b"\x17\x00", 7),
        RawMessage(8, 1, 5026, b"\xaf", 7),
    ]


def test_first_sub_message_takes_the_aggregate_timestamp() -> None:
    (sub,) = split_aggregate(aggregate(tag(9, 123456, b"v"), timestamp=77))
    assert sub.timestamp == 77


def test_later_sub_messages_keep_their_offset_from_the_first_tag() -> None:
    body = tag(8, 1000, b"a") + tag(9, 1040, b"v") + tag(8, 1023, b"b")
    subs = split_aggregate(aggregate(body, timestamp=10))
    assert [s.timestamp for s in subs] == [10, 50, 33]


def test_timestamp_extension_byte_is_the_upper_8_bits() -> None:
    body = tag(9, 0x01FFFFFF, b"v") + tag(9, 0x02000010, b"w")
    subs = split_aggregate(aggregate(body, timestamp=0))
    assert [s.timestamp for s in subs] == [0, 0x11]


def test_sub_message_timestamps_wrap_modulo_2_to_the_32() -> None:
    body = tag(9, 0, b"v") + tag(9, 0x20, b"w")
    subs = split_aggregate(aggregate(body, timestamp=0xFFFFFFF0))
    assert [s.timestamp for s in subs] == [0xFFFFFFF0, 0x10]


def test_sub_messages_inherit_stream_id_and_chunk_stream_id_not_the_tag_stream_id() -> None:
    body = bytes.fromhex("12 000001 000000 00 0000ff 05 0000000c")
    assert split_aggregate(aggregate(body, stream_id=3, csid=9)) == [
        RawMessage(18, 3, 5000, b"\x05", 9)
    ]


def test_back_pointer_is_not_checked() -> None:
    assert len(split_aggregate(aggregate(tag(9, 0, b"v", back_pointer=0)))) == 1


def test_empty_aggregate_has_no_sub_messages() -> None:
    assert split_aggregate(aggregate(b"")) == []


def test_empty_tag_gives_an_empty_sub_message() -> None:
    assert split_aggregate(aggregate(tag(8, 0, b""))) == [RawMessage(8, 1, 5000, b"", 7)]


@pytest.mark.parametrize("type_id", [1, 4, 15, 17, 20, 22, 0xFF])
def test_tags_other_than_audio_video_and_amf0_data_are_refused(type_id: int) -> None:
    with pytest.raises(AggregateError, match=f"tag of type {type_id} at offset 0"):
        split_aggregate(aggregate(tag(type_id, 0, b"x")))


def test_truncated_tag_header_is_refused() -> None:
    body = tag(9, 0, b"v") + tag(9, 0, b"w")[:10]
    with pytest.raises(AggregateError, match="truncated in a tag header at offset 16"):
        split_aggregate(aggregate(body))


def test_tag_data_longer_than_the_body_is_refused() -> None:
    with pytest.raises(AggregateError, match="announces 100 data bytes"):
        split_aggregate(aggregate(tag(9, 0, bytes(100))[:-5]))


def test_missing_back_pointer_is_refused() -> None:
    with pytest.raises(AggregateError, match="truncated in a tag at offset 0"):
        split_aggregate(aggregate(tag(9, 0, b"v")[:-1]))


def test_aggregate_errors_are_remote_protocol_errors() -> None:
    assert issubclass(AggregateError, RemoteProtocolError)


def test_splitting_a_non_aggregate_is_a_local_error() -> None:
    with pytest.raises(LocalProtocolError):
        split_aggregate(RawMessage(9, 1, 0, b"", 7))


@given(
    st.lists(
        st.tuples(st.sampled_from([8, 9, 18]), st.integers(0, 0xFFFFFFFF), st.binary(max_size=50)),
        max_size=8,
    ),
    st.integers(0, 0xFFFFFFFF),
)
def test_any_tag_sequence_splits_back_into_its_tags(
    tags: list[tuple[int, int, bytes]], timestamp: int
) -> None:
    body = b"".join(tag(t, ts, data) for t, ts, data in tags)
    subs = split_aggregate(aggregate(body, timestamp=timestamp))
    assert [(s.type_id, s.payload) for s in subs] == [(t, data) for t, _, data in tags]
    if tags:
        first = tags[0][1]
        assert [s.timestamp for s in subs] == [
            (timestamp + ts - first) % 2**32 for _, ts, _ in tags
        ]


@given(st.binary(max_size=200))
def test_arbitrary_bodies_raise_only_aggregate_errors(body: bytes) -> None:
    try:
        subs = split_aggregate(aggregate(body))
    except AggregateError:
        return
    assert all(s.type_id in (8, 9, 18) for s in subs)
