"""An FLV byte stream read as it arrives (an HTTP-FLV source): tags out, bounded memory.

:class:`FLVTagParser` is fed any split of the bytes and returns the whole tags read so far
(:class:`~fms.live.flv.Tag`); it keeps at most one partial tag, and a tag whose announced body
is larger than the limit for its type (bytes) raises :class:`~fms.live.flv.FLVFormatError`
before anything of it is kept, so a hostile or broken source costs at most the largest tag
allowed. Tags other than audio (8), video (9) and script data (18) are skipped, as are their
bytes. No Twisted here.
"""

from __future__ import annotations

from fms.live.flv import TAG_AUDIO, TAG_HEADER_SIZE, TAG_SCRIPT, TAG_VIDEO, FLVFormatError, Tag

FILE_HEADER_SIZE = 9
MAX_HEADER_OFFSET = 1024
"""Largest data offset of the file header accepted (bytes): the specification's is 9."""


class FLVTagParser:
    """Whole tags from an FLV stream fed in pieces.

    ``max_sizes``: the largest tag body accepted per tag type (bytes); a type not listed is
    skipped, its body bounded by the largest of them."""

    def __init__(self, max_sizes: dict[int, int]) -> None:
        self.max_sizes = dict(max_sizes)
        self._skip_limit = max(max_sizes.values(), default=0)
        self._buffer = bytearray()
        self._header_done = False
        self.flags = 0
        """The file header's audio (0x04) and video (0x01) flags, once read."""
        self.tags_read = 0

    def feed(self, data: bytes) -> list[Tag]:
        """The tags completed by ``data``; raises FLVFormatError for a stream that is not FLV
        or a tag over its limit (the parser is then useless: end the source)."""
        buffer = self._buffer
        buffer += data
        at = 0
        if not self._header_done:
            if len(buffer) < FILE_HEADER_SIZE:
                return []
            if buffer[:3] != b"FLV" or buffer[3] != 1:
                raise FLVFormatError("not an FLV stream")
            offset = int.from_bytes(buffer[5:9], "big")
            if not FILE_HEADER_SIZE <= offset <= MAX_HEADER_OFFSET:
                raise FLVFormatError(f"FLV header data offset {offset}")
            if len(buffer) < offset + 4:
                return []
            self.flags = buffer[4]
            self._header_done = True
            at = offset + 4  # PreviousTagSize0 skipped
        tags: list[Tag] = []
        while len(buffer) - at >= TAG_HEADER_SIZE:
            tag_type = buffer[at] & 0x1F
            size = int.from_bytes(buffer[at + 1 : at + 4], "big")
            limit = self.max_sizes.get(tag_type, self._skip_limit)
            if size > limit:
                raise FLVFormatError(
                    f"a tag of type {tag_type} announces {size} bytes (limit {limit})"
                )
            end = at + TAG_HEADER_SIZE + size + 4
            if end > len(buffer):
                break
            if tag_type in self.max_sizes and not buffer[at] & 0x20:  # 0x20: encrypted
                timestamp = int.from_bytes(buffer[at + 4 : at + 7], "big") | buffer[at + 7] << 24
                tags.append(Tag(tag_type, timestamp, bytes(buffer[at + TAG_HEADER_SIZE : end - 4])))
                self.tags_read += 1
            at = end
        del buffer[:at]
        return tags

    @property
    def buffered(self) -> int:
        """Bytes held of a partial header or tag."""
        return len(self._buffer)


def default_max_sizes(audio: int, video: int, data: int) -> dict[int, int]:
    """Limits per tag type from the RTMP message limits (``[limits] max_audio_message``...)."""
    return {TAG_AUDIO: audio, TAG_VIDEO: video, TAG_SCRIPT: data}
