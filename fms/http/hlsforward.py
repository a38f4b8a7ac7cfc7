"""HLS with ``fms run --workers N``: any worker answers for any stream, the worker that holds
the publish muxes it, the others ask that one over the control channel.

**Why one muxer per stream** (rather than every worker muxing the streams its viewers ask
for): a player's successive requests land on whichever worker the kernel hands each new
connection, so ``seg<N>`` must name the same bytes on every worker. Segments cut by two
muxers would not match unless every worker saw the same frames from the same first keyframe
and numbered alike; and the relay carries a stream's media to a worker only while that worker
has RTMP or HTTP-FLV players of it. One muxer is also one muxing cost per stream, whatever the
number of workers. The price is a hop for requests that land elsewhere: a control-channel
round trip plus base64 of the bytes (measured in ``docs/hls.md``), and a request waits for
the owner's answer (at most :data:`fms.cluster.observe.TIMEOUT` per ask).

**How.** :class:`HLSForwarder` registers :data:`OP` on the control channel
(:class:`~fms.http.peers.Peers`) and becomes :attr:`HLSViewers.forward`: a playlist, segment
or init segment request for a stream this worker does not mux (the plugins having decided a
playlist request here, as for any viewer) goes to the worker the stream is relayed from (its
relay link says which), or, for a stream unknown here (just published, or ended and still
lingering), to every other worker, the one that has it answering. The owner answers from its
own state (:func:`~fms.http.hls.file_content`, the playlist with the asker's query and
prefix), so the bytes and names are the same whichever worker serves them. Replies are JSON,
so bytes travel as base64, in chunks of :data:`CHUNK` bytes (a control message is at most
1 MiB): the first reply gives the size and the headers, the rest are asked for by offset and
put together before the answer. A playlist of a stream published without a segment yet is
held :data:`PENDING_WAIT` seconds by the owner and asked again until ``[hls] wait`` has passed.

**Hot segments.** Every viewer of a stream asks for the same newest segment within a few
seconds, so segments and numbered init segments (immutable: their names are never reused)
that this worker fetched are kept, least recently used first, up to ``[hls]
max_bytes_per_stream`` bytes in all, and a segment is fetched once however many requests for
it arrive meanwhile: a forwarded segment costs one control round trip per worker, not one per
viewer. (A kept segment may outlive the owner's window by a little: its bytes are still those
the name stands for.) Playlists and ``init.mp4`` are asked for every time.

**Low-Latency HLS.** ``ll.m3u8`` (with the viewer's ``_HLS_msn`` / ``_HLS_part``) and parts
``seg<N>.<P>.m4s`` go to the owner too. A blocking reload or a preload-hinted part may wait
three target durations (6 s with 2 s segments), longer than one control ask may take
(:data:`fms.cluster.observe.TIMEOUT`, 2 s): so the owner holds such an ask at most
:data:`BLOCK_WAIT` seconds (in its own :class:`~fms.http.hls_ll.HeldRequests`, under its cap)
and answers ``blocked`` with its target duration if the part is not there yet; the asking
worker holds the viewer's request in *its* ``HeldRequests`` (the cap counts it there: a
forwarded held request is a held request of the worker whose connection it occupies) and asks
again until three target durations from the request's arrival, then answers 503 as the owner
would. The first ask does not hold (``hold`` 0): it answers at once what needs no wait, and
tells the target duration that sets the asker's deadline. The spec's 400s for values too far
ahead (``_HLS_msn`` more than two segments beyond, ``_HLS_part`` beyond the Advance Part
Limit) are the owner's to answer, as only the owner knows what it has made; the asker checks
the syntax (:func:`~fms.http.hls_ll.hls_ll_playlist`) before any plugin or ask. Parts are
immutable once made (their names never repeat) and are kept like segments.

Answers carry ``X-FMS-Worker`` (this worker) and ``X-FMS-HLS-Muxer`` (the worker whose
segments they are); the first request this worker forwards for a stream is logged.
"""

from __future__ import annotations

import base64
import re
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, succeed
from twisted.python.failure import Failure
from twisted.web.server import Request

from fms.hls.playlist import CONTENT_TYPE as PLAYLIST_TYPE
from fms.http.hls import HLSViewers, _answer, _error, file_content, relay_origin
from fms.http.hls_ll import (
    LONG_CACHE,
    PART_TYPE,
    BadBlockingRequest,
    check_far,
    part_settled,
    part_waitable,
    playlist_holds,
    refuse,
    request_blocking,
)
from fms.http.peers import Peers
from fms.log import Logger

if TYPE_CHECKING:
    from fms.http.hls import _Entry

log = Logger(namespace="fms.http.hlsforward")

OP = "hls.get"
"""The control-channel operation: ``{app, name, file, query, prefix, offset, wait, msn, part,
hold}`` -> ``{status, worker, type, cache, size, data}`` (``data``: base64 of bytes from
``offset``), or a refusal ``{status, worker, error}``, or for a Low-Latency request not
answerable yet ``{status: 404, blocked: true, target}`` (``target``: seconds)."""
CHUNK = 512 * 1024
"""Bytes of a segment per reply: their base64 (4/3) and the JSON around it stay under the
control channel's 1 MiB message bound."""
PENDING_WAIT = 1.5
"""Seconds the owner holds a playlist request for a stream without a segment yet (below the
asker's per-ask timeout); the asker asks again until ``[hls] wait`` has passed."""


BLOCK_WAIT = 1.5
"""Seconds the owner holds a forwarded blocking reload or hinted part at most (below the
asker's per-ask timeout, :data:`fms.cluster.observe.TIMEOUT`, 2 s, with room for the
answer's way back); the asker asks again until the request's own deadline."""

_IMMUTABLE = re.compile(r"^(init\d+\.mp4|seg\d+\.(m4s|ts)|seg\d+\.\d+\.m4s)$")
"""Files whose name is never reused for other bytes (see :mod:`fms.http.hls`), LL parts
included."""
_PART = re.compile(r"^seg(\d{1,20})\.(\d{1,6})\.m4s$")


@dataclass(frozen=True, slots=True)
class _Found:
    """A whole answer of the owner: status, the owner's index, and for a 200 the content
    type, cache control and body; ``pending``: published, no segment yet; ``blocked``: a
    Low-Latency request whose part is not made yet, ``target`` the stream's target duration
    (s); ``message``: the owner's reason for a refusal (400, 503)."""

    status: int
    worker: int
    kind: bytes = b""
    cache: bytes = b""
    body: bytes = b""
    pending: bool = False
    blocked: bool = False
    target: float = 0.0
    message: str = ""
    pulling: float = 0.0
    """Pending because the owner's pull of the stream connects: its ``start_timeout`` (s)."""


class HLSForwarder:
    """Both ends of forwarded HLS requests on one worker (see the module docstring)."""

    def __init__(self, viewers: HLSViewers, peers: Peers) -> None:
        self.viewers = viewers
        self.peers = peers
        self.clock: Any = viewers.clock
        self.told: set[tuple[str, str]] = set()
        """Streams whose first forwarded request was logged."""
        self.cache: OrderedDict[tuple[str, str, str], _Found] = OrderedDict()
        """Immutable files fetched from their owner, least recently used first."""
        self.cached_bytes = 0
        self.inflight: dict[tuple[str, str, str], list[Deferred[_Found]]] = {}
        """Immutable files being fetched, with the requests that wait for the same one."""
        peers.handle(OP, self.answer)
        viewers.forward = self.forward

    # ------------------------------------------------------------------ the owner's side

    def answer(self, payload: dict[str, Any]) -> dict[str, Any] | Deferred[dict[str, Any]]:
        """Another worker asks for a file of a stream muxed here."""
        app, name, file = str(payload["app"]), str(payload["name"]), str(payload["file"])
        pull = self.viewers.demand.want(app, name, start=False)  # a viewer elsewhere wants it
        entry = self.viewers.streams.streams.get((app, name))
        if entry is None:
            if pull is None or pull.stream is not None or file not in ("index.m3u8", "ll.m3u8"):
                return {"status": 404, "worker": self.peers.index}
            pulling = pull.request.start_timeout  # it connects here: the asker waits for it
            pending = {"status": 404, "pending": True, "pulling": pulling}
            if not payload.get("wait"):
                return {**pending, "worker": self.peers.index}
            return self.viewers.demand.published_within(app, name, PENDING_WAIT).addCallback(
                lambda _: self._again(payload, pending)
            )
        if _PART.match(file) is not None:
            return self._answer_part(entry, payload)
        if file not in ("index.m3u8", "ll.m3u8"):
            found = file_content(entry.segments, file)
            if found is None:
                return {"status": 404, "worker": self.peers.index}
            return self._reply(*found, int(payload.get("offset", 0)))
        segments = entry.segments
        if (segments.segments or segments.ended) and file == "ll.m3u8":
            return self._answer_low_latency(entry, payload)
        if segments.segments or segments.ended:
            text = segments.playlist(str(payload.get("query", "")), str(payload.get("prefix", "")))
            return self._reply(PLAYLIST_TYPE.encode(), b"no-cache", text.encode(), 0)
        if not payload.get("wait"):
            return {"status": 404, "pending": True, "worker": self.peers.index}
        return self._first_segment(entry).addCallback(
            lambda _: self.answer({**payload, "wait": False})
        )

    def _again(self, payload: dict[str, Any], pending: dict[str, Any]) -> dict[str, Any]:
        """The playlist of ``payload`` once the pull here published its stream, or
        ``pending`` (no segment yet, or not published yet: the asker asks again)."""
        again = self.answer({**payload, "wait": False})
        if isinstance(again, dict) and again.get("status") == 200:
            return again
        return {**pending, "worker": self.peers.index}

    def _answer_low_latency(
        self, entry: _Entry, payload: dict[str, Any]
    ) -> dict[str, Any] | Deferred[dict[str, Any]]:
        """``ll.m3u8``: now, a 400 for a part too far ahead, or once it holds the asked part
        (held :data:`BLOCK_WAIT` seconds at most, then ``blocked``)."""
        segments = entry.segments
        query, prefix = str(payload.get("query", "")), str(payload.get("prefix", ""))
        msn, part = payload.get("msn"), payload.get("part")

        def now() -> dict[str, Any]:
            text = segments.low_latency_playlist(query, prefix)
            return self._reply(PLAYLIST_TYPE.encode(), b"no-cache", text.encode(), 0)

        if msn is None:
            return now()
        msn, part = int(msn), None if part is None else int(part)
        try:
            check_far(segments, msn, part, segments.settings.part_duration)
        except BadBlockingRequest as error:
            return {"status": 400, "worker": self.peers.index, "error": str(error)}
        return self._held(entry, payload, lambda: playlist_holds(segments, msn, part), now)

    def _answer_part(
        self, entry: _Entry, payload: dict[str, Any]
    ) -> dict[str, Any] | Deferred[dict[str, Any]]:
        """``seg<N>.<P>.m4s``: the part, 404, or for a hinted part not made yet, once made
        (held :data:`BLOCK_WAIT` seconds at most, then ``blocked``)."""
        segments = entry.segments
        match = _PART.match(str(payload["file"]))
        assert match is not None
        sequence, index = int(match.group(1)), int(match.group(2))

        def now() -> dict[str, Any]:
            data = segments.part(sequence, index)
            if data is None:
                return {"status": 404, "worker": self.peers.index}
            return self._reply(PART_TYPE, LONG_CACHE, data, int(payload.get("offset", 0)))

        if not part_waitable(segments, sequence, index):
            return now()
        return self._held(entry, payload, lambda: part_settled(segments, sequence, index), now)

    def _held(
        self,
        entry: _Entry,
        payload: dict[str, Any],
        ready: Callable[[], bool],
        now: Callable[[], dict[str, Any]],
    ) -> dict[str, Any] | Deferred[dict[str, Any]]:
        """``now()`` once ``ready()``; held at most ``payload["hold"]`` seconds (capped at
        :data:`BLOCK_WAIT`), counted in this worker's held requests, then ``blocked``."""
        if ready():
            return now()
        blocked = {
            "status": 404,
            "worker": self.peers.index,
            "blocked": True,
            "target": entry.segments.target_duration,
        }
        hold = min(float(payload.get("hold", 0.0)), BLOCK_WAIT)
        if hold <= 0:
            return blocked
        reply: Deferred[dict[str, Any]] = Deferred()
        busy = {"status": 503, "worker": self.peers.index, "error": "too many blocked requests"}
        self.viewers.held.hold(
            _Asked(),  # type: ignore[arg-type]
            lambda: entry.progress,
            ready,
            lambda: reply.callback(now()),
            lambda: reply.callback(blocked),
            hold,
            lambda: reply.callback(busy),
        )
        return reply

    def _first_segment(self, entry: _Entry) -> Deferred[None]:
        """Fires when the stream closes a segment or ends, or after :data:`PENDING_WAIT`."""
        waiter: Deferred[None] = Deferred()
        entry.waiters.append(waiter)
        waiter.addTimeout(PENDING_WAIT, self.clock)
        return waiter.addErrback(lambda _: None)

    def _reply(self, kind: bytes, cache: bytes, body: bytes, offset: int) -> dict[str, Any]:
        chunk = body[offset : offset + CHUNK]
        return {
            "status": 200,
            "worker": self.peers.index,
            "type": kind.decode("latin-1"),
            "cache": cache.decode("latin-1"),
            "size": len(body),
            "data": base64.b64encode(chunk).decode("ascii"),
        }

    # ------------------------------------------------------------------ the asker's side

    def owner(self, app: str, name: str) -> int | None:
        """The worker the stream is relayed from (its publisher's), if this one knows."""
        stream = self.viewers.server.registry.get(app, name)
        worker = relay_origin(stream) if stream is not None else None
        return worker if worker is not None and 0 <= worker != self.peers.index else None

    def ask(self, app: str, name: str, payload: dict[str, Any]) -> Deferred[dict[str, Any]]:
        """The owner's reply (or a 404 reply when no worker has the stream)."""
        owner = self.owner(app, name)
        if owner is not None:
            return self.peers.ask(owner, OP, payload)

        def rank(reply: dict[str, Any]) -> int:
            if reply.get("status") == 200:
                return 0
            if reply.get("pending") or reply.get("blocked"):
                return 1
            return 2 if reply.get("status") != 404 else 3  # the owner's 400 or 503

        def best(replies: list[dict[str, Any]]) -> dict[str, Any]:
            ranked = sorted(replies, key=rank)
            return ranked[0] if ranked else {"status": 404}

        return self.peers.ask_others(OP, payload).addCallback(best)

    def forward(
        self,
        request: Request,
        app: str,
        name: str,
        file: str,
        query: str,
        prefix: str,
        missing: Callable[[], bool] | None = None,
    ) -> None:
        """Answer ``request`` for ``file`` of (app, name) with the owner's bytes. When no
        worker has the stream, ``missing()`` (if given) may take the request over (True)
        instead of the 404: it starts the stream's pull here (:mod:`fms.http.hlsdemand`)."""
        gone: list[bool] = []
        request.notifyFinish().addErrback(lambda _: gone.append(True))
        request.setHeader(b"X-FMS-Worker", str(self.peers.index).encode())
        payload: dict[str, Any] = {"app": app, "name": name, "file": file, "query": query}
        payload.update(prefix=prefix, offset=0, wait=file in ("index.m3u8", "ll.m3u8"))
        if file == "ll.m3u8":
            msn, part = request_blocking(request)
            payload.update(msn=msn, part=part, hold=0.0)
        elif _PART.match(file) is not None:
            payload.update(hold=0.0)
        started = self.clock.seconds()
        hls_wait = self.viewers.server.config.hls.wait
        deadline = started + hls_wait

        def got(found: _Found) -> Deferred[Any] | None:
            nonlocal deadline
            if gone:
                return None
            if found.pulling:  # the owner's pull connects: its start_timeout, then the wait
                deadline = max(deadline, started + found.pulling + hls_wait)
            if found.pending and self.clock.seconds() < deadline:
                return self.fetch(app, name, payload).addCallback(got)
            if found.blocked:
                self._hold(request, gone, app, name, payload, started + 3 * found.target)
                return None
            if found.status == 404 and not found.pending and missing is not None and missing():
                return None
            self._deliver(request, app, name, file, found)
            return None

        def failed(failure: Failure) -> None:
            log.debug("forwarding HLS {file}: {why}", file=file, why=failure.getErrorMessage())
            if not gone:
                _error(request, 503, f"the worker that muxes {app}/{name} did not answer")

        self.fetch(app, name, payload).addCallback(got).addErrback(failed)

    def _hold(
        self,
        request: Request,
        gone: list[bool],
        app: str,
        name: str,
        payload: dict[str, Any],
        end: float,
    ) -> None:
        """Hold ``request`` (a blocking reload or hinted part the owner has not made yet) in
        this worker's :class:`~fms.http.hls_ll.HeldRequests` until ``end`` (clock seconds),
        asking the owner again each time it answers ``blocked``; 503 at ``end``."""
        file = str(payload["file"])
        result: list[_Found] = []
        waiters: list[Deferred[None]] = []
        done: list[bool] = []

        def settle(found: _Found) -> None:
            if done or gone:
                return
            result.append(found)
            fired = waiters[:]
            waiters.clear()
            for waiter in fired:
                waiter.callback(None)

        def again() -> None:
            remaining = end - self.clock.seconds()
            if done or gone or result or remaining <= 0:
                return  # at ``end`` the held request's deadline answers
            ask = {**payload, "hold": min(BLOCK_WAIT, remaining)}
            self.fetch(app, name, ask).addCallbacks(answered, failed)

        def answered(found: _Found) -> None:
            if found.blocked:
                again()
            else:
                settle(found)

        def failed(failure: Failure) -> None:
            log.debug("forwarding HLS {file}: {why}", file=file, why=failure.getErrorMessage())
            settle(_Found(503, -1, message=f"the worker that muxes {app}/{name} did not answer"))

        def finish(then: Callable[[], None]) -> Callable[[], None]:
            def finished() -> None:
                done.append(True)
                then()

            return finished

        self.viewers.held.hold(
            request,
            lambda: waiters,
            lambda: bool(result),
            finish(lambda: self._deliver(request, app, name, file, result[0])),
            finish(lambda: refuse(request, 503, f"{file} of {app}/{name} was not made in time")),
            max(0.0, end - self.clock.seconds()),
            finish(lambda: refuse(request, 503, "too many blocked requests")),
        )
        again()

    def _deliver(self, request: Request, app: str, name: str, file: str, found: _Found) -> None:
        """Answer ``request`` with the owner's whole answer ``found``."""
        if found.status != 200:
            if found.pending:
                _error(request, 404, f"{app}/{name} made no HLS segment in time")
            elif found.status in (400, 503):
                _error(request, found.status, found.message or "refused by the muxing worker")
            else:
                _error(request, 404, f"no {file} for {app}/{name} (not or no longer there)")
            return
        if (app, name) not in self.told:
            self.told.add((app, name))
            log.info(
                    "HLS of {app}/{name} answered here from worker {worker}, which muxes it",
                    app=app, name=name, worker=found.worker,
                )  # fmt: skip
        request.setHeader(b"X-FMS-HLS-Muxer", str(found.worker).encode())
        _answer(request, found.kind, found.cache, found.body)

    def fetch(self, app: str, name: str, payload: dict[str, Any]) -> Deferred[_Found]:
        """The whole answer of the owner for ``payload``'s file, its chunks put together.
        Segments and numbered init segments (immutable: a name is never reused) come from
        :attr:`cache` when there, and are asked for once however many requests wait."""
        key = (app, name, str(payload["file"]))
        immutable = _IMMUTABLE.match(key[2]) is not None
        if immutable:
            cached = self.cache.get(key)
            if cached is not None:
                self.cache.move_to_end(key)
                return succeed(cached)
            waiting = self.inflight.get(key)
            if waiting is not None:
                shared: Deferred[_Found] = Deferred()
                waiting.append(shared)
                return shared
            self.inflight[key] = []
        d = self.ask(app, name, payload).addCallback(self._assemble, payload)
        if immutable:
            d.addBoth(self._share, key)
        return d

    def _assemble(
        self, reply: dict[str, Any], payload: dict[str, Any]
    ) -> _Found | Deferred[_Found]:
        worker = int(reply.get("worker", -1))
        if reply.get("status") != 200:
            return _Found(
                int(reply.get("status", 404)),
                worker,
                pending=bool(reply.get("pending")),
                blocked=bool(reply.get("blocked")),
                target=float(reply.get("target", 0.0)),
                message=str(reply.get("error", "")),
                pulling=float(reply.get("pulling", 0.0)),
            )
        size = int(reply["size"])
        parts = [base64.b64decode(reply["data"])]
        have = len(parts[0])

        def whole() -> _Found:
            kind, cache = str(reply["type"]).encode(), str(reply["cache"]).encode()
            return _Found(200, worker, kind, cache, b"".join(parts))

        def more(next_reply: dict[str, Any]) -> _Found | Deferred[_Found]:
            nonlocal have
            data = base64.b64decode(next_reply.get("data", ""))
            if next_reply.get("status") != 200 or not data or int(next_reply["size"]) != size:
                raise ValueError("the file left the owner's window while being fetched")
            parts.append(data)
            have += len(data)
            if have >= size:
                return whole()
            return self.peers.ask(worker, OP, {**payload, "offset": have}).addCallback(more)

        if have >= size:
            return whole()
        return self.peers.ask(worker, OP, {**payload, "offset": have}).addCallback(more)

    def _share(self, result: _Found | Failure, key: tuple[str, str, str]) -> _Found | Failure:
        """Hand a fetched immutable file to the requests that waited for it; keep it."""
        waiting = self.inflight.pop(key, [])
        if isinstance(result, _Found) and result.status == 200:
            self.cache[key] = result
            self.cached_bytes += len(result.body)
            bound = self.viewers.server.config.hls.max_bytes_per_stream
            while self.cached_bytes > bound and self.cache:
                _, gone = self.cache.popitem(last=False)
                self.cached_bytes -= len(gone.body)
        for waiter in waiting:
            if isinstance(result, Failure):
                waiter.errback(result)
            else:
                waiter.callback(result)
        return result


class _Asked:
    """What :meth:`HeldRequests.hold` needs of a request, for an ask from another worker:
    nothing tells this worker that the asker's viewer left (the hold ends within
    :data:`BLOCK_WAIT` seconds anyway)."""

    def notifyFinish(self) -> Deferred[None]:  # Twisted's name
        return Deferred()


__all__ = ["BLOCK_WAIT", "CHUNK", "OP", "HLSForwarder"]
