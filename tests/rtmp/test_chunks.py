"""ChunkDecoder: hand-written chunk streams (golden bytes), limits and error handling."""

from __future__ import annotations

import pytest

from fms.errors import LocalProtocolError, RemoteProtocolError
from fms.rtmp.chunks import ChunkDecoder, ChunkLimits, RawMessage
from fms.rtmp.errors import ChunkStreamError, LimitExceeded


def h(text: str) -> bytes:
    """Bytes from hex with spaces, for readable golden chunk streams."""
    return bytes.fromhex(text)


def feed(data: bytes, decoder: ChunkDecoder | None = None) -> list[RawMessage]:
    return (decoder or ChunkDecoder()).receive_data(data)


def set_chunk_size(size: int) -> bytes:
    """A Set Chunk Size message on csid 2, stream 0, fmt 0."""
    return h("02 000000 000004 01 00000000") + size.to_bytes(4, "big")


def fmt0(csid_byte: str, ts: int, length: int, type_id: int, stream_id: int) -> bytes:
    return (
        h(csid_byte)
        + ts.to_bytes(3, "big")
        + length.to_bytes(3, "big")
        + bytes((type_id,))
        + stream_id.to_bytes(4, "little")
    )


# --- basic headers and message headers ------------------------------------------------------------


@pytest.mark.parametrize(
    ("basic_header", "csid"),
    [
        ("02", 2),
        ("3f", 63),
        ("00 00", 64),
        ("00 ff", 319),
        ("01 00 01", 320),
        ("01 ff ff", 65599),
    ],
)
def test_basic_header_of_each_size_selects_the_chunk_stream(basic_header: str, csid: int) -> None:
    data = h(basic_header) + h("000010 000003 14 01000000") + b"abc"
    assert feed(data) == [RawMessage(20, 1, 16, b"abc", csid)]


@pytest.mark.parametrize(
    ("basic_header", "csid"),
    [("c2", 2), ("ff", 63), ("c0 00", 64), ("c0 ff", 319), ("c1 00 01", 320), ("c1 ff ff", 65599)],
)
def test_fmt3_basic_header_of_each_size_continues_the_same_chunk_stream(
    basic_header: str, csid: int
) -> None:
    first = bytes((int(basic_header[:2], 16) & 0x3F,)) + h(basic_header)[1:]
    data = first + h("000010 000082 09 01000000") + bytes(128) + h(basic_header) + b"zz"
    assert feed(data) == [RawMessage(9, 1, 16, bytes(128) + b"zz", csid)]


def test_fmt0_header_gives_absolute_timestamp_length_type_and_little_endian_stream_id() -> None:
    data = h("03 0186a0 000002 12 04030201") + b"hi"
    assert feed(data) == [RawMessage(18, 0x01020304, 100000, b"hi", 3)]


def test_fmt1_adds_its_delta_and_keeps_the_stream_id() -> None:
    data = h("04 000064 000001 08 01000000") + b"a" + h("44 000021 000002 09") + b"bc"
    assert feed(data) == [RawMessage(8, 1, 100, b"a", 4), RawMessage(9, 1, 133, b"bc", 4)]


def test_fmt2_adds_its_delta_and_keeps_length_type_and_stream_id() -> None:
    data = h("04 000064 000001 08 01000000") + b"a" + h("84 000017") + b"b"
    assert feed(data) == [RawMessage(8, 1, 100, b"a", 4), RawMessage(8, 1, 123, b"b", 4)]


def test_fmt3_starting_a_new_message_repeats_the_previous_delta() -> None:
    data = (
        h("04 000064 000001 08 01000000")
        + b"a"
        + h("84 000017")
        + b"b"
        + h("c4")
        + b"c"
        + h("c4")
        + b"d"
    )
    assert [m.timestamp for m in feed(data)] == [100, 123, 146, 169]


def test_fmt3_right_after_fmt0_uses_the_fmt0_timestamp_as_delta() -> None:
    # RTMP spec 5.3.1.2.4: a type 3 chunk may follow type 0 when the delta equals the first
    # message's timestamp.
    data = h("04 000014 000001 08 01000000") + b"a" + h("c4") + b"b"
    assert [m.timestamp for m in feed(data)] == [20, 40]


def test_message_longer_than_the_chunk_size_is_reassembled_from_fmt3_chunks() -> None:
    payload = bytes(range(256)) + b"tail"
    data = (
        h("03 000000 000104 14 00000000")
        + payload[:128]
        + h("c3")
        + payload[128:256]
        + h("c3")
        + payload[256:]
    )
    assert feed(data) == [RawMessage(20, 0, 0, payload, 3)]


def test_zero_length_message_is_returned_with_an_empty_payload() -> None:
    assert feed(h("03 000005 000000 14 00000000")) == [RawMessage(20, 0, 5, b"", 3)]


def test_zero_length_fmt3_message_is_a_bare_basic_header() -> None:
    data = h("03 000005 000000 14 00000000 c3")
    assert feed(data) == [RawMessage(20, 0, 5, b"", 3), RawMessage(20, 0, 10, b"", 3)]


def test_unknown_message_types_are_passed_through() -> None:
    assert feed(h("03 000000 000001 63 00000000 7a")) == [RawMessage(0x63, 0, 0, b"z", 3)]


def test_interleaved_messages_on_several_chunk_streams_are_each_reassembled() -> None:
    video = bytes([9]) * 200
    audio = bytes([8]) * 150
    data = (
        h("06 000010 0000c8 09 01000000")
        + video[:128]
        + h("05 000011 000096 08 01000000")
        + audio[:128]
        + h("02 000000 000004 05 00000000 00989680")  # Window Ack Size in between
        + h("c6")
        + video[128:]
        + h("c5")
        + audio[128:]
    )
    assert feed(data) == [
        RawMessage(5, 0, 0, h("00989680"), 2),
        RawMessage(9, 1, 16, video, 6),
        RawMessage(8, 1, 17, audio, 5),
    ]


# --- timestamps -----------------------------------------------------------------------------------


def test_timestamp_wraps_modulo_2_to_the_32() -> None:
    data = (
        h("04 ffffff 000001 08 01000000 fffffff0")  # extended absolute 0xfffffff0
        + b"a"
        + h("84 000020")
        + b"b"
    )
    assert [m.timestamp for m in feed(data)] == [0xFFFFFFF0, 0x10]


def test_timestamp_just_below_the_extended_marker_needs_no_extension() -> None:
    assert feed(h("04 fffffe 000001 08 01000000") + b"a")[0].timestamp == 0xFFFFFE


def test_fmt0_timestamp_of_exactly_0xffffff_is_read_from_the_extended_field() -> None:
    data = h("04 ffffff 000001 08 01000000 00ffffff") + b"a"
    assert feed(data)[0].timestamp == 0xFFFFFF


def test_deltas_carry_a_stream_past_4h38m_without_extended_fields() -> None:
    data = h("04 fffff0 000001 08 01000000") + b"a" + h("84 000020") + b"b" + h("c4") + b"c"
    assert [m.timestamp for m in feed(data)] == [0xFFFFF0, 0x1000010, 0x1000030]


def test_extended_timestamp_repeated_on_continuation_chunks_is_skipped() -> None:
    # FMLE, FFmpeg and Flash repeat the 4-byte field on every fmt 3 chunk.
    payload = bytes(range(200))
    data = (
        h("06 ffffff 0000c8 09 01000000 01000000")
        + payload[:128]
        + h("c6 01000000")
        + payload[128:]
    )
    assert feed(data) == [RawMessage(9, 1, 0x01000000, payload, 6)]


def test_extended_timestamp_absent_on_continuation_chunks_is_not_skipped() -> None:
    # rtmpdump and older OBS do not repeat it.
    payload = bytes(range(200))
    data = h("06 ffffff 0000c8 09 01000000 01000000") + payload[:128] + h("c6") + payload[128:]
    assert feed(data) == [RawMessage(9, 1, 0x01000000, payload, 6)]


def test_continuation_repeating_the_absolute_timestamp_after_an_extended_delta_is_skipped() -> None:
    payload = bytes(range(200))
    data = (
        h("06 000010 000001 09 01000000")
        + b"k"
        + h("46 ffffff 0000c8 09 01000000")  # fmt 1, delta 0x01000000
        + payload[:128]
        + h("c6 01000010")  # the message's absolute timestamp instead of the delta
        + payload[128:]
    )
    assert feed(data)[1] == RawMessage(9, 1, 0x01000010, payload, 6)


def test_fmt3_new_message_after_an_extended_delta_skips_the_repeated_field() -> None:
    data = (
        h("04 000000 000001 08 01000000")
        + b"a"
        + h("84 ffffff 01000000")
        + b"b"
        + h("c4 01000000")
        + b"c"
    )
    assert [m.timestamp for m in feed(data)] == [0, 0x01000000, 0x02000000]
    assert [m.payload for m in feed(data)] == [b"a", b"b", b"c"]


def test_fmt3_new_message_after_an_extended_delta_accepts_no_repeated_field() -> None:
    data = (
        h("04 000000 000001 08 01000000") + b"a" + h("84 ffffff 01000000") + b"b" + h("c4") + b"c"
    )
    assert [(m.timestamp, m.payload) for m in feed(data)] == [
        (0, b"a"),
        (0x01000000, b"b"),
        (0x02000000, b"c"),
    ]


def test_continuation_waits_while_fewer_than_four_bytes_could_be_the_repeated_field() -> None:
    decoder = ChunkDecoder()
    head = h("06 ffffff 000082 09 01000000 01000000") + bytes(128) + h("c6 0100")
    assert decoder.receive_data(head) == []
    assert decoder.receive_data(h("0000") + b"zz") == [
        RawMessage(9, 1, 0x01000000, bytes(128) + b"zz", 6)
    ]


def test_continuation_without_the_field_completes_without_waiting_for_more_bytes() -> None:
    # The last two payload bytes cannot start 0x01000000, so no repeated field is there.
    data = h("06 ffffff 000082 09 01000000 01000000") + bytes(128) + h("c6") + b"zz"
    assert feed(data) == [RawMessage(9, 1, 0x01000000, bytes(128) + b"zz", 6)]


# --- Set Chunk Size and Abort -------------------------------------------------------------------


def test_set_chunk_size_is_returned_to_the_caller() -> None:
    assert feed(set_chunk_size(4096)) == [RawMessage(1, 0, 0, h("00001000"), 2)]


def test_set_chunk_size_applies_to_the_next_chunk_in_the_same_data() -> None:
    decoder = ChunkDecoder()
    payload = bytes(range(256)) * 2
    data = set_chunk_size(4096) + h("03 000000 000200 14 00000000") + payload
    assert decoder.receive_data(data)[1] == RawMessage(20, 0, 0, payload, 3)
    assert decoder.chunk_size == 4096


def test_set_chunk_size_applies_to_a_message_already_in_progress() -> None:
    payload = bytes(range(200))
    data = (
        h("06 000000 0000c8 14 00000000")
        + payload[:128]
        + set_chunk_size(1)
        + b"".join(h("c6") + bytes((b,)) for b in payload[128:])
    )
    assert feed(data)[1] == RawMessage(20, 0, 0, payload, 6)


def test_set_chunk_size_split_from_the_next_chunk_applies_to_it() -> None:
    decoder = ChunkDecoder()
    assert len(decoder.receive_data(set_chunk_size(300))) == 1
    payload = bytes(300)
    assert decoder.receive_data(h("03 000000 00012c 14 00000000") + payload) == [
        RawMessage(20, 0, 0, payload, 3)
    ]


def test_largest_chunk_size_is_accepted_without_allocating_by_it() -> None:
    decoder = ChunkDecoder()
    decoder.receive_data(set_chunk_size(0x7FFFFFFF))
    data = h("03 000000 000190 14 00000000") + bytes(400)
    assert decoder.receive_data(data[:100]) == []
    assert decoder.buffered_bytes == 100 - 12
    assert decoder.receive_data(data[100:]) == [RawMessage(20, 0, 0, bytes(400), 3)]


def test_set_chunk_size_zero_is_a_protocol_error() -> None:
    with pytest.raises(ChunkStreamError, match="Set Chunk Size 0"):
        feed(set_chunk_size(0))


def test_set_chunk_size_with_bit_31_set_is_a_protocol_error() -> None:
    with pytest.raises(ChunkStreamError, match="Set Chunk Size 2147483648"):
        feed(set_chunk_size(0x80000000))


def test_set_chunk_size_shorter_than_four_bytes_is_a_protocol_error() -> None:
    with pytest.raises(ChunkStreamError, match="Set Chunk Size payload of 2 bytes"):
        feed(h("02 000000 000002 01 00000000 1000"))


def test_set_chunk_size_above_the_configured_maximum_breaks_a_limit() -> None:
    decoder = ChunkDecoder(ChunkLimits(max_chunk_size=65536))
    with pytest.raises(LimitExceeded, match="chunk size too large: 65537 bytes > maximum 65536"):
        decoder.receive_data(set_chunk_size(65537))


def test_abort_discards_the_partial_message_of_its_chunk_stream() -> None:
    data = (
        h("06 000000 0000c8 09 01000000")
        + bytes(128)
        + h("02 000000 000004 02 00000000 00000006")  # Abort csid 6
        + h("06 000021 000002 09 01000000")
        + b"ok"
    )
    decoder = ChunkDecoder()
    assert decoder.receive_data(data) == [RawMessage(9, 1, 0x21, b"ok", 6)]
    assert decoder.buffered_bytes == 0


def test_abort_of_a_chunk_stream_without_partial_message_is_ignored() -> None:
    data = h("02 000000 000004 02 00000000 00000009") + h("03 000000 000001 14 00000000 78")
    assert feed(data) == [RawMessage(20, 0, 0, b"x", 3)]


def test_abort_shorter_than_four_bytes_is_a_protocol_error() -> None:
    with pytest.raises(ChunkStreamError, match="Abort payload of 1 bytes"):
        feed(h("02 000000 000001 02 00000000 06"))


# --- protocol errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "header"),
    [(1, "45 000000 000001 08 61"), (2, "85 000000 61"), (3, "c5 61")],
)
def test_fmt_1_2_3_on_a_never_seen_chunk_stream_is_a_protocol_error(fmt: int, header: str) -> None:
    with pytest.raises(ChunkStreamError, match=f"fmt {fmt} chunk on chunk stream 5"):
        feed(h(header))


def test_new_message_header_before_the_previous_message_completed_is_a_protocol_error() -> None:
    data = h("06 000000 0000c8 09 01000000") + bytes(128) + h("86 000010") + bytes(72)
    with pytest.raises(ChunkStreamError, match="before its previous message"):
        feed(data)


def test_decoder_stays_failed_after_an_error() -> None:
    decoder = ChunkDecoder()
    with pytest.raises(ChunkStreamError):
        decoder.receive_data(h("c5 61"))
    with pytest.raises(ChunkStreamError, match="already failed"):
        decoder.receive_data(h("03 000000 000001 14 00000000 78"))


def test_errors_are_remote_protocol_errors() -> None:
    assert issubclass(ChunkStreamError, RemoteProtocolError)
    assert issubclass(LimitExceeded, RemoteProtocolError)


# --- bookkeeping ----------------------------------------------------------------------------------


def test_bytes_received_counts_every_byte_fed_including_incomplete_headers() -> None:
    decoder = ChunkDecoder()
    decoder.receive_data(h("03 000000 000001 14 00000000 78"))
    decoder.receive_data(h("43 0000"))
    assert decoder.bytes_received == 13 + 3


def test_incomplete_header_is_kept_until_the_rest_arrives() -> None:
    decoder = ChunkDecoder()
    assert decoder.receive_data(h("03 000000 0000")) == []
    assert decoder.buffered_bytes == 0
    assert decoder.receive_data(h("01 14 00000000 78")) == [RawMessage(20, 0, 0, b"x", 3)]


def test_decoder_accepts_bytearray_and_memoryview() -> None:
    decoder = ChunkDecoder()
    data = h("03 000000 000002 14 00000000 7879")
    assert decoder.receive_data(bytearray(data[:5])) == []
    assert decoder.receive_data(memoryview(data)[5:]) == [RawMessage(20, 0, 0, b"xy", 3)]


# --- limits ---------------------------------------------------------------------------------------


def test_command_message_larger_than_64_kib_is_rejected_when_its_header_arrives() -> None:
    with pytest.raises(
        LimitExceeded, match=r"type 20 message too large: 65537 bytes > maximum 65536"
    ):
        feed(fmt0("03", 0, 65537, 20, 0))


def test_command_message_of_exactly_64_kib_is_accepted() -> None:
    decoder = ChunkDecoder()
    decoder.receive_data(set_chunk_size(65536))
    assert len(decoder.receive_data(fmt0("03", 0, 65536, 20, 0) + bytes(65536))) == 1


@pytest.mark.parametrize(("type_id", "name"), [(8, "audio"), (9, "video"), (22, "aggregate")])
def test_media_messages_are_held_to_the_command_limit_before_media_is_enabled(
    type_id: int, name: str
) -> None:
    with pytest.raises(LimitExceeded, match=f"{name} \\(before media was enabled\\) message"):
        feed(fmt0("06", 0, 65537, type_id, 1))


@pytest.mark.parametrize(("type_id", "size"), [(8, 1 << 20), (9, 8 << 20), (22, 8 << 20)])
def test_media_messages_up_to_their_limits_are_accepted_after_enable_media(
    type_id: int, size: int
) -> None:
    decoder = ChunkDecoder()
    decoder.enable_media()
    decoder.receive_data(set_chunk_size(1 << 24))
    assert decoder.receive_data(fmt0("06", 0, size, type_id, 1) + bytes(size)) == [
        RawMessage(type_id, 1, 0, bytes(size), 6)
    ]


@pytest.mark.parametrize(
    ("type_id", "name", "maximum"),
    [(8, "audio", 1 << 20), (9, "video", 8 << 20), (22, "aggregate", 8 << 20)],
)
def test_media_messages_above_their_limits_are_rejected_after_enable_media(
    type_id: int, name: str, maximum: int
) -> None:
    decoder = ChunkDecoder()
    decoder.enable_media()
    with pytest.raises(
        LimitExceeded, match=f"{name} message too large: {maximum + 1} bytes > maximum {maximum}"
    ):
        decoder.receive_data(fmt0("06", 0, maximum + 1, type_id, 1))


def test_enable_media_keeps_the_command_limit_for_other_messages() -> None:
    decoder = ChunkDecoder()
    decoder.enable_media()
    with pytest.raises(LimitExceeded, match="type 18 message too large"):
        decoder.receive_data(fmt0("05", 0, 65537, 18, 1))


def test_fmt1_length_is_checked_against_the_limit_too() -> None:
    decoder = ChunkDecoder()
    decoder.receive_data(fmt0("03", 0, 1, 20, 0) + b"x")
    with pytest.raises(LimitExceeded, match="type 20 message too large: 70000 bytes"):
        decoder.receive_data(h("43 000000") + (70000).to_bytes(3, "big") + h("14"))


def test_too_many_chunk_streams_with_a_partial_message_break_a_limit() -> None:
    decoder = ChunkDecoder(ChunkLimits(max_partial_messages=3))
    opening = b"".join(fmt0(f"{csid:02x}", 0, 200, 20, 0) + bytes(128) for csid in (3, 4, 5))
    decoder.receive_data(opening)
    with pytest.raises(
        LimitExceeded,
        match="too many chunk streams with a partial message: 4 > maximum 3",
    ):
        decoder.receive_data(fmt0("06", 0, 200, 20, 0))


def test_completed_messages_free_their_partial_message_slot() -> None:
    decoder = ChunkDecoder(ChunkLimits(max_partial_messages=1))
    first = fmt0("03", 0, 200, 20, 0) + bytes(128) + h("c3") + bytes(72)
    second = fmt0("04", 0, 200, 20, 0) + bytes(128) + h("c4") + bytes(72)
    assert len(decoder.receive_data(first + second)) == 2


def test_buffered_bytes_limit_is_enforced_as_bytes_arrive() -> None:
    decoder = ChunkDecoder(ChunkLimits(max_buffered_bytes=1000))
    decoder.receive_data(set_chunk_size(100))
    data = fmt0("03", 0, 5000, 20, 0) + b"".join(bytes(100) + h("c3") for _ in range(49))
    fed = 0
    with pytest.raises(
        LimitExceeded, match=r"too many bytes buffered for partial messages: 100\d > maximum 1000"
    ):
        for i in range(0, len(data), 7):
            fed += len(data[i : i + 7])
            decoder.receive_data(data[i : i + 7])
            assert decoder.buffered_bytes <= fed
    assert decoder.buffered_bytes <= 1000


def test_buffered_bytes_limit_counts_all_chunk_streams() -> None:
    decoder = ChunkDecoder(ChunkLimits(max_buffered_bytes=300))
    with pytest.raises(LimitExceeded, match="too many bytes buffered"):
        decoder.receive_data(
            b"".join(fmt0(f"{csid:02x}", 0, 200, 20, 0) + bytes(128) for csid in (3, 4, 5))
        )


def test_announced_length_reserves_nothing() -> None:
    decoder = ChunkDecoder()
    decoder.enable_media()
    decoder.receive_data(fmt0("06", 0, 8 << 20, 9, 1) + bytes(10))
    assert decoder.buffered_bytes == 10


def test_too_many_chunk_stream_ids_break_a_limit() -> None:
    decoder = ChunkDecoder(ChunkLimits(max_chunk_streams=2))
    decoder.receive_data(fmt0("03", 0, 0, 20, 0) + fmt0("04", 0, 0, 20, 0))
    decoder.receive_data(fmt0("03", 0, 0, 20, 0))
    with pytest.raises(LimitExceeded, match="too many chunk stream ids: 3 > maximum 2"):
        decoder.receive_data(fmt0("05", 0, 0, 20, 0))


@pytest.mark.parametrize("name", ["max_partial_messages", "max_buffered_bytes", "max_chunk_size"])
def test_limits_must_be_positive(name: str) -> None:
    with pytest.raises(LocalProtocolError, match=name):
        ChunkLimits(**{name: 0})


def test_limit_on_chunk_size_cannot_exceed_the_protocol_maximum() -> None:
    with pytest.raises(LocalProtocolError, match="max_chunk_size"):
        ChunkLimits(max_chunk_size=0x80000000)


# --- splitting ------------------------------------------------------------------------------------

STREAM = (
    set_chunk_size(64)
    + h("06 ffffff 0000c8 09 01000000 01000000")
    + bytes(range(64))
    + h("05 000011 000046 08 01000000")  # interleaved audio on csid 5
    + bytes(range(64))
    + h("c6 01000000")  # repeated extended timestamp
    + bytes(range(64, 128))
    + h("c5")
    + bytes(range(64, 70))
    + h("c6")  # not repeated this time
    + bytes(range(128, 192))
    + h("02 000000 000004 02 00000000 00000009")  # Abort of an idle csid
    + h("c6 01000000")
    + bytes(range(192, 200))
    + h("85 000020")
    + bytes(64)
    + h("c5")
    + bytes(6)
    + h("01 0001 000000 000000 14 00000000")  # csid 320, empty command
)
STREAM_MESSAGES = [
    RawMessage(1, 0, 0, h("00000040"), 2),
    RawMessage(8, 1, 0x11, bytes(range(70)), 5),
    RawMessage(9, 1, 0x01000000, bytes(range(200)), 6),
    RawMessage(8, 1, 0x31, bytes(70), 5),
    RawMessage(20, 0, 0, b"", 320),
]


def test_golden_stream_decodes_in_one_piece() -> None:
    assert feed(STREAM) == STREAM_MESSAGES


def test_stream_split_at_every_position_gives_the_same_messages() -> None:
    for split in range(len(STREAM) + 1):
        decoder = ChunkDecoder()
        out = decoder.receive_data(STREAM[:split]) + decoder.receive_data(STREAM[split:])
        assert out == STREAM_MESSAGES, split


def test_stream_fed_byte_by_byte_gives_the_same_messages() -> None:
    decoder = ChunkDecoder()
    out: list[RawMessage] = []
    for i in range(len(STREAM)):
        out += decoder.receive_data(STREAM[i : i + 1])
    assert out == STREAM_MESSAGES
    assert decoder.bytes_received == len(STREAM)


def test_empty_data_returns_nothing() -> None:
    assert feed(b"") == []
