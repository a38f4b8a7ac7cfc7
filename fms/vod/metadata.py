"""The ``onMetaData`` of a recording: a fixed-size tag at the start of the file, rewritten in
place when the recording closes (or is repaired after a crash).

Players learn a file's length and where to seek from its first script tag, ``onMetaData``:
``duration`` (seconds), ``filesize`` (bytes), ``videocodecid``/``audiocodecid`` (a legacy FLV
codec number, or for Enhanced RTMP codecs the FourCC as a big-endian number, as the Enhanced
RTMP specification has it), ``width``/``height`` (pixels) and the ``keyframes`` object
``{times: [s...], filepositions: [byte offset of the tag...]}`` that FFmpeg, VLC and Flash use
to seek without reading the whole file.

None of that is known when the recording starts, and a file is written once, front to back.
So the first tag is reserved at a fixed size (its data size never changes) and its body is
padded to exactly that size: after the ``onMetaData`` ECMA array comes one more AMF0 value that
only fills (a string of spaces, a long string for large paddings, or one or two nulls for the
last bytes). FFmpeg reads the first value after the name and skips to the next tag; Flash
passes the filler as an extra argument nobody reads. ``indexed`` says whether the tag holds the
final figures (``True``) or is still the placeholder (``False``, the state a crash leaves).

When the index does not fit the reserved size (a recording much longer than the reserve was
sized for), it is thinned evenly: every entry left still points at a real keyframe, seeking
lands on an earlier keyframe than it could and decodes forward. No sidecar file: it could be
deleted or copied apart from the recording, and no other player would read it; the server's own
playback rebuilds a full index by scanning the file (:func:`fms.vod.reader.index_file`).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping, Sequence
from typing import Any

from fms.amf import (
    AMFDecodeError,
    AMFEncodeError,
    AMFLimits,
    ECMAArray,
    decode_values,
    encode_values,
)

CREATOR = "pyFMS"
"""``metadatacreator`` of the files the recorder writes: how repair knows a file is ours."""

FIGURE_KEYS = ("videocodecid", "audiocodecid", "width", "height", "hasVideo", "hasAudio", "indexed")
"""The recorder's figures after the publisher's keys, in this order."""
OWN_KEYS = ("duration", "filesize", *FIGURE_KEYS, "metadatacreator", "keyframes")
"""Keys the recorder sets itself; a publisher's values for them are replaced when the recorder
knows better (a picture size it could not read keeps the publisher's)."""
ALWAYS_OWN = frozenset({"duration", "filesize", "metadatacreator", "indexed", "keyframes"})

KEYFRAME_ENTRY_SIZE = 18
"""Bytes one keyframe adds to the index: two AMF0 numbers (time, file position)."""

_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")


class MetadataTooLarge(ValueError):
    """The metadata does not fit the reserved size even without a keyframe index."""


def fourcc_number(fourcc: str) -> int:
    """A FourCC (``"hvc1"``) as the big-endian number ``videocodecid`` carries for it."""
    return int.from_bytes(fourcc.encode("latin-1")[:4].ljust(4, b" "), "big")


def announced_tracks(publisher: Mapping[str, Any] | None) -> tuple[bool, bool]:
    """(audio, video): what a publisher's metadata says the stream carries, for the header
    flags of a file that has not seen its tracks yet; both when it says nothing."""
    publisher = publisher or {}
    audio = "audiocodecid" in publisher or publisher.get("hasAudio") is True
    video = "videocodecid" in publisher or publisher.get("hasVideo") is True
    return (audio, video) if audio or video else (True, True)


def filler(size: int) -> bytes:
    """One AMF0 value (or two nulls) of exactly ``size`` bytes, ``size >= 0``."""
    if size == 0:
        return b""
    if size < 3:
        return b"\x05" * size
    if size - 3 <= 0xFFFF:
        return b"\x02" + _U16.pack(size - 3) + b" " * (size - 3)
    return b"\x0c" + _U32.pack(size - 5) + b" " * (size - 5)


def _thin(keyframes: Sequence[tuple[int, int]], keep: int) -> list[tuple[int, int]]:
    """At most ``keep`` entries of ``keyframes``, evenly spread, the first one always kept."""
    if keep <= 0:
        return []
    if len(keyframes) <= keep:
        return list(keyframes)
    step = math.ceil(len(keyframes) / keep)
    return list(keyframes[::step])


def metadata_values(
    publisher: Mapping[str, Any] | None,
    figures: Mapping[str, Any],
    keyframes: Sequence[tuple[int, int]],
) -> ECMAArray:
    """The ``onMetaData`` array: ``duration`` and ``filesize`` first, the publisher's keys,
    then ``figures`` (the recorder's own, None for unknown: codec ids, sizes, ``indexed``...,
    replacing the publisher's) and the index
    (``keyframes``: (ms, byte offset) pairs, written in seconds and bytes)."""
    publisher = publisher or {}
    values = ECMAArray(duration=figures.get("duration", 0.0), filesize=figures.get("filesize", 0.0))
    for key, value in publisher.items():
        if isinstance(key, str) and key not in OWN_KEYS:
            values[key] = value
    for key in FIGURE_KEYS:  # in a fixed order, so that a repair writes what a close would
        value = figures.get(key)
        if value is None and key not in ALWAYS_OWN:
            value = publisher.get(key)
        if value is not None:
            values[key] = value
    values["metadatacreator"] = CREATOR
    values["keyframes"] = {
        "times": [ms / 1000 for ms, _ in keyframes],
        "filepositions": [float(offset) for _, offset in keyframes],
    }
    return values


def _encode(values: ECMAArray) -> bytes:
    try:
        return encode_values(("onMetaData", values))
    except AMFEncodeError:  # a publisher's value AMF0 cannot carry: keep ours only
        mine = ECMAArray((k, v) for k, v in values.items() if k in OWN_KEYS)
        return encode_values(("onMetaData", mine))


def metadata_body(
    publisher: Mapping[str, Any] | None,
    figures: Mapping[str, Any],
    keyframes: Sequence[tuple[int, int]] = (),
    *,
    size: int | None = None,
) -> bytes:
    """The ``onMetaData`` tag body (module docstring), exactly ``size`` bytes when given (the
    index thinned to fit); MetadataTooLarge when not even the index-less body fits."""
    body = _encode(metadata_values(publisher, figures, ()))
    if size is None:
        return _encode(metadata_values(publisher, figures, keyframes)) if keyframes else body
    if len(body) > size:
        body = _encode(metadata_values(None, figures, ()))
        if len(body) > size:
            raise MetadataTooLarge(f"onMetaData needs {len(body)} bytes, {size} are reserved")
        publisher = None
    keep = (size - len(body)) // KEYFRAME_ENTRY_SIZE
    if keyframes:
        body = _encode(metadata_values(publisher, figures, _thin(keyframes, keep)))
    return body + filler(size - len(body))


def read_metadata(body: bytes) -> dict[str, Any] | None:
    """The values of an ``onMetaData`` script tag body, or None if it is not one (or is not
    readable AMF0). The decoder's limits grow with the body so that a long index is read."""
    size = max(len(body), 1)
    limits = AMFLimits(max_entries=size, max_total_items=size, max_total_bytes=size)
    try:
        values = decode_values(body, limits=limits)
    except AMFDecodeError:
        return None
    if len(values) < 2 or values[0] != "onMetaData" or not isinstance(values[1], dict):
        return None
    return dict(values[1])


def keyframes_of(metadata: Mapping[str, Any]) -> list[tuple[int, int]]:
    """The (ms, byte offset) pairs of ``metadata["keyframes"]``; [] when absent or malformed."""
    index = metadata.get("keyframes")
    if not isinstance(index, dict):
        return []
    times, positions = index.get("times"), index.get("filepositions")
    if not isinstance(times, list) or not isinstance(positions, list):
        return []
    if len(times) != len(positions):
        return []
    out: list[tuple[int, int]] = []
    for seconds, offset in zip(times, positions, strict=True):
        if not isinstance(seconds, (int, float)) or not isinstance(offset, (int, float)):
            return []
        if not (math.isfinite(seconds) and math.isfinite(offset)):
            return []
        out.append((round(seconds * 1000), int(offset)))
    return out
