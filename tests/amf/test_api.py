"""The public surface other packages rely on: error families, accepted inputs, exports."""

from __future__ import annotations

import fms.amf
from fms.amf import AMFDecodeError, AMFEncodeError, decode_payload, decode_values
from fms.errors import LocalProtocolError, RemoteProtocolError


def test_decode_error_is_the_peers_fault() -> None:
    assert issubclass(AMFDecodeError, RemoteProtocolError)


def test_encode_error_is_our_own_fault() -> None:
    assert issubclass(AMFEncodeError, LocalProtocolError)


def test_empty_payload_is_no_values() -> None:
    assert decode_values(b"") == []


def test_bytearray_and_memoryview_decode_like_bytes() -> None:
    payload = b"\x00\x02\x00\x01a"
    assert decode_payload(bytearray(payload), amf3_form=True) == ["a"]
    assert decode_payload(memoryview(payload), amf3_form=True) == ["a"]


def test_every_exported_name_exists() -> None:
    assert all(hasattr(fms.amf, name) for name in fms.amf.__all__)
