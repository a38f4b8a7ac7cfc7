"""ChunkDecoder limits at their exact boundaries, and the bookkeeping behind them.

The partial-message and buffered-byte limits are only as good as their counters: a slot freed
twice, or not at all, moves the limit. Each test here pins one such count or boundary; they were
written to kill the mutants of ``scripts/mutate.py`` that survived tests/rtmp/test_chunks.py
(see docs/testing.md).
"""

from __future__ import annotations

from typing import Any

import pytest

from fms.errors import LocalProtocolError
from fms.rtmp.chunks import ChunkDecoder, ChunkLimits, RawMessage
from fms.rtmp.errors import LimitExceeded


def fmt0(csid: int, length: int, type_id: int = 20, timestamp: int = 0) -> bytes:
    """A fmt 0 header on ``csid`` (2..63), message stream 0."""
    return (
        bytes((csid,))
        + timestamp.to_bytes(3, "big")
        + length.to_bytes(3, "big")
        + bytes((type_id,))
        + bytes(4)
    )


def fmt3(csid: int) -> bytes:
    return bytes((0xC0 | csid,))


def abort(csid: int) -> bytes:
    """An Abort message (type 2) on csid 2 naming ``csid``."""
    return fmt0(2, 4, type_id=2) + csid.to_bytes(4, "big")


def set_chunk_size(size: int) -> bytes:
    return fmt0(2, 4, type_id=1) + size.to_bytes(4, "big")


def open_partial(csid: int) -> bytes:
    """The first of two chunks of a 200-byte message: leaves it in progress (chunk size 128)."""
    return fmt0(csid, 200) + bytes(128)


# --- the limits' own validation ------------------------------------------------------------


def test_a_limit_that_is_not_an_int_is_refused() -> None:
    """A float (from a hand-written config, say) would compare fine but is not a byte count."""
    with pytest.raises(LocalProtocolError, match="max_buffered_bytes must be a positive int"):
        ChunkLimits(max_buffered_bytes=1000.5)  # type: ignore[arg-type]


# --- buffered bytes ------------------------------------------------------------------------


def test_exactly_max_buffered_bytes_of_partial_payload_is_accepted() -> None:
    """The buffered-bytes limit is a maximum, not a bound to stay under: a 1000-byte message
    in ten 100-byte chunks, with 1000 bytes allowed, completes."""
    decoder = ChunkDecoder(ChunkLimits(max_buffered_bytes=1000))
    decoder.receive_data(set_chunk_size(100))
    data = fmt0(3, 1000) + bytes(100) + b"".join(fmt3(3) + bytes(100) for _ in range(9))
    assert decoder.receive_data(data)[-1].payload == bytes(1000)
    assert decoder.buffered_bytes == 0


def test_a_message_of_exactly_the_chunk_size_arriving_whole_is_not_buffered() -> None:
    """A message in one chunk and one read goes out without being copied into a buffer, so it
    does not count against ``max_buffered_bytes`` even when larger than that limit."""
    decoder = ChunkDecoder(ChunkLimits(max_buffered_bytes=127))
    assert decoder.receive_data(fmt0(3, 128) + bytes(128)) == [RawMessage(20, 0, 0, bytes(128), 3)]


# --- partial-message slots -----------------------------------------------------------------


def test_a_completed_message_frees_exactly_one_partial_slot() -> None:
    decoder = ChunkDecoder(ChunkLimits(max_partial_messages=1))
    decoder.receive_data(open_partial(3) + fmt3(3) + bytes(72))  # in progress, then complete
    decoder.receive_data(open_partial(4))
    with pytest.raises(LimitExceeded, match="partial message: 2 > maximum 1"):
        decoder.receive_data(open_partial(5))


def test_an_abort_frees_exactly_one_partial_slot() -> None:
    decoder = ChunkDecoder(ChunkLimits(max_partial_messages=1))
    decoder.receive_data(open_partial(3) + abort(3))
    decoder.receive_data(open_partial(4))  # the aborted message's slot is free again
    with pytest.raises(LimitExceeded, match="partial message: 2 > maximum 1"):
        decoder.receive_data(open_partial(5))


def test_an_abort_of_a_chunk_stream_without_a_message_in_progress_frees_no_slot() -> None:
    decoder = ChunkDecoder(ChunkLimits(max_partial_messages=1))
    decoder.receive_data(fmt0(3, 1) + b"x")  # csid 3 is known, its message complete
    decoder.receive_data(open_partial(4) + abort(3))
    with pytest.raises(LimitExceeded, match="partial message: 2 > maximum 1"):
        decoder.receive_data(open_partial(5))


def test_after_an_abort_the_next_message_on_that_chunk_stream_starts_empty() -> None:
    """The aborted payload is dropped, not kept to prefix the next message (which arrives in
    two reads here, so that it is buffered too)."""
    decoder = ChunkDecoder()
    decoder.receive_data(open_partial(3) + abort(3))
    assert decoder.buffered_bytes == 0
    assert decoder.receive_data(fmt0(3, 5) + b"fr") == []
    assert decoder.receive_data(b"esh") == [RawMessage(20, 0, 0, b"fresh", 3)]


# --- failure and input buffers -------------------------------------------------------------


def test_after_an_internal_error_the_decoder_stays_failed_with_a_local_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An exception that is not the peer's fault (a bug of ours, simulated here) fails the
    decoder too: later data is refused as our error, never parsed from a broken state."""
    decoder = ChunkDecoder()

    def broken(*args: Any) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr(decoder, "_deliver", broken)
    with pytest.raises(RuntimeError):
        decoder.receive_data(fmt0(3, 1) + b"x")
    monkeypatch.undo()
    with pytest.raises(LocalProtocolError, match="chunk decoder already failed: bug"):
        decoder.receive_data(fmt0(4, 1) + b"y")


def test_payloads_do_not_alias_the_callers_buffer() -> None:
    """Data passed as a memoryview is copied: a caller that reuses its read buffer afterwards
    changes neither the returned payloads nor the bytes kept for an incomplete header."""
    buffer = bytearray(fmt0(3, 3) + b"abc" + fmt0(4, 3)[:5])
    decoder = ChunkDecoder()
    messages = decoder.receive_data(memoryview(buffer))
    buffer[:] = bytes(len(buffer))
    assert messages == [RawMessage(20, 0, 0, b"abc", 3)]
    assert type(messages[0].payload) is bytes
    assert decoder.receive_data(fmt0(4, 3)[5:] + b"def") == [RawMessage(20, 0, 0, b"def", 4)]
