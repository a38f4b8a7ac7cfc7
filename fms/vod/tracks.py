"""The decoder configuration of every track of a recorded stream, for the start of each file.

A file started in mid-stream (a new file after ``max_bytes`` or ``max_seconds``) must begin
with every track's sequence header, or no player can decode it: one per (audio/video, track id,
codec), with each track's last Metadata packet (HDR colorInfo), exactly what the relay replays
to a late joiner (:class:`fms.live.headers.TrackHeaders`, multitrack included). This wraps it
for callers that only have FLV tag types and bodies (the recorder plugin sees no wire records).
"""

from __future__ import annotations

from fms.live.headers import TrackHeaders
from fms.live.media import describe
from fms.rtmp.messages import Media


class HeaderCache:
    """The last configuration and metadata of every track seen so far."""

    def __init__(self) -> None:
        self._headers = TrackHeaders()

    def update(self, tag_type: int, timestamp: int, payload: bytes) -> bool:
        """Take an audio (8) or video (9) tag body; True when it changed a track's headers."""
        if tag_type not in (8, 9):
            return False
        return self._headers.update(
            Media(tag_type, timestamp, 0, payload), describe(tag_type, payload)
        )

    def tags(self) -> list[tuple[int, bytes]]:
        """(tag type, body) of every track's configuration then metadata, in the order the
        tracks first appeared: the first tags of a new file."""
        return [(m.type_id, m.payload) for m in self._headers.messages()]
