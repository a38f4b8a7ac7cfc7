"""Pulls: a stream fetched from another server and published here as a publisher's would be.

A :class:`Pull` is one stream (app, name) of this process fed from a source: an RTMP client
connection (:class:`~fms.server.outgoing.OutgoingLink`) that ``play``\\ s the upstream name, or
an HTTP-FLV request (:mod:`fms.server.pullhttp`). Its first message claims the local stream
(the registry, and the workers' name claim) with a :class:`~fms.apps.views.ClientView` whose
``protocol`` is ``"pull"``, so players get the metadata, the sequence headers and the GOP as
from any publisher, late joiners too, and plugins hear ``published``/``unpublished`` and see
the pull as ``StreamView.publisher``; configured pushes of the stream start as for a publish.

One pull per stream per process, however many players (RTMP, HTTP-FLV) ask: the
:class:`PullService` follows the registry's players (``StreamRegistry.demand_hooks``) and
starts an on-demand pull with the first player of a stream nobody publishes here, then stops
it ``idle_timeout`` seconds after the last one left. When the source fails, refuses or ends the
stream (``Play.UnpublishNotify``, ``Play.Stop``, StreamEOF, the end of the HTTP body) the local
publish ends (players get ``Play.UnpublishNotify`` and wait) and the pull tries again after
``retry_initial`` seconds, doubled after each failure up to ``retry_max`` (back to the start
once it delivered): on demand only while players remain, always until the server stops. A try
that delivers nothing within ``start_timeout`` seconds (an upstream stream that does not exist
yet, a silent server) counts as failed, as does a live source that sends nothing for
``[limits] publisher_timeout``.

States (:class:`PullState`): ``connecting`` (until the first message), ``live``,
``retrying``, ``stopped``.

A stream that no ``[[apps.NAME.pull]]`` table takes may still be pulled through a
:class:`Locator` (the cluster's, :mod:`fms.cluster.pulls`, plugged in by the cluster node):
it makes the request, and names the source URL anew at each try (asynchronously: a directory
lookup), so a retry after a failure finds the node a stream moved to; a try whose lookup finds
no source, or fails, counts as a failed try. A located pull stops when its stream is published
here by someone else (another worker's pull, relayed here).
"""

from __future__ import annotations

import itertools
from enum import Enum
from typing import Any, Protocol

from twisted.internet.defer import Deferred

from fms.apps.pulls import PullRequest, always_requests, request_for
from fms.apps.views import ClientView
from fms.config import Config
from fms.live.media import DATA_INFO
from fms.live.stream import LiveStream
from fms.log import Logger, LogThrottle
from fms.rtmp import client as rc
from fms.rtmp.messages import Data, Media
from fms.server.demand import RecentDemand
from fms.server.outgoing import Backoff, LinkFactory, OutgoingLink, RTMPTarget, dial
from fms.server.pullhttp import HTTPSource

log = Logger(namespace="fms.server.pull")

PULL_FLASH_VER = "LNX 9,0,124,2 (compatible; pyFMS pull)"
"""The ``flashVer`` a pull connects with: a player's."""
PULL_AGENT = "pyFMS pull"
FAILURE_LOG_INTERVAL = 60.0
"""Seconds between two log lines about the same pull failing again."""
ENDED_CODES = ("NetStream.Play.UnpublishNotify", "NetStream.Play.Stop", "NetStream.Play.Complete")
REFUSED_CODES = ("NetStream.Play.StreamNotFound", "NetStream.Play.Failed")
SKIPPED_DATA = ("|RtmpSampleAccess", "onStatus", "onPlayStatus")
"""Data messages a server sends each player of its own: not republished."""


class PullState(Enum):
    CONNECTING = "connecting"
    LIVE = "live"
    RETRYING = "retrying"
    STOPPED = "stopped"


class PullHost(Protocol):
    """What a pull needs of the server (:class:`~fms.server.factory.RTMPServerFactory`)."""

    clock: Any
    config: Any
    registry: Any
    publish_listener: Any
    pushes: Any

    def application_for(self, app: str) -> Any: ...

    def claim_name(self, app: str, name: str) -> bool: ...

    def release_name(self, app: str, name: str) -> None: ...

    def published(self) -> None:
        """A publisher's read added messages: the flush loop decides when they go out."""
        ...


class Locator(Protocol):
    """Where streams that no configured source takes are pulled from (a cluster's directory)."""

    def request_for(self, app: str, name: str) -> PullRequest | None:
        """The on-demand pull of (app, name) to make, or None; its ``url`` is only a label
        until :meth:`locate` names the source of each try."""
        ...

    def locate(self, request: PullRequest) -> Deferred[str | None]:
        """The ``rtmp[s]://host[:port]/app[?query]`` URL to pull ``request`` from in the try
        about to start, or None when no source has it now (the try fails and is retried);
        may fail (the same)."""
        ...


class Source(Protocol):
    """One try of a pull: an RTMP link's owner side, or an HTTP-FLV request."""

    bytes_received: int

    def close(self) -> None:
        """End this try (the pull is not told)."""
        ...


class Pull:
    """One stream pulled from one source, reconnecting until stopped (a ``PullHandle``);
    also the :class:`~fms.apps.views.ClientLink` of its publisher view."""

    _ids = itertools.count(1)

    def __init__(
        self, service: PullService, request: PullRequest, locator: Locator | None = None
    ) -> None:
        self.id = next(Pull._ids)
        self.service = service
        self.request = request
        self.locator = locator
        self.url = request.url
        """The source of the try under way (a located pull's changes; its query left out)."""
        self.app = request.app
        self.name = request.name
        self.backoff = Backoff(request.retry_initial, request.retry_max)
        self._state = PullState.CONNECTING
        self.source: Any = None
        """The try under way: an :class:`OutgoingLink` or an HTTP-FLV request."""
        self.stream: LiveStream | None = None
        """The local stream, while this pull publishes it."""
        self.view = ClientView(
            self, peer=request.url, host="", app=request.app, tc_url=request.url,
            agent=PULL_AGENT, protocol="pull",
        )  # fmt: skip
        self.connects = 0
        self.lives = 0
        self.last_error = ""
        self.retry_in = 0.0
        self.messages_in = 0
        self._bytes_gone = 0
        self._last_message = 0.0
        self._retry: Any = None
        self._start_due: Any = None
        self._idle_due: Any = None
        self._watch: Any = None
        self._failures = LogThrottle(FAILURE_LOG_INTERVAL)

    @property
    def state(self) -> str:
        return self._state.value

    @property
    def clock(self) -> Any:
        return self.service.host.clock

    def describe(self) -> str:
        upstream = "" if self.request.http else f" ({self.request.upstream})"
        return f"{self.app}/{self.name} <- {self.url}{upstream}"

    # --------------------------------------------------------------------------- tries

    def start(self) -> None:
        self._connect()

    def _connect(self) -> None:
        self._retry = None
        if self._state is PullState.STOPPED:
            return
        self._state = PullState.CONNECTING
        self.connects += 1
        self.service.host.registry.hold(self.app, self.name)  # listed in the API meanwhile
        self._start_due = self.clock.callLater(self.request.start_timeout, self._no_start)
        if self.locator is not None:
            self._locate(self.locator)
            return
        try:
            if self.request.http:
                host = self.service.host
                self.source = HTTPSource(
                    self, self.request.url, self.clock, host.config.limits, self._trust()
                )
            else:
                self._dial(self.request.url)
        except Exception as exc:  # a TLS trust file that cannot be read, say
            self.failed(None, f"cannot connect: {type(exc).__name__}: {exc}")

    def _locate(self, locator: Locator) -> None:
        """Name this try's source, then dial it (a lookup answered after the try ended is
        dropped)."""
        stream = self.service.host.registry.get(self.app, self.name)
        if stream is not None and stream.published:
            log.info("pull {pull}: published here meanwhile: pull stopped",
                     pull=self.describe(), app=self.app, stream=self.name)  # fmt: skip
            self.stop()
            return
        attempt = self.connects

        def current() -> bool:
            return attempt == self.connects and self._state is PullState.CONNECTING

        def found(url: str | None) -> None:
            if not current():
                return
            if url is None:
                self.failed(None, "no source holds the stream")
                return
            self.url = url.split("?", 1)[0]
            try:
                self._dial(url)
            except Exception as exc:
                self.failed(None, f"cannot connect: {type(exc).__name__}: {exc}")

        def lost(failure: Any) -> None:
            if current():
                self.failed(None, f"cannot locate the stream: {failure.getErrorMessage()}")

        locator.locate(self.request).addCallbacks(found, lost)

    def _dial(self, url: str) -> None:
        target = RTMPTarget.parse(url)
        clock = self.clock

        def build() -> OutgoingLink:
            return OutgoingLink(self, target, clock, flash_ver=PULL_FLASH_VER)

        dial(clock, target, LinkFactory(self, build), trust=self._trust())

    def _trust(self) -> str:
        trust = self.request.tls_trust
        return str(self.service.resolve(trust)) if trust else ""

    def _no_start(self) -> None:
        self._start_due = None
        self.failed(self.source, f"nothing received within {self.request.start_timeout:g}s")

    def _check_silence(self) -> None:
        self._watch = None
        if self._state is not PullState.LIVE:
            return
        limit = self.service.host.config.limits.publisher_timeout
        quiet = self.clock.seconds() - self._last_message
        if quiet >= limit:
            self.failed(self.source, f"nothing received for {limit:g}s")
        else:
            self._watch = self.clock.callLater(limit - quiet, self._check_silence)

    # -------------------------------------------------------------------- LinkOwner

    def link_ready(self, link: OutgoingLink, stream_id: int) -> None:
        if self._state is PullState.STOPPED:
            link.close()
            return
        self.source = link
        conn = link.conn
        assert conn is not None
        conn.set_buffer_length(stream_id, 3000)
        conn.play(stream_id, self.request.upstream, -1000.0)

    def link_event(self, link: OutgoingLink, event: rc.ClientEvent) -> None:
        if link is not self.source:
            return
        if isinstance(event, rc.MediaArrived):
            self.received(event.message)
        elif isinstance(event, rc.DataArrived):
            self.received(event.message)
        elif isinstance(event, rc.StatusReceived):
            code = str(event.info.get("code", ""))
            if code == "NetStream.Play.Start":
                link.settled()  # the start timeout still waits for a first message
            elif code in ENDED_CODES:
                self.failed(link, f"upstream ended the stream ({code})")
            elif code in REFUSED_CODES or event.level == "error":
                self.failed(link, f"play refused: {code} {event.description}".strip())
        elif isinstance(event, rc.StreamEnded) and self.stream is not None:
            self.failed(link, "upstream ended the stream (StreamEOF)")

    def link_writable(self, link: OutgoingLink) -> None:
        """A pull writes only commands: nothing waits for the socket."""

    def link_failed(self, link: OutgoingLink | None, reason: str) -> None:
        if link is not None and link is not self.source and self.source is not None:
            return  # an old link's late news
        self.failed(link, reason)

    # ------------------------------------------------------------------------ media

    def received(self, message: Media | Data) -> None:
        """One message from the source: claims the local stream first, then publishes."""
        if self._state is PullState.STOPPED:
            return
        if isinstance(message, Data) and (message.name or "") in SKIPPED_DATA:
            return
        self._last_message = self.clock.seconds()
        stream = self.stream
        if stream is None:
            stream = self._claim()
            if stream is None:
                return
        self.messages_in += 1
        host = self.service.host
        if isinstance(message, Data):
            name, values = message.name, message.values
            if name == "@setDataFrame" and len(values) >= 2:
                stream.set_metadata(values[1:])
            elif name == "onMetaData":
                stream.set_metadata(values)
            elif name == "@clearDataFrame":
                stream.clear_metadata()
                return
            else:
                self._to_plugins(
                    stream, message, stream.publish_message(Data(values, 0, message.timestamp))
                )
                host.published()
                return
            if stream.metadata is not None:
                self._to_plugins(stream, stream.metadata, DATA_INFO)
        else:
            self._to_plugins(stream, message, stream.publish_message(message))
        host.published()  # the flush loop brings its next flush forward, as for a publisher

    def _to_plugins(self, stream: LiveStream, message: Media | Data, info: Any) -> None:
        application = self.service.host.application_for(self.app)
        if application is not None and application.wants_media:
            application.media(stream, message, info)

    def _claim(self) -> LiveStream | None:
        host = self.service.host
        stream: LiveStream | None = None
        if host.claim_name(self.app, self.name):
            stream = host.registry.claim(self.app, self.name, self.view)
            if stream is None:
                host.release_name(self.app, self.name)
        if stream is None:
            log.info("pull {pull}: published here meanwhile: pull stopped",
                     pull=self.describe(), app=self.app, stream=self.name)  # fmt: skip
            self.stop()
            return None
        self.stream = stream
        self._state = PullState.LIVE
        self.lives += 1
        self.backoff.reset()
        if self._start_due is not None and self._start_due.active():
            self._start_due.cancel()
        self._start_due = None
        self._watch = self.clock.callLater(
            host.config.limits.publisher_timeout, self._check_silence
        )
        log.info("pull {pull} is live", pull=self.describe(), app=self.app, stream=self.name)
        self._failures = LogThrottle(FAILURE_LOG_INTERVAL)
        if host.publish_listener is not None:
            host.publish_listener.publish_started(stream, self.url)
        application = host.application_for(self.app)
        if application is not None:
            application.published(stream)
        return stream

    def _unpublish(self) -> None:
        """End the local publish (players told; plugins hear ``unpublished``)."""
        stream, self.stream = self.stream, None
        if stream is None:
            return
        host = self.service.host
        if host.publish_listener is not None:
            host.publish_listener.publish_stopped(stream)
        application = host.application_for(self.app)
        if application is not None:
            application.publish_ended(self.view, stream)
        host.registry.release(stream, self.view)
        host.release_name(self.app, self.name)

    # --------------------------------------------------------------------- failures

    def failed(self, source: Any, reason: str) -> None:
        """The try under way failed or ended: unpublish, then retry (or stop when an
        on-demand pull has no player left)."""
        if source is not self.source and source is not None and self.source is not None:
            return
        if self._state in (PullState.STOPPED, PullState.RETRYING):
            return
        self._cancel_timers()
        self._drop_source()
        self._unpublish()
        self.last_error = reason
        if self.request.mode == "on-demand" and self.service.demand(self.app, self.name) == 0:
            self.stop()
            return
        delay = self.retry_in = self.backoff.next()
        held = self._failures.allow("fail", self.clock.seconds())
        if held is not None:
            log.warn(
                "pull {pull}: {reason}; retrying in {delay:g}s{held}",
                pull=self.describe(), reason=reason, delay=delay,
                held=f" ({held} more failures since the last report)" if held else "",
                app=self.app, stream=self.name,
            )  # fmt: skip
        self._state = PullState.RETRYING
        self.service.host.registry.hold(self.app, self.name)
        self._retry = self.clock.callLater(delay, self._connect)

    def _drop_source(self) -> None:
        source, self.source = self.source, None
        if source is not None:
            self._bytes_gone += source.bytes_received
            source.close()

    def _cancel_timers(self) -> None:
        for name in ("_retry", "_start_due", "_watch", "_idle_due"):
            call = getattr(self, name)
            if call is not None and call.active():
                call.cancel()
            setattr(self, name, None)

    # ----------------------------------------------------------------------- demand

    def demand_changed(self, players: int) -> None:
        """The local stream's players changed: an on-demand pull with none left stops after
        ``idle_timeout`` seconds (at once with 0), unless one comes back meanwhile."""
        if self.request.mode != "on-demand" or self._state is PullState.STOPPED:
            return
        if players > 0:
            if self._idle_due is not None and self._idle_due.active():
                self._idle_due.cancel()
            self._idle_due = None
        elif self._idle_due is None:
            self._idle_due = self.clock.callLater(self.request.idle_timeout, self._idle)

    def _idle(self) -> None:
        self._idle_due = None
        if self.service.demand(self.app, self.name) == 0:
            log.info("pull {pull}: no player for {idle:g}s: stopped", pull=self.describe(),
                     idle=self.request.idle_timeout, app=self.app, stream=self.name)  # fmt: skip
            self.stop()

    # ----------------------------------------------------------------------- handle

    def stop(self) -> None:
        """End the local publish and the source (idempotent)."""
        if self._state is PullState.STOPPED:
            return
        self._state = PullState.STOPPED
        self._cancel_timers()
        self._drop_source()
        self._unpublish()
        self.service.forget(self)
        self.service.host.registry.drop_if_idle(self.app, self.name)

    def figures(self) -> dict[str, Any]:
        """What the stats API and ``/metrics`` show of this pull."""
        source = self.source
        return {
            "id": self.id,
            "url": self.url,
            "upstream": None if self.request.http else self.request.upstream,
            "mode": self.request.mode,
            "origin": self.request.origin,
            "state": self.state,
            "bytes_in": self._bytes_gone + (source.bytes_received if source is not None else 0),
            "messages_in": self.messages_in,
            "connects": self.connects,
            "lives": self.lives,
            "retry_in": self.retry_in if self._state is PullState.RETRYING else None,
            "last_error": self.last_error or None,
        }

    # ------------------------------------------------------------------- ClientLink

    def streams(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        return ((self.name,) if self.stream is not None else (), ())

    def invoke(self, method: str, args: tuple[Any, ...], expect_result: bool) -> float | None:
        return None  # nobody to call at the other end

    def close(self, reason: str) -> None:
        """A plugin disconnected the pull's publisher view: stop it."""
        log.info("pull {pull}: {reason}", pull=self.describe(), reason=reason,
                 app=self.app, stream=self.name)  # fmt: skip
        self.stop()

    @property
    def application(self) -> Any:
        return self.service.host.application_for(self.app)


class PullService:
    """The pulls of one server process (the applications' ``Puller``): at most one per
    stream, started by players (on demand), at start (always), by plugins, or by whoever
    holds the service (a cluster directory, later); listed per stream for the API.

    ``resolve``: a ``tls_trust`` file name -> its path (the configuration file's folder)."""

    def __init__(self, host: PullHost, resolve: Any = str) -> None:
        self.host = host
        self.resolve = resolve
        self.locator: Locator | None = None
        """Asked for the streams no configured source takes (the cluster's, when on)."""
        self._pulls: dict[tuple[str, str], Pull] = {}
        self.recent = RecentDemand(host.clock, self._recent_ended)
        """Streams HTTP viewers that hold no connection (HLS) asked for lately: each counts
        as one more player (:meth:`want`)."""
        host.registry.demand_hooks.append(self._demand_hook)

    def pull(self, request: PullRequest, locator: Locator | None = None) -> Pull:
        """Pull ``request``'s stream (the pull under way when there is one already), from
        the sources ``locator`` names at each try when given."""
        key = (request.app, request.name)
        pull = self._pulls.get(key)
        if pull is not None:
            return pull
        pull = self._pulls[key] = Pull(self, request, locator)
        log.info("pull {pull} started ({mode}, {origin})", pull=pull.describe(),
                 mode=request.mode, origin=request.origin,
                 app=request.app, stream=request.name)  # fmt: skip
        pull.start()
        if request.mode == "on-demand":
            pull.demand_changed(self.demand(request.app, request.name))
        return pull

    def forget(self, pull: Pull) -> None:
        if self._pulls.get((pull.app, pull.name)) is pull:
            del self._pulls[(pull.app, pull.name)]
            log.info("pull {pull} stopped", pull=pull.describe(), app=pull.app, stream=pull.name)

    def of(self, app: str, name: str) -> Pull | None:
        return self._pulls.get((app, name))

    def demand(self, app: str, name: str) -> int:
        """Players of the local stream (those on other workers included), pushes left out,
        plus one while HTTP viewers want it (:attr:`recent`): what keeps an on-demand pull
        going."""
        recent = 1 if self.recent.wanted(app, name) else 0
        stream = self.host.registry.get(app, name)
        if stream is None:
            return recent
        return int(stream.subscriber_count - self.host.pushes.players(stream)) + recent

    def want(self, app: str, name: str, window: float, *, start: bool = True) -> Pull | None:
        """An HTTP viewer that holds no connection (an HLS request) asked for (app, name):
        a pull of it under way counts it as a player for ``window`` more seconds; with
        ``start``, a stream nobody publishes here whose pull a source offers (the same
        lookup as a player's) is pulled. Returns the pull under way, if any; None costs
        two dictionary lookups (a stream published here, or one nobody pulls)."""
        key = (app, name)
        pull = self._pulls.get(key)
        if pull is None:
            if not start:
                return None
            stream = self.host.registry.get(app, name)
            if stream is not None and stream.published:
                return None
            if not self._pullable(app, name):
                return None
            self.recent.touch(app, name, window)
            return self._start(app, name)
        if self.recent.touch(app, name, window):
            pull.demand_changed(self.demand(app, name))
        return pull

    def _recent_ended(self, app: str, name: str) -> None:
        pull = self._pulls.get((app, name))
        if pull is not None:
            pull.demand_changed(self.demand(app, name))

    def request_for(self, app: str, name: str) -> PullRequest | None:
        """The pull a player (or an HLS viewer) of (app, name) nobody publishes here
        starts: the first ``[[apps.APP.pull]]`` table that matches, or None."""
        return request_for(self.host.config.app(app).pull, app, name)

    def _demand_hook(self, stream: LiveStream) -> None:
        try:
            self._on_demand(stream)
        except Exception:
            log.failure("internal error while pulling {app}/{stream}",
                        app=stream.app, stream=stream.name)  # fmt: skip

    def _on_demand(self, stream: LiveStream) -> None:
        players = self.demand(stream.app, stream.name)
        pull = self._pulls.get((stream.app, stream.name))
        if pull is not None:
            pull.demand_changed(players)
            return
        if (
            players == 0
            or stream.published
            or self.host.registry.get(stream.app, stream.name) is None
        ):
            return
        self._start(stream.app, stream.name)

    def _pullable(self, app: str, name: str) -> bool:
        """Whether a source (a table, else the locator: the cluster) offers (app, name)."""
        if self.request_for(app, name) is not None:
            return True
        return self.locator is not None and self.locator.request_for(app, name) is not None

    def _start(self, app: str, name: str) -> Pull | None:
        """Pull (app, name) from the first ``[[apps.APP.pull]]`` table that matches, else
        from where the locator (the cluster) finds it at each try; None if neither offers."""
        request = self.request_for(app, name)
        if request is not None:
            return self.pull(request)
        if self.locator is not None:
            located = self.locator.request_for(app, name)
            if located is not None:
                return self.pull(located, self.locator)
        return None

    def start_always(self) -> None:
        """Start every ``always`` pull of the configuration (at the server's start)."""
        for request in _always(self.host.config).values():
            self.pull(request)

    def reload(self, old: Config, new: Config) -> None:
        """Apply a reload to the ``always`` pulls: stop those whose table ``new`` removed or
        changed (only pulls that such a table started: a plugin's or a player's pull of the
        same name goes on), then start those ``new`` adds or changed."""
        before, after = _always(old), _always(new)
        for key, request in before.items():
            pull = self._pulls.get(key)
            if after.get(key) != request and pull is not None and pull.request == request:
                pull.stop()
        for key, request in after.items():
            if before.get(key) != request:
                self.pull(request)

    def figures(self, stream: LiveStream) -> dict[str, Any] | None:
        pull = self._pulls.get((stream.app, stream.name))
        return pull.figures() if pull is not None else None

    def publisher(self, stream: LiveStream) -> Pull | None:
        """The pull publishing ``stream``, if a pull does."""
        pull = self._pulls.get((stream.app, stream.name))
        return pull if pull is not None and pull.stream is stream else None

    def stop_all(self) -> None:
        self.recent.stop()
        for pull in list(self._pulls.values()):
            pull.stop()


def _always(config: Config) -> dict[tuple[str, str], PullRequest]:
    """The ``always`` pulls ``config`` asks for, by (app, stream); the first table of a name."""
    found: dict[tuple[str, str], PullRequest] = {}
    for name, app in config.apps.items():
        for request in always_requests(app.pull, name):
            found.setdefault((request.app, request.name), request)
    return found
