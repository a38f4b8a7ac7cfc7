"""Python types for the AMF values that have no exact built-in counterpart.

Plain built-ins carry the common values: ``None`` (null), ``bool``, ``float`` (AMF0 number,
AMF3 double), ``int`` (AMF3 integer), ``str``, ``list`` (strict/dense array), ``dict`` (anonymous
object) and timezone-aware :class:`~datetime.datetime` (date, UTC). The classes here exist so
that every AMF type survives a decode/encode round trip and so that nothing a peer sends can
choose a Python class: a typed object is a :class:`TypedObject` holding its class name as data.

Subclasses of ``dict``/``list``/``str``/``bytes`` behave as their base for reading. Where a class
carries extra data (``class_name``, vector ``kind``...), that data takes part in ``==``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, Final


class Undefined(Enum):
    """ActionScript ``undefined`` (AMF0 0x06, AMF3 0x00), distinct from ``null`` (``None``).

    An enum with one member is a singleton that survives ``copy`` and ``pickle``; it is falsy
    like ``undefined`` is in ActionScript.
    """

    UNDEFINED = "undefined"

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "UNDEFINED"


UNDEFINED: Final = Undefined.UNDEFINED
"""The one ``undefined`` value."""


class ECMAArray(dict[str, Any]):
    """An AMF0 ECMA array (0x08), the associative array of ``onMetaData`` payloads.

    A plain ``dict`` encodes as an anonymous object (0x03); use this type when the peer expects
    an ECMA array. In AMF3 it is an array with only an associative part. Keys are strings.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return f"ECMAArray({dict.__repr__(self)})"


class TypedObject(dict[str, Any]):
    """An object with a class name (AMF0 0x10, AMF3 object with traits), as plain data.

    A decoder never imports or instantiates anything from ``class_name``: that is how pyamf
    lets a peer import modules of its choice, and this server does not. ``sealed`` lists the
    members an AMF3 traits declared sealed, in order (empty for AMF0), so AMF3 re-encodes the
    same layout; members not in ``sealed`` are dynamic. ``==`` compares ``class_name`` and the
    members (not ``sealed``); a ``TypedObject`` never equals a plain ``dict``.
    """

    __slots__ = ("class_name", "sealed")

    class_name: str
    sealed: tuple[str, ...]

    def __init__(
        self,
        class_name: str,
        members: Mapping[str, Any] | Iterable[tuple[str, Any]] = (),
        /,
        *,
        sealed: Iterable[str] = (),
    ) -> None:
        super().__init__(members)
        self.class_name = class_name
        self.sealed = tuple(sealed)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, TypedObject):
            return self.class_name == other.class_name and dict.__eq__(self, other)
        if isinstance(other, dict):
            return False
        return NotImplemented

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    __hash__ = None

    def __repr__(self) -> str:
        sealed = f", sealed={self.sealed!r}" if self.sealed else ""
        return f"TypedObject({self.class_name!r}, {dict.__repr__(self)}{sealed})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_typed_object, (self.class_name, dict(self), self.sealed))


def _typed_object(class_name: str, members: dict[str, Any], sealed: tuple[str, ...]) -> TypedObject:
    return TypedObject(class_name, members, sealed=sealed)


class XMLDocument(str):
    """XML text of an AMF0 XML document (0x0F) or AMF3 XMLDocument (0x07), never parsed here.

    Parsing XML from a peer is a separate risk (entities, size); callers that need a tree choose
    a hardened parser themselves.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return f"XMLDocument({str.__repr__(self)})"


class XML(str):
    """XML text of an AMF3 E4X XML value (0x0B). AMF0 has only XML documents: there it
    encodes as one (0x0F) and decodes back as :class:`XMLDocument`.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return f"XML({str.__repr__(self)})"


class ByteArray(bytes):
    """An AMF3 ByteArray (0x0C), kept as sent: never decompressed (pyamf inflates zlib data,
    which lets a small payload grow without bound). Has no AMF0 form.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return f"ByteArray({bytes.__repr__(self)})"


class VectorKind(Enum):
    """Element type of an AMF3 vector, one per marker (0x0D..0x10)."""

    INT = "int"
    """Signed 32-bit integers."""
    UINT = "uint"
    """Unsigned 32-bit integers."""
    DOUBLE = "double"
    """IEEE-754 doubles."""
    OBJECT = "object"
    """Any AMF3 values, with a type name (``type_name``)."""


class Vector(list[Any]):
    """An AMF3 vector (Flash Player 10 ``Vector.<T>``). Has no AMF0 form.

    ``fixed`` is the vector's fixed-length flag; ``type_name`` names the element class of an
    object vector (empty for the other kinds). ``==`` compares all of them and the items; a
    ``Vector`` never equals a plain ``list``.
    """

    __slots__ = ("fixed", "kind", "type_name")

    kind: VectorKind
    fixed: bool
    type_name: str

    def __init__(
        self,
        kind: VectorKind,
        items: Iterable[Any] = (),
        /,
        *,
        fixed: bool = False,
        type_name: str = "",
    ) -> None:
        super().__init__(items)
        self.kind = kind
        self.fixed = fixed
        self.type_name = type_name

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Vector):
            return (
                self.kind is other.kind
                and self.fixed == other.fixed
                and self.type_name == other.type_name
                and list.__eq__(self, other)
            )
        if isinstance(other, list):
            return False
        return NotImplemented

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    __hash__ = None

    def __repr__(self) -> str:
        extra = f", type_name={self.type_name!r}" if self.type_name else ""
        return f"Vector({self.kind}, {list.__repr__(self)}, fixed={self.fixed}{extra})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_vector, (self.kind, list(self), self.fixed, self.type_name))


def _vector(kind: VectorKind, items: list[Any], fixed: bool, type_name: str) -> Vector:
    return Vector(kind, items, fixed=fixed, type_name=type_name)


class AMF3Dictionary(list[tuple[Any, Any]]):
    """An AMF3 Dictionary (0x11) as a list of ``(key, value)`` pairs. Has no AMF0 form.

    Keys may be any AMF value, objects included, which a Python ``dict`` could not hold; order
    and duplicates are kept as sent. ``weak_keys`` is the dictionary's weak-keys flag.
    """

    __slots__ = ("weak_keys",)

    weak_keys: bool

    def __init__(
        self, items: Iterable[tuple[Any, Any]] = (), /, *, weak_keys: bool = False
    ) -> None:
        super().__init__(items)
        self.weak_keys = weak_keys

    def __eq__(self, other: object) -> bool:
        if isinstance(other, AMF3Dictionary):
            return self.weak_keys == other.weak_keys and list.__eq__(self, other)
        if isinstance(other, list):
            return False
        return NotImplemented

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    __hash__ = None

    def __repr__(self) -> str:
        return f"AMF3Dictionary({list.__repr__(self)}, weak_keys={self.weak_keys})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_dictionary, (list(self), self.weak_keys))


def _dictionary(items: list[tuple[Any, Any]], weak_keys: bool) -> AMF3Dictionary:
    return AMF3Dictionary(items, weak_keys=weak_keys)


class ArrayCollection(list[Any]):
    """Flex ``flex.messaging.io.ArrayCollection``: an externalizable AMF3 object whose body is
    one dense array. The only externalizable class besides :class:`ObjectProxy` that decodes,
    because its body is plain AMF3 (others are private byte layouts). Has no AMF0 form.
    """

    __slots__ = ()

    CLASS_NAME: Final = "flex.messaging.io.ArrayCollection"

    def __repr__(self) -> str:
        return f"ArrayCollection({list.__repr__(self)})"


class ObjectProxy(dict[str, Any]):
    """Flex ``flex.messaging.io.ObjectProxy``: an externalizable AMF3 object whose body is one
    anonymous object. Has no AMF0 form.
    """

    __slots__ = ()

    CLASS_NAME: Final = "flex.messaging.io.ObjectProxy"

    def __repr__(self) -> str:
        return f"ObjectProxy({dict.__repr__(self)})"


@dataclass(frozen=True, slots=True)
class AMF3:
    """Encode ``value`` in AMF3 inside an AMF0 stream: the encoder writes the AMF0
    ``avmplus-object-marker`` (0x11) and then ``value`` in AMF3.

    This is how a peer that negotiated ``objectEncoding`` 3 mixes AMF3 values into a command,
    and the only way to send AMF3-only types (vectors, byte arrays, dictionaries). Decoding
    returns the bare value, not this wrapper.
    """

    value: Any


__all__ = [
    "AMF3",
    "UNDEFINED",
    "XML",
    "AMF3Dictionary",
    "ArrayCollection",
    "ByteArray",
    "ECMAArray",
    "ObjectProxy",
    "TypedObject",
    "Undefined",
    "Vector",
    "VectorKind",
    "XMLDocument",
]
