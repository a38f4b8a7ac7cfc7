"""AMF0/AMF3 values and RTMP command/data payloads, safe by default.

The only package of pyFMS allowed to import ``pyamf``, and at run time it imports none of it:
decoding and encoding are our own small modules, and pyamf (py3amf) is the independent oracle
the tests check them against.

- :mod:`fms.amf.decoder`: a bounded parser. A typed object's class name is data (it decodes to
  :class:`TypedObject`; nothing is imported or built); every length and count is checked against
  :class:`AMFLimits` and the bytes present before anything is allocated; nesting runs on an
  explicit stack, references can neither cycle nor amplify; any bad input raises exactly
  :class:`AMFDecodeError`.
- :mod:`fms.amf.encoder`: one byte layout per Python type, chosen so that ``dict`` is an AMF0
  object, :class:`ECMAArray` an ECMA array, ``AMF3(value)`` a 0x11 switch. pyamf's encoder was
  measured and rejected: importing it hooks ``sys.meta_path`` process-wide, and its bytes are
  wrong for ECMA array counts, long keys and typed objects (details in that module).
- :mod:`fms.amf.types`: the value types without a built-in counterpart, and
  :mod:`fms.amf.markers` the wire markers as the specifications spell them.

Payload forms: RTMP types 20 (command) and 18 (data) are a sequence of AMF0 values; types 17 and
15 start with a format selector byte 0, then the same sequence, where any value may be AMF3
after the 0x11 marker (RTMP Errata and Addenda, section 6.2). Pure standard library: no Twisted,
no zope.
"""

from __future__ import annotations

from fms.amf.decoder import decode_payload, decode_values
from fms.amf.encoder import encode_payload, encode_values
from fms.amf.errors import AMFDecodeError, AMFEncodeError
from fms.amf.limits import AMFLimits
from fms.amf.markers import AMF0Marker, AMF3Marker
from fms.amf.types import (
    AMF3,
    UNDEFINED,
    XML,
    AMF3Dictionary,
    ArrayCollection,
    ByteArray,
    ECMAArray,
    ObjectProxy,
    TypedObject,
    Undefined,
    Vector,
    VectorKind,
    XMLDocument,
)

__all__ = [
    "AMF3",
    "UNDEFINED",
    "XML",
    "AMF0Marker",
    "AMF3Dictionary",
    "AMF3Marker",
    "AMFDecodeError",
    "AMFEncodeError",
    "AMFLimits",
    "ArrayCollection",
    "ByteArray",
    "ECMAArray",
    "ObjectProxy",
    "TypedObject",
    "Undefined",
    "Vector",
    "VectorKind",
    "XMLDocument",
    "decode_payload",
    "decode_values",
    "encode_payload",
    "encode_values",
]
