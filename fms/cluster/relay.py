"""The worker relay: a stream published on one worker plays from every worker.

With ``fms run --workers N`` each worker is a whole server of its own (registry, plugins,
players). What makes them one server is this module. Every worker listens on a Unix socket in
the supervisor's private folder (:meth:`WorkerSpec.socket_path`); when a publish is accepted on
a worker, that worker *publishes the stream to every other worker* over those sockets, as an
RTMP client (:class:`~fms.rtmp.client.ClientConnection`, the project's own code; no second
protocol). On the receiving worker the stream is an ordinary live stream whose publisher is the
relay link, so its players, caches, bounds and stats are those of any stream.

Why a link to every worker rather than one pulled on demand: a stream is then known everywhere
at once, so a second publish of the same name is refused on any worker (``Publish.BadName``;
in the milliseconds before the links are up, :mod:`fms.cluster.claims` refuses it),
every worker's plugins see the same stream list and player totals, and a player never waits for
a link to be set up. But *media* crosses a link only while the receiving worker has players of
the stream: it reports its player count on the link (``fmsPlayers``: its first player at once,
later changes at most every 0.5 s), the publisher's worker adds the counts up and tells each
worker the rest (so ``subscriber_count`` is the total everywhere), and starts the flow when the
count leaves 0 (a ``fmsRelayStart`` data message, then the sequence headers and the GOP, so the
player starts on a keyframe) and stops it when the count falls back to 0 (the receiver drops
what is still on the way and forgets its stale GOP). Measured with ``benchmarks/idle_relay.py``:
20 streams nobody watches cost the other worker 8.6 % of a core when every link carried media,
0.2 % now.

Links on the Unix socket are *trusted*: their ``connect`` and ``publish`` skip the plugin chain
(the publish was decided on its own worker, once: one recording, one callback), they do not
appear among the application's clients, and no plugin gets their media. The folder is mode 0700,
so only the server's own user can reach the sockets.

A link that fails (a worker restarting) is retried while the stream is published, every 0.5 s
doubling to 5 s; a new link first sends the stream's metadata, and its media flow starts as
above. A link whose socket buffer is full (a worker that cannot keep up) skips to the next
keyframe instead of growing memory.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IListeningPort, IPushProducer
from twisted.internet.protocol import ClientFactory, Protocol
from twisted.python.failure import Failure
from zope.interface import implementer

from fms.cluster.link import (
    PLAYER_REPORT_DELAY,
    RELAY_KEY,
    RELAY_PLAYERS,
    RELAY_START,
    InternalFactory,
)
from fms.errors import LocalProtocolError, RemoteProtocolError
from fms.live.media import MediaInfo
from fms.live.stream import LiveStream
from fms.log import Logger
from fms.rtmp import client as rc
from fms.rtmp.messages import Data, Media
from fms.server.factory import RTMPServerFactory

if TYPE_CHECKING:
    from fms.cluster.spec import WorkerSpec

log = Logger(namespace="fms.cluster.relay")


RETRY_FIRST = 0.5
RETRY_MAX = 5.0
LINK_CHUNK_SIZE = 65536


@implementer(IPushProducer)
class RelayLink(Protocol):
    """The client side of one relay link: publishes one stream to one other worker."""

    def __init__(self, push: RelayPush) -> None:
        self.push = push
        self.conn: rc.ClientConnection | None = None
        self.stream_id: int | None = None
        self.live = False
        self.paused = False
        self.need_sync = False
        self.skipped = 0

    def connectionMade(self) -> None:
        push = self.push
        self.transport.registerProducer(self, True)  # type: ignore[union-attr]
        conn = self.conn = rc.ClientConnection(digest=False, chunk_size=LINK_CHUNK_SIZE)
        conn.initiate()
        origin = {"worker": float(push.hub.spec.index), "peer": push.origin_peer}
        conn.connect(
            push.stream.app,
            f"rtmp://worker-{push.hub.spec.index}/{push.stream.app}",
            flash_ver="FMS/pyFMS relay",
            extra={RELAY_KEY: origin},
        )
        conn.create_stream()
        self._send()

    def _send(self) -> None:
        if self.conn is not None and self.transport is not None:
            data = self.conn.data_to_send()
            if data:
                self.transport.write(data)

    def dataReceived(self, data: bytes) -> None:
        conn = self.conn
        assert conn is not None
        try:
            events = conn.receive_data(data, self.push.hub.reactor.seconds())
        except (RemoteProtocolError, LocalProtocolError) as exc:
            log.error("relay link to worker {peer} broke: {exc}", peer=self.push.peer, exc=exc)
            self.transport.abortConnection()  # type: ignore[union-attr]
            return
        for event in events:
            self._handle(event)
        self._send()

    def _handle(self, event: rc.ClientEvent) -> None:
        conn = self.conn
        assert conn is not None
        push = self.push
        if isinstance(event, rc.StreamCreated):
            self.stream_id = event.stream_id
            conn.publish(event.stream_id, push.stream.name, "live")
        elif isinstance(event, rc.StatusReceived):
            if event.code == "NetStream.Publish.Start":
                self.live = True
                push.linked(self)
            elif event.level == "error":
                push.refused(event.code, event.description)
                self.transport.loseConnection()  # type: ignore[union-attr]
        elif isinstance(event, rc.CallReceived) and event.name == RELAY_PLAYERS:
            args = event.command.arguments
            if len(args) > 1 and args[0] == push.stream.name and isinstance(args[1], float):
                push.reported(max(int(args[1]), 0))
        elif isinstance(event, rc.ConnectRejected):
            push.refused(event.code, event.description)
            self.transport.loseConnection()  # type: ignore[union-attr]
        elif isinstance(event, rc.ErrorReceived):
            push.refused(event.code, str(event.info.get("description", "")))
            self.transport.loseConnection()  # type: ignore[union-attr]

    def forward(self, message: Media | Data, info: MediaInfo) -> None:
        """Send one message of the stream, unless the link is full or waiting for a keyframe."""
        if not self.live or self.conn is None or self.stream_id is None:
            return
        if self.paused or self.need_sync:
            if not self.paused and _starts_picture(info, self.push.stream):
                self.need_sync = False
                if self.skipped:
                    log.warn(
                        "relay of {app}/{name} to worker {peer}: skipped {count} messages "
                        "while it could not keep up",
                        app=self.push.stream.app, name=self.push.stream.name,
                        peer=self.push.peer, count=self.skipped,
                    )  # fmt: skip
                    self.skipped = 0
            else:
                self.need_sync = True
                self.skipped += 1
                return
        self._write_message(message)
        self._send()

    def _write_message(self, message: Media | Data) -> None:
        conn, sid = self.conn, self.stream_id
        assert conn is not None and sid is not None
        if isinstance(message, Media):
            conn.send_media(sid, message)
        else:
            conn.send_data(sid, message.values, timestamp=message.timestamp)

    def replay(self, messages: list[Media | Data]) -> None:
        for message in messages:
            self._write_message(message)
        self._send()

    def start_flow(self, messages: list[Media | Data]) -> None:
        """(Re)start the media: the marker the other worker waits for, then ``messages``
        (sequence headers and the GOP)."""
        if self.conn is None or self.stream_id is None:
            return
        self.need_sync = False
        self.skipped = 0
        self.conn.send_data(self.stream_id, (RELAY_START,))
        self.replay(messages)

    def finish(self) -> None:
        """The stream ended: unpublish on the other worker, then close."""
        if self.conn is not None and self.stream_id is not None and self.transport is not None:
            try:
                self.conn.delete_stream(self.stream_id)
                self._send()
            except LocalProtocolError:
                pass
        if self.transport is not None:
            self.transport.loseConnection()

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.live = False
        if self.conn is not None:
            self.conn.close()
        self.push.link_lost(self)

    # IPushProducer: Twisted pauses us when the socket buffer is full.
    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False

    def stopProducing(self) -> None:
        self.paused = True


def _starts_picture(info: MediaInfo, stream: LiveStream) -> bool:
    """Whether a receiver can start decoding at a message (a video keyframe, or any audio
    frame of a stream without video)."""
    if info.kind == "video":
        return info.keyframe
    return info.kind == "audio" and not stream.has_video


class _LinkFactory(ClientFactory):
    noisy = False

    def __init__(self, push: RelayPush) -> None:
        self.push = push

    def buildProtocol(self, addr: Any) -> RelayLink:
        return RelayLink(self.push)

    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
        self.push.link_failed(reason)


class RelayPush:
    """Keeps one published stream relayed to one other worker, reconnecting as needed."""

    def __init__(self, hub: RelayHub, stream: LiveStream, peer: int, origin_peer: str) -> None:
        self.hub = hub
        self.stream = stream
        self.peer = peer
        self.origin_peer = origin_peer
        self.link: RelayLink | None = None
        self.stopped = False
        self.delay = RETRY_FIRST
        self._retry: Any = None
        self._complained = False
        self.remote = 0
        """Players of the stream on the other worker, as it last reported."""
        self.flowing = False
        """Whether media goes to the other worker: only while it has players."""

    def start(self) -> None:
        self._connect()

    def _connect(self) -> None:
        self._retry = None
        if self.stopped:
            return
        self.hub.reactor.connectUNIX(
            self.hub.spec.socket_path(self.peer), _LinkFactory(self), timeout=5
        )

    def forward(self, message: Media | Data, info: MediaInfo) -> None:
        link = self.link
        if link is not None and (self.flowing or not isinstance(message, Media)):
            link.forward(message, info)

    def linked(self, link: RelayLink) -> None:
        """The other worker accepted the publish: start it with what a newcomer needs."""
        if self.stopped:
            link.finish()
            return
        self.link = link
        self.delay = RETRY_FIRST
        if self._complained:
            log.info(
                "relay of {app}/{name} to worker {peer} restored",
                app=self.stream.app, name=self.stream.name, peer=self.peer,
            )  # fmt: skip
            self._complained = False
        self.flowing = False
        metadata = self.stream.metadata
        link.replay([metadata] if metadata is not None else [])
        self.reported(self.remote)  # players may have reported before the publish was answered

    def reported(self, count: int) -> None:
        """The other worker's player count: media flows while it is above 0, and each time
        it starts it starts with the sequence headers and the GOP."""
        self.remote = count
        link = self.link
        if count > 0 and not self.flowing and link is not None and link.live:
            self.flowing = True
            link.start_flow(self.stream.replay())
        elif count == 0:
            self.flowing = False
        self.hub.recount(self.stream)

    def tell_players(self, others: int) -> None:
        """Tell the other worker how many players the stream has on every worker but it."""
        link = self.link
        if link is not None and link.conn is not None and link.live:
            link.conn.call(RELAY_PLAYERS, self.stream.name, float(others), expect_result=False)
            link._send()

    def refused(self, code: str, description: str) -> None:
        if not self._complained:
            log.warn(
                "worker {peer} refused the relay of {app}/{name}: {code} {description}",
                peer=self.peer, app=self.stream.app, name=self.stream.name,
                code=code, description=description,
            )  # fmt: skip
            self._complained = True

    def link_failed(self, reason: Failure) -> None:
        if not self._complained and not self.stopped:
            log.warn(
                "cannot relay {app}/{name} to worker {peer}: {reason}; retrying",
                app=self.stream.app, name=self.stream.name, peer=self.peer,
                reason=reason.getErrorMessage(),
            )  # fmt: skip
            self._complained = True
        self._schedule_retry()

    def link_lost(self, link: RelayLink) -> None:
        if self.link is link:
            self.link = None
            self.flowing = False
            self.remote = 0
            self.hub.recount(self.stream)
        if not self.stopped:
            if not self._complained:
                log.warn(
                    "relay of {app}/{name} to worker {peer} lost; retrying",
                    app=self.stream.app, name=self.stream.name, peer=self.peer,
                )  # fmt: skip
                self._complained = True
            self._schedule_retry()

    def _schedule_retry(self) -> None:
        if self.stopped or self._retry is not None:
            return
        delay, self.delay = self.delay, min(self.delay * 2, RETRY_MAX)
        self._retry = self.hub.reactor.callLater(delay, self._connect)

    def stop(self) -> None:
        self.stopped = True
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        self._retry = None
        self.remote = 0
        link, self.link = self.link, None
        if link is not None:
            link.finish()


class _Outgoing:
    """The :class:`~fms.live.stream.StreamObserver` of a stream published on this worker: it
    hands every message to the pushes, and counts the other workers' players."""

    def __init__(self, hub: RelayHub, pushes: list[RelayPush]) -> None:
        self.hub = hub
        self.pushes = pushes

    @property
    def remote_players(self) -> int:
        return sum(push.remote for push in self.pushes)

    def published(self, message: Media | Data, info: MediaInfo) -> None:
        for push in self.pushes:
            push.forward(message, info)

    def players_changed(self, stream: LiveStream) -> None:
        self.hub.players_changed(stream)


class RelayHub(Service):
    """One worker's end of the relay: the Unix listener for links from the other workers and
    the pushes of this worker's own publishes to them. The worker's server factory tells it of
    every accepted publish (it is the factory's ``publish_listener``)."""

    def __init__(self, reactor: Any, spec: WorkerSpec, server: RTMPServerFactory) -> None:
        self.reactor = reactor
        self.spec = spec
        self.server = server
        self.port: IListeningPort | None = None
        self.listening: Deferred[IListeningPort] = Deferred()
        self.pushes: dict[int, list[RelayPush]] = {}
        self._tell_due: dict[int, Any] = {}

    def startService(self) -> None:
        import os

        super().startService()
        path = self.spec.socket_path(self.spec.index)
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        try:
            self.port = self.reactor.listenUNIX(path, InternalFactory(self.server), mode=0o600)
        except Exception:
            self.listening.errback(Failure())
            return
        self.listening.callback(self.port)

    def stopService(self) -> Deferred[None] | None:
        super().stopService()
        for pushes in list(self.pushes.values()):
            for push in pushes:
                push.stop()
        self.pushes.clear()
        for due in self._tell_due.values():
            if due.active():
                due.cancel()
        self._tell_due.clear()
        if self.port is None:
            return None
        port, self.port = self.port, None
        return port.stopListening()

    def publish_started(self, stream: LiveStream, peer: str) -> None:
        """A publish from ``peer`` was accepted on this worker: relay it to every other
        worker."""
        pushes = [RelayPush(self, stream, index, peer) for index in self.spec.peers]
        self.pushes[id(stream)] = pushes
        stream.observer = _Outgoing(self, pushes)
        for push in pushes:
            push.start()

    def publish_stopped(self, stream: LiveStream) -> None:
        for push in self.pushes.pop(id(stream), []):
            push.stop()
        stream.observer = None
        due = self._tell_due.pop(id(stream), None)
        if due is not None and due.active():
            due.cancel()

    # Player counts over all workers: each other worker reports its own players of the stream
    # (``fmsPlayers`` on the link); this worker adds them up and tells each the rest.

    def recount(self, stream: LiveStream) -> None:
        self.players_changed(stream)

    def players_changed(self, stream: LiveStream) -> None:
        key = id(stream)
        if key not in self._tell_due and key in self.pushes:
            self._tell_due[key] = self.reactor.callLater(
                PLAYER_REPORT_DELAY, self._tell_players, stream
            )

    def _tell_players(self, stream: LiveStream) -> None:
        self._tell_due.pop(id(stream), None)
        total = stream.subscriber_count
        for push in self.pushes.get(id(stream), []):
            push.tell_players(total - push.remote)
