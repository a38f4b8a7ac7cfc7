"""Low-Latency HLS requests (RFC 8216bis): ``ll.m3u8`` with blocking reloads and the parts
``seg<N>.<P>.m4s``, for :mod:`fms.http.hls`, which decides the viewer first.

**Blocking reload.** ``ll.m3u8?_HLS_msn=M[&_HLS_part=P]`` is answered once the playlist
holds segment ``M`` whole (without ``_HLS_part``) or its part ``P`` (a segment closed
with fewer parts counts as holding them: its next part is the next segment's first), or the
stream ended. The spec's refusals are answered 400 at once: ``_HLS_part`` without
``_HLS_msn``, a value that is not a decimal integer (negative ones included), ``M`` more
than two segments beyond the last closed one, ``P`` beyond the parts of the segment being
made by more than the Advance Part Limit (three part targets' worth of parts: ``3 /
PART-TARGET`` parts when the target is under a second, else three). A request not answered
within three target durations gets 503 (the spec's advice) and is never held longer.

**Preload-hinted parts.** A part of the segment being made that is not there yet, within the
same advance limit, is held until it is made (or its segment closes without it: 404), with
the same deadline; any other missing part is 404 at once. Parts are cached like segments
(their names never repeat, see :mod:`fms.http.hls`).

**Bounded.** At most ``[hls] max_blocked_requests`` requests are held at once across the
process; one more is answered 503 at once (a player retries; nothing waits unbounded). Each
held request costs a few hundred bytes and a timer; it is woken only when its stream makes a
part or a segment.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from twisted.internet.defer import Deferred
from twisted.web.server import NOT_DONE_YET, Request

from fms.hls.playlist import CONTENT_TYPE
from fms.hls.segmenter import StreamSegments

if TYPE_CHECKING:
    from fms.config import HLSConfig

_NUMBER = re.compile(r"^[0-9]{1,18}$")
_BLOCKING = ("_HLS_msn", "_HLS_part", "_HLS_skip")

Answer = Callable[[], None]


class BadBlockingRequest(ValueError):
    """A ``_HLS_*`` query the spec says to refuse with 400."""


def blocking_query(pairs: list[tuple[str, str]]) -> tuple[int | None, int | None]:
    """(msn, part) of a query's ``_HLS_msn`` / ``_HLS_part`` (None when absent).

    Raises :class:`BadBlockingRequest` for a value that is not a non-negative decimal integer
    of at most 18 digits, a repeated parameter, or ``_HLS_part`` without ``_HLS_msn``."""
    found: dict[str, int] = {}
    for name, value in pairs:
        if name not in ("_HLS_msn", "_HLS_part"):
            continue
        if name in found or _NUMBER.match(value) is None:
            raise BadBlockingRequest(f"{name} must be given once, as a non-negative integer")
        found[name] = int(value)
    if "_HLS_part" in found and "_HLS_msn" not in found:
        raise BadBlockingRequest("_HLS_part needs _HLS_msn")
    return found.get("_HLS_msn"), found.get("_HLS_part")


def without_blocking(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The query without its ``_HLS_*`` directives: what identifies the viewer and what the
    playlist's URIs carry (each reload asks for another part; it is the same viewer)."""
    return [(name, value) for name, value in pairs if name not in _BLOCKING]


def advance_limit(part_target: float) -> int:
    """Parts a request may ask beyond the last one made (RFC 8216bis Advance Part Limit)."""
    return int(3 / part_target) if 0 < part_target < 1 else 3


def check_far(segments: StreamSegments, msn: int, part: int | None, part_target: float) -> None:
    """Raise :class:`BadBlockingRequest` when (msn, part) lies further ahead than the spec
    lets a client block for."""
    if segments.ended:
        return
    last = segments.next_sequence - 1  # the last closed segment
    if msn > last + 2:
        raise BadBlockingRequest(f"_HLS_msn {msn} is more than two segments beyond {last}")
    if msn == segments.open_sequence and part is not None:
        made = len(segments.open_parts())
        if part >= made + advance_limit(part_target):
            raise BadBlockingRequest(f"_HLS_part {part} is too far beyond part {made - 1}")


def part_waitable(segments: StreamSegments, sequence: int, index: int) -> bool:
    """True when part ``index`` of segment ``sequence`` is one a request may be held for: a
    part of the segment being made, not made yet, within the Advance Part Limit."""
    limit = advance_limit(segments.settings.part_duration)
    return (
        not segments.ended
        and sequence == segments.open_sequence
        and 0 <= index - len(segments.open_parts()) < limit
    )


def part_settled(segments: StreamSegments, sequence: int, index: int) -> bool:
    """True once a held part request can be answered: the part was made, or its segment
    closed (without it: 404), or the stream ended."""
    return (
        segments.ended or sequence != segments.open_sequence or index < len(segments.open_parts())
    )


def playlist_holds(segments: StreamSegments, msn: int, part: int | None) -> bool:
    """True when the playlist holds segment ``msn`` (whole, or its part ``part``)."""
    if segments.ended or msn < segments.open_sequence:
        return True
    if msn == segments.open_sequence and part is not None:
        return part < len(segments.open_parts())
    return False


class HeldRequests:
    """Requests held until their stream makes what they ask, at most ``max_blocked_requests``
    at once (see the module docstring). ``clock`` is an ``IReactorTime``."""

    def __init__(self, clock: Any, config: Callable[[], HLSConfig]) -> None:
        self.clock = clock
        self.config = config
        self.held = 0
        """Requests held now."""
        self.refused = 0
        """Requests answered 503 because the cap was reached."""

    def hold(
        self,
        request: Request,
        waiters: Callable[[], list[Deferred[None]]],
        ready: Callable[[], bool],
        answer: Answer,
        late: Answer,
        seconds: float,
        busy: Answer,
    ) -> None:
        """Call ``answer`` once ``ready()`` (checked now and each time the Deferreds in the
        list ``waiters()`` gives are fired: it is read anew, as the stream swaps it on firing),
        ``late`` after ``seconds``; ``busy`` at once when the cap is reached. Nothing is
        called for a request whose client went away."""
        if ready():
            answer()
            return
        if self.held >= self.config().max_blocked_requests:
            self.refused += 1
            busy()
            return
        self.held += 1
        done: list[bool] = []
        current: list[Deferred[None]] = []

        def finish() -> bool:
            if done:
                return False
            done.append(True)
            self.held -= 1
            if deadline.active():
                deadline.cancel()
            if current and current[0] in waiters():
                waiters().remove(current[0])  # a client gone must not leave a waiter behind
            return True

        def check(_: object) -> None:
            if done:
                return
            if ready():
                if finish():
                    answer()
            else:
                watch()

        def watch() -> None:
            waiter: Deferred[None] = Deferred()
            waiter.addCallback(check)
            waiters().append(waiter)
            current[:] = [waiter]

        def expire() -> None:
            if finish():
                late()

        deadline = self.clock.callLater(seconds, expire)
        request.notifyFinish().addErrback(lambda _: finish() and None)
        watch()


PART_TYPE = b"video/iso.segment"
LONG_CACHE = b"public, max-age=86400, immutable"


def _finished(request: Request) -> bool:
    return bool(getattr(request, "finished", False) or getattr(request, "_disconnected", False))


def respond(request: Request, status: int, content_type: bytes, cache: bytes, body: bytes) -> None:
    """Answer ``request`` (a HEAD gets the headers only), unless its client left."""
    if _finished(request):
        return
    request.setResponseCode(status)
    request.setHeader(b"Content-Type", content_type)
    request.setHeader(b"Cache-Control", cache)
    request.setHeader(b"Content-Length", str(len(body)).encode())
    if request.method != b"HEAD":
        request.write(body)
    request.finish()


def refuse(request: Request, status: int, message: str) -> None:
    """A JSON error as the other HLS routes answer them."""
    body = json.dumps({"error": message}).encode()
    respond(request, status, b"application/json; charset=utf-8", b"no-store", body)


def _pairs(request: Request) -> list[tuple[str, str]]:
    query = urlsplit(request.uri).query.decode("utf-8", "replace")
    pairs = []
    for item in query.split("&"):
        if item:
            name, _, value = item.partition("=")
            pairs.append((unquote(name), unquote(value)))
    return pairs


def request_blocking(request: Request) -> tuple[int | None, int | None]:
    """(msn, part) a request's ``_HLS_msn`` / ``_HLS_part`` ask (already checked by
    :func:`hls_ll_playlist`)."""
    return blocking_query(_pairs(request))


def viewer_query(request: Request) -> str:
    """The request's raw query without ``_HLS_*`` directives (as sent, not re-encoded)."""
    query = urlsplit(request.uri).query.decode("utf-8", "replace")
    kept = [i for i in query.split("&") if i and unquote(i.partition("=")[0]) not in _BLOCKING]
    return "&".join(kept)


def hls_ll_playlist(viewers: Any, request: Request, app: str, name: str) -> Any:
    """``ll.m3u8``: 404 when parts are off, 400 for a malformed ``_HLS_*`` query (before any
    plugin is asked), else decided as ``index.m3u8`` is."""
    if viewers.server.config.hls.part_duration <= 0:
        refuse(request, 404, "Low-Latency HLS is off ([hls] part_duration = 0)")
        return NOT_DONE_YET
    try:
        blocking_query(_pairs(request))
    except BadBlockingRequest as error:
        refuse(request, 400, str(error))
        return NOT_DONE_YET
    return viewers._playlist(request, app, name)


def low_latency_playlist(
    viewers: Any, request: Request, entry: Any, prefix: str, query: str
) -> None:
    """Answer a decided ``ll.m3u8`` request: now, or once it holds what ``_HLS_msn`` /
    ``_HLS_part`` ask (three target durations at most, then 503)."""
    segments: StreamSegments = entry.segments
    msn, part = blocking_query(_pairs(request))
    held: HeldRequests = viewers.held

    def answer() -> None:
        body = segments.low_latency_playlist(query, prefix).encode()
        respond(request, 200, CONTENT_TYPE.encode(), b"no-cache", body)

    if msn is None:
        answer()
        return
    try:
        check_far(segments, msn, part, segments.settings.part_duration)
    except BadBlockingRequest as error:
        refuse(request, 400, str(error))
        return
    held.hold(
        request,
        lambda: entry.progress,
        lambda: playlist_holds(segments, msn, part),
        answer,
        lambda: refuse(request, 503, f"segment {msn} part {part} was not made in time"),
        3 * segments.target_duration,
        lambda: refuse(request, 503, "too many blocked requests"),
    )


def part_request(
    viewers: Any, request: Request, entry: Any, sequence: int, index: int, file: str
) -> None:
    """``seg<N>.<P>.m4s``: the part if it is there; held if it is the next parts of the
    segment being made (a preload hint); else 404."""
    if entry is None:
        refuse(request, 404, f"no {file}: nobody publishes the stream")
        return
    segments: StreamSegments = entry.segments
    held: HeldRequests = viewers.held

    def answer() -> None:
        data = segments.part(sequence, index)
        if data is None:
            refuse(request, 404, f"no {file} (not or no longer there)")
        else:
            respond(request, 200, PART_TYPE, LONG_CACHE, data)

    if not part_waitable(segments, sequence, index):
        answer()
        return
    held.hold(
        request,
        lambda: entry.progress,
        lambda: part_settled(segments, sequence, index),
        answer,
        lambda: refuse(request, 503, f"{file} was not made in time"),
        3 * segments.target_duration,
        lambda: refuse(request, 503, "too many blocked requests"),
    )


__all__ = [
    "BadBlockingRequest",
    "HeldRequests",
    "advance_limit",
    "blocking_query",
    "check_far",
    "hls_ll_playlist",
    "low_latency_playlist",
    "part_request",
    "part_settled",
    "part_waitable",
    "playlist_holds",
    "request_blocking",
    "viewer_query",
    "without_blocking",
]
