"""The receiving side of the worker relay: a trusted RTMP publish from another worker.

A relay link (:mod:`fms.cluster.relay` is the sending side) arrives on the worker's Unix socket
and is served by :class:`RelayLinkProtocol`, an :class:`~fms.server.protocol.RTMPServerProtocol`
whose decisions were made on the publisher's own worker: its ``connect`` and ``publish`` are
accepted at once, no plugin sees it or its media, and its publisher is judged on its own worker
(no ``publisher_timeout`` here). What it adds:

- player counts: the stream's players on this worker are reported to the publisher's worker
  (``fmsPlayers``: the first at once, later changes at most every ``PLAYER_REPORT_DELAY``), and
  the total of the other workers comes back the same way;
- a media flow that runs only while this worker has players: after the count falls to 0,
  media still on its way is dropped and the GOP forgotten; the flow restarts with a
  ``fmsRelayStart`` marker, then the sequence headers (those already cached are skipped) and
  the GOP.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.interfaces import IDelayedCall
from twisted.internet.protocol import Factory
from twisted.python.failure import Failure

from fms.apps.application import Application
from fms.apps.verdict import accepted
from fms.live.media import MediaInfo
from fms.live.stream import LiveStream
from fms.rtmp import events as ev
from fms.rtmp.connection import ConnectionState
from fms.rtmp.messages import Data, Media
from fms.server.factory import RTMPServerFactory
from fms.server.protocol import RTMPServerProtocol

RELAY_KEY = "fmsRelay"
"""The ``connect`` property of a relay link: ``{worker, peer}`` of the original publisher;
honoured on trusted links only."""
RELAY_PLAYERS = "fmsPlayers"
"""The call on a relay link, both ways, that carries ``(stream name, player count)``."""
RELAY_START = "fmsRelayStart"
"""The data message that tells a relay link's receiving worker that the media flow (re)starts,
with the sequence headers and the GOP."""
PLAYER_REPORT_DELAY = 0.5
"""Seconds a relay link gathers player changes before it reports them."""


class _Mirror:
    """The :class:`~fms.live.stream.StreamObserver` of a stream relayed to this worker."""

    def __init__(self, link: RelayLinkProtocol) -> None:
        self.link = link
        self.remote_players = 0
        """Players on the other workers, as the publisher's worker last reported them."""
        self.waiting = True
        """Media is dropped until the publisher's worker (re)starts the flow."""
        self.reported = 0
        """The count this worker reported last."""

    def published(self, message: Media | Data, info: MediaInfo) -> None:
        pass  # a mirror is relayed no further

    def players_changed(self, stream: LiveStream) -> None:
        self.link.players_changed(stream)


class RelayLinkProtocol(RTMPServerProtocol):
    """The server side of one relay link from another worker."""

    claims_names = False  # the publisher's worker holds the claim

    def __init__(self, server: RTMPServerFactory) -> None:
        super().__init__(server)
        self.factory_of_links = server
        self.relayed_from: int | None = None
        self._report_due: IDelayedCall | None = None

    def connectionMade(self) -> None:
        self.factory_of_links.relay_links += 1  # not a client: the HTTP figures leave it out
        super().connectionMade()
        if self.connection is not None:
            self.connection.judge_publishers = False

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.factory_of_links.relay_links -= 1
        if self._report_due is not None and self._report_due.active():
            self._report_due.cancel()
        self._report_due = None
        super().connectionLost(reason)

    # Decisions were made on the publisher's worker: accept at once.

    def _decide_connect(self, event: ev.ConnectRequested, application: Application) -> None:
        conn = self.connection
        assert conn is not None
        origin = event.command_object.get(RELAY_KEY) if event.command_object else None
        if isinstance(origin, dict):
            worker = origin.get("worker")
            if isinstance(worker, (int, float)):
                self.relayed_from = int(worker)
            self.peer = f"{origin.get('peer', '?')} via worker {self.relayed_from}"
        self._make_view(event)
        conn.accept_connect(event)
        self.server.connected(self)
        self._reschedule()

    def _decide_publish(self, event: ev.PublishRequested) -> None:
        self._publish_decided(event, accepted(event.name))

    def _publish_started(self, stream: LiveStream) -> None:
        stream.observer = _Mirror(self)
        if stream.players:
            self.players_changed(stream)

    def _publish_ending(self, stream: LiveStream) -> None:
        stream.observer = None

    def _to_plugins(self, stream: LiveStream, message: Media | Data, info: MediaInfo) -> None:
        pass  # plugins saw this publish on its own worker

    def _on_media(self, event: ev.MediaReceived) -> None:
        stream = self.publishing.get(event.stream_id)
        mirror = _mirror(stream)
        if stream is None or mirror is None:
            return
        if mirror.waiting or stream.is_cached_header(event.message):
            return  # a restarted flow resends headers its players already have
        self._publish(stream, event.message)

    def _on_data(self, event: ev.DataReceived) -> None:
        stream = self.publishing.get(event.stream_id)
        mirror = _mirror(stream)
        if mirror is not None and event.message.name == RELAY_START:
            mirror.waiting = False  # a fresh start (headers, GOP) follows
            return
        super()._on_data(event)

    def _on_call(self, event: ev.CallRequested) -> None:
        command = event.command
        if command.name != RELAY_PLAYERS:
            super()._on_call(event)
            return
        # The publisher's worker: how many players the other workers have.
        args = command.arguments
        name = args[0] if args else None
        count = args[1] if len(args) > 1 else 0
        for stream in self.publishing.values():
            mirror = _mirror(stream)
            if mirror is not None and stream.name == name and isinstance(count, (int, float)):
                mirror.remote_players = max(int(count), 0)

    # Player counts, reported to the publisher's worker.

    def players_changed(self, stream: LiveStream) -> None:
        """A stream of this link gained or lost a player here: tell the publisher's worker,
        which adds up every worker's and sends media only while this worker has players. The
        first player is reported at once (its picture waits for it); other changes at most
        every ``PLAYER_REPORT_DELAY`` seconds."""
        mirror = _mirror(stream)
        if mirror is None:
            return
        if stream.players and not mirror.reported:
            self._report_players()
        elif self._report_due is None:
            self._report_due = self.server.clock.callLater(
                PLAYER_REPORT_DELAY, self._report_players
            )

    def _report_players(self) -> None:
        if self._report_due is not None and self._report_due.active():
            self._report_due.cancel()
        self._report_due = None
        conn = self.connection
        if self._closing or conn is None or conn.state is not ConnectionState.CONNECTED:
            return
        for stream in self.publishing.values():
            mirror = _mirror(stream)
            if mirror is None:
                continue
            count = len(stream.players)
            if count == 0 and mirror.reported:
                # The flow stops: what still arrives is dropped, and what is cached would be
                # stale when it restarts (with a fresh GOP, after a RELAY_START).
                mirror.waiting = True
                stream.forget_media()
            mirror.reported = count
            conn.call(RELAY_PLAYERS, stream.name, float(count), expect_result=False)
        self.flush_output()


def _mirror(stream: LiveStream | None) -> _Mirror | None:
    observer = stream.observer if stream is not None else None
    return observer if isinstance(observer, _Mirror) else None


class InternalFactory(Factory):
    """Builds the trusted server side of relay links, sharing the worker's server factory
    (registry, applications, deadlines) but none of its admission caps."""

    noisy = False

    def __init__(self, server: RTMPServerFactory) -> None:
        self.server = server

    def buildProtocol(self, addr: Any) -> RTMPServerProtocol | None:
        if self.server.shutting_down:
            return None
        proto = RelayLinkProtocol(self.server)
        proto.factory = self
        return proto
