"""HLS on the HTTP listener: ``GET /APP/STREAM/index.m3u8``, ``init<N>.mp4`` (and
``init.mp4``, the current one) and ``seg<N>.m4s``, muxed once per stream by :mod:`fms.hls`;
Low-Latency HLS ``ll.m3u8`` and parts ``seg<N>.<P>.m4s`` through :mod:`fms.http.hls_ll`.

**Muxing.** :class:`HLSStreams` hooks the stream registry (``publish_hooks``): when a stream
of an application ``[hls]`` covers is published, a :class:`~fms.live.stream.StreamTap` feeds
its messages to the stream's :class:`~fms.hls.segmenter.StreamSegments`, whatever the number
of viewers (none included: the first viewer finds a full window). When the publisher leaves,
the playlist ends (``#EXT-X-ENDLIST``) and stays served ``[hls] linger`` seconds; a publisher
back within them continues it after a discontinuity, later ones start a new one (numbered
from the wall clock's seconds, so that cached segment URIs never repeat).

**Deciding.** A playlist request is a viewer: the application's plugins are asked
``connect`` then ``play`` with a client view whose ``protocol`` is ``"hls"`` and whose query
is the URL's, as for HTTP-FLV (a refusal is a 403 with its reason, an unknown application or
stream a 404, a bad name a 400). HLS players ask for the playlist every few seconds, so a
verdict is remembered for the same (address, stream, query) while it keeps asking (a
*session*, ended :data:`SESSION_IDLE` seconds after its last playlist request, or when a
plugin closes the client); the query is carried into every URI of the playlist. Segments and
init segments are not decided: they are plain cacheable objects, and their names are learnt
from a playlist.

**Answers.** Playlists: ``application/vnd.apple.mpegurl``, ``Cache-Control: no-cache``.
Segments ``video/iso.segment`` and numbered init segments ``video/mp4`` with
``Cache-Control: public, max-age=86400, immutable`` (a name is never reused); ``init.mp4``
``no-cache``. CORS comes from :class:`fms.http.web.APIResource`, as for every route.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, unquote_to_bytes

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall
from twisted.python.failure import Failure
from twisted.web.server import NOT_DONE_YET, Request

from fms.apps.application import Application
from fms.apps.interfaces import IAppView
from fms.apps.verdict import Verdict
from fms.apps.views import ClientView
from fms.config import HLSConfig
from fms.hls.playlist import CONTENT_TYPE as PLAYLIST_TYPE
from fms.hls.segmenter import SegmentSettings, StreamSegments
from fms.hls.tssegments import TsStreamSegments
from fms.http.answers import application_for, caller_of, error
from fms.http.hls_ll import (
    HeldRequests,
    hls_ll_playlist,
    low_latency_playlist,
    part_request,
    viewer_query,
)
from fms.http.hlsdemand import HLSDemand
from fms.live.media import MediaInfo
from fms.live.stream import LiveStream
from fms.log import Logger
from fms.rtmp.messages import Media

if TYPE_CHECKING:
    from fms.server.factory import RTMPServerFactory

log = Logger(namespace="fms.http.hls")

PROTOCOL = "hls"
"""What :attr:`IClientView.protocol` says of an HLS viewer."""
SEGMENT_TYPE = b"video/iso.segment"
INIT_TYPE = b"video/mp4"
LONG_CACHE = b"public, max-age=86400, immutable"
SESSION_IDLE = 30.0
"""Seconds after its last playlist request that a viewer's verdict is forgotten."""
MAX_SESSIONS = 4096
"""Verdicts remembered at once; beyond, the oldest session ends (its next request is decided
again)."""
TS_TYPE = b"video/mp2t"
_FILE = re.compile(
    r"^(index\.m3u8|ll\.m3u8|init\.mp4|init(\d{1,20})\.mp4|seg(\d{1,20})\.(m4s|ts)"
    r"|seg(\d{1,20})\.(\d{1,6})\.m4s)$"
)
"""The files of a stream: playlists, init segments, segments (``.m4s`` or ``.ts``) and the
parts of Low-Latency HLS (``seg<N>.<P>.m4s``)."""


def parse_path(path: bytes) -> tuple[str, str, str] | None:
    """``/APP/STREAM/FILE`` (APP may have slashes; FILE one of ours) -> (app, stream, file),
    None when the path is not an HLS one (the request goes to the other routes)."""
    try:
        text = unquote_to_bytes(path).decode("utf-8")
    except UnicodeDecodeError:
        return None
    rest, slash, file = text.lstrip("/").rpartition("/")
    if not slash or _FILE.match(file) is None:
        return None
    app, slash, stream = rest.rpartition("/")
    if not slash or not app or not stream:
        return None
    return app, stream, file


_error = error  # the JSON error answer of every HTTP viewer route


def _answer(request: Request, content_type: bytes, cache: bytes, body: bytes) -> None:
    request.setResponseCode(200)
    request.setHeader(b"Content-Type", content_type)
    request.setHeader(b"Cache-Control", cache)
    request.setHeader(b"Content-Length", str(len(body)).encode())
    if request.method != b"HEAD":
        request.write(body)
    request.finish()


def relay_origin(stream: LiveStream) -> int | None:
    """The worker a stream is relayed from (``--workers``: its publisher is a relay link of
    :mod:`fms.cluster.link`, seen here through the publisher's client view), else None."""
    link = getattr(stream.publisher, "_link", None)
    if getattr(link, "claims_names", True) is not False:
        return None
    worker = getattr(link, "relayed_from", None)
    return worker if isinstance(worker, int) else -1


def file_content(segments: StreamSegments, file: str) -> tuple[bytes, bytes, bytes] | None:
    """(content type, cache control, body) of a segment or init segment ``file`` of one
    stream, None when it is not (or no longer) there. A ``.ts`` name is only a TS stream's
    segment and a ``.m4s`` one only an fMP4 stream's."""
    match = _FILE.match(file)
    if match is None:
        return None
    if file == "init.mp4":
        init = segments.init
        return None if init is None else (INIT_TYPE, b"no-cache", init)
    if match.group(2) is not None:
        init = segments.inits.get(int(match.group(2)))
        return None if init is None else (INIT_TYPE, LONG_CACHE, init)
    if match.group(3) is None:  # a playlist or a part: not a file this answers
        return None
    ts = isinstance(segments, TsStreamSegments)
    if (match.group(4) == "ts") != ts:
        return None
    segment = segments.segment(int(match.group(3)))
    if segment is None:
        return None
    return (TS_TYPE if ts else SEGMENT_TYPE, LONG_CACHE, segment.data)


@dataclass(slots=True)
class _Entry:
    """One stream's HLS state and who waits for its first segment."""

    segments: StreamSegments
    waiters: list[Deferred[None]] = field(default_factory=list)
    expiry: IDelayedCall | None = None
    publishes: int = 0
    progress: list[Deferred[None]] = field(default_factory=list)
    """Low-Latency requests waiting for the next part or segment (:mod:`fms.http.hls_ll`)."""


class _Tap:
    """The :class:`~fms.live.stream.StreamTap` of one publish: messages to the segmenter."""

    def __init__(self, streams: HLSStreams, key: tuple[str, str], entry: _Entry) -> None:
        self.streams = streams
        self.key = key
        self.entry = entry
        self.failed = False

    def published(self, message: Media, info: MediaInfo) -> None:
        if self.failed:
            return
        segments = self.entry.segments
        made, memory = segments.made, segments.memory
        try:
            closed = segments.publish(
                message.type_id,
                message.timestamp,
                message.payload,
                self.streams.clock.seconds(),
                info.tagged,
            )
        except Exception:
            # A muxer bug must not take the publish down: this stream's HLS stops here.
            self.failed = True
            log.failure("HLS muxing of {app}/{stream} failed", app=self.key[0], stream=self.key[1])
            return
        self.streams.grew(segments.memory - memory)
        if closed is not None:
            self.streams.wake(self.entry)
        elif segments.made != made:
            self.streams.progressed(self.entry)

    def stopped(self) -> None:
        self.streams.stopped(self.key, self.entry)


class HLSStreams:
    """Every stream's HLS state in this process (see the module docstring)."""

    def __init__(self, server: RTMPServerFactory) -> None:
        self.server = server
        self.clock: Any = server.clock
        self.streams: dict[tuple[str, str], _Entry] = {}
        self.total = 0
        """Bytes all streams hold (kept under ``[hls] max_bytes_total``, see :meth:`grew`)."""
        self.evicted = 0
        """Segments dropped to keep under ``max_bytes_total``."""
        server.registry.publish_hooks.append(self.publish_started)

    @property
    def config(self) -> HLSConfig:
        """``[hls]`` as the server has it now (a reload applies to the next publishes)."""
        return self.server.config.hls

    def publish_started(self, stream: LiveStream) -> None:
        config = self.config
        if not config.muxes(stream.app):
            return
        if relay_origin(stream) is not None:
            return  # relayed from the worker that holds the publish: that one muxes it
        key = (stream.app, stream.name)
        entry = self.streams.get(key)
        if entry is None:
            settings = SegmentSettings(
                segment_duration=config.segment_duration,
                window=config.window,
                max_bytes=config.max_bytes_per_stream,
                program_date_time=config.program_date_time,
                part_duration=config.part_duration,
            )
            first = int(self.clock.seconds())
            if config.container_for(stream.app) == "mpegts":

                def refused(reason: str, app: str = stream.app, name: str = stream.name) -> None:
                    log.warn("HLS of {app}/{name}: {reason}", app=app, name=name, reason=reason)

                segments: StreamSegments = TsStreamSegments(settings, first, refused)
            else:
                segments = StreamSegments(settings, first)
            entry = self.streams[key] = _Entry(segments)
        if entry.expiry is not None and entry.expiry.active():
            entry.expiry.cancel()
        entry.expiry = None
        entry.publishes += 1
        memory = entry.segments.memory
        entry.segments.start()
        self.grew(entry.segments.memory - memory)
        stream.taps.append(_Tap(self, key, entry))

    def stopped(self, key: tuple[str, str], entry: _Entry) -> None:
        memory = entry.segments.memory
        entry.segments.stop()
        self.grew(entry.segments.memory - memory)
        self.wake(entry)
        if self.streams.get(key) is entry:
            entry.expiry = self.clock.callLater(self.config.linger, self._forget, key, entry)

    def _forget(self, key: tuple[str, str], entry: _Entry) -> None:
        entry.expiry = None
        if self.streams.get(key) is entry and entry.segments.ended:
            del self.streams[key]
            self.total -= entry.segments.memory

    def wake(self, entry: _Entry) -> None:
        waiters, entry.waiters = entry.waiters, []
        for waiter in waiters:
            if not waiter.called:
                waiter.callback(None)
        self.progressed(entry)

    def progressed(self, entry: _Entry) -> None:
        """The stream made a part or a segment (or ended): held LL requests look again."""
        waiters, entry.progress = entry.progress, []
        for waiter in waiters:
            if not waiter.called:
                waiter.callback(None)

    def grew(self, delta: int) -> None:
        """A stream's memory changed by ``delta`` bytes. Past ``[hls] max_bytes_total``, the
        stream holding the most loses its oldest segment, until under (or no stream has a
        closed segment left to give): one heavy stream cannot push the others out, and new
        streams are still muxed."""
        self.total += delta
        cap = self.config.max_bytes_total
        while self.total > cap:
            heaviest = max(
                (e.segments for e in self.streams.values() if e.segments.segments),
                key=lambda s: s.memory,
                default=None,
            )
            if heaviest is None:
                return
            self.total -= heaviest.drop_oldest()
            self.evicted += 1

    @property
    def memory(self) -> int:
        """Bytes of segments held for every stream."""
        return sum(entry.segments.memory for entry in self.streams.values())


@dataclass(slots=True)
class _Session:
    view: ClientView
    application: Application
    name: str
    expiry: IDelayedCall | None = None


class _Link:
    """The :class:`~fms.apps.views.ClientLink` of an HLS viewer's view: closing it ends the
    session (its next playlist request is decided again)."""

    def __init__(self, viewers: HLSViewers, key: tuple[str, str, str, str]) -> None:
        self._viewers = viewers
        self._key = key
        self.application: IAppView | None = None

    def streams(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        session = self._viewers.sessions.get(self._key)
        return (), ((session.name,) if session is not None else ())

    def invoke(self, method: str, args: tuple[Any, ...], expect_result: bool) -> float | None:
        return None  # an HTTP viewer takes no RTMP calls

    def close(self, reason: str) -> None:
        self._viewers.end_session(self._key)


class HLSViewers:
    """Answers ``GET``/``HEAD`` of HLS paths for one process's RTMP server."""

    def __init__(self, server: RTMPServerFactory) -> None:
        self.server = server
        self.clock: Any = server.clock
        self.streams = HLSStreams(server)
        self.demand = HLSDemand(self)  # after self.streams: see HLSDemand.__init__
        self.held = HeldRequests(self.clock, lambda: server.config.hls)
        self.sessions: OrderedDict[tuple[str, str, str, str], _Session] = OrderedDict()
        self.forward: Callable[..., None] | None = None
        """With ``--workers``: answers a request for a stream not muxed here by asking the
        worker that muxes it (:mod:`fms.http.hlsforward`); called with (request, app, name,
        file, query, prefix) and, for a playlist, ``missing``: what to do instead of a 404
        when no worker has the stream nor a pull of it (start the pull here)."""

    def render(self, request: Request, parsed: tuple[str, str, str]) -> Any:
        app, name, file = parsed
        if file == "index.m3u8":
            return self._playlist(request, app, name)
        if file == "ll.m3u8":
            return hls_ll_playlist(self, request, app, name)
        self.demand.want(app, name, start=False)  # keeps a pull going (fms.http.hlsdemand)
        entry = self.streams.streams.get((app, name))
        if entry is None and self.forward is not None:
            self.forward(request, app, name, file, "", "")
            return NOT_DONE_YET
        match = _FILE.match(file)
        if match is not None and match.group(5) is not None:  # a part (Low-Latency HLS)
            part_request(self, request, entry, int(match.group(5)), int(match.group(6)), file)
            return NOT_DONE_YET
        found = file_content(entry.segments, file) if entry is not None else None
        if found is None:
            _error(request, 404, f"no {file} for {app}/{name} (not or no longer there)")
        else:
            _answer(request, *found)
        return NOT_DONE_YET

    # ------------------------------------------------------------------ playlists

    def _playlist(self, request: Request, app: str, asked: str) -> Any:
        application = application_for(self.server, request, app)
        if application is None:
            return NOT_DONE_YET
        caller = caller_of(request)
        host = caller.host
        raw_query = viewer_query(request)
        key = (host, app, asked, raw_query)
        session = self.sessions.get(key)
        if session is not None:
            self._touch(key, session)
            self._serve(request, app, asked, session.name, raw_query)
            return NOT_DONE_YET
        query = dict(parse_qsl(raw_query, keep_blank_values=True))
        link = _Link(self, key)
        link.application = application
        view = ClientView(
            link, peer=caller.peer, host=host, app=app, tc_url=f"http://{caller.header_host}/{app}",
            params={}, query=query, agent=caller.agent, protocol=PROTOCOL,
        )  # fmt: skip
        gone: list[bool] = []
        request.notifyFinish().addErrback(lambda _: gone.append(True))
        d = application.decide_connect(view)
        d.addCallback(self._connected, request, gone, application, view, key, query)
        d.addErrback(self._failed, request, gone, caller.peer)
        return NOT_DONE_YET

    def _connected(
        self,
        verdict: Verdict,
        request: Request,
        gone: list[bool],
        application: Application,
        view: ClientView,
        key: tuple[str, str, str, str],
        query: dict[str, str],
    ) -> Deferred[Any] | None:
        if gone:
            return None
        if not verdict.accepted:
            _error(request, 403, verdict.description or "refused")
            return None
        application.add_client(view)
        max_name = self.server.config.streams.max_stream_name
        d = application.decide_play(view, key[2], query, max_name)
        d.addCallback(self._decided, request, gone, application, view, key)
        return d

    def _decided(
        self,
        verdict: Verdict,
        request: Request,
        gone: list[bool],
        application: Application,
        view: ClientView,
        key: tuple[str, str, str, str],
    ) -> None:
        if not verdict.accepted:
            application.remove_client(view)
            self.server.client_left(application)
            if not gone:
                status = 403 if verdict.by_application else 400
                _error(request, status, verdict.description or "refused")
            return
        session = _Session(view, application, verdict.name)
        self.sessions[key] = session
        while len(self.sessions) > MAX_SESSIONS:
            self.end_session(next(iter(self.sessions)))
        self._touch(key, session)
        if not gone:
            self._serve(request, key[1], key[2], verdict.name, key[3])

    def _failed(self, failure: Failure, request: Request, gone: list[bool], peer: str) -> None:
        log.failure("answering HLS viewer {peer}", failure, peer=peer)
        if not gone:
            _error(request, 500, "internal error")

    def _touch(self, key: tuple[str, str, str, str], session: _Session) -> None:
        self.sessions.move_to_end(key)
        if session.expiry is not None and session.expiry.active():
            session.expiry.reset(SESSION_IDLE)
        else:
            session.expiry = self.clock.callLater(SESSION_IDLE, self.end_session, key)

    def end_session(self, key: tuple[str, str, str, str]) -> None:
        """Forget a viewer's verdict: the client leaves its application."""
        session = self.sessions.pop(key, None)
        if session is None:
            return
        if session.expiry is not None and session.expiry.active():
            session.expiry.cancel()
        session.application.remove_client(session.view)
        self.server.client_left(session.application)

    def _serve(
        self, request: Request, app: str, asked: str, name: str, query: str, waited: bool = False
    ) -> None:
        """The playlist of (app, name), at once or once its first segment is there (waiting
        ``[hls] wait`` seconds at most); for a stream a pull fetches, once the pull published
        it (``waited``: that wait is over; :mod:`fms.http.hlsdemand`); 404 for a stream
        without HLS."""
        entry = self.streams.streams.get((app, name))
        pull = self.demand.want(app, name, start=entry is None and self.forward is None)
        if entry is None and pull is not None and pull.stream is None and not waited:
            self.demand.wait(
                request, app, name, pull,
                lambda: self._serve(request, app, asked, name, query, waited=True),
            )  # fmt: skip
            return
        prefix = "" if name == asked else f"../{quote(name)}/"
        if entry is None and self.forward is not None:
            low = request.path.endswith(b"/ll.m3u8")

            def again() -> None:
                self._serve(request, app, asked, name, query, waited=True)

            def missing() -> bool:  # nobody has it: its pull, if any, starts here
                return self.demand.start_here(request, app, name, again)

            file = "ll.m3u8" if low else "index.m3u8"
            self.forward(request, app, name, file, query, prefix, None if waited else missing)
            return
        if entry is None:
            _error(request, 404, f"no HLS for {app}/{name}: nobody publishes it")
            return
        segments = entry.segments
        if segments.segments or segments.ended:
            if request.path.endswith(b"/ll.m3u8"):
                low_latency_playlist(self, request, entry, prefix, query)
                return
            body = segments.playlist(query, prefix).encode()
            _answer(request, PLAYLIST_TYPE.encode(), b"no-cache", body)
            return
        waiter: Deferred[None] = Deferred()
        entry.waiters.append(waiter)
        waiter.addTimeout(self.server.config.hls.wait, self.clock)
        request.notifyFinish().addErrback(lambda _: waiter.cancel())
        waiter.addCallbacks(
            lambda _: self._serve(request, app, asked, name, query),
            lambda failure: self._waited(failure, request, app, name),
        )

    @staticmethod
    def _waited(failure: Failure, request: Request, app: str, name: str) -> None:
        if getattr(request, "finished", False) or getattr(request, "_disconnected", False):
            return
        _error(request, 404, f"{app}/{name} made no HLS segment in time")


__all__ = ["PROTOCOL", "HLSStreams", "HLSViewers", "file_content", "parse_path", "relay_origin"]
