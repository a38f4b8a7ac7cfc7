"""HTTP-FLV: ``GET /APP/STREAM.flv`` plays a live stream as an endless FLV file.

A viewer is a player of the stream like an RTMP one (:mod:`fms.live.stream`): its log holds
FLV tags, encoded once per message for every HTTP viewer of the stream, and it gets the same
batched flushes, the same bounds (``player_buffer``, skip to the next keyframe when slow, closed
past the hard bound or the stall timeout) from the server's fan-out loop. What this module adds
is the HTTP side:

- the decision: the application's plugins are asked ``connect`` then ``play`` with a client
  view whose ``protocol`` is ``"http-flv"`` and whose query is the URL's (a ``?key=`` works as
  for RTMP). A name the names rules refuse is a 400, a plugin's refusal a 403 with its reason,
  an unknown application a 404; errors are ``{"error": "..."}``;
- the response: ``200`` with ``Content-Type: video/x-flv``, chunked for HTTP/1.1 and delimited
  by the end of the connection for HTTP/1.0 (Twisted does both), ``Cache-Control: no-store``;
  its first bytes are the FLV file header, whose audio/video flags are decided at the first
  write from what the stream carries (:meth:`LiveStream.carries`): a viewer is handed nothing
  until that is known, since a flag for a track that never comes stalls MSE players;
- waiting: a viewer of a stream nobody publishes waits ``[http] flv_wait`` seconds for its
  publisher (0: 404 at once), then gets it from the start; a viewer given nothing yet when the
  wait ends is answered 404;
- the end: when the publisher leaves, the response is finished (the terminating chunk), so a
  player sees a clean end of file;
- ``?packets=media``: the viewer gets the stream without Enhanced RTMP side-information tags
  (video Metadata, audio MultichannelConfig), which mpegts.js 1.8.2 cannot read; the player
  page asks for it (why it is safe: :mod:`fms.live.flvfilter`). Filtered per viewer, in its
  sink; everyone else shares the published bytes as they are.

CORS (``[http] cors_origins``, preflight included) is answered by :class:`fms.http.web.APIResource`
before the request comes here.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote_to_bytes, urlsplit

from twisted.internet import tcp
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IPushProducer
from twisted.python.failure import Failure
from twisted.web.server import NOT_DONE_YET, Request
from zope.interface import implementer

from fms.apps.application import Application
from fms.apps.interfaces import IAppView
from fms.apps.verdict import Verdict
from fms.apps.views import ClientView
from fms.config import HTTPConfig
from fms.counters import COUNTERS
from fms.http.answers import application_for, caller_of, error
from fms.http.recordings import find_recording, serve_recording
from fms.http.viewers import HTTPClients, next_number
from fms.live import flv
from fms.live.flvfilter import SideDataFilter
from fms.live.stream import LiveStream, Player
from fms.log import Logger
from fms.server.delivery import buffered, write_through

if TYPE_CHECKING:
    from fms.server.factory import RTMPServerFactory

log = Logger(namespace="fms.http.flv")

CONTENT_TYPE = b"video/x-flv"
PROTOCOL = "http-flv"
"""What :attr:`IClientView.protocol` says of an HTTP-FLV viewer."""
STREAM_ID = 1
"""The message stream id of every HTTP-FLV play: FLV tags carry none, so all viewers share."""
MEDIA_ONLY = ("packets", "media")
"""The query parameter with which a viewer asks for the stream without side-information tags
(:mod:`fms.live.flvfilter`)."""


def parse_path(path: bytes) -> tuple[str, str] | str:
    """``/APP/STREAM.flv`` (percent-encoded, APP may have slashes) -> (app, stream), or why
    the path is not one (a str)."""
    try:
        text = unquote_to_bytes(path).decode("utf-8")
    except UnicodeDecodeError:
        return "the path is not UTF-8"
    app, slash, file = text.lstrip("/").rpartition("/")
    if not slash or not app or not file.endswith(".flv") or len(file) == len(".flv"):
        return "expected /APP/STREAM.flv"
    return app, file[: -len(".flv")]


@implementer(IPushProducer)
class FLVViewer:
    """One HTTP-FLV request: the client link of its view, the sink of its player and the
    producer its connection pauses (see the module docstring).

    The decision, the player and its bounds are the same for every way of carrying the FLV
    bytes; how they reach the client is in four methods a subclass may override: ``_open``
    (the response's head and the FLV header), ``_send`` (bytes of the file), ``_finish``
    (a clean end) and ``_transport`` (for the bytes it holds and to abort).
    :class:`fms.http.wsflv.WebSocketFLVViewer` carries them in WebSocket binary messages."""

    protocol = PROTOCOL
    """What :attr:`IClientView.protocol` says of this kind of viewer."""
    scheme = "http"
    """The URL scheme of its ``tc_url``."""
    label = "HTTP-FLV"
    """What log lines call it."""

    def __init__(self, viewers: FLVViewers, request: Request, app: str, peer: str) -> None:
        self.viewers = viewers
        self.request = request
        self.app = app
        self.name = ""
        self.peer = peer
        self.number = next_number()
        """Its client number in the API (``WORKER-N``), from the RTMP connections' count."""
        self.agent = ""
        self.started_at = viewers.clock.seconds()
        self.view: ClientView | None = None
        self.application: Application | None = None
        self.stream: LiveStream | None = None
        self.player: Player | None = None
        self.started = False
        """The status line and FLV header were written."""
        self.done = False
        """The request finished or its connection was lost: nothing more is written."""
        self.paused = False
        self._wait: IDelayedCall | None = None
        self._socket: socket.socket | None = None
        self._tcp: Any = None
        """The connection's transport once the head is written (the fan-out's hot path reads
        it every flush: cheaper kept than looked up through the request each time)."""
        self._chunked = False
        self.side_data: SideDataFilter | None = None
        """Set when the viewer asked for ``?packets=media``: leaves side-information tags out."""

    def disconnect(self, reason: str) -> None:
        """Close the connection (a plugin disconnects the client), logging ``reason``."""
        if self.done:
            return
        log.info(
            "closing {kind} viewer {peer} of {app}/{stream}: {reason}",
            kind=self.label, peer=self.peer, app=self.app, stream=self.name, reason=reason,
        )  # fmt: skip
        self._abort()

    # ------------------------------------------------------------------ PlayerSink

    def close(self, reason: str) -> None:
        """The stream drops this viewer: it broke a bound (too slow)."""
        if not self.done:
            COUNTERS.add("slow_player_closes")
        self.disconnect(reason)

    def write(self, data: bytes) -> None:
        if self.done:
            return
        if not self.started:
            self._start()
        if self.side_data is not None:
            data = self.side_data.feed(data)
            if not data:
                return
        self._send(data)

    def offer(self, data: bytes, budget: int) -> bool:
        """All of ``data`` at once, if this viewer's response is under way on a connection
        that then holds at most ``budget`` bytes unsent (:attr:`fms.live.log.Player.offer`);
        False leaves the rest (the head to write, side data to filter, a full buffer) to
        ``can_write``/``pending``/``write``."""
        tcp = self._tcp
        if self.done or self.paused or tcp is None or self.side_data is not None:
            return False
        if buffered(tcp) + len(data) > budget:
            return False
        self._send(data)
        return True

    def can_write(self) -> bool:
        if self.done or self.paused:
            return False
        return self.started or self._stream_carries() != (False, False)

    def pending(self) -> int:
        transport = self._tcp if self._tcp is not None else self._transport()
        return buffered(transport) if transport is not None else 0

    def publish_started(self) -> None:
        self._cancel_wait()

    def publish_stopped(self) -> None:
        if self.done:
            return
        if not self.started:
            self._leave()
            self.request.unregisterProducer()
            error(self.request, 404, "the stream ended before it sent anything")
            return
        log.info(
            "{kind} play {app}/{stream} for {peer} ended: the publisher left",
            kind=self.label, app=self.app, stream=self.name, peer=self.peer,
        )  # fmt: skip
        self._leave()
        self.request.unregisterProducer()
        self._finish()

    # ------------------------------------------------------------------ IPushProducer

    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False

    def stopProducing(self) -> None:
        self.paused = True

    # ------------------------------------------------------------------ inner workings

    def _stream_carries(self) -> tuple[bool, bool]:
        stream = self.stream or self.viewers.server.registry.get(self.app, self.name)
        return stream.carries() if stream is not None else (False, False)

    def _start(self) -> None:
        self.started = True
        self._cancel_wait()
        audio, video = self._stream_carries()
        self._open(flv.file_header(audio=audio, video=video))

    # ------------------------------------------------------------------ how bytes travel

    def _open(self, header: bytes) -> None:
        """Write the response's head and ``header`` (the FLV file header)."""
        request = self.request
        request.setResponseCode(200)
        request.setHeader(b"Content-Type", CONTENT_TYPE)
        request.setHeader(b"Cache-Control", b"no-store")
        request.write(header)
        transport = request.channel.transport
        self._tcp = transport
        self._chunked = bool(request.chunked)  # decided by Twisted as the head went out
        if type(transport) is tcp.Server:  # plain TCP: fan-out may write to the socket
            self._socket = transport.socket

    def _send(self, data: bytes) -> None:
        """Write bytes of the FLV file (tags), after the head."""
        # As the RTMP sink does (fms.server.delivery.write_through): straight to the socket
        # when nothing is queued before it, so that a fast viewer's flush is not bounded by
        # player_buffer. The status line and headers went out through Twisted in _open, and
        # the terminating chunk will follow through Twisted too, after these bytes.
        if not data:
            return  # an empty chunk would end the response
        if self._chunked:
            data = self.viewers.chunk(data)
        write_through(self._tcp, self._socket, data)

    def _finish(self) -> None:
        """End the file cleanly (the publisher left): the terminating chunk, or the end of
        an HTTP/1.0 connection."""
        self.request.finish()

    def _transport(self) -> Any:
        """The connection's transport (None once the request is gone)."""
        channel = getattr(self.request, "channel", None)
        return getattr(channel, "transport", None)

    def play(self, application: Application, view: ClientView, name: str) -> None:
        """The chain accepted: become a player of ``name`` (waiting for its publisher)."""
        self.name = name
        registry = self.viewers.server.registry
        self.request.registerProducer(self, True)
        self.stream, self.player = registry.play(self.app, name, self, STREAM_ID, flv=True)
        application.play_started(view, self.stream)
        if not self.stream.published:
            wait = self.viewers.config.flv_wait
            self._wait = self.viewers.clock.callLater(wait, self._waited)
        log.info(
            "{kind} play {app}/{stream} for {peer}{waiting}",
            kind=self.label, app=self.app, stream=name, peer=self.peer,
            waiting="" if self.stream.published else " (waiting for publisher)",
        )  # fmt: skip

    def _waited(self) -> None:
        self._wait = None
        if self.done or self.started:
            return
        self._leave()
        self.request.unregisterProducer()
        error(
            self.request, 404,
            f"nobody published {self.app}/{self.name} within {self.viewers.config.flv_wait:g}s",
        )  # fmt: skip

    def _cancel_wait(self) -> None:
        if self._wait is not None and self._wait.active():
            self._wait.cancel()
        self._wait = None

    def _leave(self) -> None:
        """Stop being a player (idempotent); plugins hear ``play_stopped``."""
        self._cancel_wait()
        stream, player = self.stream, self.player
        self.player = None
        if stream is not None and player is not None:
            # Also when the stream dropped it (too slow): leave() counts what it got.
            self.viewers.server.registry.leave(stream, player)
            if self.application is not None and self.view is not None:
                self.application.play_stopped(self.view, stream)

    def _abort(self) -> None:
        self._leave()
        transport = self._transport()
        if transport is not None:
            transport.abortConnection()

    def ended(self, _: object = None) -> None:
        """The response finished or its connection was lost: leave, and the client goes."""
        if self.done:
            return
        self.done = True
        self.viewers.clients.remove(self)
        self._leave()
        view, application = self.view, self.application
        if view is not None and application is not None:
            view.fail_calls(ConnectionError("disconnected"))
            application.remove_client(view)
            self.viewers.server.client_left(application)


class _Link:
    """The :class:`~fms.apps.views.ClientLink` of a viewer's view (its ``application``
    property cannot share a name with the viewer's own attribute)."""

    def __init__(self, viewer: FLVViewer) -> None:
        self._viewer = viewer

    def streams(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        viewer = self._viewer
        return (), ((viewer.name,) if viewer.player is not None else ())

    def invoke(self, method: str, args: tuple[Any, ...], expect_result: bool) -> float | None:
        return None  # an HTTP viewer takes no RTMP calls

    def close(self, reason: str) -> None:
        self._viewer.disconnect(reason or "disconnected by the application")

    @property
    def application(self) -> IAppView | None:
        return self._viewer.application


class FLVViewers:
    """Answers ``GET``/``HEAD /APP/STREAM.flv`` for one process's RTMP server."""

    def __init__(
        self, server: RTMPServerFactory, config: HTTPConfig, clients: HTTPClients | None = None
    ) -> None:
        self.server = server
        self.config = config
        self.clock = server.clock
        self.clients = clients if clients is not None else HTTPClients()
        """The viewers the API lists (``GET /api/v1/clients``)."""
        self._chunked: tuple[bytes, bytes] = (b"", b"")

    def chunk(self, data: bytes) -> bytes:
        """``data`` as one HTTP/1.1 chunk. The viewers of a stream at one position are handed
        the same ``bytes`` object in a flush (:meth:`LiveStream._deliver`), so the chunk made
        for the first is kept (with a reference to ``data``, so that its identity cannot be
        reused) and served to the next ones: framed once per flush, not once per viewer."""
        last, framed = self._chunked
        if last is not data:
            framed = b"%x\r\n%b\r\n" % (len(data), data)
            self._chunked = (data, framed)
        return framed

    def render(
        self,
        request: Request,
        make: Callable[[FLVViewers, Request, str, str], FLVViewer] = FLVViewer,
    ) -> Any:
        """Decide and serve ``request`` with the viewer ``make(self, request, app, peer)``
        returns (an :class:`FLVViewer` by default)."""
        parsed = parse_path(request.path)
        if isinstance(parsed, str):
            error(request, 400, parsed)
            return NOT_DONE_YET
        app, asked = parsed
        application = application_for(self.server, request, app)
        if application is None:
            return NOT_DONE_YET
        caller = caller_of(request)
        viewer = make(self, request, app, caller.peer)
        viewer.application = application
        query = dict(
            parse_qsl(
                urlsplit(request.uri).query.decode("utf-8", "replace"), keep_blank_values=True
            )
        )
        if query.get(MEDIA_ONLY[0]) == MEDIA_ONLY[1]:
            viewer.side_data = SideDataFilter()
        view = ClientView(
            _Link(viewer), peer=caller.peer, host=caller.host, app=app,
            tc_url=f"{viewer.scheme}://{caller.header_host}/{app}", params={}, query=query,
            agent=caller.agent, protocol=viewer.protocol,
        )  # fmt: skip
        viewer.view = view
        viewer.agent = caller.agent
        self.clients.add(viewer)
        request.notifyFinish().addBoth(viewer.ended)
        d = application.decide_connect(view)
        d.addCallback(self._connected, viewer, application, view, asked, query)
        d.addErrback(self._failed, viewer)
        return NOT_DONE_YET

    def _connected(
        self,
        verdict: Verdict,
        viewer: FLVViewer,
        application: Application,
        view: ClientView,
        asked: str,
        query: dict[str, str],
    ) -> Deferred[Verdict] | None:
        if viewer.done:
            return None
        if not verdict.accepted:
            error(viewer.request, 403, verdict.description or "refused")
            return None
        application.add_client(view)
        max_name = self.server.config.streams.max_stream_name
        d = application.decide_play(view, asked, query, max_name)
        d.addCallback(self._decided, viewer, application, view)
        return d

    def _decided(
        self, verdict: Verdict, viewer: FLVViewer, application: Application, view: ClientView
    ) -> None:
        if viewer.done:
            return
        if not verdict.accepted:
            status = 403 if verdict.by_application else 400
            error(viewer.request, status, verdict.description or "refused")
            return
        path = None  # a recording is downloaded over plain HTTP only (not over a WebSocket)
        if viewer.protocol == PROTOCOL:
            path = find_recording(
                self.server.config, self.server.registry, viewer.app, verdict.name
            )
        if path is not None:
            serve_recording(viewer.request, path, viewer.app, verdict.name, application, view,
                            viewer.peer)  # fmt: skip
            return
        stream = self.server.registry.get(viewer.app, verdict.name)
        if (stream is None or not stream.published) and self.config.flv_wait <= 0:
            error(viewer.request, 404, f"nobody publishes {viewer.app}/{verdict.name}")
            return
        if viewer.request.method == b"HEAD":
            viewer.request.setHeader(b"Content-Type", CONTENT_TYPE)
            viewer.request.setHeader(b"Cache-Control", b"no-store")
            viewer.request.finish()
            return
        viewer.play(application, view, verdict.name)

    def _failed(self, failure: Failure, viewer: FLVViewer) -> None:
        log.failure("answering {kind} viewer {peer}", failure, kind=viewer.label, peer=viewer.peer)
        if not viewer.done:
            viewer._abort()


__all__ = ["CONTENT_TYPE", "MEDIA_ONLY", "PROTOCOL", "FLVViewer", "FLVViewers", "parse_path"]
