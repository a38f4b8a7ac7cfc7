"""AMF type markers, spelled as the AMF0 (2007) and AMF3 (2013) specifications spell them.

The one-byte marker in front of every AMF value says how the rest is laid out. Pure data.
"""

from __future__ import annotations

from enum import IntEnum


class AMF0Marker(IntEnum):
    """AMF0 markers (``number-marker`` is ``NUMBER``...)."""

    NUMBER = 0x00
    BOOLEAN = 0x01
    STRING = 0x02
    OBJECT = 0x03
    MOVIECLIP = 0x04
    """Reserved, not supported: decoding it is an error."""
    NULL = 0x05
    UNDEFINED = 0x06
    REFERENCE = 0x07
    ECMA_ARRAY = 0x08
    OBJECT_END = 0x09
    """Only valid after an empty key, closing an object, typed object or ECMA array."""
    STRICT_ARRAY = 0x0A
    DATE = 0x0B
    LONG_STRING = 0x0C
    UNSUPPORTED = 0x0D
    """Stands for a value the sender could not serialize; decodes as ``UNDEFINED``."""
    RECORDSET = 0x0E
    """Reserved, not supported: decoding it is an error."""
    XML_DOCUMENT = 0x0F
    TYPED_OBJECT = 0x10
    AVMPLUS_OBJECT = 0x11
    """The next value is encoded in AMF3."""


class AMF3Marker(IntEnum):
    """AMF3 markers (``undefined-marker`` is ``UNDEFINED``...)."""

    UNDEFINED = 0x00
    NULL = 0x01
    FALSE = 0x02
    TRUE = 0x03
    INTEGER = 0x04
    DOUBLE = 0x05
    STRING = 0x06
    XML_DOC = 0x07
    DATE = 0x08
    ARRAY = 0x09
    OBJECT = 0x0A
    XML = 0x0B
    BYTE_ARRAY = 0x0C
    VECTOR_INT = 0x0D
    VECTOR_UINT = 0x0E
    VECTOR_DOUBLE = 0x0F
    VECTOR_OBJECT = 0x10
    DICTIONARY = 0x11


OBJECT_END = b"\x00\x00\x09"
"""AMF0: an empty UTF-8 key then ``object-end-marker``, closing an object or ECMA array."""

AMF3_INT_MIN = -(1 << 28)
"""Smallest integer the AMF3 ``integer-type`` (29-bit signed) carries."""

AMF3_INT_MAX = (1 << 28) - 1
"""Largest integer the AMF3 ``integer-type`` carries; beyond, integers travel as doubles."""

__all__ = ["AMF3_INT_MAX", "AMF3_INT_MIN", "OBJECT_END", "AMF0Marker", "AMF3Marker"]
