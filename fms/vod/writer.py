"""An FLV recording written front to back, sans-IO: the writer returns the bytes to append and,
at the end, the patches to apply in place; the caller owns the file.

Layout: the FLV header, a fixed-size ``onMetaData`` placeholder (:mod:`fms.vod.metadata`),
then the tags as they come. :meth:`FLVWriter.finish` gives the final ``onMetaData`` (same size,
so nothing after it moves) and the header's audio/video flags for the tracks actually written.
A file that never gets its patches (a crash) is still a valid FLV up to its last complete tag;
:func:`fms.vod.reader.plan_repair` computes the same patches from the file itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fms.live.flv import FLAG_AUDIO, FLAG_VIDEO, MAX_DATA_SIZE, TAG_SCRIPT, encode_tag, file_header
from fms.vod.index import IndexBuilder
from fms.vod.metadata import MetadataTooLarge, announced_tracks, metadata_body

HEADER_SIZE = 13
"""The FLV header and PreviousTagSize0 (bytes): where the ``onMetaData`` tag starts."""
FLAGS_AT = 4
"""Offset of the header's audio/video flags byte."""
METADATA_BODY_AT = HEADER_SIZE + 11
"""Offset of the ``onMetaData`` tag body."""
DEFAULT_INDEX_ROOM = 64 * 1024
"""Bytes reserved in ``onMetaData`` beyond the placeholder for the figures and the keyframe
index: 18 bytes a keyframe, so about an hour at one keyframe a second before thinning."""
MIN_INDEX_ROOM = 1024
"""Enough for the recorder's own figures (codec ids, picture size...) added at close."""


@dataclass(frozen=True, slots=True)
class Patch:
    """Bytes to write at ``offset`` of the file, replacing what is there."""

    offset: int
    data: bytes


class FLVWriter:
    """The bytes of one recording. ``publisher`` is the publisher's ``onMetaData`` values,
    kept in the file's ``onMetaData``; ``room`` the bytes reserved for the figures and index;
    ``audio``/``video`` the header flags until the close sets those of the tracks written
    (default: what ``publisher`` announces, both if nothing)."""

    def __init__(
        self,
        publisher: Mapping[str, Any] | None = None,
        *,
        room: int = DEFAULT_INDEX_ROOM,
        audio: bool | None = None,
        video: bool | None = None,
    ) -> None:
        if room < MIN_INDEX_ROOM:
            raise ValueError(f"room: at least {MIN_INDEX_ROOM} bytes")
        self.publisher = dict(publisher) if publisher else None
        self.index = IndexBuilder()
        audio, video = (
            announced_tracks(publisher) if audio is None or video is None else (audio, video)
        )
        self.header_flags = (FLAG_AUDIO if audio else 0) | (FLAG_VIDEO if video else 0)
        self.reserved = len(metadata_body(self.publisher, self.index.figures(0, indexed=False)))
        self.reserved += room
        self.size = 0
        """Bytes of the file so far (the bytes returned by the writer)."""

    @classmethod
    def resume(
        cls,
        *,
        publisher: Mapping[str, Any] | None,
        index: IndexBuilder,
        reserved: int,
        size: int,
        flags: int,
    ) -> FLVWriter:
        """A writer that continues a file of ``size`` bytes (``append``) whose tags gave
        ``index`` and whose ``onMetaData`` body has ``reserved`` bytes."""
        writer = cls(publisher)
        writer.index = index
        writer.reserved = reserved
        writer.size = size
        writer.header_flags = flags
        return writer

    def start(self) -> bytes:
        """The header and the placeholder ``onMetaData`` tag: the first bytes of the file."""
        body = metadata_body(
            self.publisher, self.index.figures(0, indexed=False), size=self.reserved
        )
        head = bytearray(
            file_header(
                audio=bool(self.header_flags & FLAG_AUDIO),
                video=bool(self.header_flags & FLAG_VIDEO),
            )
        )
        head += encode_tag(TAG_SCRIPT, 0, body)
        self.size = len(head)
        return bytes(head)

    def tag(self, tag_type: int, timestamp: int, body: bytes) -> bytes:
        """One tag (``timestamp`` in ms, already rebased) to append; ValueError for a body over
        16 MiB - 1 or an unknown type (nothing is counted then)."""
        data = encode_tag(tag_type, timestamp, body)
        self.index.add(self.size, tag_type, timestamp & 0xFFFFFFFF, body)
        self.size += len(data)
        return data

    @staticmethod
    def fits(body: bytes) -> bool:
        """Whether ``body`` can be one FLV tag."""
        return len(body) <= MAX_DATA_SIZE

    def finish(self) -> list[Patch]:
        """The final header flags and ``onMetaData``, to write in place at close (without the
        ``onMetaData`` when the reserved size cannot hold the figures, which only a file this
        writer did not start can have)."""
        flags = (FLAG_AUDIO if self.index.has_audio else 0) | (
            FLAG_VIDEO if self.index.has_video else 0
        )
        patches = [Patch(FLAGS_AT, bytes((flags or self.header_flags,)))]
        figures = self.index.figures(self.size, indexed=True)
        try:
            body = metadata_body(self.publisher, figures, self.index.keyframes, size=self.reserved)
        except MetadataTooLarge:  # a reserve too small for the figures: only a foreign file
            return patches
        return [*patches, Patch(METADATA_BODY_AT, body)]
