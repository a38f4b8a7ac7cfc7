"""Hypothesis strategies for AMF values, and a type-strict comparison for round trips.

Strategies are recursive with few leaves, so nesting stays far below the default depth limit.
Each AMF3 strategy only produces values that AMF3 gives back with the same type (no empty keys,
no empty ECMA arrays, integers within 29 bits); the tests of those edges are written separately.
"""

from __future__ import annotations

import math
import string
from datetime import UTC, datetime
from typing import Any

from hypothesis import strategies as st

from fms.amf import (
    AMF3,
    UNDEFINED,
    XML,
    AMF3Dictionary,
    ArrayCollection,
    ByteArray,
    ECMAArray,
    ObjectProxy,
    TypedObject,
    Vector,
    VectorKind,
    XMLDocument,
)
from fms.amf.markers import AMF3_INT_MAX, AMF3_INT_MIN

texts = st.text(max_size=24)
keys = st.text(max_size=10)
amf3_keys = st.text(min_size=1, max_size=10)
class_names = st.text(alphabet=string.ascii_letters + ".", min_size=1, max_size=20)


def _whole_milliseconds(value: datetime) -> datetime:
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


dates = st.datetimes(
    min_value=datetime(1, 1, 1),
    max_value=datetime(9999, 12, 31, 23, 59, 59, 999000),
    timezones=st.just(UTC),
).map(_whole_milliseconds)
"""AMF dates carry milliseconds; these are the dates that survive exactly."""

amf3_ints = st.integers(min_value=AMF3_INT_MIN, max_value=AMF3_INT_MAX)
int32s = st.integers(min_value=-(2**31), max_value=2**31 - 1)
uint32s = st.integers(min_value=0, max_value=2**32 - 1)


@st.composite
def typed_objects(draw: st.DrawFn, members: st.SearchStrategy[Any], amf3: bool) -> TypedObject:
    body = draw(st.dictionaries(amf3_keys if amf3 else keys, members, max_size=4))
    sealed = [name for name in body if draw(st.booleans())] if amf3 else []
    return TypedObject(draw(class_names), body, sealed=sealed)


def amf3_leaves() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.none(),
        st.just(UNDEFINED),
        st.booleans(),
        amf3_ints,
        st.floats(),
        texts,
        dates,
        texts.map(XMLDocument),
        texts.map(XML),
        st.binary(max_size=16).map(ByteArray),
        st.builds(
            Vector, st.just(VectorKind.INT), st.lists(int32s, max_size=4), fixed=st.booleans()
        ),
        st.builds(
            Vector, st.just(VectorKind.UINT), st.lists(uint32s, max_size=4), fixed=st.booleans()
        ),
        st.builds(
            Vector,
            st.just(VectorKind.DOUBLE),
            st.lists(st.floats(), max_size=4),
            fixed=st.booleans(),
        ),
    )


def _amf3_containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    items = st.lists(children, max_size=4)
    members = st.dictionaries(amf3_keys, children, max_size=4)
    return st.one_of(
        items,
        members,
        st.dictionaries(amf3_keys, children, min_size=1, max_size=4).map(ECMAArray),
        typed_objects(children, amf3=True),
        st.builds(Vector, st.just(VectorKind.OBJECT), items, fixed=st.booleans(), type_name=texts),
        st.builds(
            AMF3Dictionary,
            st.lists(st.tuples(children, children), max_size=3),
            weak_keys=st.booleans(),
        ),
        items.map(ArrayCollection),
        members.map(ObjectProxy),
    )


def amf3_values(max_leaves: int = 8) -> st.SearchStrategy[Any]:
    """Any AMF3 value, containers included."""
    return st.recursive(amf3_leaves(), _amf3_containers, max_leaves=max_leaves)


def amf0_leaves() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.none(),
        st.just(UNDEFINED),
        st.booleans(),
        st.floats(),
        texts,
        dates,
        texts.map(XMLDocument),
    )


def _amf0_containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    members = st.dictionaries(keys, children, max_size=4)
    return st.one_of(
        st.lists(children, max_size=4),
        members,
        members.map(ECMAArray),
        typed_objects(children, amf3=False),
    )


def amf0_values(max_leaves: int = 10, *, switches: bool = True) -> st.SearchStrategy[Any]:
    """Any AMF0 value; with ``switches``, some subtrees are ``AMF3(...)`` switches."""
    leaves = amf0_leaves()
    if switches:
        leaves = st.one_of(leaves, amf3_values(max_leaves=4).map(AMF3))
    return st.recursive(leaves, _amf0_containers, max_leaves=max_leaves)


def same(expected: Any, actual: Any) -> bool:
    """True if ``actual`` is ``expected`` after a round trip: same types all the way down,
    NaN equal to NaN, -0.0 distinct from 0.0, every attribute of the AMF types compared.
    An ``AMF3(value)`` on the expected side stands for ``value``.
    """
    if type(expected) is AMF3:
        return same(expected.value, actual)
    if type(expected) is not type(actual):
        return False
    if isinstance(expected, float):
        if math.isnan(expected):
            return math.isnan(actual)
        return expected == actual and math.copysign(1, expected) == math.copysign(1, actual)
    if isinstance(expected, TypedObject) and (
        expected.class_name != actual.class_name or expected.sealed != actual.sealed
    ):
        return False
    if isinstance(expected, Vector) and (
        expected.kind is not actual.kind
        or expected.fixed != actual.fixed
        or expected.type_name != actual.type_name
    ):
        return False
    if isinstance(expected, AMF3Dictionary) and expected.weak_keys != actual.weak_keys:
        return False
    if isinstance(expected, dict):
        return expected.keys() == actual.keys() and all(
            same(value, actual[key]) for key, value in expected.items()
        )
    if isinstance(expected, (list, tuple)):
        return len(expected) == len(actual) and all(map(same, expected, actual))
    return bool(expected == actual)


def _by_type(leaves: st.SearchStrategy[Any], amf3: bool) -> dict[str, st.SearchStrategy[Any]]:
    """One strategy per container type, with leaf children, so each type is surely drawn."""
    member_keys = amf3_keys if amf3 else keys
    members = st.dictionaries(member_keys, leaves, max_size=4)
    return {
        "strict-array" if not amf3 else "dense-array": st.lists(leaves, max_size=4),
        "object": members,
        "ecma-array" if not amf3 else "associative-array": st.dictionaries(
            member_keys, leaves, min_size=1 if amf3 else 0, max_size=4
        ).map(ECMAArray),
        "typed-object": typed_objects(leaves, amf3=amf3),
    }


AMF0_TYPES: dict[str, st.SearchStrategy[Any]] = {
    "null": st.none(),
    "undefined": st.just(UNDEFINED),
    "boolean": st.booleans(),
    "number": st.floats(),
    "string": texts,
    "date": dates,
    "xml-document": texts.map(XMLDocument),
    **_by_type(amf0_leaves(), amf3=False),
}
"""A strategy per AMF0 type (long strings are in the golden tests: they are 64 KiB)."""

AMF3_TYPES: dict[str, st.SearchStrategy[Any]] = {
    "undefined": st.just(UNDEFINED),
    "null": st.none(),
    "boolean": st.booleans(),
    "integer": amf3_ints,
    "double": st.floats(),
    "string": texts,
    "xml-doc": texts.map(XMLDocument),
    "date": dates,
    "xml": texts.map(XML),
    "byte-array": st.binary(max_size=16).map(ByteArray),
    **_by_type(amf3_leaves(), amf3=True),
    "vector-int": st.builds(Vector, st.just(VectorKind.INT), st.lists(int32s), fixed=st.booleans()),
    "vector-uint": st.builds(
        Vector, st.just(VectorKind.UINT), st.lists(uint32s), fixed=st.booleans()
    ),
    "vector-double": st.builds(
        Vector, st.just(VectorKind.DOUBLE), st.lists(st.floats()), fixed=st.booleans()
    ),
    "vector-object": st.builds(
        Vector,
        st.just(VectorKind.OBJECT),
        st.lists(amf3_leaves(), max_size=4),
        fixed=st.booleans(),
        type_name=texts,
    ),
    "dictionary": st.builds(
        AMF3Dictionary,
        st.lists(st.tuples(amf3_leaves(), amf3_leaves()), max_size=4),
        weak_keys=st.booleans(),
    ),
    "array-collection": st.lists(amf3_leaves(), max_size=4).map(ArrayCollection),
    "object-proxy": st.dictionaries(amf3_keys, amf3_leaves(), max_size=4).map(ObjectProxy),
}
"""A strategy per AMF3 type."""
