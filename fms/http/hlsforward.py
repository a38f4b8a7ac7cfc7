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
written as they come. A playlist of a stream published without a segment yet is held
:data:`PENDING_WAIT` seconds by the owner and asked again until ``[hls] wait`` has passed.

Answers carry ``X-FMS-Worker`` (this worker) and ``X-FMS-HLS-Muxer`` (the worker whose
segments they are); the first request this worker forwards for a stream is logged.
"""

from __future__ import annotations

import base64
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


class HLSForwarder:
    """Both ends of forwarded HLS requests on one worker (see the module docstring)."""

    def __init__(self, viewers: HLSViewers, peers: Peers) -> None:
        self.viewers = viewers
        self.peers = peers
        self.clock: Any = viewers.clock
        self.told: set[tuple[str, str]] = set()
        """Streams whose first forwarded request was logged."""
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

        def got(reply: dict[str, Any]) -> Deferred[Any] | None:
            if gone:
                return None
            if reply.get("pending") and self.clock.seconds() < deadline:
                return self.ask(app, name, payload).addCallback(got)
            if reply.get("status") != 200:
                if reply.get("pending"):
                    _error(request, 404, f"{app}/{name} made no HLS segment in time")
                else:
                    _error(request, 404, f"no {file} for {app}/{name} (not or no longer there)")
                return None
            return self._start(request, gone, app, name, payload, reply)

        def failed(failure: Failure) -> None:
            if not gone:
                _error(request, 503, f"the worker that muxes {app}/{name} did not answer")

        self.ask(app, name, payload).addCallback(got).addErrback(failed)

    def _start(
        self,
        request: Request,
        gone: list[bool],
        app: str,
        name: str,
        payload: dict[str, Any],
        reply: dict[str, Any],
    ) -> Deferred[Any] | None:
        worker = int(reply["worker"])
        if (app, name) not in self.told:
            self.told.add((app, name))
            log.info(
                "HLS of {app}/{name} answered here from worker {worker}, which muxes it",
                app=app, name=name, worker=worker,
            )  # fmt: skip
        request.setHeader(b"X-FMS-Worker", str(self.peers.index).encode())
        request.setHeader(b"X-FMS-HLS-Muxer", str(worker).encode())
        data = base64.b64decode(reply["data"])
        size = int(reply["size"])
        if len(data) >= size or request.method == b"HEAD":
            _answer(request, reply["type"].encode(), reply["cache"].encode(), data)
            return None
        # A big segment: the headers and its first chunk now, the rest as it comes.
        request.setResponseCode(200)
        request.setHeader(b"Content-Type", reply["type"].encode())
        request.setHeader(b"Cache-Control", reply["cache"].encode())
        request.setHeader(b"Content-Length", str(size).encode())
        request.write(data)
        return self._rest(request, gone, worker, payload, len(data), size)

    def _rest(
        self,
        request: Request,
        gone: list[bool],
        worker: int,
        payload: dict[str, Any],
        offset: int,
        size: int,
    ) -> Deferred[Any]:
        if gone:
            return succeed(None)
        if offset >= size:
            request.finish()
            return succeed(None)

        def more(reply: dict[str, Any]) -> Deferred[Any]:
            data = base64.b64decode(reply.get("data", "")) if reply.get("status") == 200 else b""
            if not data or int(reply["size"]) != size:
                raise ValueError("the segment left the owner's window while being sent")
            if not gone:
                request.write(data)
            return self._rest(request, gone, worker, payload, offset + len(data), size)

        def broken(failure: Failure) -> None:
            # Headers and a Content-Length went out: all a client can be told is a cut.
            log.warn("HLS answer cut short: {why}", why=failure.getErrorMessage())
            if not gone and request.channel is not None:
                request.channel.loseConnection()

        asked = self.peers.ask(worker, OP, {**payload, "offset": offset})
        return asked.addCallback(more).addErrback(broken)


__all__ = ["CHUNK", "OP", "HLSForwarder"]
