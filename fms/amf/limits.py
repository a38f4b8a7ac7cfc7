"""Hard limits on what one AMF payload may make the decoder build.

A peer controls every length and count in the bytes it sends. The decoder checks each of them
against these limits *and* against the bytes actually left before it allocates anything, so a
payload can never cost much more memory or time than its own size.
"""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(frozen=True, slots=True)
class AMFLimits:
    """Per-payload decoding limits; every field is configurable and must be at least 1.

    - ``max_depth``: containers (objects, arrays, vectors, dictionaries) nested in one another.
      The decoder keeps its own stack, so any value is safe; Python's recursion limit is never
      involved.
    - ``max_entries``: members of one object, ECMA array, array, vector or dictionary.
    - ``max_string``: bytes in one string, XML text, byte array or object key.
    - ``max_total_items``: values in the whole decoded payload. A reference (AMF0 0x07, AMF3
      object references) counts as everything it points to, so sharing cannot amplify a small
      payload into a huge graph for whoever walks it later.
    - ``max_total_bytes``: bytes of text and binary data in the whole decoded payload, counted
      the same way (a string reference costs its length again).
    """

    max_depth: int = 32
    max_entries: int = 1024
    max_string: int = 1 << 20
    max_total_items: int = 1 << 16
    max_total_bytes: int = 1 << 22

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"AMFLimits.{field.name} must be an int >= 1, got {value!r}")


__all__ = ["AMFLimits"]
