"""The two exceptions of :mod:`fms.amf`, one per error family of :mod:`fms.errors`.

:class:`AMFDecodeError` is the only exception decoding raises, whatever the bytes: the peer sent
them, so it is a :class:`~fms.errors.RemoteProtocolError` (close that one connection).
:class:`AMFEncodeError` means our own code asked to encode something AMF cannot carry, a bug on
our side, so it is a :class:`~fms.errors.LocalProtocolError`.
"""

from __future__ import annotations

from fms.errors import LocalProtocolError, RemoteProtocolError


class AMFDecodeError(RemoteProtocolError):
    """The bytes are not valid AMF, are truncated, or break an :class:`~fms.amf.AMFLimits` limit.

    ``reason`` says what was wrong; ``offset`` is the byte position in the payload where the
    decoder noticed it (``None`` when no single position applies).
    """

    def __init__(self, reason: str, *, offset: int | None = None) -> None:
        super().__init__(reason if offset is None else f"{reason} (at byte {offset})")
        self.reason = reason
        self.offset = offset


class AMFEncodeError(LocalProtocolError):
    """A value has no AMF encoding (wrong type, cycle, naive datetime, out-of-range number...)."""


__all__ = ["AMFDecodeError", "AMFEncodeError"]
