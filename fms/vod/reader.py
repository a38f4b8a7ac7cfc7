"""Reading recorded FLV files: tag by tag from any offset, tolerant of the way recordings end.

The source is a ``read(offset, size) -> bytes`` callable (``os.pread`` on a file descriptor,
a slice of bytes in tests): fewer bytes than asked means the end of the file. Reads go through
a block cache, so a file of any size is walked without being held in memory, and the caller
decides how (and in which thread) the disk is read.

What counts as a tag: a type 8, 9 or 18, a data size no larger than ``max_tag_size`` (bytes;
anything larger is taken as corruption, not allocated), and a PreviousTagSize that matches.
A file that simply stops (a recording interrupted by a crash or a power loss, a download cut
short) ends after its last complete tag, trailer included: iteration stops there without an
error. A tag that is not a tag (zeros left by a power loss, garbage, an absurd size) raises
:class:`FLVReadError`, whose ``offset`` is where the good part of the file ends; the tags
yielded before it are good. Nothing else is ever raised for bad bytes.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from fms.live.flv import TAG_AUDIO, TAG_HEADER_SIZE, TAG_SCRIPT, TAG_VIDEO
from fms.vod.index import IndexBuilder
from fms.vod.metadata import CREATOR, read_metadata
from fms.vod.writer import FLAGS_AT, HEADER_SIZE, METADATA_BODY_AT, FLVWriter, Patch

Read = Callable[[int, int], bytes]
"""``read(offset, size)``: up to ``size`` bytes of the file from ``offset`` (bytes)."""

DEFAULT_MAX_TAG_SIZE = 8 * 1024 * 1024
"""Largest tag body accepted (bytes): a 4K keyframe is well under; FLV allows 16 MiB - 1."""
BLOCK = 64 * 1024
"""Bytes read from the source at a time."""
_TYPES = (TAG_AUDIO, TAG_VIDEO, TAG_SCRIPT)


class FLVReadError(ValueError):
    """Bytes that are not FLV where FLV was expected. ``offset``: where the well-formed part
    of the file ends (bytes; 0 when the header itself is bad)."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(f"{message} (at byte {offset})")
        self.offset = offset


@dataclass(frozen=True, slots=True)
class FileTag:
    """One tag of a file: where it starts (byte offset of its header), its type, timestamp
    (ms) and body."""

    offset: int
    tag_type: int
    timestamp: int
    body: bytes

    @property
    def end(self) -> int:
        """Offset just past its PreviousTagSize."""
        return self.offset + TAG_HEADER_SIZE + len(self.body) + 4


class _Blocks:
    """Reads of a source through one cached block (sequential walks read each byte once)."""

    def __init__(self, read: Read) -> None:
        self._read = read
        self._at = 0
        self._data = b""

    def get(self, offset: int, size: int) -> bytes:
        end = offset + size
        if self._at <= offset and end <= self._at + len(self._data):
            return self._data[offset - self._at : end - self._at]
        if size > BLOCK:
            return bytes(self._read(offset, size))
        self._at, self._data = offset, bytes(self._read(offset, BLOCK))
        return self._data[:size]


def read_header(read: Read) -> int:
    """The audio/video flags of an FLV file's header; FLVReadError if it is not one."""
    head = bytes(read(0, HEADER_SIZE))
    if len(head) < HEADER_SIZE or head[:3] != b"FLV" or head[3] != 1:
        raise FLVReadError("not an FLV file header", 0)
    if int.from_bytes(head[5:9], "big") != 9:
        raise FLVReadError("an FLV header of an unknown size", 0)
    return head[FLAGS_AT]


def iter_tags(
    read: Read, *, start: int = HEADER_SIZE, max_tag_size: int = DEFAULT_MAX_TAG_SIZE
) -> Iterator[FileTag]:
    """The tags of the file from byte ``start`` (a tag's offset; default the first tag), as
    the module docstring says. The header is checked first when ``start`` is the first tag."""
    if start == HEADER_SIZE:
        read_header(read)
    blocks = _Blocks(read)
    at = start
    while True:
        head = blocks.get(at, TAG_HEADER_SIZE)
        if len(head) < TAG_HEADER_SIZE:
            return
        tag_type = head[0]
        size = int.from_bytes(head[1:4], "big")
        if tag_type not in _TYPES:
            raise FLVReadError(f"not an FLV tag (type {tag_type})", at)
        if size > max_tag_size:
            raise FLVReadError(f"a tag of {size} bytes, over the {max_tag_size} allowed", at)
        rest = blocks.get(at + TAG_HEADER_SIZE, size + 4)
        if len(rest) < size + 4:
            return
        if int.from_bytes(rest[size:], "big") != TAG_HEADER_SIZE + size:
            raise FLVReadError("a PreviousTagSize that does not match its tag", at)
        timestamp = int.from_bytes(head[4:7], "big") | head[7] << 24
        tag = FileTag(at, tag_type, timestamp, rest[:size])
        yield tag
        at = tag.end


@dataclass(slots=True)
class FileIndex:
    """What a scan of a whole file found. ``metadata``: the first tag's ``onMetaData`` values
    (None if it has none); ``metadata_size``: that tag's body size (bytes); ``end``: offset
    just past the last good tag; ``damage``: why the scan stopped before the end of the file
    (None when it did not)."""

    flags: int
    metadata: dict[str, Any] | None = None
    metadata_size: int = 0
    index: IndexBuilder = field(default_factory=IndexBuilder)
    end: int = HEADER_SIZE
    damage: str | None = None

    @property
    def ours(self) -> bool:
        """Whether the recorder wrote it: its ``onMetaData`` is a rewritable placeholder."""
        return self.metadata is not None and self.metadata.get("metadatacreator") == CREATOR

    @property
    def indexed(self) -> bool:
        """Whether its ``onMetaData`` holds the final figures (a clean close or a repair)."""
        return self.ours and self.metadata is not None and self.metadata.get("indexed") is True


def index_file(read: Read, *, max_tag_size: int = DEFAULT_MAX_TAG_SIZE) -> FileIndex:
    """Scan every tag of the file (salvaging what comes before any damage) and rebuild its
    figures: duration, keyframe index, codecs. FLVReadError only for a bad file header."""
    found = FileIndex(read_header(read))
    try:
        for tag in iter_tags(read, max_tag_size=max_tag_size):
            if tag.offset == HEADER_SIZE and tag.tag_type == TAG_SCRIPT:
                found.metadata = read_metadata(tag.body)
                if found.metadata is not None:
                    found.metadata_size = len(tag.body)
            else:
                found.index.add(tag.offset, tag.tag_type, tag.timestamp, tag.body)
            found.end = tag.end
    except FLVReadError as exc:
        found.damage = str(exc)
    return found


def keyframe_at_or_before(keyframes: Sequence[tuple[int, int]], ms: int) -> tuple[int, int] | None:
    """The (ms, byte offset) entry of ``keyframes`` (sorted by time, as an index is) at or
    before ``ms``: where a seek to ``ms`` starts reading (:func:`iter_tags` ``start=``); None
    when ``ms`` comes before the first keyframe (start at the first tag then)."""
    at = bisect_right(keyframes, (ms, float("inf")))
    return keyframes[at - 1] if at else None


@dataclass(frozen=True, slots=True)
class RepairPlan:
    """How to finish a recording that was never closed: cut the file at ``truncate`` bytes
    (dropping a partial last tag or damage), then apply ``patches``; ``index`` the figures."""

    truncate: int
    patches: tuple[Patch, ...]
    index: IndexBuilder


def plan_repair(
    read: Read, size: int, *, max_tag_size: int = DEFAULT_MAX_TAG_SIZE
) -> RepairPlan | None:
    """The repair of the recording of ``size`` bytes that ``read`` reads, or None if it needs
    none (already indexed) or cannot have one in place (not a file the recorder wrote: its first
    tag is no placeholder to rewrite). The ``onMetaData`` is rebuilt as the recorder would have
    written it at close, in the same number of bytes (the index thinned if needed; see
    :mod:`fms.vod.metadata` for why there is no sidecar). FLVReadError for a bad header."""
    found = index_file(read, max_tag_size=max_tag_size)
    if not found.ours or found.indexed or found.metadata is None:
        return None
    writer = FLVWriter.resume(
        publisher=found.metadata,
        index=found.index,
        reserved=found.metadata_size,
        size=found.end,
        flags=found.flags,
    )
    patches = tuple(writer.finish())
    if patches[-1].offset != METADATA_BODY_AT:
        return None  # its placeholder is too small to rewrite: not one the recorder reserved
    return RepairPlan(min(found.end, size), patches, found.index)
