"""Golden bytes, written out by hand from the AMF0/AMF3 layouts, decoded and re-encoded.

Each payload is spelled as marker bytes, big-endian lengths and the ASCII text they frame, so a
reader can check it against the specifications without running any encoder.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from fms.amf import (
    AMF3,
    UNDEFINED,
    XML,
    AMF3Dictionary,
    ArrayCollection,
    ByteArray,
    ECMAArray,
    TypedObject,
    Vector,
    VectorKind,
    XMLDocument,
    decode_payload,
    decode_values,
    encode_payload,
    encode_values,
)
from tests.amf.strategies import same

ONE = b"\x3f\xf0\x00\x00\x00\x00\x00\x00"  # 1.0
ZERO = b"\x00" * 8  # 0.0
END = b"\x00\x00\x09"  # empty key + object-end-marker

FFMPEG_CONNECT = (
    b"\x02\x00\x07connect"
    b"\x00" + ONE + b"\x03"
    b"\x00\x03app"
    b"\x02\x00\x04live"
    b"\x00\x04type"
    b"\x02\x00\x0anonprivate"
    b"\x00\x08flashVer"
    b"\x02\x00\x23FMLE/3.0 (compatible; Lavf61.7.100)"
    b"\x00\x05tcUrl"
    b"\x02\x00\x1artmp://localhost:1935/live" + END
)
"""The ``connect`` FFmpeg sends when publishing (libavformat rtmpproto.c, gen_connect)."""

FFMPEG_CONNECT_VALUES = [
    "connect",
    1.0,
    {
        "app": "live",
        "type": "nonprivate",
        "flashVer": "FMLE/3.0 (compatible; Lavf61.7.100)",
        "tcUrl": "rtmp://localhost:1935/live",
    },
]

CONNECT_RESULT = (
    b"\x02\x00\x07_result"
    b"\x00" + ONE + b"\x03"
    b"\x00\x06fmsVer"
    b"\x02\x00\x0dFMS/3,0,1,123"
    b"\x00\x0ccapabilities"
    b"\x00\x40\x3f\x00\x00\x00\x00\x00\x00" + END + b"\x03"
    b"\x00\x05level"
    b"\x02\x00\x06status"
    b"\x00\x04code"
    b"\x02\x00\x1dNetConnection.Connect.Success"
    b"\x00\x0bdescription"
    b"\x02\x00\x15Connection succeeded."
    b"\x00\x0eobjectEncoding"
    b"\x00" + ZERO + END
)

CONNECT_RESULT_VALUES = [
    "_result",
    1.0,
    {"fmsVer": "FMS/3,0,1,123", "capabilities": 31.0},
    {
        "level": "status",
        "code": "NetConnection.Connect.Success",
        "description": "Connection succeeded.",
        "objectEncoding": 0.0,
    },
]

PUBLISH_ON_STATUS = (
    b"\x02\x00\x08onStatus"
    b"\x00" + ZERO + b"\x05"
    b"\x03"
    b"\x00\x05level"
    b"\x02\x00\x06status"
    b"\x00\x04code"
    b"\x02\x00\x17NetStream.Publish.Start"
    b"\x00\x0bdescription"
    b"\x02\x00\x10Start publishing" + END
)

PUBLISH_ON_STATUS_VALUES = [
    "onStatus",
    0.0,
    None,
    {"level": "status", "code": "NetStream.Publish.Start", "description": "Start publishing"},
]

SET_DATA_FRAME = (
    b"\x02\x00\x0d@setDataFrame"
    b"\x02\x00\x0aonMetaData"
    b"\x08\x00\x00\x00\x03"
    b"\x00\x08duration"
    b"\x00" + ZERO + b"\x00\x05width"
    b"\x00\x40\x94\x00\x00\x00\x00\x00\x00"
    b"\x00\x07encoder"
    b"\x02\x00\x0cLavf61.7.100" + END
)
"""FFmpeg's ``@setDataFrame``: the metadata is an ECMA array (0x08) with its entry count."""

SET_DATA_FRAME_VALUES = [
    "@setDataFrame",
    "onMetaData",
    ECMAArray(duration=0.0, width=1280.0, encoder="Lavf61.7.100"),
]

AMF3_CONNECT = (
    b"\x00"  # format selector
    b"\x02\x00\x07connect"
    b"\x00" + ONE + b"\x11\x0a\x0b\x01"  # switch; object, inline dynamic traits, class ""
    b"\x07app"
    b"\x06\x09live"  # strings 0 "app", 1 "live"
    b"\x1dobjectEncoding"
    b"\x04\x03"  # string 2; integer 3
    b"\x09name"
    b"\x06\x02"  # string 3; value: string reference 1 ("live")
    b"\x01"  # empty name: end of dynamic members
    b"\x11\x06\x00"  # a second switch: string reference 0 ("app"), tables span the payload
)
"""An AMF3-form (type 17) command: AMF0 name and transaction id, AMF3 command object."""

AMF3_CONNECT_VALUES = [
    "connect",
    1.0,
    {"app": "live", "objectEncoding": 3, "name": "live"},
    "app",
]


@pytest.mark.parametrize(
    ("payload", "values"),
    [
        (FFMPEG_CONNECT, FFMPEG_CONNECT_VALUES),
        (CONNECT_RESULT, CONNECT_RESULT_VALUES),
        (PUBLISH_ON_STATUS, PUBLISH_ON_STATUS_VALUES),
        (SET_DATA_FRAME, SET_DATA_FRAME_VALUES),
    ],
    ids=["ffmpeg-connect", "connect-result", "publish-onstatus", "set-data-frame"],
)
def test_amf0_command_decodes_to_its_values(payload: bytes, values: list[Any]) -> None:
    assert same(values, decode_payload(payload))


@pytest.mark.parametrize(
    ("payload", "values"),
    [
        (FFMPEG_CONNECT, FFMPEG_CONNECT_VALUES),
        (CONNECT_RESULT, CONNECT_RESULT_VALUES),
        (PUBLISH_ON_STATUS, PUBLISH_ON_STATUS_VALUES),
        (SET_DATA_FRAME, SET_DATA_FRAME_VALUES),
    ],
    ids=["ffmpeg-connect", "connect-result", "publish-onstatus", "set-data-frame"],
)
def test_amf0_command_encodes_to_the_same_bytes(payload: bytes, values: list[Any]) -> None:
    assert encode_payload(values) == payload


def test_amf3_form_command_decodes_with_string_references_across_switches() -> None:
    assert same(AMF3_CONNECT_VALUES, decode_payload(AMF3_CONNECT, amf3_form=True))


def test_amf3_form_command_encodes_with_selector_and_inline_strings() -> None:
    values = ["connect", 1.0, AMF3({"app": "live", "objectEncoding": 3})]
    assert encode_payload(values, amf3_form=True) == (
        b"\x00\x02\x00\x07connect\x00" + ONE + b"\x11\x0a\x0b\x01"
        b"\x07app\x06\x09live\x1dobjectEncoding\x04\x03\x01"
    )


# -- AMF0 types ---------------------------------------------------------------------------

AMF0_CASES: list[tuple[str, bytes, Any]] = [
    ("number", b"\x00\x40\x09\x21\xfb\x54\x44\x2d\x18", 3.141592653589793),
    ("false", b"\x01\x00", False),
    ("true", b"\x01\x01", True),
    ("string", b"\x02\x00\x03abc", "abc"),
    ("utf8-string", b"\x02\x00\x02\xc3\xa9", "\u00e9"),
    ("null", b"\x05", None),
    ("undefined", b"\x06", UNDEFINED),
    ("ecma-array", b"\x08\x00\x00\x00\x01\x00\x01k\x05" + END, ECMAArray(k=None)),
    ("strict-array", b"\x0a\x00\x00\x00\x02\x05\x06", [None, UNDEFINED]),
    ("date", b"\x0b\x42\x76\xf5\xe6\x6e\x80\x00\x00\x00\x00", datetime(2020, 1, 1, tzinfo=UTC)),
    ("xml-document", b"\x0f\x00\x00\x00\x04<a/>", XMLDocument("<a/>")),
    ("typed-object", b"\x10\x00\x03a.B\x00\x01x\x01\x01" + END, TypedObject("a.B", {"x": True})),
    ("empty-object", b"\x03" + END, {}),
]


@pytest.mark.parametrize(
    ("payload", "value"), [c[1:] for c in AMF0_CASES], ids=[c[0] for c in AMF0_CASES]
)
def test_amf0_value_decodes(payload: bytes, value: Any) -> None:
    assert same([value], decode_values(payload))


@pytest.mark.parametrize(
    ("payload", "value"), [c[1:] for c in AMF0_CASES], ids=[c[0] for c in AMF0_CASES]
)
def test_amf0_value_encodes(payload: bytes, value: Any) -> None:
    assert encode_values([value]) == payload


def test_amf0_long_string_decodes() -> None:
    assert decode_values(b"\x0c\x00\x01\x00\x00" + b"a" * 65536) == ["a" * 65536]


def test_amf0_boolean_nonzero_byte_is_true() -> None:
    assert decode_values(b"\x01\x02") == [True]


def test_amf0_unsupported_marker_decodes_as_undefined() -> None:
    assert decode_values(b"\x0d") == [UNDEFINED]


def test_amf0_date_ignores_the_time_zone_field() -> None:
    [value] = decode_values(b"\x0b" + ZERO + b"\x01\xe0")
    assert value == datetime(1970, 1, 1, tzinfo=UTC)


def test_amf0_object_may_have_an_empty_key_before_the_end() -> None:
    assert decode_values(b"\x03\x00\x00\x05" + END) == [{"": None}]


def test_amf0_ecma_array_count_is_not_trusted() -> None:
    """pyamf writes the highest integer key as the count; the end marker is what counts."""
    payload = b"\x08\x00\x00\x00\x00\x00\x01a\x05\x00\x01b\x05" + END
    assert same([ECMAArray(a=None, b=None)], decode_values(payload))


def test_amf0_reference_gives_back_the_same_object() -> None:
    payload = b"\x0a\x00\x00\x00\x02\x03\x00\x01a\x00" + ONE + END + b"\x07\x00\x01"
    [outer] = decode_values(payload)
    assert outer == [{"a": 1.0}, {"a": 1.0}]
    assert outer[0] is outer[1]


def test_amf0_reference_numbers_objects_not_dates() -> None:
    """Table order per AMF0 2.9: 0 the array, 1 the object; the date takes no slot."""
    payload = b"\x0a\x00\x00\x00\x03\x0b" + ZERO + b"\x00\x00\x03" + END + b"\x07\x00\x01"
    [outer] = decode_values(payload)
    assert outer[1] is outer[2]


# -- AMF3 types ---------------------------------------------------------------------------

AMF3_CASES: list[tuple[str, bytes, Any]] = [
    ("undefined", b"\x00", UNDEFINED),
    ("null", b"\x01", None),
    ("false", b"\x02", False),
    ("true", b"\x03", True),
    ("int-0", b"\x04\x00", 0),
    ("int-127", b"\x04\x7f", 127),
    ("int-128", b"\x04\x81\x00", 128),
    ("int-16383", b"\x04\xff\x7f", 16383),
    ("int-16384", b"\x04\x81\x80\x00", 16384),
    ("int-2097151", b"\x04\xff\xff\x7f", 2**21 - 1),
    ("int-2097152", b"\x04\x80\xc0\x80\x00", 2**21),
    ("int-max", b"\x04\xbf\xff\xff\xff", 2**28 - 1),
    ("int-minus-1", b"\x04\xff\xff\xff\xff", -1),
    ("int-min", b"\x04\xc0\x80\x80\x00", -(2**28)),
    ("int-beyond-29-bits-is-double", b"\x05\x41\xb0\x00\x00\x00\x00\x00\x00", float(2**28)),
    ("double", b"\x05\x3f\xf8\x00\x00\x00\x00\x00\x00", 1.5),
    ("empty-string", b"\x06\x01", ""),
    ("string", b"\x06\x07abc", "abc"),
    ("xml-doc", b"\x07\x09<a/>", XMLDocument("<a/>")),
    ("date", b"\x08\x01" + ZERO, datetime(1970, 1, 1, tzinfo=UTC)),
    ("dense-array", b"\x09\x05\x01\x04\x01\x06\x03x", [1, "x"]),
    ("associative-array", b"\x09\x01\x03k\x06\x03v\x01", ECMAArray(k="v")),
    ("anonymous-object", b"\x0a\x0b\x01\x03k\x04\x07\x01", {"k": 7}),
    (
        "sealed-typed-object",
        b"\x0a\x13\x07a.B\x03x\x04\x01",
        TypedObject("a.B", {"x": 1}, sealed=["x"]),
    ),
    (
        "dynamic-typed-object",
        b"\x0a\x1b\x07a.B\x03x\x04\x01\x03y\x04\x02\x01",
        TypedObject("a.B", {"x": 1, "y": 2}, sealed=["x"]),
    ),
    ("xml", b"\x0b\x09<a/>", XML("<a/>")),
    ("byte-array", b"\x0c\x07\x01\x02\x03", ByteArray(b"\x01\x02\x03")),
    (
        "vector-int",
        b"\x0d\x05\x00\x00\x00\x00\x01\xff\xff\xff\xff",
        Vector(VectorKind.INT, [1, -1]),
    ),
    (
        "vector-uint",
        b"\x0e\x03\x01\xff\xff\xff\xff",
        Vector(VectorKind.UINT, [2**32 - 1], fixed=True),
    ),
    (
        "vector-double",
        b"\x0f\x03\x00\x3f\xf8\x00\x00\x00\x00\x00\x00",
        Vector(VectorKind.DOUBLE, [1.5]),
    ),
    (
        "vector-object",
        b"\x10\x05\x00\x0dString\x06\x03a\x01",
        Vector(VectorKind.OBJECT, ["a", None], type_name="String"),
    ),
    ("dictionary", b"\x11\x03\x01\x06\x03k\x04\x07", AMF3Dictionary([("k", 7)], weak_keys=True)),
    (
        "array-collection",
        b"\x0a\x07\x43flex.messaging.io.ArrayCollection\x09\x03\x01\x04\x01",
        ArrayCollection([1]),
    ),
]


@pytest.mark.parametrize(
    ("payload", "value"), [c[1:] for c in AMF3_CASES], ids=[c[0] for c in AMF3_CASES]
)
def test_amf3_value_decodes(payload: bytes, value: Any) -> None:
    assert same([value], decode_values(b"\x11" + payload))


@pytest.mark.parametrize(
    ("payload", "value"), [c[1:] for c in AMF3_CASES], ids=[c[0] for c in AMF3_CASES]
)
def test_amf3_value_encodes(payload: bytes, value: Any) -> None:
    assert encode_values([AMF3(value)]) == b"\x11" + payload


def test_amf3_mixed_array_puts_dense_values_under_index_keys() -> None:
    payload = b"\x11\x09\x03\x03k\x06\x03v\x01\x04\x05"
    assert same([ECMAArray({"k": "v", "0": 5})], decode_values(payload))


def test_amf3_traits_reference_reuses_class_and_sealed_names() -> None:
    payload = b"\x11\x09\x05\x01\x0a\x13\x07a.B\x03x\x04\x01\x0a\x01\x04\x02"
    expected = [
        TypedObject("a.B", {"x": 1}, sealed=["x"]),
        TypedObject("a.B", {"x": 2}, sealed=["x"]),
    ]
    assert same([expected], decode_values(payload))


def test_amf3_object_reference_gives_back_the_same_object() -> None:
    """Object table: 0 the array, 1 the object, so the reference is U29 1 << 1 = 0x02."""
    [outer] = decode_values(b"\x11\x09\x05\x01\x0a\x0b\x01\x03k\x04\x05\x01\x0a\x02")
    assert outer == [{"k": 5}, {"k": 5}]
    assert outer[0] is outer[1]


def test_amf3_date_reference_gives_back_the_same_date() -> None:
    [outer] = decode_values(b"\x11\x09\x05\x01\x08\x01" + ZERO + b"\x08\x02")
    assert outer[0] is outer[1]


def test_amf3_object_proxy_decodes_its_anonymous_object() -> None:
    payload = b"\x11\x0a\x07\x3bflex.messaging.io.ObjectProxy\x0a\x0b\x01\x03k\x04\x01\x01"
    [value] = decode_values(payload)
    assert type(value).__name__ == "ObjectProxy"
    assert dict(value) == {"k": 1}


def test_amf3_u29_accepts_non_minimal_encoding() -> None:
    assert decode_values(b"\x11\x04\x80\x80\x01") == [1]
