"""The text of an HLS media playlist (RFC 8216), from the segments of a window.

Tags written, in the order RFC 8216 allows: ``#EXTM3U``; ``#EXT-X-VERSION:7`` (version 6 is
what ``#EXT-X-MAP`` in a playlist without ``I-FRAMES-ONLY`` needs; 7 is the version CMAF
segments are announced with, and what players of fMP4 HLS expect); ``#EXT-X-TARGETDURATION``
(an integer of seconds, at least every listed segment's duration rounded to the nearest
integer); ``#EXT-X-MEDIA-SEQUENCE`` (the first listed segment's number);
``#EXT-X-DISCONTINUITY-SEQUENCE`` when discontinuities have left the window;
``#EXT-X-INDEPENDENT-SEGMENTS`` (every segment starts with a keyframe); then per segment
``#EXT-X-DISCONTINUITY`` if one precedes it, ``#EXT-X-MAP:URI=...`` when its init segment
differs from the previous segment's, ``#EXT-X-PROGRAM-DATE-TIME`` (when known), ``#EXTINF``
with the duration in seconds (three decimals) and the URI; ``#EXT-X-ENDLIST`` when the stream
has ended. Pure functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote

VERSION = 7
CONTENT_TYPE = "application/vnd.apple.mpegurl"


@dataclass(frozen=True, slots=True)
class PlaylistEntry:
    """One listed segment: its URI, duration (seconds), its init segment's URI, whether a
    discontinuity precedes it, and its wall-clock start (seconds since the epoch) or None."""

    uri: str
    duration: float
    init_uri: str | None
    """None: the segment needs no init segment (MPEG-TS), no ``#EXT-X-MAP``."""
    discontinuity: bool = False
    program_date_time: float | None = None


def format_date_time(seconds: float) -> str:
    """ISO 8601 with milliseconds and a ``Z`` (``2026-12-06T05:13:46.123Z``)."""
    stamp = datetime.fromtimestamp(seconds, UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"


def media_playlist(
    entries: list[PlaylistEntry],
    *,
    target_duration: int,
    media_sequence: int,
    discontinuity_sequence: int = 0,
    ended: bool = False,
    query: str = "",
    version: int = VERSION,
) -> str:
    """The playlist text (``\\n`` line ends, a final newline). ``query`` (without ``?``) is
    appended to every URI, percent-encoded but for ``=&%+-._~`` (a quote or a line end in it
    cannot make a tag). ``target_duration`` is raised to cover every entry. ``version``: 3 is
    enough for MPEG-TS segments (no ``#EXT-X-MAP``)."""
    suffix = "?" + quote(query, safe="=&%+-._~") if query else ""
    target = max([target_duration, *(round(e.duration) for e in entries)])
    lines = [
        "#EXTM3U",
        f"#EXT-X-VERSION:{version}",
        f"#EXT-X-TARGETDURATION:{target}",
        f"#EXT-X-MEDIA-SEQUENCE:{media_sequence}",
    ]
    if discontinuity_sequence:
        lines.append(f"#EXT-X-DISCONTINUITY-SEQUENCE:{discontinuity_sequence}")
    lines.append("#EXT-X-INDEPENDENT-SEGMENTS")
    init_uri = None
    for entry in entries:
        if entry.discontinuity:
            lines.append("#EXT-X-DISCONTINUITY")
        if entry.init_uri is not None and entry.init_uri != init_uri:
            init_uri = entry.init_uri
            lines.append(f'#EXT-X-MAP:URI="{init_uri}{suffix}"')
        if entry.program_date_time is not None:
            lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{format_date_time(entry.program_date_time)}")
        lines.append(f"#EXTINF:{entry.duration:.3f},")
        lines.append(entry.uri + suffix)
    if ended:
        lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"
