"""Property tests: encoders and decoder agree on any messages, chunk sizes and splits; the decoder
raises only RemoteProtocolError subclasses whatever it is fed."""

from __future__ import annotations

from collections.abc import Iterable

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from fms.errors import LocalProtocolError, RemoteProtocolError
from fms.rtmp.chunks import ChunkDecoder, ChunkEncoder, RawMessage, encode_shared
from fms.rtmp.constants import EXTENDED_TIMESTAMP

CONTROL_CSID = 2
SHARED_CSIDS = (6, 7)

timestamps = st.one_of(
    st.integers(0, 0xFFFFFFFF),
    st.integers(EXTENDED_TIMESTAMP - 3, EXTENDED_TIMESTAMP + 3),
    st.integers(0xFFFFFFFF - 3, 0xFFFFFFFF),
    st.integers(0, 1000),
)
csids = st.one_of(st.sampled_from([2, 3, 4, 63, 64, 319, 320, 65599]), st.integers(2, 65599))
# Types 1 and 2 are acted on by the decoder (chunk size, abort); they get their own tests.
type_ids = st.one_of(st.sampled_from([8, 9, 18, 20, 22]), st.integers(3, 255))
chunk_sizes = st.one_of(st.integers(1, 300), st.sampled_from([128, 4096, 0x7FFFFFFF]))


def messages(csid_strategy: st.SearchStrategy[int] = csids) -> st.SearchStrategy[RawMessage]:
    return st.builds(
        RawMessage,
        type_id=type_ids,
        stream_id=st.one_of(st.integers(0, 3), st.integers(0, 0xFFFFFFFF)),
        timestamp=timestamps,
        payload=st.binary(max_size=600),
        csid=csid_strategy,
    )


def set_chunk_size(size: int) -> RawMessage:
    return RawMessage(1, 0, 0, size.to_bytes(4, "big"), CONTROL_CSID)


def decode_in_pieces(data: bytes, cuts: Iterable[int]) -> list[RawMessage]:
    decoder = ChunkDecoder()
    decoder.enable_media()
    out: list[RawMessage] = []
    start = 0
    for cut in sorted({c % (len(data) + 1) for c in cuts} | {len(data)}):
        out += decoder.receive_data(data[start:cut])
        start = cut
    assert decoder.bytes_received == len(data)
    assert decoder.buffered_bytes == 0
    return out


@given(
    st.lists(messages(), max_size=12),
    chunk_sizes,
    st.lists(st.integers(min_value=0), max_size=20),
)
def test_connection_encoder_round_trips_through_the_decoder(
    sent: list[RawMessage], chunk_size: int, cuts: list[int]
) -> None:
    encoder = ChunkEncoder()
    data = encoder.encode(set_chunk_size(chunk_size))
    encoder.set_chunk_size(chunk_size)
    data += b"".join(encoder.encode(message) for message in sent)
    assert decode_in_pieces(data, cuts) == [set_chunk_size(chunk_size), *sent]


@given(
    st.lists(st.one_of(messages(), chunk_sizes), max_size=16),
    st.lists(st.integers(min_value=0), max_size=20),
)
def test_chunk_size_changes_mid_stream_round_trip(
    operations: list[RawMessage | int], cuts: list[int]
) -> None:
    encoder = ChunkEncoder()
    expected: list[RawMessage] = []
    data = b""
    for operation in operations:
        message = set_chunk_size(operation) if isinstance(operation, int) else operation
        data += encoder.encode(message)
        expected.append(message)
        if isinstance(operation, int):
            encoder.set_chunk_size(operation)
    assert decode_in_pieces(data, cuts) == expected


@given(
    st.lists(
        st.tuples(st.booleans(), messages(st.integers(3, 65599).filter(lambda c: c not in (6, 7)))),
        max_size=12,
    ),
    st.sampled_from(SHARED_CSIDS),
    chunk_sizes,
    st.lists(st.integers(min_value=0), max_size=20),
)
def test_shared_encoding_interleaved_with_a_connection_encoder_round_trips(
    items: list[tuple[bool, RawMessage]], shared_csid: int, chunk_size: int, cuts: list[int]
) -> None:
    encoder = ChunkEncoder()
    data = encoder.encode(set_chunk_size(chunk_size))
    encoder.set_chunk_size(chunk_size)
    expected = [set_chunk_size(chunk_size)]
    for shared, message in items:
        if shared:
            message = RawMessage(
                message.type_id, message.stream_id, message.timestamp, message.payload, shared_csid
            )
            data += encode_shared(message, chunk_size)
        else:
            data += encoder.encode(message)
        expected.append(message)
    assert decode_in_pieces(data, cuts) == expected


def encode_without_repeated_extended_timestamp(message: RawMessage, chunk_size: int) -> bytes:
    """What rtmpdump and older OBS write: fmt 0, then bare fmt 3 continuation headers."""
    assert message.csid < 64
    ext = message.timestamp >= EXTENDED_TIMESTAMP
    out = bytearray([message.csid])
    out += min(message.timestamp, EXTENDED_TIMESTAMP).to_bytes(3, "big")
    out += len(message.payload).to_bytes(3, "big") + bytes([message.type_id])
    out += message.stream_id.to_bytes(4, "little")
    if ext:
        out += message.timestamp.to_bytes(4, "big")
    for offset in range(0, max(len(message.payload), 1), chunk_size):
        if offset:
            out.append(0xC0 | message.csid)
        out += message.payload[offset : offset + chunk_size]
    return bytes(out)


@given(
    messages(st.integers(3, 63)),
    st.integers(EXTENDED_TIMESTAMP, 0xFFFFFFFF),
    st.integers(1, 200),
    st.lists(st.integers(min_value=0), max_size=10),
)
def test_continuations_without_the_repeated_extended_timestamp_round_trip(
    message: RawMessage, timestamp: int, chunk_size: int, cuts: list[int]
) -> None:
    message = RawMessage(message.type_id, 1, timestamp, message.payload, message.csid)
    marker = timestamp.to_bytes(4, "big")
    # Where a continuation chunk's payload starts with the timestamp, the two forms look alike.
    for offset in range(chunk_size, len(message.payload), chunk_size):
        assume(not marker.startswith(message.payload[offset : offset + 4]))
    data = ChunkEncoder().encode(set_chunk_size(chunk_size))
    data += encode_without_repeated_extended_timestamp(message, chunk_size)
    assert decode_in_pieces(data, cuts) == [set_chunk_size(chunk_size), message]


def assert_only_remote_protocol_errors(decoder: ChunkDecoder, data: bytes) -> None:
    """Feeding ``data`` either decodes whole messages or raises a RemoteProtocolError after
    which the decoder refuses further input (it stays in its error state)."""
    try:
        messages = decoder.receive_data(data)
    except RemoteProtocolError as exc:
        with pytest.raises((type(exc), LocalProtocolError)):
            decoder.receive_data(b"\x00")
    else:
        assert all(isinstance(m, RawMessage) for m in messages)
        assert decoder.bytes_received == len(data)


@given(st.binary(max_size=2000))
def test_arbitrary_bytes_raise_only_remote_protocol_errors(data: bytes) -> None:
    assert_only_remote_protocol_errors(ChunkDecoder(), data)


@given(
    st.lists(messages(), min_size=1, max_size=6),
    chunk_sizes,
    st.lists(st.tuples(st.integers(min_value=0), st.integers(0, 255)), min_size=1, max_size=4),
)
def test_corrupted_valid_streams_raise_only_remote_protocol_errors(
    sent: list[RawMessage], chunk_size: int, corruptions: list[tuple[int, int]]
) -> None:
    encoder = ChunkEncoder()
    data = bytearray(encoder.encode(set_chunk_size(chunk_size)))
    encoder.set_chunk_size(chunk_size)
    data += b"".join(encoder.encode(message) for message in sent)
    for position, value in corruptions:
        data[position % len(data)] = value
    assert_only_remote_protocol_errors(ChunkDecoder(), bytes(data))


@given(st.lists(st.binary(max_size=300), max_size=10), st.booleans())
def test_arbitrary_pieces_after_a_valid_start_raise_only_remote_protocol_errors(
    pieces: list[bytes], media: bool
) -> None:
    decoder = ChunkDecoder()
    if media:
        decoder.enable_media()
    decoder.receive_data(ChunkEncoder().encode(set_chunk_size(16)))
    decoder.receive_data(ChunkEncoder(16).encode(RawMessage(9, 1, 0xFFFFFF, bytes(40), 6))[:30])
    failed: type[RemoteProtocolError] | None = None
    for piece in pieces:
        try:
            decoder.receive_data(piece)
        except RemoteProtocolError as exc:
            assert failed is None or isinstance(exc, failed)
            failed = type(exc)
    assert decoder.buffered_bytes <= decoder.bytes_received
