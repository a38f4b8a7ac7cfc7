"""Encoder choices and refusals that the round trips do not show on their own."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from fms.amf import (
    AMF3,
    XML,
    AMFEncodeError,
    ByteArray,
    ECMAArray,
    TypedObject,
    Vector,
    VectorKind,
    decode_values,
    encode_payload,
    encode_values,
)

END = b"\x00\x00\x09"


def test_plain_dict_is_an_amf0_object() -> None:
    assert encode_values([{"a": None}]) == b"\x03\x00\x01a\x05" + END


def test_ecma_array_carries_its_entry_count() -> None:
    assert encode_values([ECMAArray(a=None, b=None)]) == (
        b"\x08\x00\x00\x00\x02\x00\x01a\x05\x00\x01b\x05" + END
    )


def test_string_of_65535_bytes_is_a_short_string() -> None:
    assert encode_values(["a" * 0xFFFF])[:3] == b"\x02\xff\xff"


def test_string_of_65536_bytes_is_a_long_string() -> None:
    assert encode_values(["a" * 0x10000])[:5] == b"\x0c\x00\x01\x00\x00"


def test_string_length_counts_utf8_bytes_not_characters() -> None:
    assert encode_values(["\u00e9"]) == b"\x02\x00\x02\xc3\xa9"


def test_amf0_integers_are_numbers() -> None:
    assert encode_values([3]) == b"\x00\x40\x08\x00\x00\x00\x00\x00\x00"


def test_amf0_integer_that_a_double_cannot_hold_exactly_is_refused() -> None:
    with pytest.raises(AMFEncodeError, match="exactly"):
        encode_values([2**53 + 1])


def test_amf3_integer_beyond_29_bits_is_a_double() -> None:
    assert encode_values([AMF3(-(2**28) - 1)])[:2] == b"\x11\x05"


def test_tuple_is_a_strict_array() -> None:
    assert encode_values([(None,)]) == b"\x0a\x00\x00\x00\x01\x05"


def test_shared_value_is_written_twice_without_references() -> None:
    shared = {"a": None}
    once = b"\x03\x00\x01a\x05" + END
    assert encode_values([[shared, shared]]) == b"\x0a\x00\x00\x00\x02" + once + once


def test_xml_is_an_xml_document_in_amf0() -> None:
    assert encode_values([XML("<a/>")]) == b"\x0f\x00\x00\x00\x04<a/>"


def test_aware_datetime_in_any_zone_is_written_as_utc() -> None:
    paris = datetime(1970, 1, 1, 1, tzinfo=timezone(timedelta(hours=1)))
    assert encode_values([paris]) == b"\x0b" + b"\x00" * 10


def test_amf3_form_payload_starts_with_format_selector_zero() -> None:
    assert encode_payload([None], amf3_form=True) == b"\x00\x05"


def test_typed_object_with_only_sealed_members_is_not_dynamic() -> None:
    value = TypedObject("a.B", {"x": 1}, sealed=["x"])
    assert encode_values([AMF3(value)]) == b"\x11\x0a\x13\x07a.B\x03x\x04\x01"


def test_amf3_only_types_in_amf0_point_to_the_wrapper() -> None:
    with pytest.raises(AMFEncodeError, match=r"wrap it in AMF3\(\)"):
        encode_values([ByteArray(b"x")])


REFUSED: dict[str, Any] = {
    "naive-datetime": datetime(2020, 1, 1),
    "non-string-key": {1: None},
    "cycle": [],
    "lone-surrogate": "\ud800",
    "set": {1},
    "object": object(),
    "long-key": {"k" * 0x10000: None},
    "long-class-name": TypedObject("c" * 0x10000),
}
REFUSED["cycle"].append(REFUSED["cycle"])


@pytest.mark.parametrize("value", REFUSED.values(), ids=REFUSED.keys())
def test_unencodable_value_raises_amf_encode_error_in_amf0(value: Any) -> None:
    with pytest.raises(AMFEncodeError):
        encode_values([value])


REFUSED_AMF3: dict[str, Any] = {
    "empty-member-name": {"": None},
    "empty-ecma-key": ECMAArray({"": None}),
    "sealed-member-without-value": TypedObject("a.B", sealed=["x"]),
    "int-vector-item-out-of-range": Vector(VectorKind.INT, [2**31]),
    "uint-vector-negative-item": Vector(VectorKind.UINT, [-1]),
    "double-vector-string-item": Vector(VectorKind.DOUBLE, ["x"]),
    "cycle-through-a-dictionary": None,
}
_dictionary_cycle: dict[str, Any] = {}
_dictionary_cycle["self"] = Vector(VectorKind.OBJECT, [_dictionary_cycle])
REFUSED_AMF3["cycle-through-a-dictionary"] = _dictionary_cycle


@pytest.mark.parametrize("value", REFUSED_AMF3.values(), ids=REFUSED_AMF3.keys())
def test_unencodable_value_raises_amf_encode_error_in_amf3(value: Any) -> None:
    with pytest.raises(AMFEncodeError):
        encode_values([AMF3(value)])


def test_100000_levels_encode_without_recursion() -> None:
    value: Any = None
    for _ in range(100_000):
        value = [value]
    payload = encode_values([value])
    assert payload == b"\x0a\x00\x00\x00\x01" * 100_000 + b"\x05"


def test_encoded_deep_value_decodes_back() -> None:
    value: Any = None
    for _ in range(32):
        value = {"a": value}
    assert decode_values(encode_values([value])) == [value]
