"""A recording opened for playback: its keyframe index, its headers, and its tags from any
keyframe on.

The index comes from the file's ``onMetaData.keyframes`` when the recorder closed (or repaired)
it, else from one scan of the file (an interrupted recording, or a file from another tool), so
seeking works on any file. Reading goes through :mod:`fms.vod.reader`, which stops at the last
complete tag of a truncated file and raises its own error for damage: a bad file ends one
playback, nothing else.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fms.live.flv import TAG_SCRIPT
from fms.live.tracks import CONFIG, split
from fms.vod.metadata import CREATOR, keyframes_of, read_metadata
from fms.vod.playback import Recording
from fms.vod.reader import FileTag, index_file, iter_tags
from fms.vod.writer import HEADER_SIZE

MAX_HEADER_TAGS = 32
"""Tags read at the start of a file in search of its headers (metadata, sequence headers)."""


@dataclass(slots=True)
class OpenRecording:
    """One open file: what :class:`~fms.vod.playback.Playback` needs, and ``close``."""

    recording: Recording
    source: FileSource

    def close(self) -> None:
        self.source.close()


class FileSource:
    """Tags of one open file from a byte offset on (a :class:`~fms.vod.playback.TagSource`)."""

    def __init__(self, path: Path, max_tag_size: int) -> None:
        self.fd = os.open(path, os.O_RDONLY)
        self.max_tag_size = max_tag_size

    def read(self, offset: int, size: int) -> bytes:
        return os.pread(self.fd, size, offset)

    def tags_from(self, offset: int) -> Iterator[FileTag]:
        return iter_tags(self.read, start=offset, max_tag_size=self.max_tag_size)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _is_header(tag: FileTag) -> bool:
    """Metadata, or a codec sequence header of any track (what a decoder needs first)."""
    if tag.tag_type == TAG_SCRIPT:
        return True
    return split(tag.tag_type, tag.body).role is CONFIG


def _own_index(headers: list[FileTag]) -> tuple[dict[str, Any] | None, list[tuple[int, int]]]:
    """The file's ``onMetaData`` and, when the recorder finished it (closed or repaired), its
    keyframe index; an index written by another tool is not trusted (its offsets may point
    elsewhere than at tags)."""
    if not headers or headers[0].tag_type != TAG_SCRIPT:
        return None, []
    metadata = read_metadata(headers[0].body)
    if metadata is None:
        return None, []
    if metadata.get("metadatacreator") != CREATOR or metadata.get("indexed") is not True:
        return metadata, []
    return metadata, keyframes_of(metadata)


def open_recording(path: Path, max_tag_size: int) -> OpenRecording:
    """Open the FLV file at ``path`` for playback. OSError if it cannot be read, ValueError
    (:class:`~fms.vod.reader.FLVReadError`) if it is not FLV."""
    source = FileSource(path, max_tag_size)
    try:
        headers: list[FileTag] = []
        first = HEADER_SIZE
        for tag in iter_tags(source.read, max_tag_size=max_tag_size):
            if len(headers) >= MAX_HEADER_TAGS or not _is_header(tag):
                first = tag.offset
                break
            headers.append(tag)
            first = tag.end
        metadata, keyframes = _own_index(headers)
        duration = metadata.get("duration") if metadata else None
        if keyframes and isinstance(duration, (int, float)) and math.isfinite(duration):
            duration_ms = max(0, round(duration * 1000))
        else:
            found = index_file(source.read, max_tag_size=max_tag_size)
            keyframes, duration_ms = list(found.index.keyframes), found.index.duration
        recording = Recording(duration_ms, keyframes, headers, first, metadata)
    except BaseException:
        source.close()
        raise
    return OpenRecording(recording, source)
