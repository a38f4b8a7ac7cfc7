"""ChunkEncoder and encode_shared: the exact bytes they write (golden chunk streams)."""

from __future__ import annotations

import pytest

from fms.errors import LocalProtocolError
from fms.rtmp.chunks import ChunkEncoder, RawMessage, encode_shared


def h(text: str) -> bytes:
    """Bytes from hex with spaces, for readable golden chunk streams."""
    return bytes.fromhex(text)


def command(timestamp: int, payload: bytes = b"hi", stream_id: int = 0) -> RawMessage:
    return RawMessage(20, stream_id, timestamp, payload, 3)


# --- header compression ---------------------------------------------------------------------------


def test_first_message_on_a_chunk_stream_gets_a_fmt0_header() -> None:
    assert ChunkEncoder().encode(command(100)) == h("03 000064 000002 14 00000000 6869")


def test_same_length_and_type_with_a_new_delta_gets_a_fmt2_header() -> None:
    encoder = ChunkEncoder()
    encoder.encode(command(100))
    encoder.encode(command(110))
    assert encoder.encode(command(133)) == h("83 000017 6869")


def test_fmt2_is_used_for_the_first_delta_after_a_fmt0_header() -> None:
    # We never send fmt 3 right after fmt 0 for a new message: readers disagree on its delta.
    encoder = ChunkEncoder()
    encoder.encode(command(20))
    assert encoder.encode(command(40)) == h("83 000014 6869")


def test_repeated_length_type_and_delta_gets_a_fmt3_header() -> None:
    encoder = ChunkEncoder()
    encoder.encode(command(100))
    encoder.encode(command(133))
    assert encoder.encode(command(166)) == h("c3 6869")


def test_changed_length_gets_a_fmt1_header() -> None:
    encoder = ChunkEncoder()
    encoder.encode(command(100))
    assert encoder.encode(command(133, b"abc")) == h("43 000021 000003 14 616263")


def test_changed_type_gets_a_fmt1_header() -> None:
    encoder = ChunkEncoder()
    encoder.encode(command(100))
    message = RawMessage(18, 0, 100, b"hi", 3)
    assert encoder.encode(message) == h("43 000000 000002 12 6869")


def test_changed_stream_id_gets_a_fmt0_header() -> None:
    encoder = ChunkEncoder()
    encoder.encode(command(100))
    assert encoder.encode(command(133, stream_id=1)) == h("03 000085 000002 14 01000000 6869")


def test_timestamp_going_backwards_gets_a_fmt0_header() -> None:
    encoder = ChunkEncoder()
    encoder.encode(command(100))
    assert encoder.encode(command(50)) == h("03 000032 000002 14 00000000 6869")


def test_timestamp_wrapping_past_2_to_the_32_gets_a_fmt0_header() -> None:
    encoder = ChunkEncoder()
    encoder.encode(command(0xFFFFFFF0))
    assert encoder.encode(command(0x10)) == h("03 000010 000002 14 00000000 6869")


def test_chunk_streams_compress_independently() -> None:
    encoder = ChunkEncoder()
    encoder.encode(command(100))
    assert encoder.encode(RawMessage(20, 0, 133, b"hi", 4)) == h(
        "04 000085 000002 14 00000000 6869"
    )


@pytest.mark.parametrize(
    ("csid", "fmt0_basic", "fmt3_basic"),
    [
        (2, "02", "c2"),
        (63, "3f", "ff"),
        (64, "00 00", "c0 00"),
        (319, "00 ff", "c0 ff"),
        (320, "01 00 01", "c1 00 01"),
        (65599, "01 ff ff", "c1 ff ff"),
    ],
)
def test_basic_header_uses_the_smallest_form_for_the_chunk_stream_id(
    csid: int, fmt0_basic: str, fmt3_basic: str
) -> None:
    message = RawMessage(9, 1, 0, bytes(130), csid)
    expected = (
        h(fmt0_basic) + h("000000 000082 09 01000000") + bytes(128) + h(fmt3_basic) + bytes(2)
    )
    assert ChunkEncoder().encode(message) == expected


# --- chunking -------------------------------------------------------------------------------------


def test_message_longer_than_the_chunk_size_continues_in_fmt3_chunks() -> None:
    payload = bytes(range(200))
    expected = h("03 000000 0000c8 14 00000000") + payload[:128] + h("c3") + payload[128:]
    assert ChunkEncoder().encode(command(0, payload)) == expected


def test_message_of_exactly_the_chunk_size_is_one_chunk() -> None:
    assert ChunkEncoder(4).encode(command(0, b"abcd")) == h("03 000000 000004 14 00000000 61626364")


def test_empty_message_is_a_header_alone() -> None:
    assert ChunkEncoder().encode(command(0, b"")) == h("03 000000 000000 14 00000000")


def test_set_chunk_size_changes_where_later_messages_are_cut() -> None:
    encoder = ChunkEncoder()
    encoder.set_chunk_size(2)
    assert encoder.chunk_size == 2
    assert encoder.encode(command(0, b"abcde")) == h(
        "03 000000 000005 14 00000000 6162 c3 6364 c3 65"
    )


def test_extended_timestamp_is_written_on_every_continuation_chunk() -> None:
    payload = bytes(200)
    message = RawMessage(9, 1, 0x01000000, payload, 6)
    expected = (
        h("06 ffffff 0000c8 09 01000000 01000000")
        + payload[:128]
        + h("c6 01000000")
        + payload[128:]
    )
    assert ChunkEncoder().encode(message) == expected


def test_timestamp_of_exactly_0xffffff_uses_the_extended_field() -> None:
    assert ChunkEncoder().encode(command(0xFFFFFF)) == h(
        "03 ffffff 000002 14 00000000 00ffffff 6869"
    )


def test_extended_delta_is_repeated_on_fmt3_new_messages() -> None:
    encoder = ChunkEncoder()
    encoder.encode(command(0))
    encoder.encode(command(1))
    assert encoder.encode(command(0x01000001)) == h("83 ffffff 01000000 6869")
    assert encoder.encode(command(0x02000001)) == h("c3 01000000 6869")


def test_small_delta_after_an_extended_absolute_timestamp_needs_no_extension() -> None:
    encoder = ChunkEncoder()
    encoder.encode(command(0x01000000))
    assert encoder.encode(command(0x01000021)) == h("83 000021 6869")


# --- misuse ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, -1, 0x80000000])
def test_invalid_chunk_size_is_refused(size: int) -> None:
    with pytest.raises(LocalProtocolError, match="chunk size"):
        ChunkEncoder().set_chunk_size(size)


def test_invalid_initial_chunk_size_is_refused() -> None:
    with pytest.raises(LocalProtocolError, match="chunk size"):
        ChunkEncoder(0)


@pytest.mark.parametrize(
    ("message", "problem"),
    [
        (RawMessage(20, 0, 0, b"", 1), "chunk stream id"),
        (RawMessage(20, 0, 0, b"", 65600), "chunk stream id"),
        (RawMessage(256, 0, 0, b"", 3), "type id"),
        (RawMessage(20, 1 << 32, 0, b"", 3), "stream id"),
        (RawMessage(20, 0, -1, b"", 3), "timestamp"),
        (RawMessage(20, 0, 1 << 32, b"", 3), "timestamp"),
        (RawMessage(20, 0, 0, bytes(1 << 24), 3), "maximum"),
    ],
)
def test_messages_the_chunk_header_cannot_describe_are_refused(
    message: RawMessage, problem: str
) -> None:
    with pytest.raises(LocalProtocolError, match=problem):
        ChunkEncoder().encode(message)


# --- shared encoding ------------------------------------------------------------------------------


def test_shared_encoding_is_a_fmt0_header_with_fmt3_continuations() -> None:
    message = RawMessage(9, 1, 1000, bytes(range(10)), 7)
    assert encode_shared(message, 4) == h(
        "07 0003e8 00000a 09 01000000 00010203 c7 04050607 c7 0809"
    )


def test_shared_encoding_repeats_the_extended_timestamp_on_continuations() -> None:
    message = RawMessage(8, 1, 0xFFFFFFFF, b"abc", 6)
    assert encode_shared(message, 2) == h(
        "06 ffffff 000003 08 01000000 ffffffff 6162 c6 ffffffff 63"
    )


def test_shared_encoding_ignores_what_was_sent_before() -> None:
    earlier = RawMessage(9, 1, 500, b"abc", 7)
    later = RawMessage(9, 1, 533, b"abc", 7)
    encode_shared(earlier, 128)
    assert encode_shared(later, 128) == ChunkEncoder().encode(later)


def test_shared_encoding_refuses_an_invalid_chunk_size() -> None:
    with pytest.raises(LocalProtocolError, match="chunk size"):
        encode_shared(command(0), 0)


def test_shared_encoding_refuses_an_invalid_message() -> None:
    with pytest.raises(LocalProtocolError, match="chunk stream id"):
        encode_shared(RawMessage(9, 1, 0, b"", 0), 128)
