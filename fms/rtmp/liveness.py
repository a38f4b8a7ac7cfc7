"""Liveness of a server connection: its deadlines, from timestamps, with time as an argument.

A public port meets clients that stall on purpose, so every connection is held to deadlines:

- the handshake within ``handshake_timeout`` of accept, and ``connect`` within
  ``connect_timeout`` of the handshake; bytes do not extend either (a client dribbling one byte
  a second would otherwise hold a slot for ever);
- a connected client must publish or play within the publish-or-play timeout of its
  application (0: none, for RPC-only applications); the clock runs from ``connect`` and again
  from the end of the client's last stream, and a publish or play being decided counts as one;
- a publisher must send media (or data) at least every ``publisher_timeout``, so a stuck
  encoder that still answers pings frees its stream name; trusted relay links are not judged;
- liveness is judged by bytes *received*, never by our writes: ``idle_timeout`` without a byte
  closes any connection, and a connected client silent for ``ping_interval`` is pinged, so a
  player that only watches stays alive by answering; once it has answered a ping, it must
  answer each later one within ``ping_timeout``.

:class:`Liveness` holds the timestamps those are derived from (seconds, any epoch: whatever
clock the layer above passes as ``now``) and lists the deadlines that apply in a
:class:`~fms.rtmp.states.ConnectionState`.
:meth:`~fms.rtmp.connection.ServerConnection.handle_timer` acts on them and
:meth:`~fms.rtmp.connection.ServerConnection.next_deadline` says when to look next, as aioquic's
connection does: no timers here, so every deadline is testable by passing times.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from fms.rtmp.states import ConnectionState

__all__ = ["EPSILON", "DeadlineKind", "Liveness", "LivenessLimits"]

EPSILON = 0.001
"""Deadlines may fire this early (seconds), so clock rounding never makes one miss its turn."""


class DeadlineKind(Enum):
    """What a deadline is about; the value is the word the server's log line uses."""

    HANDSHAKE = "handshake"
    CONNECT = "connect"
    PUBLISH_OR_PLAY = "publish or play"
    PUBLISHER = "publisher"
    PING = "ping"
    """Not a deadline that closes: when it passes, a PingRequest goes out."""
    PING_ANSWER = "ping answer"
    IDLE = "idle"

    @property
    def detail(self) -> str:
        """What passing it means, for a log line ("" when the name says it all)."""
        return _DETAILS.get(self, "")


_DETAILS = {
    DeadlineKind.IDLE: "nothing received",
    DeadlineKind.PUBLISH_OR_PLAY: "connected without publishing or playing",
    DeadlineKind.PUBLISHER: "no media received",
    DeadlineKind.PING_ANSWER: "no answer to a ping",
}


@dataclass(frozen=True, slots=True)
class LivenessLimits:
    """The connection-wide deadlines (seconds), defaults as in ``[limits]`` of the
    configuration. The publish-or-play timeout is per application: see
    :meth:`~fms.rtmp.connection.ServerConnection.set_publish_or_play_timeout`."""

    handshake_timeout: float = 10.0
    """From accept to the handshake done."""
    connect_timeout: float = 10.0
    """From the handshake done to ``connect`` received."""
    idle_timeout: float = 30.0
    """Without a byte received, in any state."""
    publisher_timeout: float = 10.0
    """Without media or data on a publishing stream."""
    ping_interval: float = 10.0
    """Silence after which a connected client is pinged (0: never; then no ping answers are
    awaited either)."""
    ping_timeout: float = 5.0
    """For a client that has answered a ping before, to answer the next one."""


class Liveness:
    """The timestamps one connection's deadlines are derived from, and which streams engage it.

    The connection moves the timestamps as bytes arrive; the layer above tells it which streams
    publish, play or are being decided. Engagement is settled at :meth:`update_engagement`
    (after each batch of events or decision), not on every change: a play requested and refused
    within one batch does not restart the publish-or-play clock.
    """

    def __init__(self, limits: LivenessLimits, now: float) -> None:
        self.limits = limits
        self.accepted_at = now
        self.handshake_at: float | None = None
        self.last_received = now
        """The last time bytes arrived (any bytes, also a ping answer)."""
        self.last_media = now
        """The last time media or data arrived on a publishing stream, or a publish started."""
        self.unengaged_since: float | None = None
        """Since when a connected client neither publishes, plays nor waits for a decision
        (None: it does, or it is not connected)."""
        self.ping_sent_at: float | None = None
        self.answers_pings = False
        self.publish_or_play_timeout = 0.0
        self.judge_publishers = True
        self.publishing: set[int] = set()
        self.playing: set[int] = set()
        self.deciding: set[int] = set()
        self._publish_started = False

    def publish_started(self) -> None:
        """A publish was accepted: its media clock starts at the next :meth:`update_engagement`
        (until then it counts from the last bytes received)."""
        self.last_media = self.last_received
        self._publish_started = True

    def update_engagement(self, state: ConnectionState, now: float) -> None:
        """Start the publish-or-play clock at ``now`` when a connected client has no stream
        publishing, playing or being decided (and stop it when it has one again); start the
        media clock of a publish accepted since the last call."""
        if self._publish_started:
            self._publish_started = False
            self.last_media = now
        if state is not ConnectionState.CONNECTED:
            return
        if self.publishing or self.playing or self.deciding:
            self.unengaged_since = None
        elif self.unengaged_since is None:
            self.unengaged_since = now

    def deadlines(self, state: ConnectionState) -> list[tuple[float, DeadlineKind]]:
        """(time, kind) of every deadline and action that applies in ``state``, earliest first
        (ties in the order of the kinds' names)."""
        limits = self.limits
        out = [(self.last_received + limits.idle_timeout, DeadlineKind.IDLE)]
        if state is ConnectionState.HANDSHAKE:
            out.append((self.accepted_at + limits.handshake_timeout, DeadlineKind.HANDSHAKE))
        elif state is ConnectionState.AWAITING_CONNECT:
            start = self.handshake_at if self.handshake_at is not None else self.accepted_at
            out.append((start + limits.connect_timeout, DeadlineKind.CONNECT))
        elif state is ConnectionState.CONNECTED:
            timeout = self.publish_or_play_timeout
            if timeout > 0 and self.unengaged_since is not None:
                out.append((self.unengaged_since + timeout, DeadlineKind.PUBLISH_OR_PLAY))
            if self.publishing and self.judge_publishers:
                out.append((self.last_media + limits.publisher_timeout, DeadlineKind.PUBLISHER))
            if limits.ping_interval > 0:
                sent = self.ping_sent_at
                quiet_since = self.last_received if sent is None else max(self.last_received, sent)
                out.append((quiet_since + limits.ping_interval, DeadlineKind.PING))
                if self.answers_pings and sent is not None and self.last_received < sent:
                    out.append((sent + limits.ping_timeout, DeadlineKind.PING_ANSWER))
        elif state is not ConnectionState.CONNECT_PENDING:
            return []  # closed: nothing is due any more
        out.sort(key=lambda deadline: (deadline[0], deadline[1].value))
        return out

    def limit(self, kind: DeadlineKind) -> float:
        """The length (seconds) of the deadline ``kind``."""
        limits = self.limits
        return {
            DeadlineKind.HANDSHAKE: limits.handshake_timeout,
            DeadlineKind.CONNECT: limits.connect_timeout,
            DeadlineKind.IDLE: limits.idle_timeout,
            DeadlineKind.PUBLISH_OR_PLAY: self.publish_or_play_timeout,
            DeadlineKind.PUBLISHER: limits.publisher_timeout,
            DeadlineKind.PING: limits.ping_interval,
            DeadlineKind.PING_ANSWER: limits.ping_timeout,
        }[kind]
