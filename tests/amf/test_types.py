"""The AMF value types: identity, equality and copying."""

from __future__ import annotations

import copy
import pickle
from typing import Any

import pytest

from fms.amf import (
    UNDEFINED,
    AMF3Dictionary,
    ECMAArray,
    TypedObject,
    Undefined,
    Vector,
    VectorKind,
)


def test_undefined_is_a_falsy_singleton_distinct_from_none() -> None:
    assert UNDEFINED is Undefined.UNDEFINED
    assert not UNDEFINED
    assert UNDEFINED is not None
    assert copy.deepcopy(UNDEFINED) is UNDEFINED
    assert pickle.loads(pickle.dumps(UNDEFINED)) is UNDEFINED


def test_ecma_array_equals_a_dict_with_the_same_items() -> None:
    assert ECMAArray(a=1) == {"a": 1}


def test_typed_object_equality_includes_the_class_name() -> None:
    assert TypedObject("a.B", {"x": 1}) == TypedObject("a.B", {"x": 1})
    assert TypedObject("a.B", {"x": 1}) != TypedObject("a.C", {"x": 1})


def test_typed_object_never_equals_a_plain_dict() -> None:
    assert TypedObject("a.B", {"x": 1}) != {"x": 1}
    assert {"x": 1} != TypedObject("a.B", {"x": 1})


def test_vector_equality_includes_kind_and_flags() -> None:
    assert Vector(VectorKind.INT, [1]) == Vector(VectorKind.INT, [1])
    assert Vector(VectorKind.INT, [1]) != Vector(VectorKind.UINT, [1])
    assert Vector(VectorKind.INT, [1]) != Vector(VectorKind.INT, [1], fixed=True)
    assert Vector(VectorKind.INT, [1]) != [1]


def test_dictionary_equality_includes_weak_keys() -> None:
    assert AMF3Dictionary([(1, 2)]) != AMF3Dictionary([(1, 2)], weak_keys=True)


@pytest.mark.parametrize(
    "value",
    [
        TypedObject("a.B", {"x": [1]}, sealed=["x"]),
        Vector(VectorKind.OBJECT, [{"a": 1}], fixed=True, type_name="T"),
        AMF3Dictionary([({"k": 1}, [2])], weak_keys=True),
    ],
    ids=["typed-object", "vector", "dictionary"],
)
def test_types_with_attributes_survive_deepcopy_and_pickle(value: Any) -> None:
    for clone in (copy.deepcopy(value), pickle.loads(pickle.dumps(value))):
        assert clone == value
        assert type(clone) is type(value)
    if isinstance(value, TypedObject):
        assert copy.deepcopy(value).sealed == value.sealed
