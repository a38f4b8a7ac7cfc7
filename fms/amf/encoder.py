"""Encode Python values as AMF0/AMF3 values and RTMP command/data payloads.

Our own encoder, not pyamf's, for three reasons found while checking pyamf 0.9 against the
specifications: importing pyamf installs an import hook at the front of ``sys.meta_path`` for the
whole process and fills global class registries; its output is wrong or lossy for types we need
(an ECMA array's count is its highest integer key rather than its entry count, a long object key
gets a 32-bit length, a ``TypedObject`` loses its class name, vectors and dictionaries are
missing); and choosing object 0x03 vs ECMA array 0x08 vs typed object 0x10 needs our own types
anyway. pyamf remains the independent oracle of the tests.

What is written, chosen by type (see :mod:`fms.amf.types`), as AMF0 / AMF3:

- ``None``, ``UNDEFINED``: null 0x05, undefined 0x06 / null 0x01, undefined 0x00.
- ``bool``: boolean 0x01 / false 0x02, true 0x03.
- ``int``: number 0x00 (exactly representable ints only) / integer 0x04 within 29 bits, else
  double 0x05. ``float``: number 0x00 / double 0x05.
- ``str``: string 0x02, or long string 0x0C beyond 65535 UTF-8 bytes / string 0x06.
- ``XMLDocument``, ``XML``: XML document 0x0F / XMLDocument 0x07, XML 0x0B.
- aware ``datetime``: date 0x0B / date 0x08 (a naive one is refused, not guessed).
- ``dict``: object 0x03 / dynamic anonymous object. ``TypedObject``: typed object 0x10 /
  object with inline traits (an empty class name makes it anonymous).
- ``ECMAArray``: ECMA array 0x08 / array with only an associative part.
- ``list``, ``tuple``: strict array 0x0A / array with only a dense part.
- ``ByteArray`` or any bytes, ``Vector``, ``AMF3Dictionary``, ``ArrayCollection``,
  ``ObjectProxy``: AMF3 only (byte array 0x0C, vectors 0x0D-0x10, dictionary 0x11,
  externalizable objects); in AMF0 they must be wrapped in ``AMF3``.
- ``AMF3(value)``: 0x11 then ``value`` in AMF3 / ``value``.

The encoder writes no references of any kind: a shared value is written again, and AMF3
strings and traits are always inline. References are optional in both specifications, and
peers disagree on whether AMF3 tables span several 0x11 switches of one message, so writing none
is the encoding every reader understands. Cycles raise :class:`~fms.amf.AMFEncodeError`; like
the decoder, the encoder keeps its own stack, so deep values never hit Python's recursion limit.
"""

from __future__ import annotations

import struct
from collections.abc import Generator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from fms.amf.errors import AMFEncodeError
from fms.amf.markers import AMF3_INT_MAX, AMF3_INT_MIN, OBJECT_END, AMF0Marker, AMF3Marker
from fms.amf.types import (
    AMF3,
    UNDEFINED,
    XML,
    AMF3Dictionary,
    ArrayCollection,
    ECMAArray,
    ObjectProxy,
    TypedObject,
    Vector,
    VectorKind,
    XMLDocument,
)

_U16: Final = struct.Struct(">H")
_U32: Final = struct.Struct(">I")
_DOUBLE: Final = struct.Struct(">d")
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS: Final = timedelta(milliseconds=1)

_Frame = Generator[tuple[Any, bool], None, None]
"""A container being written: yields ``(child, in_amf3)`` for each child, in order."""

_AMF3_ONLY: Final = (
    bytes,
    bytearray,
    memoryview,
    Vector,
    AMF3Dictionary,
    ArrayCollection,
    ObjectProxy,
)
_VECTOR_MARKERS: Final = {
    VectorKind.INT: (AMF3Marker.VECTOR_INT, "i"),
    VectorKind.UINT: (AMF3Marker.VECTOR_UINT, "I"),
    VectorKind.DOUBLE: (AMF3Marker.VECTOR_DOUBLE, "d"),
    VectorKind.OBJECT: (AMF3Marker.VECTOR_OBJECT, ""),
}
_TRAITS_INLINE: Final = 0b011
_TRAITS_DYNAMIC: Final = 0b1000
_TRAITS_EXTERNALIZABLE: Final = b"\x07"
_EMPTY_STRING: Final = b"\x01"


def _utf8(text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise AMFEncodeError(f"string cannot be encoded as UTF-8: {exc.reason}") from None


def _u29(value: int) -> bytes:
    """AMF3 variable-length unsigned 29-bit integer."""
    if value < 0x80:
        return bytes((value,))
    if value < 0x4000:
        return bytes((value >> 7 | 0x80, value & 0x7F))
    if value < 0x200000:
        return bytes((value >> 14 | 0x80, value >> 7 & 0x7F | 0x80, value & 0x7F))
    if value < 0x20000000:
        return bytes(
            (value >> 22 | 0x80, value >> 15 & 0x7F | 0x80, value >> 8 & 0x7F | 0x80, value & 0xFF)
        )
    raise AMFEncodeError(f"{value} does not fit AMF3's 29-bit length/count field")


def _inline(size: int) -> bytes:
    """U29 header of an inline (not referenced) string, XML, byte array or container."""
    return _u29(size << 1 | 1)


def _string_vr(text: str) -> bytes:
    """AMF3 UTF-8-vr, always inline."""
    data = _utf8(text)
    return _inline(len(data)) + data


def _short_utf8(text: str, what: str) -> bytes:
    """AMF0 UTF-8 with a U16 length (keys and class names, which have no long form)."""
    data = _utf8(text)
    if len(data) > 0xFFFF:
        raise AMFEncodeError(f"{what} of {len(data)} bytes does not fit AMF0's 16-bit length")
    return _U16.pack(len(data)) + data


def _number(value: int | float) -> float:
    """The double for an AMF number; an int must convert exactly (AMF has no big integers)."""
    if isinstance(value, float):
        return value
    try:
        converted = float(value)
    except OverflowError:
        converted = float("nan")
    if converted != value:
        raise AMFEncodeError(f"integer {value} is not exactly representable as an AMF double")
    return converted


def _milliseconds(value: datetime) -> float:
    """Milliseconds since the epoch; a naive datetime is refused rather than guessed as UTC."""
    if value.utcoffset() is None:
        raise AMFEncodeError(f"naive datetime {value!r}: AMF dates are UTC, give a timezone")
    return (value - _EPOCH) / _ONE_MS


def _keys(obj: dict[Any, Any], amf3: bool) -> None:
    for key in obj:
        if not isinstance(key, str):
            raise AMFEncodeError(f"object key {key!r} is not a string")
        if amf3 and not key:
            raise AMFEncodeError("AMF3 cannot carry an empty member name (it ends the members)")


class _Writer:
    """Accumulates the bytes of one payload and the containers on the current path."""

    __slots__ = ("out", "path")

    def __init__(self) -> None:
        self.out = bytearray()
        self.path: set[int] = set()

    def write(self, value: Any, in_amf3: bool) -> None:
        """Write one value, driving container frames with an explicit stack."""
        frame = self.amf3(value) if in_amf3 else self.amf0(value)
        if frame is None:
            return
        stack = [frame]
        while stack:
            request = next(stack[-1], None)
            if request is None:
                stack.pop()
                continue
            child, child_in_amf3 = request
            frame = self.amf3(child) if child_in_amf3 else self.amf0(child)
            if frame is not None:
                stack.append(frame)

    def enter(self, container: object) -> None:
        key = id(container)
        if key in self.path:
            raise AMFEncodeError(f"{type(container).__name__} contains itself: AMF has no cycles")
        self.path.add(key)

    def leave(self, container: object) -> None:
        self.path.discard(id(container))

    # -- AMF0 ------------------------------------------------------------------------------

    def amf0(self, value: Any) -> _Frame | None:
        """Write a value in AMF0; a container is returned as a frame for :meth:`write`."""
        out = self.out
        if value is None:
            out.append(AMF0Marker.NULL)
        elif value is UNDEFINED:
            out.append(AMF0Marker.UNDEFINED)
        elif isinstance(value, bool):
            out += bytes((AMF0Marker.BOOLEAN, value))
        elif isinstance(value, (int, float)):
            out.append(AMF0Marker.NUMBER)
            out += _DOUBLE.pack(_number(value))
        elif isinstance(value, (XMLDocument, XML)):
            data = _utf8(value)
            out.append(AMF0Marker.XML_DOCUMENT)
            out += _U32.pack(len(data))
            out += data
        elif isinstance(value, str):
            data = _utf8(value)
            if len(data) <= 0xFFFF:
                out.append(AMF0Marker.STRING)
                out += _U16.pack(len(data))
            else:
                out.append(AMF0Marker.LONG_STRING)
                out += _U32.pack(len(data))
            out += data
        elif isinstance(value, AMF3):
            out.append(AMF0Marker.AVMPLUS_OBJECT)
            return self.amf3(value.value)
        elif isinstance(value, datetime):
            out.append(AMF0Marker.DATE)
            out += _DOUBLE.pack(_milliseconds(value))
            out += b"\x00\x00"
        elif isinstance(value, _AMF3_ONLY):
            raise AMFEncodeError(f"{type(value).__name__} has no AMF0 form: wrap it in AMF3()")
        elif isinstance(value, dict):
            _keys(value, amf3=False)
            return self.amf0_members(value)
        elif isinstance(value, (list, tuple)):
            return self.amf0_strict_array(value)
        else:
            raise AMFEncodeError(f"cannot encode {type(value).__name__} in AMF0")
        return None

    def amf0_members(self, obj: dict[str, Any]) -> _Frame:
        self.enter(obj)
        out = self.out
        if isinstance(obj, TypedObject):
            out.append(AMF0Marker.TYPED_OBJECT)
            out += _short_utf8(obj.class_name, "class name")
        elif isinstance(obj, ECMAArray):
            out.append(AMF0Marker.ECMA_ARRAY)
            out += _U32.pack(len(obj))
        else:
            out.append(AMF0Marker.OBJECT)
        for key, member in obj.items():
            out += _short_utf8(key, "object key")
            yield member, False
        out += OBJECT_END
        self.leave(obj)

    def amf0_strict_array(self, items: Sequence[Any]) -> _Frame:
        self.enter(items)
        self.out.append(AMF0Marker.STRICT_ARRAY)
        self.out += _U32.pack(len(items))
        for item in items:
            yield item, False
        self.leave(items)

    # -- AMF3 ------------------------------------------------------------------------------

    def amf3(self, value: Any) -> _Frame | None:
        """Write a value in AMF3; a container is returned as a frame for :meth:`write`."""
        out = self.out
        if value is None:
            out.append(AMF3Marker.NULL)
        elif value is UNDEFINED:
            out.append(AMF3Marker.UNDEFINED)
        elif isinstance(value, bool):
            out.append(AMF3Marker.TRUE if value else AMF3Marker.FALSE)
        elif isinstance(value, int) and AMF3_INT_MIN <= value <= AMF3_INT_MAX:
            out.append(AMF3Marker.INTEGER)
            out += _u29(value & 0x1FFFFFFF)
        elif isinstance(value, (int, float)):
            out.append(AMF3Marker.DOUBLE)
            out += _DOUBLE.pack(_number(value))
        elif isinstance(value, str):
            if isinstance(value, XMLDocument):
                out.append(AMF3Marker.XML_DOC)
            elif isinstance(value, XML):
                out.append(AMF3Marker.XML)
            else:
                out.append(AMF3Marker.STRING)
            out += _string_vr(value)
        elif isinstance(value, AMF3):
            return self.amf3(value.value)
        elif isinstance(value, datetime):
            out.append(AMF3Marker.DATE)
            out += _inline(0)
            out += _DOUBLE.pack(_milliseconds(value))
        elif isinstance(value, (bytes, bytearray, memoryview)):
            data = bytes(value)
            out.append(AMF3Marker.BYTE_ARRAY)
            out += _inline(len(data))
            out += data
        elif isinstance(value, Vector):
            return self.amf3_vector(value)
        elif isinstance(value, AMF3Dictionary):
            return self.amf3_dictionary(value)
        elif isinstance(value, ArrayCollection):
            return self.amf3_externalizable(value, ArrayCollection.CLASS_NAME, list(value))
        elif isinstance(value, ObjectProxy):
            _keys(value, amf3=True)
            return self.amf3_externalizable(value, ObjectProxy.CLASS_NAME, dict(value))
        elif isinstance(value, ECMAArray):
            _keys(value, amf3=True)
            return self.amf3_associative_array(value)
        elif isinstance(value, dict):
            _keys(value, amf3=True)
            return self.amf3_object(value)
        elif isinstance(value, (list, tuple)):
            return self.amf3_dense_array(value)
        else:
            raise AMFEncodeError(f"cannot encode {type(value).__name__} in AMF3")
        return None

    def amf3_dense_array(self, items: Sequence[Any]) -> _Frame:
        self.enter(items)
        self.out.append(AMF3Marker.ARRAY)
        self.out += _inline(len(items))
        self.out += _EMPTY_STRING
        for item in items:
            yield item, True
        self.leave(items)

    def amf3_associative_array(self, mapping: ECMAArray) -> _Frame:
        self.enter(mapping)
        out = self.out
        out.append(AMF3Marker.ARRAY)
        out += _inline(0)
        for key, value in mapping.items():
            out += _string_vr(key)
            yield value, True
        out += _EMPTY_STRING
        self.leave(mapping)

    def amf3_object(self, obj: dict[str, Any]) -> _Frame:
        """An object with inline traits: sealed members in order, then dynamic ones.

        An anonymous ``dict`` is dynamic with no sealed members, as ActionScript's ``Object``.
        A ``TypedObject`` is dynamic unless it has sealed members and nothing else.
        """
        self.enter(obj)
        class_name = obj.class_name if isinstance(obj, TypedObject) else ""
        sealed = obj.sealed if isinstance(obj, TypedObject) else ()
        missing = [name for name in sealed if name not in obj]
        if missing:
            raise AMFEncodeError(f"sealed members {missing!r} of {class_name!r} have no value")
        dynamic = [key for key in obj if key not in sealed]
        is_dynamic = bool(dynamic) or not sealed
        out = self.out
        out.append(AMF3Marker.OBJECT)
        out += _u29(len(sealed) << 4 | (_TRAITS_DYNAMIC if is_dynamic else 0) | _TRAITS_INLINE)
        out += _string_vr(class_name)
        for name in sealed:
            out += _string_vr(name)
        for name in sealed:
            yield obj[name], True
        if is_dynamic:
            for key in dynamic:
                out += _string_vr(key)
                yield obj[key], True
            out += _EMPTY_STRING
        self.leave(obj)

    def amf3_externalizable(self, wrapper: object, class_name: str, body: object) -> _Frame:
        """A Flex wrapper: externalizable traits, then its body as one AMF3 value."""
        self.enter(wrapper)
        self.out.append(AMF3Marker.OBJECT)
        self.out += _TRAITS_EXTERNALIZABLE
        self.out += _string_vr(class_name)
        yield body, True
        self.leave(wrapper)

    def amf3_vector(self, vector: Vector) -> _Frame | None:
        marker, code = _VECTOR_MARKERS[vector.kind]
        out = self.out
        out.append(marker)
        out += _inline(len(vector))
        out.append(1 if vector.fixed else 0)
        if code:
            try:
                out += struct.pack(f">{len(vector)}{code}", *vector)
            except struct.error as exc:
                raise AMFEncodeError(
                    f"{vector.kind.value} vector item out of range: {exc}"
                ) from None
            return None
        out += _string_vr(vector.type_name)
        return self.amf3_object_vector_items(vector)

    def amf3_object_vector_items(self, vector: Vector) -> _Frame:
        self.enter(vector)
        for item in vector:
            yield item, True
        self.leave(vector)

    def amf3_dictionary(self, dictionary: AMF3Dictionary) -> _Frame:
        self.enter(dictionary)
        self.out.append(AMF3Marker.DICTIONARY)
        self.out += _inline(len(dictionary))
        self.out.append(1 if dictionary.weak_keys else 0)
        for key, value in dictionary:
            yield key, True
            yield value, True
        self.leave(dictionary)


def encode_values(values: Sequence[Any]) -> bytes:
    """Encode a sequence of AMF0 values (``AMF3(...)`` items switch to AMF3 with 0x11).

    This is the body of an RTMP command (type 20) or data (type 18) message. Raises
    :class:`~fms.amf.AMFEncodeError` for a value AMF cannot carry.
    """
    writer = _Writer()
    for value in values:
        writer.write(value, in_amf3=False)
    return bytes(writer.out)


def encode_payload(values: Sequence[Any], *, amf3_form: bool = False) -> bytes:
    """Encode an RTMP command or data message payload.

    ``amf3_form=False``: types 20/18, the AMF0 values. ``amf3_form=True``: types 17/15, the
    format selector 0 then the same values; wrap values in ``AMF3(...)`` to send them in AMF3.
    """
    body = encode_values(values)
    return b"\x00" + body if amf3_form else body


__all__ = ["encode_payload", "encode_values"]
