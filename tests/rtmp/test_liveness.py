"""Deadlines of a ServerConnection, with time as an argument: bytes fed at given times, then
``handle_timer(now)`` just before and at each deadline. No clock, no sleeps, no Twisted."""

from __future__ import annotations

import dataclasses

from fms.config import LimitsConfig
from fms.rtmp import events as ev
from fms.rtmp.connection import ConnectionLimits, ConnectionState, ServerConnection
from fms.rtmp.constants import MessageType, UserControlEvent
from fms.rtmp.liveness import EPSILON, DeadlineKind, LivenessLimits
from fms.rtmp.messages import Media, SetChunkSize, UserControl
from tests.support.rtmp_peer import ScriptedClient

T0 = 1000.0
"""When the connection was accepted: any epoch works, deadlines count from the times given."""

QUIET = {"idle_timeout": 500.0, "ping_interval": 0.0}
"""Limits that keep idle and ping out of the way of the deadline a test is about."""


class Peer:
    """A scripted client and the server connection it talks to, at times the test chooses."""

    def __init__(self, **limits: float) -> None:
        liveness = LivenessLimits(**limits)
        self.server = ServerConnection(ConnectionLimits(liveness=liveness), now=T0)
        self.client = ScriptedClient()
        self._seen = 0

    def send(self, data: bytes, now: float) -> list[ev.Event]:
        events = self.server.receive_data(data, now)
        self.client.receive(self.server.data_to_send())
        return events

    def handshake(self, now: float) -> None:
        self.server.receive_data(self.client.hello(), now)
        c2 = self.client.receive(self.server.data_to_send())
        assert self.server.receive_data(c2, now) == [ev.HandshakeCompleted(digest=True)]

    def connect(self, now: float, publish_or_play: float = 0.0) -> None:
        """Handshake, ``connect`` and its acceptance, all at ``now``."""
        self.handshake(now)
        (event,) = self.send(self.client.connect(), now)
        assert isinstance(event, ev.ConnectRequested)
        self.server.accept_connect(event)
        self.server.set_publish_or_play_timeout(publish_or_play)
        self.server.update_engagement(now)
        self.client.receive(self.server.data_to_send())

    def create_stream(self, now: float) -> int:
        (event,) = self.send(self.client.command("createStream", 2.0), now)
        assert isinstance(event, ev.CreateStreamRequested)
        sid = self.server.accept_create_stream(event)
        assert sid is not None
        self.server.update_engagement(now)
        self.client.receive(self.server.data_to_send())
        return sid

    def request(self, command: str, sid: int, now: float) -> ev.Event:
        (event,) = self.send(self.client.command(command, 0.0, None, "cam", stream_id=sid), now)
        return event

    def publish(self, sid: int, requested: float, accepted: float) -> None:
        """``publish`` at ``requested``, decided and accepted at ``accepted``."""
        assert isinstance(self.request("publish", sid, requested), ev.PublishRequested)
        self.server.hold_publish(sid)
        self.server.update_engagement(requested)
        self.server.decided(sid)
        self.server.accept_publish(sid, "cam")
        self.server.update_engagement(accepted)

    def play(self, sid: int, requested: float, accepted: float) -> None:
        assert isinstance(self.request("play", sid, requested), ev.PlayRequested)
        self.server.hold_play(sid)
        self.server.update_engagement(requested)
        self.server.decided(sid)
        self.server.accept_play(sid, "cam")
        self.server.update_engagement(accepted)

    def media(self, sid: int, now: float) -> list[ev.Event]:
        return self.send(self.client.send(Media(MessageType.VIDEO, 0, sid, b"\x17\x01")), now)

    def answer(self, stamp: int, now: float) -> list[ev.Event]:
        return self.send(self.client.send(UserControl(UserControlEvent.PING_RESPONSE, stamp)), now)

    def timer(self, now: float) -> list[ev.Event]:
        """``handle_timer(now)``, the bytes it queued delivered to the client."""
        events = self.server.handle_timer(now)
        self.client.receive(self.server.data_to_send())
        return events

    def pings(self) -> list[int]:
        """Timestamps of the PingRequests the client received since the last call."""
        new = self.client.received[self._seen :]
        self._seen = len(self.client.received)
        return [
            m.value
            for m in new
            if isinstance(m, UserControl) and m.event == UserControlEvent.PING_REQUEST
        ]


def assert_fires(peer: Peer, at: float, kind: DeadlineKind, limit: float) -> None:
    """Nothing happens just before ``at``; at ``at`` the deadline passes and the connection
    closes, with nothing due afterwards."""
    assert peer.server.next_deadline() == at
    assert peer.timer(at - 2 * EPSILON) == []
    assert peer.server.state is not ConnectionState.CLOSED
    assert peer.timer(at) == [ev.DeadlinePassed(kind, limit)]
    assert peer.server.state is ConnectionState.CLOSED
    assert peer.server.next_deadline() is None


# ---------------------------------------------------------------------------- handshake, connect


def test_handshake_deadline_runs_from_accept_and_bytes_do_not_extend_it() -> None:
    peer = Peer(handshake_timeout=10.0, **QUIET)
    hello = peer.client.hello()
    peer.server.receive_data(hello[:700], T0 + 9.0)  # a client dribbling its C1
    assert_fires(peer, T0 + 10.0, DeadlineKind.HANDSHAKE, 10.0)


def test_connect_deadline_runs_from_handshake_done_and_bytes_do_not_extend_it() -> None:
    peer = Peer(handshake_timeout=10.0, connect_timeout=8.0, **QUIET)
    peer.handshake(T0 + 3.0)
    assert peer.send(peer.client.send(SetChunkSize(4096)), T0 + 10.0) == [
        ev.PeerChunkSizeChanged(4096)
    ]
    assert_fires(peer, T0 + 11.0, DeadlineKind.CONNECT, 8.0)


def test_idle_deadline_closes_a_connection_that_sends_nothing_and_bytes_move_it() -> None:
    """While the application decides ``connect`` only the idle deadline applies; every byte
    received moves it."""
    peer = Peer(idle_timeout=30.0, ping_interval=0.0)
    peer.handshake(T0 + 1.0)
    (event,) = peer.send(peer.client.connect(), T0 + 2.0)
    assert isinstance(event, ev.ConnectRequested)
    assert peer.server.next_deadline() == T0 + 32.0
    peer.send(peer.client.send(SetChunkSize(4096)), T0 + 20.0)
    assert_fires(peer, T0 + 50.0, DeadlineKind.IDLE, 30.0)


# -------------------------------------------------------------------------- publish or play


def test_publish_or_play_deadline_runs_from_connect_accepted() -> None:
    peer = Peer(**QUIET)
    peer.connect(T0 + 5.0, publish_or_play=20.0)
    peer.create_stream(T0 + 6.0)  # a stream that does nothing does not count
    assert_fires(peer, T0 + 25.0, DeadlineKind.PUBLISH_OR_PLAY, 20.0)


def test_publish_or_play_timeout_zero_sets_no_deadline() -> None:
    """An RPC-only application (a chat) sets 0: only the idle deadline is left."""
    peer = Peer(idle_timeout=60.0, ping_interval=0.0)
    peer.connect(T0, publish_or_play=0.0)
    assert peer.timer(T0 + 59.0) == []
    assert peer.server.next_deadline() == T0 + 60.0


def test_publish_or_play_clock_restarts_when_the_clients_last_stream_ends() -> None:
    peer = Peer(**QUIET)
    peer.connect(T0, publish_or_play=20.0)
    sid = peer.create_stream(T0 + 1.0)
    peer.play(sid, requested=T0 + 1.0, accepted=T0 + 2.0)
    assert peer.timer(T0 + 100.0) == []  # playing: no deadline however long
    assert isinstance(peer.request("closeStream", sid, T0 + 110.0), ev.CloseStreamRequested)
    peer.server.update_engagement(T0 + 110.0)
    assert_fires(peer, T0 + 130.0, DeadlineKind.PUBLISH_OR_PLAY, 20.0)


def test_deleting_a_publishing_stream_restarts_the_publish_or_play_clock() -> None:
    peer = Peer(publisher_timeout=400.0, **QUIET)
    peer.connect(T0, publish_or_play=20.0)
    sid = peer.create_stream(T0)
    peer.publish(sid, requested=T0, accepted=T0)
    assert peer.timer(T0 + 50.0) == []
    (event,) = peer.send(peer.client.command("deleteStream", 0.0, None, float(sid)), T0 + 60.0)
    assert event == ev.DeleteStreamRequested(sid)
    peer.server.delete_stream(sid)
    peer.server.update_engagement(T0 + 60.0)
    assert_fires(peer, T0 + 80.0, DeadlineKind.PUBLISH_OR_PLAY, 20.0)


def test_a_stream_still_playing_keeps_the_client_engaged() -> None:
    peer = Peer(**QUIET)
    peer.connect(T0, publish_or_play=20.0)
    first, second = peer.create_stream(T0), peer.create_stream(T0)
    peer.play(first, requested=T0, accepted=T0)
    peer.play(second, requested=T0, accepted=T0)
    peer.request("closeStream", first, T0 + 1.0)
    peer.server.update_engagement(T0 + 1.0)
    assert peer.timer(T0 + 100.0) == []
    assert peer.server.next_deadline() == T0 + 1.0 + 500.0  # idle only


def test_a_play_being_decided_counts_as_engaged_until_decided() -> None:
    peer = Peer(**QUIET)
    peer.connect(T0, publish_or_play=20.0)
    sid = peer.create_stream(T0)
    peer.request("play", sid, T0 + 1.0)
    peer.server.hold_play(sid)
    peer.server.update_engagement(T0 + 1.0)
    assert peer.timer(T0 + 40.0) == []  # a slow plugin is not the client's fault
    peer.server.decided(sid)
    peer.server.reject_play(sid, "cam")
    peer.server.update_engagement(T0 + 45.0)
    assert_fires(peer, T0 + 65.0, DeadlineKind.PUBLISH_OR_PLAY, 20.0)


def test_engagement_is_settled_per_batch_so_a_play_refused_at_once_does_not_restart_it() -> None:
    """As the server always did: a play requested and refused before the batch was settled
    leaves the clock where it was (a client cannot reset it by asking for nothing)."""
    peer = Peer(**QUIET)
    peer.connect(T0, publish_or_play=20.0)
    sid = peer.create_stream(T0)
    peer.request("play", sid, T0 + 10.0)
    peer.server.hold_play(sid)
    peer.server.decided(sid)
    peer.server.reject_play(sid, "cam")
    peer.server.update_engagement(T0 + 10.0)
    assert_fires(peer, T0 + 20.0, DeadlineKind.PUBLISH_OR_PLAY, 20.0)


# ------------------------------------------------------------------------------- publisher


def test_publisher_silent_for_publisher_timeout_is_closed_and_only_media_extends_it() -> None:
    peer = Peer(publisher_timeout=6.0, **QUIET)
    peer.connect(T0)
    sid = peer.create_stream(T0)
    peer.publish(sid, requested=T0 + 1.0, accepted=T0 + 2.0)
    assert [type(e) for e in peer.media(sid, T0 + 5.0)] == [ev.MediaReceived]
    peer.send(peer.client.command("FCPublish", 5.0, None, "cam"), T0 + 9.0)  # not media
    assert_fires(peer, T0 + 11.0, DeadlineKind.PUBLISHER, 6.0)


def test_the_media_clock_starts_when_the_publish_is_accepted() -> None:
    """A publish the application took 4 s to accept gets its full publisher_timeout."""
    peer = Peer(publisher_timeout=6.0, **QUIET)
    peer.connect(T0)
    sid = peer.create_stream(T0)
    peer.publish(sid, requested=T0 + 1.0, accepted=T0 + 5.0)
    assert_fires(peer, T0 + 11.0, DeadlineKind.PUBLISHER, 6.0)


def test_a_publisher_not_judged_is_never_closed_for_silence() -> None:
    """A relay link from another worker: the publisher's own worker judges the publisher."""
    peer = Peer(publisher_timeout=6.0, **QUIET)
    peer.server.judge_publishers = False
    peer.connect(T0)
    sid = peer.create_stream(T0)
    peer.publish(sid, requested=T0, accepted=T0)
    assert peer.timer(T0 + 100.0) == []
    assert peer.server.next_deadline() == T0 + 500.0  # idle only


# ------------------------------------------------------------------------------------ pings


def test_a_quiet_player_that_answers_pings_stays_connected() -> None:
    """Liveness is judged by bytes received: a player only watching sends nothing, so it is
    pinged after ping_interval of silence, and its answers keep it alive long past idle."""
    peer = Peer(idle_timeout=10.0, ping_interval=4.0, ping_timeout=2.0)
    peer.connect(T0, publish_or_play=20.0)
    sid = peer.create_stream(T0)
    peer.play(sid, requested=T0, accepted=T0)
    peer.pings()
    now = T0
    for _ in range(20):  # 100 s: ten times the idle timeout
        assert peer.server.next_deadline() == now + 4.0
        assert peer.timer(now + 4.0) == []
        (stamp,) = peer.pings()
        assert stamp == round((now + 4.0 - T0) * 1000)  # ms on the connection's clock
        now += 5.0
        assert peer.answer(stamp, now) == [ev.PingAnswered(stamp)]
    assert peer.server.state is ConnectionState.CONNECTED


def test_a_client_that_answered_once_must_answer_the_next_ping_within_ping_timeout() -> None:
    peer = Peer(idle_timeout=30.0, ping_interval=4.0, ping_timeout=2.0)
    peer.connect(T0)
    assert peer.timer(T0 + 4.0) == []
    (stamp,) = peer.pings()
    peer.answer(stamp, T0 + 4.5)
    assert peer.timer(T0 + 8.5) == []
    assert len(peer.pings()) == 1
    assert_fires(peer, T0 + 10.5, DeadlineKind.PING_ANSWER, 2.0)


def test_a_client_that_never_answers_pings_is_held_to_the_idle_deadline() -> None:
    """Some clients ignore PingRequest: they are pinged again every ping_interval and closed
    only when idle_timeout has passed without a byte."""
    peer = Peer(idle_timeout=10.0, ping_interval=4.0, ping_timeout=2.0)
    peer.connect(T0)
    assert peer.timer(T0 + 4.0) == []
    assert peer.timer(T0 + 8.0) == []
    assert len(peer.pings()) == 2
    assert_fires(peer, T0 + 10.0, DeadlineKind.IDLE, 10.0)


def test_bytes_received_postpone_the_ping() -> None:
    peer = Peer(idle_timeout=30.0, ping_interval=4.0, ping_timeout=2.0)
    peer.connect(T0)
    sid = peer.create_stream(T0 + 3.0)
    peer.publish(sid, requested=T0 + 3.0, accepted=T0 + 3.0)
    peer.media(sid, T0 + 6.0)
    assert peer.timer(T0 + 9.0) == []
    assert peer.pings() == []
    assert peer.server.next_deadline() == T0 + 10.0


# ---------------------------------------------------------------------------------- general


def test_a_deadline_fires_up_to_epsilon_early() -> None:
    """Clock rounding must never make a deadline miss the timer call meant for it."""
    peer = Peer(handshake_timeout=10.0, **QUIET)
    events = peer.timer(T0 + 10.0 - EPSILON / 2)
    assert events == [ev.DeadlinePassed(DeadlineKind.HANDSHAKE, 10.0)]


def test_nothing_is_due_after_close() -> None:
    peer = Peer(idle_timeout=30.0, ping_interval=4.0)
    peer.connect(T0, publish_or_play=20.0)
    peer.server.close()
    assert peer.server.next_deadline() is None
    assert peer.server.handle_timer(T0 + 1000.0) == []
    assert peer.server.data_to_send() == b""  # no ping either


def test_liveness_defaults_are_the_configuration_defaults() -> None:
    config = LimitsConfig()
    for limit in dataclasses.fields(LivenessLimits):
        assert getattr(LivenessLimits(), limit.name) == getattr(config, limit.name), limit.name
