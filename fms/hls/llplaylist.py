"""The text of a Low-Latency HLS media playlist (RFC 8216bis, "HTTP Live Streaming 2nd
Edition"): the segments of a window as :mod:`fms.hls.playlist` writes them, plus the parts of
the last segments, the parts of the segment being made and a preload hint for the next part.

Tags, in this order: ``#EXTM3U``; ``#EXT-X-VERSION:9``; ``#EXT-X-TARGETDURATION``;
``#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=...,HOLD-BACK=...`` (the part
hold-back is three part targets, the spec's recommendation; the hold-back three target
durations, its minimum); ``#EXT-X-PART-INF:PART-TARGET=...``; ``#EXT-X-MEDIA-SEQUENCE``;
``#EXT-X-DISCONTINUITY-SEQUENCE`` when needed; ``#EXT-X-INDEPENDENT-SEGMENTS``; per segment
``#EXT-X-DISCONTINUITY``, ``#EXT-X-MAP``, ``#EXT-X-PROGRAM-DATE-TIME`` as the plain playlist
has them, then its ``#EXT-X-PART`` lines (only for segments that end within three target
durations of the playlist's end: the spec lets older parts go), then ``#EXTINF`` and its URI;
then the segment being made (its discontinuity, map and date) with its parts so far; then
``#EXT-X-PRELOAD-HINT:TYPE=PART`` naming the next part, or ``#EXT-X-ENDLIST`` when the stream
ended.

Durations are written with three decimals: they are whole milliseconds, so the text is exact.
``PART-TARGET`` is the configured part duration, raised (as ``#EXT-X-TARGETDURATION`` is) to
cover any listed part longer than it (frames further apart than the target): every part's
duration stays at most ``PART-TARGET`` as the spec requires. Pure functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from fms.hls.playlist import PlaylistEntry, format_date_time

VERSION = 9
"""The protocol version of playlists with ``EXT-X-PART``/``EXT-X-SERVER-CONTROL`` as
players of Low-Latency HLS expect it (RFC 8216bis)."""


@dataclass(frozen=True, slots=True)
class PartEntry:
    """One listed part: its URI, duration (seconds), whether it starts with a keyframe."""

    uri: str
    duration: float
    independent: bool


@dataclass(frozen=True, slots=True)
class LowLatencyEntry:
    """A segment with its parts (empty: the segment is listed without parts)."""

    segment: PlaylistEntry
    parts: tuple[PartEntry, ...] = ()


@dataclass(frozen=True, slots=True)
class OpenEntry:
    """The segment being made: its init segment's URI, whether a discontinuity precedes it,
    its wall-clock start (seconds since the epoch) or None, its parts so far."""

    init_uri: str
    discontinuity: bool
    program_date_time: float | None
    parts: tuple[PartEntry, ...]


def part_target(
    configured: float, entries: list[LowLatencyEntry], open_: OpenEntry | None
) -> float:
    """``PART-TARGET`` (seconds): ``configured``, or the longest listed part if longer."""
    durations = [p.duration for e in entries for p in e.parts]
    if open_ is not None:
        durations += [p.duration for p in open_.parts]
    return max([configured, *durations])


def low_latency_playlist(
    entries: list[LowLatencyEntry],
    open_: OpenEntry | None,
    *,
    part_duration: float,
    target_duration: int,
    media_sequence: int,
    preload_hint: str | None,
    discontinuity_sequence: int = 0,
    ended: bool = False,
    query: str = "",
) -> str:
    """The playlist text (``\\n`` line ends, a final newline). ``query`` (without ``?``) is
    appended to every URI as in :func:`fms.hls.playlist.media_playlist`."""
    suffix = "?" + quote(query, safe="=&%+-._~") if query else ""
    target = max([target_duration, *(round(e.segment.duration) for e in entries)])
    part = part_target(part_duration, entries, open_)
    lines = [
        "#EXTM3U",
        f"#EXT-X-VERSION:{VERSION}",
        f"#EXT-X-TARGETDURATION:{target}",
        "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,"
        f"PART-HOLD-BACK={3 * part:.3f},HOLD-BACK={3 * target:.3f}",
        f"#EXT-X-PART-INF:PART-TARGET={part:.3f}",
        f"#EXT-X-MEDIA-SEQUENCE:{media_sequence}",
    ]
    if discontinuity_sequence:
        lines.append(f"#EXT-X-DISCONTINUITY-SEQUENCE:{discontinuity_sequence}")
    lines.append("#EXT-X-INDEPENDENT-SEGMENTS")
    init_uri = None

    def head(discontinuity: bool, init: str | None, date: float | None) -> None:
        nonlocal init_uri
        if discontinuity:
            lines.append("#EXT-X-DISCONTINUITY")
        if init is not None and init != init_uri:
            init_uri = init
            lines.append(f'#EXT-X-MAP:URI="{init}{suffix}"')
        if date is not None:
            lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{format_date_time(date)}")

    def part_lines(parts: tuple[PartEntry, ...]) -> None:
        for p in parts:
            independent = ",INDEPENDENT=YES" if p.independent else ""
            lines.append(
                f'#EXT-X-PART:DURATION={p.duration:.3f},URI="{p.uri}{suffix}"{independent}'
            )

    for entry in entries:
        segment = entry.segment
        head(segment.discontinuity, segment.init_uri, segment.program_date_time)
        part_lines(entry.parts)
        lines.append(f"#EXTINF:{segment.duration:.3f},")
        lines.append(segment.uri + suffix)
    if open_ is not None and open_.parts and not ended:
        head(open_.discontinuity, open_.init_uri, open_.program_date_time)
        part_lines(open_.parts)
    if ended:
        lines.append("#EXT-X-ENDLIST")
    elif preload_hint is not None:
        lines.append(f'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="{preload_hint}{suffix}"')
    return "\n".join(lines) + "\n"


def recent(durations: list[float], horizon: float) -> int:
    """How many of the last ``durations`` (seconds, oldest first) end within ``horizon``
    seconds of the end: the segments whose parts are listed (the spec's three target
    durations)."""
    total = 0.0
    count = 0
    for duration in reversed(durations):
        if total >= horizon:
            break
        total += duration
        count += 1
    return count


__all__ = [
    "VERSION",
    "LowLatencyEntry",
    "OpenEntry",
    "PartEntry",
    "low_latency_playlist",
    "part_target",
    "recent",
]
