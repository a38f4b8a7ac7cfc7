"""Leave Enhanced RTMP side-information tags out of an FLV byte stream, for players that
cannot read them.

FFmpeg 9 sends, with an AV1 track, a video ``Metadata`` packet (VideoPacketType 4: an AMF
``colorInfo`` object, empty when the source says nothing of its colours), and with an Opus
track an audio ``MultichannelConfig`` packet (AudioPacketType 4), mono and stereo included.
mpegts.js 1.8.2, the player of ``/play/APP/STREAM``, knows neither: it skips each but fires its
``ERROR`` event for it (``MediaError``, ``FormatError``, "Invalid video packet type 4", even for
the audio one), so a page cannot tell a stream that plays from one that failed. Neither is
needed to decode: the specification makes Metadata support a capability a client announces
(``videoFunction`` flag ``SUPPORT_VID_CLIENT_VIDEO_PACKET_TYPE_METADATA``) and calls
``colorInfo`` a hint that may also be in the bitstream; an Opus, AAC or FLAC track's channel
layout is in its sequence header (the MultichannelConfig matters only for an Opus track whose
sequence start is empty, which mpegts.js cannot play anyway).

So an HTTP-FLV viewer may ask for a stream without them (``?packets=media``, what the player
page asks for); everyone else gets the published messages as they are. What is left out is
whole tags (11-byte header, body, 4-byte PreviousTagSize), so what remains is still a
well-formed FLV tag sequence. Which tags go is what :mod:`fms.live.tracks` calls
:data:`~fms.live.tracks.Role.METADATA`.

:class:`SideDataFilter` is sans-IO and streaming: the fan-out hands a viewer its bytes in
pieces that may end anywhere, even inside a tag header. It keeps at most one tag's bytes
(the one being read) between calls.
"""

from __future__ import annotations

from fms.live.flv import TAG_AUDIO, TAG_HEADER_SIZE, TAG_VIDEO
from fms.live.media import describe
from fms.live.tracks import METADATA

TRAILER_SIZE = 4
"""Bytes of the PreviousTagSize field behind each tag."""


def is_side_data(tag_type: int, body: bytes) -> bool:
    """Whether an FLV tag is a video Metadata or audio MultichannelConfig packet (also inside
    a ModEx or one-track Multitrack wrapper, as :mod:`fms.live.tracks` reads them)."""
    if tag_type not in (TAG_AUDIO, TAG_VIDEO):
        return False
    tagged = describe(tag_type, body).tagged
    return tagged is not None and tagged.role is METADATA


class SideDataFilter:
    """Feeds on FLV tags (starting at a tag boundary, after the file header) and gives back
    the same bytes less the tags that :func:`is_side_data` picks.

    Tags are passed on as soon as they are whole; bytes of a tag not yet whole wait here
    (at most one tag: its header says how long it is, up to 16 MiB + 15 bytes). The count of
    tags left out is :attr:`dropped`."""

    def __init__(self) -> None:
        self._pending = bytearray()
        self.dropped = 0

    def feed(self, data: bytes) -> bytes:
        """The whole tags that ``data`` completes, side data left out."""
        if not self._pending and not data:
            return b""
        buffer = self._pending
        buffer += data
        out: list[bytes] = []
        at = 0
        view = memoryview(buffer)
        try:
            while len(buffer) - at >= TAG_HEADER_SIZE:
                size = int.from_bytes(view[at + 1 : at + 4], "big")
                end = at + TAG_HEADER_SIZE + size + TRAILER_SIZE
                if end > len(buffer):
                    break
                body = bytes(view[at + TAG_HEADER_SIZE : end - TRAILER_SIZE])
                if is_side_data(buffer[at], body):
                    self.dropped += 1
                else:
                    out.append(bytes(view[at:end]))
                at = end
        finally:
            view.release()
        del buffer[:at]
        return b"".join(out)

    @property
    def waiting(self) -> int:
        """Bytes of an incomplete tag held back (for tests and bounds)."""
        return len(self._pending)


__all__ = ["TRAILER_SIZE", "SideDataFilter", "is_side_data"]
