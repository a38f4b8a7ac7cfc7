"""Enhanced RTMP v2 capability negotiation: what the server says about itself in the connect
``_result`` when a client announced what it supports.

A client lists its codecs in ``connect``'s command object (``fourCcList``, or per codec
``videoFourCcInfoMap``/``audioFourCcInfoMap`` with CanDecode/CanEncode/CanForward flags) and its
extended capabilities in ``capsEx``; the server answers with the same properties about itself.
pyFMS relays coded frames without looking inside them: it forwards every codec (``"*"``) and
decodes or encodes none, so every FourCC it names carries CanForward alone. Its ``capsEx``
says Reconnect (``NetConnection.Connect.ReconnectRequest`` is sent to clients that announced
it: :mod:`fms.server.reconnect`), Multitrack (every track of a multitrack stream is relayed,
and cached for late joiners) and ModEx (ModEx prefixes are parsed, and passed on unchanged);
not TimestampNanoOffset (the offset is passed on, not applied).

A client that announces none of this gets the ``_result`` it always got. Pure functions.
"""

from __future__ import annotations

from enum import IntFlag
from typing import Any


class FourCcInfoMask(IntFlag):
    CAN_DECODE = 0x01
    CAN_ENCODE = 0x02
    CAN_FORWARD = 0x04


class CapsExMask(IntFlag):
    RECONNECT = 0x01
    MULTITRACK = 0x02
    MOD_EX = 0x04
    TIMESTAMP_NANO_OFFSET = 0x08


VIDEO_FOURCCS = ("avc1", "hvc1", "vp08", "vp09", "av01", "vvc1")
AUDIO_FOURCCS = ("mp4a", "Opus", "fLaC", "ac-3", "ec-3", ".mp3")
"""The codecs the specification names; any other FourCC is forwarded too (``"*"``)."""

SERVER_CAPS_EX = CapsExMask.RECONNECT | CapsExMask.MULTITRACK | CapsExMask.MOD_EX
"""What pyFMS does beyond legacy RTMP (see the module docstring)."""

ANNOUNCING = ("fourCcList", "videoFourCcInfoMap", "audioFourCcInfoMap", "capsEx")
"""The connect properties by which a client asks for negotiation."""


def _forward_map(fourccs: tuple[str, ...]) -> dict[str, float]:
    forward = float(FourCcInfoMask.CAN_FORWARD)
    return {"*": forward, **{fourcc: forward for fourcc in fourccs}}


def connect_properties(command_object: dict[str, Any]) -> dict[str, Any]:
    """The properties to add to the connect ``_result``'s properties object for a client whose
    connect carried ``command_object``: nothing unless it announced Enhanced RTMP support.
    ``fourCcList`` is answered in kind when the client sent one (Enhanced RTMP v1 clients know
    no other property); the FourCC maps and ``capsEx`` always (numbers, as AMF sends them)."""
    if not any(name in command_object for name in ANNOUNCING):
        return {}
    out: dict[str, Any] = {}
    if "fourCcList" in command_object:
        out["fourCcList"] = [*VIDEO_FOURCCS, *AUDIO_FOURCCS, "*"]
    out["videoFourCcInfoMap"] = _forward_map(VIDEO_FOURCCS)
    out["audioFourCcInfoMap"] = _forward_map(AUDIO_FOURCCS)
    out["capsEx"] = float(SERVER_CAPS_EX)
    return out


def announces_reconnect(command_object: dict[str, Any]) -> bool:
    """Whether a client's connect command object announced the Reconnect capability
    (``capsEx`` bit 0x01): only such a client is sent ``NetConnection.Connect.ReconnectRequest``.
    A ``capsEx`` that is no whole number from 0 to 255 announces nothing."""
    value = command_object.get("capsEx")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if value != value or not 0 <= value <= 0xFF or value != int(value):
        return False
    return bool(int(value) & CapsExMask.RECONNECT)
