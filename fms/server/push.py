"""Pushes (restreams): a published stream relayed to another RTMP server.

Each push is an RTMP client connection (:class:`~fms.server.outgoing.OutgoingLink`) that
connects to the target's application, publishes the target name and, once the target answered
``NetStream.Publish.Start``, is fed by the stream *as a player*: a
:class:`~fms.live.stream.PlayerSink` (:class:`PushSink`) on the
:class:`~fms.live.stream.LiveStream`, so it starts with the metadata, every track's sequence
header and the GOP cache, takes the same shared chunk bytes as the other players (the link
announces the server's chunk size), and obeys the same bounds: a target that reads slowly
holds at most ``player_buffer`` in user space, skips to the next keyframe past the soft bound,
and is closed (then reconnected, starting again on a keyframe) past the hard bound or the
stall timeout. The publisher and the other players and pushes are never slowed.

A push whose target refuses, cannot be reached or drops it retries after a delay that starts at
``retry_initial`` and doubles up to ``retry_max`` (back to the start once it went live), until
it is stopped: by the end of the publish (the application stops its pushes then; a new publish
starts them again), by the plugin that started it, or by the server's shutdown.

States (:class:`PushState`): ``connecting`` (from the connection until the target accepted
the publish), ``live``, ``retrying`` (waiting for the next attempt), ``stopped``.
"""

from __future__ import annotations

import itertools
from enum import Enum
from typing import Any

from fms.apps.pushes import HOPS_KEY, PushRequest
from fms.live.stream import LiveStream, Player
from fms.log import Logger, LogThrottle
from fms.rtmp import client as rc
from fms.server.outgoing import Backoff, LinkFactory, OutgoingLink, RTMPTarget, dial

log = Logger(namespace="fms.server.push")

PUSH_FLASH_VER = "FMLE/3.0 (compatible; pyFMS push)"
"""The ``flashVer`` a push connects with: encoder-like, as targets gate publishing on it."""
FAILURE_LOG_INTERVAL = 60.0
"""Seconds between two log lines about the same push failing again."""


class PushState(Enum):
    CONNECTING = "connecting"
    LIVE = "live"
    RETRYING = "retrying"
    STOPPED = "stopped"


class PushSink:
    """The push's end of the stream: a player whose connection is the outgoing link."""

    __slots__ = ("player", "push")

    def __init__(self, push: Push) -> None:
        self.push = push
        self.player: Player | None = None

    def write(self, data: bytes) -> None:
        link = self.push.link
        if link is not None:
            player = self.player
            link.write_encoded(data, player is None or player.offset == 0)

    def can_write(self) -> bool:
        link = self.push.link
        return link is not None and not link.paused and not link.closed

    def pending(self) -> int:
        link = self.push.link
        return link.buffered() if link is not None else 0

    def close(self, reason: str) -> None:
        """The stream gave up on this push (too far behind): close the link, try again."""
        self.push.slow(reason)

    def publish_started(self) -> None:
        """Never waits for a publisher: the push is stopped when its publish ends."""

    def publish_stopped(self) -> None:
        """The application stops the push when the publish ends."""


class Push:
    """One stream pushed to one target, reconnecting until stopped (a ``PushHandle``)."""

    _ids = itertools.count(1)

    def __init__(self, service: PushService, stream: LiveStream, request: PushRequest) -> None:
        self.id = next(Push._ids)
        self.service = service
        self.stream = stream
        self.request = request
        self.target = RTMPTarget.parse(request.url)
        self.backoff = Backoff(request.retry_initial, request.retry_max)
        self._state = PushState.CONNECTING
        self.link: OutgoingLink | None = None
        self.sink: PushSink | None = None
        self.stream_id: int | None = None
        self.connects = 0
        """Connection attempts made."""
        self.lives = 0
        """Times the target accepted the publish."""
        self.last_error = ""
        self.closes = 0
        """Times the stream closed the push for being too far behind."""
        self.retry_in = 0.0
        """The delay (seconds) of the retry under way, while ``retrying``."""
        self._gone = {"bytes": 0, "messages": 0, "skips": 0, "skipped": 0, "wire": 0}
        self._retry: Any = None
        self._failures = LogThrottle(FAILURE_LOG_INTERVAL)

    @property
    def state(self) -> str:
        return self._state.value

    def describe(self) -> str:
        return f"{self.stream.app}/{self.stream.name} -> {self.request.url}"

    # ------------------------------------------------------------------------ attempts

    def start(self) -> None:
        self._connect()

    def _connect(self) -> None:
        self._retry = None
        if self._state is PushState.STOPPED:
            return
        self._state = PushState.CONNECTING
        self.connects += 1
        reactor = self.service.reactor
        chunk_size = self.stream.limits.chunk_size
        hops = {HOPS_KEY: float(self.stream.push_hops + 1)}  # this push is one more

        def build() -> OutgoingLink:
            return OutgoingLink(
                self, self.target, reactor, chunk_size=chunk_size, flash_ver=PUSH_FLASH_VER,
                connect_extra=hops,
            )  # fmt: skip

        try:
            dial(reactor, self.target, LinkFactory(self, build), trust=self._trust())
        except Exception as exc:  # a TLS trust file that cannot be read, say
            self.link_failed(None, f"cannot connect: {type(exc).__name__}: {exc}")

    def _trust(self) -> str:
        trust = self.request.tls_trust
        return str(self.service.resolve(trust)) if trust else ""

    # -------------------------------------------------------------------- LinkOwner

    def link_ready(self, link: OutgoingLink, stream_id: int) -> None:
        if self._state is PushState.STOPPED:
            link.close()
            return
        self.link = link
        self.stream_id = stream_id
        conn = link.conn
        assert conn is not None
        name = self.request.name
        base = name.split("?", 1)[0]
        conn.release_stream(base)
        conn.fc_publish(base)
        conn.publish(stream_id, name, "live")

    def link_event(self, link: OutgoingLink, event: rc.ClientEvent) -> None:
        if link is not self.link or not isinstance(event, rc.StatusReceived):
            return
        if event.code == "NetStream.Publish.Start":
            self._went_live(link)
        elif event.level == "error" or event.code in (
            "NetStream.Publish.BadName", "NetStream.Publish.Denied",
        ):  # fmt: skip
            link.fail(f"publish refused: {event.code} {event.description}".strip())

    def _went_live(self, link: OutgoingLink) -> None:
        if self._state is not PushState.CONNECTING or not self.stream.published:
            return
        assert self.stream_id is not None
        link.settled()
        self._state = PushState.LIVE
        self.lives += 1
        self.backoff.reset()
        if self.last_error:
            log.info("push {push} is live", push=self.describe(),
                     app=self.stream.app, stream=self.stream.name)  # fmt: skip
        self._failures = LogThrottle(FAILURE_LOG_INTERVAL)
        sink = self.sink = PushSink(self)
        sink.player = self.stream.add_player(sink, self.stream_id)
        self.stream.dirty = True

    def link_writable(self, link: OutgoingLink) -> None:
        if link is self.link:
            self.stream.dirty = True

    def link_failed(self, link: OutgoingLink | None, reason: str) -> None:
        if link is not None and link is not self.link and self.link is not None:
            return  # an old link's late news
        self._detach()
        self._drop_link()
        if self._state is PushState.STOPPED:
            return
        self.last_error = reason
        held = self._failures.allow("fail", self.service.reactor.seconds())
        delay = self.retry_in = self.backoff.next()
        if held is not None:
            log.warn(
                "push {push}: {reason}; retrying in {delay:g}s{held}",
                push=self.describe(), reason=reason, delay=delay,
                held=f" ({held} more failures since the last report)" if held else "",
                app=self.stream.app, stream=self.stream.name,
            )  # fmt: skip
        self._state = PushState.RETRYING
        self._retry = self.service.reactor.callLater(delay, self._connect)

    def slow(self, reason: str) -> None:
        """The stream dropped the push's player (a bound): reconnect from a keyframe."""
        self.closes += 1
        link = self.link
        self._detach(removed=True)
        if link is not None:
            link.fail(f"too slow: {reason}")

    def _drop_link(self) -> OutgoingLink | None:
        """Forget the current link, keeping its count of bytes written; return it."""
        link, self.link = self.link, None
        if link is not None:
            self._gone["wire"] += link.bytes_sent
        return link

    def _detach(self, *, removed: bool = False) -> None:
        """Take the push's player off the stream, keeping its counts."""
        sink, self.sink = self.sink, None
        if sink is None or sink.player is None:
            return
        player = sink.player
        for key, value in (
            ("bytes", player.bytes_sent), ("messages", player.messages_sent),
            ("skips", player.skips), ("skipped", player.skipped_messages),
        ):  # fmt: skip
            self._gone[key] += value
        if not removed and player in self.stream.players:
            self.stream.remove_player(player)

    # ------------------------------------------------------------------------- handle

    def stop(self) -> None:
        """Unpublish on the target (``FCUnpublish``, ``deleteStream``) and close."""
        if self._state is PushState.STOPPED:
            return
        self._state = PushState.STOPPED
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        self._retry = None
        if self.sink is not None and self.stream.published:
            self.stream.flush(self.service.reactor.seconds())  # what it has not sent yet
        self._detach()
        link = self._drop_link()
        if link is not None and link.conn is not None and self.stream_id is not None:
            try:
                link.conn.fc_unpublish(self.request.name.split("?", 1)[0])
                link.conn.delete_stream(self.stream_id)
            except Exception:
                pass  # a connection already refused or closed: nothing to tell it
        if link is not None:
            link.close()
        self.service.forget(self)
        log.info("push {push} stopped", push=self.describe(),
                 app=self.stream.app, stream=self.stream.name)  # fmt: skip

    def figures(self) -> dict[str, Any]:
        """What the stats API and ``/metrics`` show of this push (bytes, messages)."""
        counts = dict(self._gone)
        player = self.sink.player if self.sink is not None else None
        if player is not None:
            counts["bytes"] += player.bytes_sent
            counts["messages"] += player.messages_sent
            counts["skips"] += player.skips
            counts["skipped"] += player.skipped_messages
        link = self.link
        return {
            "id": self.id,
            "url": self.request.url,
            "name": self.request.name,
            "origin": self.request.origin,
            "state": self.state,
            "bytes_sent": counts["bytes"],
            "messages_sent": counts["messages"],
            "wire_bytes": counts["wire"] + (link.bytes_sent if link is not None else 0),
            "skips": counts["skips"],
            "skipped_messages": counts["skipped"],
            "slow_closes": self.closes,
            "buffered_bytes": link.buffered() if link is not None else 0,
            "connects": self.connects,
            "lives": self.lives,
            "retry_in": self.retry_in if self._state is PushState.RETRYING else None,
            "last_error": self.last_error or None,
        }


class PushService:
    """The pushes of one server process (the applications' ``Pusher``): started by the
    applications, listed per stream for the stats API and ``/metrics``.

    ``reactor``: connects and schedules retries; ``resolve``: a ``tls_trust`` file name ->
    its path (relative names are the configuration file's)."""

    def __init__(self, reactor: Any, resolve: Any = str) -> None:
        self.reactor = reactor
        self.resolve = resolve
        self._by_stream: dict[int, list[Push]] = {}

    def start(self, stream: LiveStream, request: PushRequest) -> Push:
        push = Push(self, stream, request)
        self._by_stream.setdefault(id(stream), []).append(push)
        log.info(
            "push {push} as {name} started ({origin})",
            push=push.describe(), name=request.name, origin=request.origin,
            app=stream.app, stream=stream.name,
        )  # fmt: skip
        push.start()
        return push

    def forget(self, push: Push) -> None:
        pushes = self._by_stream.get(id(push.stream))
        if pushes is not None and push in pushes:
            pushes.remove(push)
            if not pushes:
                del self._by_stream[id(push.stream)]

    def of(self, stream: LiveStream) -> list[Push]:
        """The pushes of ``stream`` running now."""
        return list(self._by_stream.get(id(stream), ()))

    def figures(self, stream: LiveStream) -> list[dict[str, Any]]:
        return [push.figures() for push in self.of(stream)]

    def players(self, stream: LiveStream) -> int:
        """How many of ``stream``'s players are pushes (live ones)."""
        return sum(1 for push in self.of(stream) if push.sink is not None)

    def stop_all(self) -> None:
        for pushes in list(self._by_stream.values()):
            for push in list(pushes):
                push.stop()
