"""AMFLimits: validated, and each limit enforced at its boundary in AMF0 and AMF3."""

from __future__ import annotations

import dataclasses
import struct

import pytest

from fms.amf import AMFDecodeError, AMFLimits, decode_values

END = b"\x00\x00\x09"


def nested_arrays(depth: int) -> bytes:
    return b"\x0a\x00\x00\x00\x01" * depth + b"\x05"


def object_with_members(count: int) -> bytes:
    return b"\x03" + b"".join(b"\x00\x02" + b"%02x" % i + b"\x05" for i in range(count)) + END


def test_defaults_match_the_documented_values() -> None:
    limits = AMFLimits()
    assert (limits.max_depth, limits.max_entries) == (32, 1024)
    assert (limits.max_string, limits.max_total_items, limits.max_total_bytes) == (
        1 << 20,
        1 << 16,
        1 << 22,
    )


@pytest.mark.parametrize("field", [f.name for f in dataclasses.fields(AMFLimits)])
@pytest.mark.parametrize("bad", [0, -1, True, 1.5, None])
def test_limit_below_one_or_not_an_int_is_refused(field: str, bad: object) -> None:
    with pytest.raises(ValueError, match=field):
        AMFLimits(**{field: bad})  # type: ignore[arg-type]


def test_limits_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        AMFLimits().max_depth = 1  # type: ignore[misc]


def test_max_depth_allows_exactly_max_depth_levels() -> None:
    assert decode_values(nested_arrays(32)) is not None
    with pytest.raises(AMFDecodeError, match="max_depth=32"):
        decode_values(nested_arrays(33))


def test_max_depth_is_configurable_beyond_python_recursion() -> None:
    (value,) = decode_values(nested_arrays(5000), limits=AMFLimits(max_depth=5000))
    depth = 0
    while isinstance(value, list):  # walked iteratively: no recursion limit here either
        value = value[0] if value else None
        depth += 1
    assert depth == 5000


def test_max_depth_counts_amf3_levels_after_a_switch() -> None:
    payload = b"\x0a\x00\x00\x00\x01" * 2 + b"\x11" + b"\x09\x03\x01" * 2 + b"\x01"
    decode_values(payload, limits=AMFLimits(max_depth=4))
    with pytest.raises(AMFDecodeError, match="max_depth=3"):
        decode_values(payload, limits=AMFLimits(max_depth=3))


def test_max_entries_bounds_object_members() -> None:
    decode_values(object_with_members(3), limits=AMFLimits(max_entries=3))
    with pytest.raises(AMFDecodeError, match="max_entries=2"):
        decode_values(object_with_members(3), limits=AMFLimits(max_entries=2))


def test_max_entries_bounds_strict_arrays() -> None:
    payload = b"\x0a" + struct.pack(">I", 3) + b"\x05" * 3
    with pytest.raises(AMFDecodeError, match="max_entries=2"):
        decode_values(payload, limits=AMFLimits(max_entries=2))


def test_max_entries_counts_both_parts_of_an_amf3_array() -> None:
    payload = b"\x11\x09\x05\x03a\x01\x03b\x01\x01\x01\x01"
    decode_values(payload, limits=AMFLimits(max_entries=4))
    with pytest.raises(AMFDecodeError, match="max_entries=3"):
        decode_values(payload, limits=AMFLimits(max_entries=3))


def test_max_string_bounds_one_string() -> None:
    payload = b"\x02\x00\x04abcd"
    decode_values(payload, limits=AMFLimits(max_string=4))
    with pytest.raises(AMFDecodeError, match="max_string=3"):
        decode_values(payload, limits=AMFLimits(max_string=3))


def test_max_string_bounds_byte_arrays() -> None:
    with pytest.raises(AMFDecodeError, match="max_string=3"):
        decode_values(b"\x11\x0c\x09abcd", limits=AMFLimits(max_string=3))


def test_max_total_items_bounds_the_whole_payload() -> None:
    payload = b"\x05" * 10
    decode_values(payload, limits=AMFLimits(max_total_items=10))
    with pytest.raises(AMFDecodeError, match="max_total_items=9"):
        decode_values(payload, limits=AMFLimits(max_total_items=9))


def test_max_total_bytes_bounds_the_text_of_the_whole_payload() -> None:
    payload = b"\x02\x00\x03abc" * 3
    decode_values(payload, limits=AMFLimits(max_total_bytes=9))
    with pytest.raises(AMFDecodeError, match="max_total_bytes=8"):
        decode_values(payload, limits=AMFLimits(max_total_bytes=8))


def test_a_reference_costs_what_it_points_to() -> None:
    """The array (1 + 3 nulls) is 4 items; a reference to it adds 4 more; top array 1."""
    payload = b"\x0a\x00\x00\x00\x02\x0a\x00\x00\x00\x03\x05\x05\x05\x07\x00\x01"
    decode_values(payload, limits=AMFLimits(max_total_items=9))
    with pytest.raises(AMFDecodeError, match="max_total_items=8"):
        decode_values(payload, limits=AMFLimits(max_total_items=8))
