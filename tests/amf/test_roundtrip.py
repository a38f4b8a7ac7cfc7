"""Hypothesis round trips: every value type, in AMF0 and in AMF3, survives encode then decode."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fms.amf import AMF3, AMFLimits, decode_payload, decode_values, encode_payload, encode_values
from tests.amf.strategies import AMF0_TYPES, AMF3_TYPES, amf0_values, amf3_values, same

ROOMY = AMFLimits(max_depth=1000)
"""Round trips test fidelity; the limits have their own tests."""


@given(st.lists(amf0_values(), max_size=4))
def test_amf0_values_round_trip(values: list[Any]) -> None:
    assert same(values, decode_values(encode_values(values), limits=ROOMY))


@given(amf3_values())
def test_amf3_values_round_trip_through_the_0x11_switch(value: Any) -> None:
    assert same([value], decode_values(encode_values([AMF3(value)]), limits=ROOMY))


@given(st.lists(amf0_values(), max_size=4), st.booleans())
def test_payloads_round_trip_in_both_forms(values: list[Any], amf3_form: bool) -> None:
    payload = encode_payload(values, amf3_form=amf3_form)
    assert same(values, decode_payload(payload, amf3_form=amf3_form, limits=ROOMY))


@given(st.lists(amf0_values(max_leaves=6, switches=False), max_size=3))
def test_amf0_encoding_is_reproduced_by_decoding_and_encoding_again(values: list[Any]) -> None:
    encoded = encode_values(values)
    assert encode_values(decode_values(encoded, limits=ROOMY)) == encoded


@pytest.mark.parametrize("type_name", sorted(AMF0_TYPES))
@settings(max_examples=30)
@given(data=st.data())
def test_each_amf0_type_round_trips(type_name: str, data: st.DataObject) -> None:
    value = data.draw(AMF0_TYPES[type_name])
    assert same([value], decode_values(encode_values([value])))


@pytest.mark.parametrize("type_name", sorted(AMF3_TYPES))
@settings(max_examples=30)
@given(data=st.data())
def test_each_amf3_type_round_trips(type_name: str, data: st.DataObject) -> None:
    value = data.draw(AMF3_TYPES[type_name])
    assert same([value], decode_values(encode_values([AMF3(value)])))
