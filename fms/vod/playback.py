"""One viewer's playback of a recording: what to send, from where, and when it is over.

The edge asks :meth:`Playback.step` for the tags due at ``now`` and calls again after the
returned delay (or when its socket has room again: a step hands out at most ``max_bytes``).
``play``'s start and length arguments, ``seek`` (to the nearest keyframe at or before the
asked time, with the stream's headers resent so a decoder can start there), ``pause`` and the
buffer length are all here, sans-IO, so they are tested without sockets or sleeps.

The file is reached through a :class:`TagSource` (tags read from a byte offset on) and its
keyframe index; which file format or I/O does that is not this module's business.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from fms.vod.pacing import Pacer

MAX_STEP_BYTES = 1 << 20
"""Bytes of tags one :meth:`Playback.step` hands out at most (the edge asks again at once when
more is due): bounds what one viewer holds in memory between two writes."""


class FileTag(Protocol):
    """A tag of a recording (FLV: 8 audio, 9 video, 18 data) with its media time (ms)."""

    @property
    def tag_type(self) -> int: ...
    @property
    def timestamp(self) -> int: ...
    @property
    def body(self) -> bytes: ...


class TagSource(Protocol):
    """Where a recording's tags come from."""

    def tags_from(self, offset: int) -> Iterator[FileTag]:
        """The tags from byte ``offset`` (a tag's start, from the index) to the end; a damaged
        file ends the iteration early or raises its reader's error."""
        ...


@dataclass(frozen=True, slots=True)
class Recording:
    """What a playback needs to know of a file before reading it.

    ``keyframes`` are ``(media time ms, byte offset)`` pairs in time order (the
    ``onMetaData.keyframes`` index, or one rebuilt by scanning); ``headers`` the tags a decoder
    needs before any frame (metadata, sequence headers of every track), resent after a seek;
    ``first_offset`` where the first media tag after the headers lies.
    """

    duration_ms: int
    keyframes: Sequence[tuple[int, int]]
    headers: Sequence[FileTag]
    first_offset: int
    metadata: dict[str, Any] | None = None
    """The file's onMetaData object, for plugins (the header tags carry it to players)."""

    def keyframe_at_or_before(self, time_ms: int) -> tuple[int, int]:
        """The ``(time, offset)`` to start from to show ``time_ms``: the last keyframe at or
        before it, or the first media tag when there is none (an index-less file)."""
        times = [t for t, _ in self.keyframes]
        at = bisect.bisect_right(times, time_ms) - 1
        if at < 0:
            return (0, self.first_offset)
        return self.keyframes[at]


@dataclass(slots=True)
class Step:
    """What :meth:`Playback.step` answers: tags to send now, seconds until the next step is
    worth it (None: nothing will come until the viewer acts, e.g. unpauses), and whether the
    playback just reached its end (the edge then sends ``Play.Complete`` and ``Play.Stop``)."""

    tags: list[FileTag] = field(default_factory=list)
    wait: float | None = None
    complete: bool = False


class Playback:
    """One viewer's position in one recording.

    ``start_ms`` and ``length_ms`` are ``play``'s second and third arguments as milliseconds:
    start at that media time (from the keyframe at or before it, so that it can be decoded),
    and stop ``length_ms`` after it (-1: at the end; 0: at ``start_ms``, the frames from that
    keyframe up to it).
    """

    def __init__(
        self,
        recording: Recording,
        source: TagSource,
        now: float,
        *,
        start_ms: int = 0,
        length_ms: int = -1,
        buffer_ms: int | None = None,
        max_bytes: int = MAX_STEP_BYTES,
    ) -> None:
        self.recording = recording
        self.source = source
        self.length_ms = length_ms
        self.max_bytes = max_bytes
        self.pacer = Pacer.starting(0, now, buffer_ms)
        self.complete = False
        self.end_ms = -1
        self._tags: Iterator[FileTag] = iter(())
        self._held: FileTag | None = None
        self._send_headers = True
        self.start_ms = self._jump(max(0, start_ms), now)
        self.end_ms = max(0, start_ms) + length_ms if length_ms >= 0 else -1

    def _jump(self, to_ms: int, now: float) -> int:
        """Position at the keyframe at or before ``to_ms``; the media time it is at."""
        time_ms, offset = self.recording.keyframe_at_or_before(to_ms)
        self._tags = self.source.tags_from(offset)
        self._held = None
        self._send_headers = True
        self.complete = False
        self.pacer.seek(time_ms, now)
        return time_ms

    def seek(self, to_ms: int, now: float) -> int:
        """``seek(ms)``: go to the keyframe at or before ``to_ms`` (kept inside the recording);
        answers the media time playback resumes from (what ``Seek.Notify`` reports). A length
        given to ``play`` counts from the time asked (the keyframe before it comes as well)."""
        to_ms = max(0, min(to_ms, self.recording.duration_ms))
        at = self._jump(to_ms, now)
        if self.length_ms >= 0:
            self.end_ms = to_ms + self.length_ms
        return at

    def pause(self, paused: bool, now: float, at_ms: int | None = None) -> None:
        """``pause(true/false, ms)``: stop or run the clock; unpausing at ``at_ms`` resumes
        from the keyframe at or before it (the client's buffer was flushed)."""
        if paused:
            self.pacer.pause(now)
        elif at_ms is not None and at_ms >= 0:
            self._jump(min(at_ms, self.recording.duration_ms), now)
            self.pacer.resume(now)
        else:
            self.pacer.resume(now)

    def set_buffer(self, buffer_ms: int) -> None:
        """The client's ``Set Buffer Length`` (ms)."""
        self.pacer.set_buffer(buffer_ms)

    def position(self, now: float) -> int:
        """The media time (ms) the viewer is at."""
        return self.pacer.position(now)

    def step(self, now: float) -> Step:
        """The tags due at ``now`` (at most ``max_bytes`` of them, at least one when any is
        due), and when to step again."""
        out = Step()
        if self.complete:
            return out
        if self._send_headers:
            out.tags.extend(self.recording.headers)
            self._send_headers = False
        if self.pacer.paused:
            return out
        horizon = self.pacer.horizon(now)
        size = 0
        while True:
            tag = self._held if self._held is not None else next(self._tags, None)
            self._held = None
            if tag is None or (self.end_ms >= 0 and tag.timestamp > self.end_ms):
                self.complete = out.complete = True
                return out
            if tag.timestamp > horizon:
                self._held = tag
                out.wait = self.pacer.wait(tag.timestamp, now)
                return out
            if size and size + len(tag.body) > self.max_bytes:
                self._held = tag
                out.wait = 0.0
                return out
            out.tags.append(tag)
            size += len(tag.body)
