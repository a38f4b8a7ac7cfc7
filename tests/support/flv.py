"""A minimal FLV file reader for tests: the tags of a file that FFmpeg wrote."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Tag:
    type_id: int  # 8 audio, 9 video, 18 script data
    timestamp: int  # ms
    data: bytes


def read_tags(path: Path) -> list[Tag]:
    """Every tag of an FLV file, in file order."""
    raw = path.read_bytes()
    if raw[:3] != b"FLV":
        raise ValueError(f"{path} is not an FLV file")
    position = int.from_bytes(raw[5:9], "big") + 4  # header, then PreviousTagSize0
    tags = []
    while position + 11 <= len(raw):
        type_id = raw[position] & 0x1F
        size = int.from_bytes(raw[position + 1 : position + 4], "big")
        timestamp = int.from_bytes(raw[position + 4 : position + 7], "big")
        timestamp |= raw[position + 7] << 24
        start = position + 11
        tags.append(Tag(type_id, timestamp, raw[start : start + size]))
        position = start + size + 4
    return tags
