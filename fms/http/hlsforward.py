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

Answers carry ``X-FMS-Worker`` (this worker) and ``X-FMS-HLS-Muxer`` (the worker whose
segments they are); the first request this worker forwards for a stream is logged.
"""

from __future__ import annotations

import base64
import re
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, succeed
from twisted.python.failure import Failure
from twisted.web.server import Request

from fms.hls.playlist import CONTENT_TYPE as PLAYLIST_TYPE
from fms.http.hls import HLSViewers, _answer, _error, file_content, relay_origin
from fms.http.peers import Peers
from fms.log import Logger

if TYPE_CHECKING:
    from fms.http.hls import _Entry

log = Logger(namespace="fms.http.hlsforward")

OP = "hls.get"
"""The control-channel operation: ``{app, name, file, query, prefix, offset, wait}`` ->
``{status, worker, type, cache, size, data}`` (``data``: base64 of bytes from ``offset``)."""
CHUNK = 512 * 1024
"""Bytes of a segment per reply: their base64 (4/3) and the JSON around it stay under the
control channel's 1 MiB message bound."""
PENDING_WAIT = 1.5
"""Seconds the owner holds a playlist request for a stream without a segment yet (below the
asker's per-ask timeout); the asker asks again until ``[hls] wait`` has passed."""


_IMMUTABLE = re.compile(r"^(init\d+\.mp4|seg\d+\.(m4s|ts))$")
"""Files whose name is never reused for other bytes (see :mod:`fms.http.hls`)."""


@dataclass(frozen=True, slots=True)
class _Found:
    """A whole answer of the owner: status, the owner's index, and for a 200 the content
    type, cache control and body; ``pending``: published, no segment yet."""

    status: int
    worker: int
    kind: bytes = b""
    cache: bytes = b""
    body: bytes = b""
    pending: bool = False


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
        entry = self.viewers.streams.streams.get((app, name))
        if entry is None:
            return {"status": 404, "worker": self.peers.index}
        if file != "index.m3u8":
            found = file_content(entry.segments, file)
            if found is None:
                return {"status": 404, "worker": self.peers.index}
            return self._reply(*found, int(payload.get("offset", 0)))
        segments = entry.segments
        if segments.segments or segments.ended:
            text = segments.playlist(str(payload.get("query", "")), str(payload.get("prefix", "")))
            return self._reply(PLAYLIST_TYPE.encode(), b"no-cache", text.encode(), 0)
        if not payload.get("wait"):
            return {"status": 404, "pending": True, "worker": self.peers.index}
        return self._first_segment(entry).addCallback(
            lambda _: self.answer({**payload, "wait": False})
        )

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

        def best(replies: list[dict[str, Any]]) -> dict[str, Any]:
            ranked = sorted(replies, key=lambda r: (r.get("status") != 200, not r.get("pending")))
            return ranked[0] if ranked else {"status": 404}

        return self.peers.ask_others(OP, payload).addCallback(best)

    def forward(
        self, request: Request, app: str, name: str, file: str, query: str, prefix: str
    ) -> None:
        """Answer ``request`` for ``file`` of (app, name) with the owner's bytes."""
        gone: list[bool] = []
        request.notifyFinish().addErrback(lambda _: gone.append(True))
        payload: dict[str, Any] = {"app": app, "name": name, "file": file, "query": query}
        payload.update(prefix=prefix, offset=0, wait=file == "index.m3u8")
        deadline = self.clock.seconds() + self.viewers.server.config.hls.wait

        def got(found: _Found) -> Deferred[Any] | None:
            if gone:
                return None
            if found.pending and self.clock.seconds() < deadline:
                return self.fetch(app, name, payload).addCallback(got)
            if found.status != 200:
                if found.pending:
                    _error(request, 404, f"{app}/{name} made no HLS segment in time")
                else:
                    _error(request, 404, f"no {file} for {app}/{name} (not or no longer there)")
                return None
            if (app, name) not in self.told:
                self.told.add((app, name))
                log.info(
                    "HLS of {app}/{name} answered here from worker {worker}, which muxes it",
                    app=app, name=name, worker=found.worker,
                )  # fmt: skip
            request.setHeader(b"X-FMS-Worker", str(self.peers.index).encode())
            request.setHeader(b"X-FMS-HLS-Muxer", str(found.worker).encode())
            _answer(request, found.kind, found.cache, found.body)
            return None

        def failed(failure: Failure) -> None:
            log.debug("forwarding HLS {file}: {why}", file=file, why=failure.getErrorMessage())
            if not gone:
                _error(request, 503, f"the worker that muxes {app}/{name} did not answer")

        self.fetch(app, name, payload).addCallback(got).addErrback(failed)

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
            return _Found(404, worker, pending=bool(reply.get("pending")))
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


__all__ = ["CHUNK", "OP", "HLSForwarder"]
