"""pyamf (py3amf) as an independent oracle: its decoder reads what we encode, ours reads what it
encodes, to equal values.

pyamf's class loading is neutralised around every call (``pyamf.load_class`` refuses all
aliases), so a typed object becomes a ``pyamf.TypedObject`` and nothing is imported. Values are
compared in a normal form that forgets what pyamf cannot tell apart (AMF0 numbers come back as
``int`` when integral, -0.0 as 0, naive dates); types are checked exactly by the round trips.
Vectors, dictionaries, XML and the Flex wrappers are left out: pyamf lacks or parses them.
"""

from __future__ import annotations

import math
import string
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pyamf
import pyamf.amf3
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fms.amf import (
    AMF3,
    UNDEFINED,
    ByteArray,
    ECMAArray,
    TypedObject,
    decode_values,
    encode_values,
)
from tests.amf.strategies import amf3_ints, amf3_keys, class_names, keys, texts, typed_objects

letters = st.text(alphabet=string.ascii_letters, min_size=1, max_size=8)
"""ECMA array keys pyamf leaves alone (it turns numeric-looking keys into ints)."""

dates = st.datetimes(
    min_value=datetime(1900, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
).map(lambda value: value.replace(microsecond=value.microsecond // 1000 * 1000))
pytestmark = pytest.mark.filterwarnings(
    "ignore:defusedxml.cElementTree is deprecated:DeprecationWarning"
)
"""pyamf imports a deprecated defusedxml module the first time it touches XML support."""

naive_dates = st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2100, 1, 1)).map(
    lambda value: value.replace(microsecond=value.microsecond // 1000 * 1000)
)
"""pyamf writes a date before 1970 with a fraction of a second wrong (it glues the fraction
to the negative whole seconds as text), so what it encodes starts in 1970."""
byte_arrays = st.binary(max_size=16).filter(lambda data: not data.startswith(b"\x78\x9c"))
"""pyamf inflates byte arrays that start like zlib data; ours never does."""


@contextmanager
def pyamf_without_class_loading() -> Iterator[None]:
    def refuse(alias: str) -> None:
        raise pyamf.UnknownClassAlias(alias)

    original = pyamf.load_class
    pyamf.load_class = refuse
    try:
        yield
    finally:
        pyamf.load_class = original


def pyamf_decode(data: bytes) -> list[Any]:
    with pyamf_without_class_loading():
        return list(pyamf.decode(data, encoding=pyamf.AMF0))


def pyamf_encode(values: list[Any], *, amf3: bool) -> bytes:
    encoder = pyamf.get_encoder(pyamf.AMF0)
    encoder.use_amf3 = amf3  # pyamf's get_encoder does not pass use_amf3 through
    for value in values:
        encoder.writeElement(value)
    data: bytes = encoder.stream.getvalue()
    return data


def normal(value: Any) -> Any:
    """A comparable form of a value decoded by pyamf or by us."""
    if isinstance(value, AMF3):
        return normal(value.value)
    if value is None:
        return ("null",)
    if value is UNDEFINED or value is pyamf.Undefined:
        return ("undefined",)
    if isinstance(value, bool):
        return ("boolean", value)
    if isinstance(value, (int, float)):
        number = float(value)
        return ("number", "nan" if math.isnan(number) else number + 0.0)
    if isinstance(value, str):
        return ("string", str(value))
    if isinstance(value, datetime):
        return ("date", value if value.tzinfo else value.replace(tzinfo=UTC))
    if isinstance(value, (bytes, pyamf.amf3.ByteArray)):
        return ("bytes", bytes(value))
    if isinstance(value, pyamf.TypedObject):
        return ("typed", value.alias, {k: normal(v) for k, v in value.items()})
    if isinstance(value, TypedObject):
        return ("typed", value.class_name, {k: normal(v) for k, v in value.items()})
    if isinstance(value, (ECMAArray, pyamf.MixedArray)):
        return ("ecma", {str(k): normal(v) for k, v in value.items()})
    if isinstance(value, dict):
        return ("object", {k: normal(v) for k, v in value.items()})
    if isinstance(value, list):
        return ("list", [normal(v) for v in value])
    raise AssertionError(f"unexpected {type(value).__name__}")


# -- ours -> pyamf ------------------------------------------------------------------------


def _ours_amf3(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(amf3_keys, children, max_size=4),
        st.dictionaries(letters, children, min_size=1, max_size=4).map(ECMAArray),
        typed_objects(children, amf3=True),
    )


ours_amf3 = st.recursive(
    st.one_of(
        st.none(),
        st.just(UNDEFINED),
        st.booleans(),
        amf3_ints,
        st.floats(),
        texts,
        dates,
        byte_arrays.map(ByteArray),
    ),
    _ours_amf3,
    max_leaves=8,
)


def _ours_amf0(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(keys, children, max_size=4),
        st.dictionaries(letters, children, max_size=4).map(ECMAArray),
        st.builds(TypedObject, class_names, st.dictionaries(keys, children, max_size=4)),
    )


ours_amf0 = st.recursive(
    st.one_of(
        st.none(),
        st.just(UNDEFINED),
        st.booleans(),
        st.floats(),
        texts,
        dates,
        ours_amf3.map(AMF3),
    ),
    _ours_amf0,
    max_leaves=10,
)


@given(st.lists(ours_amf0, max_size=4))
def test_pyamf_decodes_what_we_encode_to_equal_values(values: list[Any]) -> None:
    assert normal(pyamf_decode(encode_values(values))) == normal(values)


# -- pyamf -> ours ------------------------------------------------------------------------


def _mixed_array(members: dict[str, Any]) -> pyamf.MixedArray:
    return pyamf.MixedArray(members)


def _pyamf_values(amf3: bool) -> st.SearchStrategy[Any]:
    member_keys = amf3_keys if amf3 else keys

    def containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        return st.one_of(
            st.lists(children, max_size=4),
            st.dictionaries(member_keys, children, max_size=4),
            st.dictionaries(letters, children, min_size=1 if amf3 else 0, max_size=4).map(
                _mixed_array
            ),
            # The same container twice: pyamf writes a reference for the second one.
            children.filter(lambda child: isinstance(child, (list, dict))).map(
                lambda child: [child, child]
            ),
        )

    leaves = st.one_of(
        st.none(),
        st.just(pyamf.Undefined),
        st.booleans(),
        amf3_ints,
        st.floats(),
        texts,
        naive_dates,
    )
    if amf3:
        leaves = st.one_of(leaves, byte_arrays.map(pyamf.amf3.ByteArray))
    return st.recursive(leaves, containers, max_leaves=8)


@given(st.lists(_pyamf_values(amf3=False), max_size=4))
def test_we_decode_what_pyamf_encodes_in_amf0(values: list[Any]) -> None:
    assert normal(decode_values(pyamf_encode(values, amf3=False))) == normal(values)


@given(st.lists(_pyamf_values(amf3=True), max_size=4))
def test_we_decode_what_pyamf_encodes_in_amf3_with_shared_reference_tables(
    values: list[Any],
) -> None:
    """pyamf writes each value after its own 0x11, string and object references spanning all."""
    assert normal(decode_values(pyamf_encode(values, amf3=True))) == normal(values)


def test_pyamf_references_decode_to_one_shared_object() -> None:
    shared = {"k": "v"}
    [outer] = decode_values(pyamf_encode([[shared, shared]], amf3=False))
    assert outer[0] is outer[1]
