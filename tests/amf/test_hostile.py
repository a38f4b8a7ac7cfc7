"""Malformed, truncated and hostile input: always exactly AMFDecodeError, always cheaply."""

from __future__ import annotations

import struct
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fms.amf import AMF3, AMFDecodeError, AMFLimits, decode_payload, decode_values, encode_values
from tests.amf.strategies import amf0_values, amf3_values
from tests.amf.test_golden import AMF3_CONNECT, FFMPEG_CONNECT, SET_DATA_FRAME

END = b"\x00\x00\x09"
HUGE = AMFLimits(
    max_depth=1 << 30,
    max_entries=1 << 30,
    max_string=1 << 30,
    max_total_items=1 << 30,
    max_total_bytes=1 << 30,
)
"""Limits out of the way, to show that the bytes-present checks alone stop a lie."""


def decode_or_error(data: bytes, **kwargs: Any) -> list[Any] | None:
    """Decode; None if AMFDecodeError. Any other exception fails the test."""
    try:
        return decode_payload(data, **kwargs)
    except AMFDecodeError:
        return None


def assert_decodes_or_refuses(data: bytes, **kwargs: Any) -> None:
    """Arbitrary input gives a list of values or AMFDecodeError, and nothing else."""
    result = decode_or_error(data, **kwargs)
    assert result is None or isinstance(result, list)


def peak_allocation(action: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        action()
    except AMFDecodeError:
        pass
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return peak


# -- arbitrary and mutated bytes ----------------------------------------------------------


@given(st.binary(max_size=256), st.booleans())
def test_arbitrary_bytes_raise_only_amf_decode_error(data: bytes, amf3_form: bool) -> None:
    assert_decodes_or_refuses(data, amf3_form=amf3_form)


@given(st.binary(max_size=256))
def test_arbitrary_bytes_after_an_amf3_switch_raise_only_amf_decode_error(data: bytes) -> None:
    assert_decodes_or_refuses(b"\x11" + data)


@given(amf0_values(), st.data())
def test_mutated_valid_payloads_raise_only_amf_decode_error(
    value: Any, data: st.DataObject
) -> None:
    payload = bytearray(encode_values([value]))
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(payload)))
        action = data.draw(st.sampled_from(["flip", "insert", "delete"]))
        if action == "insert" or position == len(payload):
            payload.insert(position, data.draw(st.integers(0, 255)))
        elif action == "flip":
            payload[position] ^= 1 << data.draw(st.integers(0, 7))
        else:
            del payload[position]
    assert_decodes_or_refuses(bytes(payload))


# -- truncation ---------------------------------------------------------------------------


@given(st.one_of(amf0_values(), amf3_values().map(AMF3)))
def test_every_truncation_of_one_value_raises(value: Any) -> None:
    payload = encode_values([value])
    for cut in range(1, len(payload)):
        with pytest.raises(AMFDecodeError):
            decode_values(payload[:cut])


@pytest.mark.parametrize(
    ("payload", "amf3_form"),
    [(FFMPEG_CONNECT, False), (SET_DATA_FRAME, False), (AMF3_CONNECT, True)],
    ids=["ffmpeg-connect", "set-data-frame", "amf3-connect"],
)
def test_every_truncation_of_a_command_raises_or_gives_a_prefix_of_its_values(
    payload: bytes, amf3_form: bool
) -> None:
    full = decode_payload(payload, amf3_form=amf3_form)
    for cut in range(1 if amf3_form else 0, len(payload)):
        partial = decode_or_error(payload[:cut], amf3_form=amf3_form)
        assert partial is None or (len(partial) < len(full) and partial == full[: len(partial)])


# -- lying lengths and counts -------------------------------------------------------------

LIES = {
    "amf0-strict-array": b"\x0a\x10\x00\x00\x00\x05\x05",
    "amf0-long-string": b"\x0c\xff\xff\xff\xff" + b"a" * 5,
    "amf0-string": b"\x02\xff\xffabc",
    "amf0-xml-document": b"\x0f\xff\xff\xff\xff<a/>",
    "amf3-dense-array": b"\x11\x09\xff\xff\xff\xff\x01\x01",
    "amf3-string": b"\x11\x06\xff\xff\xff\xff",
    "amf3-byte-array": b"\x11\x0c\xff\xff\xff\xff\x00",
    "amf3-xml": b"\x11\x0b\xff\xff\xff\xff<",
    "amf3-vector-int": b"\x11\x0d\xff\xff\xff\xff\x00\x00\x00\x00\x01",
    "amf3-vector-double": b"\x11\x0f\xff\xff\xff\xff\x00",
    "amf3-vector-object": b"\x11\x10\xff\xff\xff\xff\x00\x01\x01",
    "amf3-dictionary": b"\x11\x11\xff\xff\xff\xff\x00\x01\x01",
    "amf3-sealed-members": b"\x11\x0a\xff\xff\xff\xf3\x01\x03a",
}


@pytest.mark.parametrize("payload", LIES.values(), ids=LIES.keys())
def test_huge_announced_size_fails_before_allocating(payload: bytes) -> None:
    assert peak_allocation(lambda: decode_values(payload, limits=HUGE)) < 64 * 1024
    with pytest.raises(AMFDecodeError):
        decode_values(payload, limits=HUGE)


def test_strict_array_of_2_to_the_28_elements_in_10_bytes_fails_on_max_entries() -> None:
    with pytest.raises(AMFDecodeError, match="max_entries"):
        decode_values(b"\x0a" + struct.pack(">I", 1 << 28) + b"\x05" * 5)


def test_strict_array_count_beyond_the_bytes_left_fails_with_a_clear_reason() -> None:
    with pytest.raises(AMFDecodeError, match="only 5 bytes are left"):
        decode_values(b"\x0a" + struct.pack(">I", 1 << 28) + b"\x05" * 5, limits=HUGE)


# -- nesting ------------------------------------------------------------------------------

DEEP = 100_000
NESTINGS = {
    "amf0-objects": b"\x03" + b"\x00\x01a\x03" * DEEP,
    "amf0-ecma-arrays": b"\x08\x00\x00\x00\x01" + b"\x00\x01a\x08\x00\x00\x00\x01" * DEEP,
    "amf0-typed-objects": b"\x10\x00\x01T" + b"\x00\x01a\x10\x00\x01T" * DEEP,
    "amf0-strict-arrays": b"\x0a\x00\x00\x00\x01" * DEEP,
    "amf3-arrays": b"\x11" + b"\x09\x03\x01" * DEEP,
    "amf3-objects": b"\x11" + b"\x0a\x0b\x01\x03a" * DEEP,
    "amf3-object-vectors": b"\x11" + b"\x10\x03\x00\x01" * DEEP,
    "amf3-dictionaries": b"\x11" + b"\x11\x03\x00\x01" * DEEP,
}


@pytest.mark.parametrize("payload", NESTINGS.values(), ids=NESTINGS.keys())
def test_100000_levels_of_nesting_fail_fast_at_max_depth(payload: bytes) -> None:
    started = time.perf_counter()
    with pytest.raises(AMFDecodeError, match="max_depth=32"):
        decode_values(payload)
    assert time.perf_counter() - started < 0.5


def test_100000_levels_decode_without_recursion_when_the_limit_allows() -> None:
    """The decoder's own stack, not Python's: no RecursionError at any configured depth."""
    [outer] = decode_values(b"\x0a\x00\x00\x00\x01" * DEEP + b"\x05", limits=HUGE)
    depth = 0
    while outer is not None:
        (outer,) = outer
        depth += 1
    assert depth == DEEP


# -- references ---------------------------------------------------------------------------

BAD_REFERENCES = {
    "amf0-out-of-range": b"\x07\x00\x00",
    "amf0-past-the-table": b"\x03\x00\x01a\x07\x00\x01" + END,
    "amf0-to-itself": b"\x03\x00\x01a\x07\x00\x00" + END,
    "amf0-to-its-parent": b"\x0a\x00\x00\x00\x01\x03\x00\x01a\x07\x00\x00" + END,
    "amf3-object-out-of-range": b"\x11\x0a\x02",
    "amf3-object-to-itself": b"\x11\x0a\x0b\x01\x03a\x0a\x00\x01",
    "amf3-array-to-itself": b"\x11\x09\x03\x01\x09\x00",
    "amf3-dictionary-key-to-itself": b"\x11\x11\x03\x00\x11\x00\x01",
    "amf3-string-out-of-range": b"\x11\x06\x00",
    "amf3-traits-out-of-range": b"\x11\x0a\x01",
    "amf3-date-out-of-range": b"\x11\x08\x04",
    "amf3-byte-array-out-of-range": b"\x11\x0c\x00",
}


@pytest.mark.parametrize("payload", BAD_REFERENCES.values(), ids=BAD_REFERENCES.keys())
def test_bad_reference_raises(payload: bytes) -> None:
    with pytest.raises(AMFDecodeError, match="reference"):
        decode_values(payload)


def test_references_cannot_amplify_items_past_the_total() -> None:
    """A thousand references to a thousand-element array would be a million values."""
    payload = b"\x0a" + struct.pack(">I", 1000) + b"\x05" * 1000
    payload += b"\x0a" + struct.pack(">I", 1000) + b"\x07\x00\x00" * 1000
    with pytest.raises(AMFDecodeError, match="max_total_items"):
        decode_values(payload)


def test_string_references_cannot_amplify_bytes_past_the_total() -> None:
    """60 kB of text referenced a thousand times would be 60 MB for whoever walks it."""
    text = b"\x06" + bytes((0x87, 0xA9, 0x41)) + b"a" * 60_000  # U29 length 60000 << 1 | 1
    payload = b"\x11\x09" + bytes((0x8F, 0x51)) + b"\x01" + text + b"\x06\x00" * 999
    with pytest.raises(AMFDecodeError, match="max_total_bytes"):
        decode_values(payload)


def test_references_cannot_nest_past_max_depth() -> None:
    """Twenty levels, referenced at the bottom of another twenty, are forty levels deep."""
    twenty = b"\x0a\x00\x00\x00\x01" * 20 + b"\x05"
    payload = twenty + b"\x0a\x00\x00\x00\x01" * 20 + b"\x07\x00\x00"
    with pytest.raises(AMFDecodeError, match="max_depth"):
        decode_values(payload)


# -- markers, text and other malformations ------------------------------------------------

BAD_INPUT = {
    "amf0-movieclip": b"\x04",
    "amf0-recordset": b"\x0e",
    "amf0-object-end-as-a-value": b"\x09",
    "amf0-unknown-marker": b"\x12",
    "amf0-high-marker": b"\xff",
    "amf3-unknown-marker": b"\x11\x12",
    "amf0-invalid-utf8": b"\x02\x00\x02\xc3\x28",
    "amf0-surrogate-utf8": b"\x02\x00\x03\xed\xa0\x80",
    "amf3-invalid-utf8": b"\x11\x06\x03\xff",
    "amf0-object-missing-end": b"\x03\x00\x01a\x05",
    "amf0-object-end-marker-after-a-key": b"\x03\x00\x01a\x09",
    "amf0-nan-date": b"\x0b\x7f\xf8\x00\x00\x00\x00\x00\x00\x00\x00",
    "amf0-infinite-date": b"\x0b\x7f\xf0\x00\x00\x00\x00\x00\x00\x00\x00",
    "amf0-date-past-year-9999": b"\x0b\x43\x30\x00\x00\x00\x00\x00\x00\x00\x00",
    "amf3-nan-date": b"\x11\x08\x01\x7f\xf8\x00\x00\x00\x00\x00\x00",
    "amf3-unknown-externalizable": b"\x11\x0a\x07\x07a.B\x01",
    "amf3-array-collection-of-an-object": (
        b"\x11\x0a\x07\x43flex.messaging.io.ArrayCollection\x0a\x0b\x01\x01"
    ),
    "amf3-object-proxy-of-an-array": b"\x11\x0a\x07\x3bflex.messaging.io.ObjectProxy\x09\x01\x01",
}


@pytest.mark.parametrize("payload", BAD_INPUT.values(), ids=BAD_INPUT.keys())
def test_malformed_input_raises(payload: bytes) -> None:
    with pytest.raises(AMFDecodeError):
        decode_values(payload)


def test_error_reports_the_offset_of_the_problem() -> None:
    with pytest.raises(AMFDecodeError) as caught:
        decode_values(b"\x05\x05\x12")
    assert caught.value.offset == 2


def test_nan_and_infinity_numbers_are_legal_values() -> None:
    payload = b"\x00\x7f\xf8\x00\x00\x00\x00\x00\x00\x00\x7f\xf0\x00\x00\x00\x00\x00\x00"
    nan, infinity = decode_values(payload)
    assert nan != nan
    assert infinity == float("inf")


def test_amf3_form_without_a_format_selector_raises() -> None:
    with pytest.raises(AMFDecodeError, match="format selector"):
        decode_payload(b"", amf3_form=True)


def test_amf3_form_with_an_unknown_format_selector_raises() -> None:
    with pytest.raises(AMFDecodeError, match="format selector 0x02"):
        decode_payload(b"\x02\x00\x07connect", amf3_form=True)
