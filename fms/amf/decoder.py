"""Decode AMF0 and AMF3 values and RTMP command/data payloads: our own bounded parser.

pyamf's decoder is not used: it imports the module named by a peer's class name, builds
classes, parses XML, inflates zlib byte arrays, recurses once per nesting level and leaks
``OSError``/``IndexError``/``RecursionError`` on bad input. Making it safe would mean replacing
most of it, so this module is a small pure-Python parser written from the AMF0 (2007) and AMF3
(2013) specifications instead. How it stays safe:

- One error: everything wrong with the bytes raises :class:`~fms.amf.AMFDecodeError`; each read
  checks the bytes left first, nothing is caught and re-labelled.
- Nothing allocated on trust: every length and count is checked against the limits *and* the
  bytes actually left (an array of n elements needs at least n bytes) before use.
- No recursion: containers are generator frames on an explicit stack driven by one loop, so the
  depth limit is the only bound on nesting (100,000 nested arrays fail at ``max_depth`` + 1 in
  microseconds, never with ``RecursionError``), whatever depth is configured.
- References: an index past the table fails; a reference to a container still being decoded (the
  only way to make a cycle) fails, so decoded values are always finite trees or DAGs; a reference
  costs the items, bytes and height of what it points to, so sharing cannot amplify the result
  past :class:`~fms.amf.AMFLimits`.
- Class names are data (:class:`~fms.amf.TypedObject`); XML stays text; byte arrays stay bytes.

Reference tables follow the specifications: AMF0 numbers objects, typed objects, ECMA arrays and
strict arrays (not dates or XML); AMF3 keeps strings, traits and objects (arrays, objects, dates,
XML, byte arrays, vectors, dictionaries) in three tables that live for the whole payload, shared
by every ``0x11`` switch in it (as Red5 and pyamf read them).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Generator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import GeneratorType
from typing import Any, Final, NoReturn

from fms.amf.errors import AMFDecodeError
from fms.amf.limits import AMFLimits
from fms.amf.markers import AMF0Marker, AMF3Marker
from fms.amf.types import (
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

_U16: Final = struct.Struct(">H")
_U32: Final = struct.Struct(">I")
_DOUBLE: Final = struct.Struct(">d")
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_DEFAULT_LIMITS: Final = AMFLimits()

_Frame = Generator[bool, Any, Any]
"""A container being decoded: yields ``True`` for an AMF3 child value, ``False`` for AMF0,
receives the child, returns the finished container."""

_VECTOR_KINDS: Final = {
    AMF3Marker.VECTOR_INT: VectorKind.INT,
    AMF3Marker.VECTOR_UINT: VectorKind.UINT,
    AMF3Marker.VECTOR_DOUBLE: VectorKind.DOUBLE,
    AMF3Marker.VECTOR_OBJECT: VectorKind.OBJECT,
}
_VECTOR_ITEM: Final = {
    VectorKind.INT: ("i", 4),
    VectorKind.UINT: ("I", 4),
    VectorKind.DOUBLE: ("d", 8),
}


class _Entry:
    """A slot of a reference table: the value and what one more reference to it costs.

    While its container is being decoded, ``items``/``nbytes`` hold the counters at its start
    and ``height`` the enclosing deepest level; :meth:`_Reader.finish` turns them into costs.
    """

    __slots__ = ("complete", "height", "items", "nbytes", "value")

    def __init__(self, value: Any, items: int, nbytes: int, height: int, complete: bool) -> None:
        self.value = value
        self.items = items
        self.nbytes = nbytes
        self.height = height
        self.complete = complete


@dataclass(frozen=True, slots=True)
class _Traits:
    """AMF3 object traits: class name, sealed member names, and the two flags."""

    class_name: str
    sealed: tuple[str, ...]
    dynamic: bool
    externalizable: bool


class _Reader:
    """The state of one payload being decoded: position, budgets and reference tables."""

    __slots__ = (
        "amf0_objects",
        "amf3_objects",
        "amf3_strings",
        "amf3_traits",
        "data",
        "deepest",
        "end",
        "items",
        "limits",
        "nbytes",
        "pos",
    )

    def __init__(self, data: bytes, limits: AMFLimits, start: int) -> None:
        self.data = data
        self.pos = start
        self.end = len(data)
        self.limits = limits
        self.items = 0
        self.nbytes = 0
        self.deepest = 0
        self.amf0_objects: list[_Entry] = []
        self.amf3_objects: list[_Entry] = []
        self.amf3_strings: list[tuple[str, int]] = []
        self.amf3_traits: list[_Traits] = []

    # -- errors, raw reads and budgets ------------------------------------------------------

    def fail(self, reason: str) -> NoReturn:
        raise AMFDecodeError(reason, offset=self.pos)

    def take(self, size: int) -> int:
        """Consume ``size`` bytes and return where they start."""
        start = self.pos
        if size > self.end - start:
            self.fail(f"truncated: {size} bytes needed, {self.end - start} left")
        self.pos = start + size
        return start

    def u8(self) -> int:
        pos = self.pos
        if pos >= self.end:
            self.fail("truncated: 1 byte needed, 0 left")
        self.pos = pos + 1
        return self.data[pos]

    def u16(self) -> int:
        value: int = _U16.unpack_from(self.data, self.take(2))[0]
        return value

    def u32(self) -> int:
        value: int = _U32.unpack_from(self.data, self.take(4))[0]
        return value

    def double(self) -> float:
        value: float = _DOUBLE.unpack_from(self.data, self.take(8))[0]
        return value

    def u29(self) -> int:
        """AMF3 variable-length unsigned 29-bit integer: 7 bits a byte, 8 in a fourth."""
        value = 0
        for _ in range(3):
            byte = self.u8()
            if byte < 0x80:
                return (value << 7) | byte
            value = (value << 7) | (byte & 0x7F)
        return (value << 8) | self.u8()

    def count(self, items: int = 1, nbytes: int = 0) -> None:
        """Charge decoded items and text/binary bytes to the payload's budgets."""
        self.items += items
        self.nbytes += nbytes
        if self.items > self.limits.max_total_items:
            self.fail(f"more than max_total_items={self.limits.max_total_items} values")
        if self.nbytes > self.limits.max_total_bytes:
            self.fail(f"more than max_total_bytes={self.limits.max_total_bytes} bytes of data")

    def check_count(self, count: int, min_size: int, what: str) -> None:
        """Refuse a count beyond ``max_entries`` or beyond what the bytes left can hold."""
        if count > self.limits.max_entries:
            self.fail(f"{what} of {count} entries exceeds max_entries={self.limits.max_entries}")
        left = self.end - self.pos
        if count * min_size > left:
            self.fail(f"{what} announces {count} entries but only {left} bytes are left")

    def check_size(self, size: int, what: str) -> int:
        """Refuse a byte length beyond ``max_string``; consume it and return where it starts."""
        if size > self.limits.max_string:
            self.fail(f"{what} of {size} bytes exceeds max_string={self.limits.max_string}")
        start = self.take(size)
        self.count(0, size)
        return start

    def utf8(self, size: int) -> str:
        start = self.check_size(size, "string")
        try:
            return self.data[start : start + size].decode("utf-8")
        except UnicodeDecodeError as exc:
            self.pos = start + exc.start
            self.fail("string is not valid UTF-8")

    def date(self, milliseconds: float) -> datetime:
        """A date from milliseconds since the epoch, UTC; invalid dates are errors."""
        if not math.isfinite(milliseconds):
            self.fail("date is not a finite number of milliseconds")
        try:
            if milliseconds.is_integer():
                return _EPOCH + timedelta(milliseconds=int(milliseconds))
            return _EPOCH + timedelta(microseconds=round(milliseconds * 1000))
        except OverflowError:
            self.fail(f"date {milliseconds} ms is outside the years 1..9999")

    # -- containers and references ----------------------------------------------------------

    def begin(self, table: list[_Entry], value: Any, level: int) -> _Entry:
        """Start a container at nesting ``level`` (1 = top-level container) and number it."""
        if level > self.limits.max_depth:
            self.fail(f"nesting deeper than max_depth={self.limits.max_depth}")
        entry = _Entry(value, self.items, self.nbytes, self.deepest, complete=False)
        table.append(entry)
        self.deepest = level
        return entry

    def finish(self, entry: _Entry, level: int) -> None:
        """Close a container: record what a reference to it will cost from now on."""
        enclosing_deepest = entry.height
        entry.items = self.items - entry.items + 1
        entry.nbytes = self.nbytes - entry.nbytes
        entry.height = self.deepest - level + 1
        entry.complete = True
        self.deepest = max(self.deepest, enclosing_deepest)

    def leaf(self, table: list[_Entry], value: Any, nbytes: int) -> Any:
        """Number a value that is referenceable but holds no other values (AMF3 date, XML...)."""
        table.append(_Entry(value, 1, nbytes, 0, complete=True))
        return value

    def resolve(self, table: list[_Entry], index: int, level: int, what: str) -> Any:
        """The value a reference at nesting ``level`` points to, charged at its full cost."""
        if index >= len(table):
            self.fail(f"{what} reference {index} is out of range ({len(table)} known)")
        entry = table[index]
        if not entry.complete:
            self.fail(f"{what} reference {index} points to a value that contains it (a cycle)")
        reached = level + entry.height
        if reached > self.limits.max_depth:
            self.fail(f"reference nests deeper than max_depth={self.limits.max_depth}")
        self.deepest = max(self.deepest, reached)
        self.count(entry.items - 1, entry.nbytes)
        return entry.value

    # -- the driver -------------------------------------------------------------------------

    def read(self) -> Any:
        """Decode one AMF0 value (which may switch to AMF3) with an explicit frame stack."""
        value = self.amf0(0)
        if not isinstance(value, GeneratorType):
            return value
        stack: list[_Frame] = [value]
        incoming: Any = None
        while True:
            try:
                wants_amf3 = stack[-1].send(incoming)
            except StopIteration as done:
                stack.pop()
                if not stack:
                    return done.value
                incoming = done.value
                continue
            level = len(stack)
            child = self.amf3(level) if wants_amf3 else self.amf0(level)
            if isinstance(child, GeneratorType):
                stack.append(child)
                incoming = None
            else:
                incoming = child

    # -- AMF0 ------------------------------------------------------------------------------

    def amf0(self, level: int) -> Any:
        """Read one AMF0 value enclosed by ``level`` containers; containers come back as
        frames for :meth:`read` to drive."""
        marker = self.u8()
        if marker == AMF0Marker.AVMPLUS_OBJECT:
            return self.amf3(level)
        self.count()
        if marker == AMF0Marker.STRING:
            return self.utf8(self.u16())
        if marker == AMF0Marker.NUMBER:
            return self.double()
        if marker == AMF0Marker.OBJECT:
            return self.amf0_members({}, level + 1)
        if marker == AMF0Marker.NULL:
            return None
        if marker == AMF0Marker.BOOLEAN:
            return self.u8() != 0
        if marker == AMF0Marker.ECMA_ARRAY:
            self.take(4)  # associative-count: advisory, and wrong in some encoders (pyamf)
            return self.amf0_members(ECMAArray(), level + 1)
        if marker == AMF0Marker.STRICT_ARRAY:
            return self.amf0_strict_array(level + 1)
        if marker in (AMF0Marker.UNDEFINED, AMF0Marker.UNSUPPORTED):
            return UNDEFINED
        if marker == AMF0Marker.REFERENCE:
            return self.resolve(self.amf0_objects, self.u16(), level, "AMF0 object")
        if marker == AMF0Marker.DATE:
            milliseconds = self.double()
            self.take(2)  # time-zone: reserved, dates are UTC
            return self.date(milliseconds)
        if marker == AMF0Marker.LONG_STRING:
            return self.utf8(self.u32())
        if marker == AMF0Marker.XML_DOCUMENT:
            return XMLDocument(self.utf8(self.u32()))
        if marker == AMF0Marker.TYPED_OBJECT:
            return self.amf0_members(TypedObject(self.utf8(self.u16())), level + 1)
        self.pos -= 1
        self.fail(f"AMF0 marker 0x{marker:02x} is unknown or not supported")

    def amf0_members(self, obj: dict[str, Any], level: int) -> _Frame:
        """Members of an object, typed object or ECMA array, up to the empty key + 0x09."""
        entry = self.begin(self.amf0_objects, obj, level)
        entries = 0
        while True:
            key = self.utf8(self.u16())
            if not key and self.pos < self.end and self.data[self.pos] == AMF0Marker.OBJECT_END:
                self.pos += 1
                break
            entries += 1
            if entries > self.limits.max_entries:
                self.fail(f"object has more than max_entries={self.limits.max_entries} members")
            obj[key] = yield False
        self.finish(entry, level)
        return obj

    def amf0_strict_array(self, level: int) -> _Frame:
        count = self.u32()
        self.check_count(count, 1, "strict array")
        items: list[Any] = []
        entry = self.begin(self.amf0_objects, items, level)
        for _ in range(count):
            items.append((yield False))
        self.finish(entry, level)
        return items

    # -- AMF3 ------------------------------------------------------------------------------

    def amf3(self, level: int) -> Any:
        """Read one AMF3 value enclosed by ``level`` containers (frames for containers)."""
        marker = self.u8()
        self.count()
        if marker == AMF3Marker.STRING:
            return self.amf3_string()
        if marker == AMF3Marker.INTEGER:
            value = self.u29()
            return value - (1 << 29) if value & (1 << 28) else value
        if marker == AMF3Marker.DOUBLE:
            return self.double()
        if marker == AMF3Marker.OBJECT:
            return self.amf3_object(level)
        if marker == AMF3Marker.ARRAY:
            return self.amf3_array(level)
        if marker == AMF3Marker.NULL:
            return None
        if marker == AMF3Marker.UNDEFINED:
            return UNDEFINED
        if marker == AMF3Marker.FALSE:
            return False
        if marker == AMF3Marker.TRUE:
            return True
        if marker in _VECTOR_KINDS:
            return self.amf3_vector(_VECTOR_KINDS[AMF3Marker(marker)], level)
        if marker == AMF3Marker.DICTIONARY:
            return self.amf3_dictionary(level)
        if marker > AMF3Marker.DICTIONARY:
            self.pos -= 1
            self.fail(f"AMF3 marker 0x{marker:02x} is unknown")
        # The rest are leaves kept in the object table: a header with the reference bit first.
        header = self.u29()
        if not header & 1:
            return self.resolve(self.amf3_objects, header >> 1, level, "AMF3 object")
        if marker == AMF3Marker.DATE:
            return self.leaf(self.amf3_objects, self.date(self.double()), 0)
        size = header >> 1
        if marker == AMF3Marker.BYTE_ARRAY:
            start = self.check_size(size, "byte array")
            return self.leaf(self.amf3_objects, ByteArray(self.data[start : start + size]), size)
        text = self.utf8(size)
        xml = XMLDocument(text) if marker == AMF3Marker.XML_DOC else XML(text)
        return self.leaf(self.amf3_objects, xml, size)

    def amf3_string(self) -> str:
        """UTF-8-vr: an inline string (added to the string table unless empty) or a reference."""
        header = self.u29()
        if not header & 1:
            index = header >> 1
            if index >= len(self.amf3_strings):
                self.fail(f"string reference {index} is out of range ({len(self.amf3_strings)})")
            text, size = self.amf3_strings[index]
            self.count(0, size)
            return text
        size = header >> 1
        if not size:
            return ""
        text = self.utf8(size)
        self.amf3_strings.append((text, size))
        return text

    def amf3_array(self, level: int) -> Any:
        header = self.u29()
        if not header & 1:
            return self.resolve(self.amf3_objects, header >> 1, level, "AMF3 object")
        dense = header >> 1
        self.check_count(dense, 1, "array")
        return self.amf3_array_items(dense, level + 1)

    def amf3_array_items(self, dense: int, level: int) -> _Frame:
        """Associative part (name/value pairs up to an empty name), then ``dense`` values.

        Without an associative part the array is a ``list``; with one, an ``ECMAArray`` whose
        dense values sit under the keys ``"0"``, ``"1"``... as ActionScript would index them.
        """
        key = self.amf3_string()
        if not key:
            items: list[Any] = []
            entry = self.begin(self.amf3_objects, items, level)
            for _ in range(dense):
                items.append((yield True))
            self.finish(entry, level)
            return items
        mixed = ECMAArray()
        entry = self.begin(self.amf3_objects, mixed, level)
        entries = dense
        while key:
            entries += 1
            if entries > self.limits.max_entries:
                self.fail(f"array has more than max_entries={self.limits.max_entries} entries")
            mixed[key] = yield True
            key = self.amf3_string()
        for index in range(dense):
            mixed[str(index)] = yield True
        self.finish(entry, level)
        return mixed

    def amf3_object(self, level: int) -> Any:
        header = self.u29()
        if not header & 1:
            return self.resolve(self.amf3_objects, header >> 1, level, "AMF3 object")
        if not header & 2:
            index = header >> 2
            if index >= len(self.amf3_traits):
                self.fail(f"traits reference {index} is out of range ({len(self.amf3_traits)})")
            traits = self.amf3_traits[index]
        else:
            class_name = self.amf3_string()
            if header & 4:
                traits = _Traits(class_name, (), dynamic=False, externalizable=True)
            else:
                sealed_count = header >> 4
                self.check_count(sealed_count, 2, "sealed member list")
                sealed = tuple(self.amf3_string() for _ in range(sealed_count))
                traits = _Traits(class_name, sealed, bool(header & 8), externalizable=False)
            self.amf3_traits.append(traits)
        if not traits.externalizable:
            return self.amf3_members(traits, level + 1)
        if traits.class_name not in (ArrayCollection.CLASS_NAME, ObjectProxy.CLASS_NAME):
            self.fail(
                f"externalizable class {traits.class_name!r} uses a private encoding "
                "and cannot be decoded"
            )
        return self.amf3_externalizable(traits.class_name, level + 1)

    def amf3_members(self, traits: _Traits, level: int) -> _Frame:
        """Sealed member values in traits order, then dynamic name/value pairs if dynamic."""
        obj: dict[str, Any] = (
            TypedObject(traits.class_name, sealed=traits.sealed) if traits.class_name else {}
        )
        entry = self.begin(self.amf3_objects, obj, level)
        entries = 0
        for name in traits.sealed:
            entries += 1
            obj[name] = yield True
        while traits.dynamic:
            key = self.amf3_string()
            if not key:
                break
            entries += 1
            if entries > self.limits.max_entries:
                self.fail(f"object has more than max_entries={self.limits.max_entries} members")
            obj[key] = yield True
        self.finish(entry, level)
        return obj

    def amf3_externalizable(self, class_name: str, level: int) -> _Frame:
        """The two Flex wrappers whose externalized body is one ordinary AMF3 value."""
        wrapper: ArrayCollection | ObjectProxy = (
            ArrayCollection() if class_name == ArrayCollection.CLASS_NAME else ObjectProxy()
        )
        entry = self.begin(self.amf3_objects, wrapper, level)
        body = yield True
        if isinstance(wrapper, ArrayCollection):
            if type(body) is not list:
                self.fail("ArrayCollection body is not a dense array")
            wrapper.extend(body)
        else:
            if type(body) is not dict:
                self.fail("ObjectProxy body is not an anonymous object")
            wrapper.update(body)
        self.finish(entry, level)
        return wrapper

    def amf3_vector(self, kind: VectorKind, level: int) -> Any:
        header = self.u29()
        if not header & 1:
            return self.resolve(self.amf3_objects, header >> 1, level, "AMF3 object")
        count = header >> 1
        code, size = _VECTOR_ITEM.get(kind, ("", 1))
        self.check_count(count, size, "vector")
        fixed = self.u8() != 0
        if kind is VectorKind.OBJECT:
            type_name = self.amf3_string()
            return self.amf3_vector_items(
                Vector(kind, fixed=fixed, type_name=type_name), count, level + 1
            )
        vector = Vector(kind, fixed=fixed)
        entry = self.begin(self.amf3_objects, vector, level + 1)
        start = self.take(count * size)
        self.count(count)
        vector.extend(struct.unpack_from(f">{count}{code}", self.data, start))
        self.finish(entry, level + 1)
        return vector

    def amf3_vector_items(self, vector: Vector, count: int, level: int) -> _Frame:
        entry = self.begin(self.amf3_objects, vector, level)
        for _ in range(count):
            vector.append((yield True))
        self.finish(entry, level)
        return vector

    def amf3_dictionary(self, level: int) -> Any:
        header = self.u29()
        if not header & 1:
            return self.resolve(self.amf3_objects, header >> 1, level, "AMF3 object")
        count = header >> 1
        self.check_count(count, 2, "dictionary")
        weak_keys = self.u8() != 0
        return self.amf3_dictionary_items(AMF3Dictionary(weak_keys=weak_keys), count, level + 1)

    def amf3_dictionary_items(self, result: AMF3Dictionary, count: int, level: int) -> _Frame:
        entry = self.begin(self.amf3_objects, result, level)
        for _ in range(count):
            key = yield True
            value = yield True
            result.append((key, value))
        self.finish(entry, level)
        return result


def _decode(
    data: bytes | bytearray | memoryview, start: int, limits: AMFLimits | None
) -> list[Any]:
    reader = _Reader(bytes(data), limits or _DEFAULT_LIMITS, start)
    values: list[Any] = []
    while reader.pos < reader.end:
        values.append(reader.read())
    return values


def decode_values(
    data: bytes | bytearray | memoryview, *, limits: AMFLimits | None = None
) -> list[Any]:
    """Decode a sequence of AMF0 values (any of which may switch to AMF3 with 0x11).

    This is the body of an RTMP command (type 20) or data (type 18) message. Reference tables
    span the whole sequence. Raises :class:`~fms.amf.AMFDecodeError` for anything malformed,
    truncated or beyond ``limits`` (default :class:`~fms.amf.AMFLimits`); empty data is ``[]``.
    """
    return _decode(data, 0, limits)


def decode_payload(
    data: bytes | bytearray | memoryview,
    *,
    amf3_form: bool = False,
    limits: AMFLimits | None = None,
) -> list[Any]:
    """Decode an RTMP command or data message payload.

    ``amf3_form=False``: types 20/18, a sequence of AMF0 values. ``amf3_form=True``: types 17/15,
    a format selector byte that must be 0, then the same sequence (RTMP Errata and Addenda 6.2).
    The selector is required for both types: nginx-rtmp and Red5 skip the first byte of every
    type 15/17 payload unconditionally, so no client in use can omit it.
    """
    if not amf3_form:
        return _decode(data, 0, limits)
    if not data:
        raise AMFDecodeError("AMF3-form payload is empty: the format selector is missing", offset=0)
    if data[0] != 0:
        raise AMFDecodeError(
            f"unknown format selector 0x{data[0]:02x}, only 0 is defined", offset=0
        )
    return _decode(data, 1, limits)


__all__ = ["decode_payload", "decode_values"]
