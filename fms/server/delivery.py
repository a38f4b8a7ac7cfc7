"""Delivery to players: a player's end of a stream, and the write that skips Twisted's buffer.

:class:`PlaySink` is what a :class:`~fms.live.stream.LiveStream` calls for one play on one
connection. :func:`write_through` is the only code of pyFMS that reads Twisted internals (see
its docstring; ``tests/test_delivery.py`` pins the behaviour of Twisted it relies on).
"""

from __future__ import annotations

import socket
from typing import Any, Protocol

from fms.counters import COUNTERS
from fms.live.stream import LiveStream, Player
from fms.log import Logger
from fms.rtmp.connection import ConnectionState, ServerConnection
from fms.rtmp.constants import UserControlEvent
from fms.rtmp.status import StatusCode, info

log = Logger(namespace="fms.server.delivery")


def write_through(transport: Any, sock: socket.socket | None, data: bytes) -> None:
    """Write ``data`` after whatever ``transport`` holds: straight to ``sock`` when the
    transport holds nothing, the rest (or everything) through ``transport.write``.

    The hot path of fan-out (one call per player per flush) and of command answers. Going
    through ``transport.write`` every time costs a buffer append, an epoll registration, a
    writable event dispatched through Twisted's logging context and an unregistration per
    player per flush: measured at about half of the server's CPU with 3,000 players
    (docs/performance.md). Twisted's ``FileDescriptor`` keeps unsent bytes in
    ``_tempDataBuffer`` (``_tempDataLen`` bytes) and ``dataBuffer`` from ``offset``: the socket
    is written directly only when both are empty, so bytes never overtake each other. ``sock``
    is None for transports that are not plain TCP (TLS, Unix sockets in tests): then the
    transport always writes.
    """
    if (
        sock is not None
        and not transport._tempDataLen
        and transport.offset >= len(transport.dataBuffer)
    ):
        try:
            sent = sock.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            sent = 0  # the transport meets the error on its own next read or write
        if sent == len(data):
            return
        data = data[sent:]
    transport.write(data)


def offer_through(
    transport: Any, sock: socket.socket | None, conn: ServerConnection, data: bytes, budget: int
) -> bool:
    """Write ``conn``'s queued bytes (statuses) and ``data`` after what ``transport`` holds,
    as :func:`write_through` does, if at most ``budget`` bytes are then held unsent; else write
    nothing and return False. One call for the fan-out's per-player checks and write: the
    chain of ``can_write``/``pending``/``write`` calls it replaces cost about as much Python
    time as the ``send()`` itself at 1,000 players (py-spy, docs/performance.md)."""
    if sock is not None:  # plain TCP: what buffered() reads, without its fallbacks
        held = len(transport.dataBuffer) - transport.offset + transport._tempDataLen
    else:
        held = buffered(transport)
    if held + len(data) > budget:
        return False
    pending = conn.data_to_send()
    if pending:
        transport.writeSequence([pending, data])
    elif held or sock is None:
        transport.write(data)
    else:
        try:
            sent = sock.send(data)
        except OSError:  # would block, interrupted, or an error the transport meets itself
            sent = 0
        if sent != len(data):
            transport.write(data[sent:])
    return True


def pause(
    conn: ServerConnection, stream_id: int, entry: tuple[LiveStream, Player] | None, paused: bool
) -> None:
    """``pause``/``pauseRaw``: stop delivery, or resume at the next keyframe (live has no
    past to resume from), and say so."""
    if entry is None:
        return
    stream, player = entry
    stream.set_paused(player, paused)
    code = StatusCode.PAUSE_NOTIFY if paused else StatusCode.UNPAUSE_NOTIFY
    conn.send_status(stream_id, info(code, subject=stream.name, details=stream.name))


def seek(conn: ServerConnection, stream_id: int, entry: tuple[LiveStream, Player] | None) -> None:
    """A live stream has one position: now. Seeking is answered as done (an error-level
    status would make FFmpeg abort) and the player resumes at the next keyframe."""
    if entry is None:
        conn.send_status(stream_id, info(StatusCode.SEEK_FAILED))
        return
    stream, player = entry
    stream.set_paused(player, True)
    stream.set_paused(player, False)
    conn.send_status(
        stream_id, info(StatusCode.SEEK_NOTIFY, subject=stream.name, details=stream.name)
    )


def buffered(transport: Any) -> int:
    """Bytes a transport holds that its socket has not taken: Twisted's ``FileDescriptor``
    keeps them in ``_tempDataBuffer`` (``_tempDataLen``) and in ``dataBuffer`` from ``offset``
    (the same private state :func:`write_through` reads). A wrapper such as TLS keeps almost
    nothing itself and hands its bytes to the TCP transport below, which is counted."""
    try:  # plain TCP, the fan-out hot path
        return int(len(transport.dataBuffer) - transport.offset + transport._tempDataLen)
    except AttributeError:
        pass
    total = 0
    for _ in range(4):
        data = getattr(transport, "dataBuffer", None)
        if isinstance(data, (bytes, bytearray, memoryview)):
            total += len(data) - getattr(transport, "offset", 0)
            total += getattr(transport, "_tempDataLen", 0)
            return total
        inner = getattr(transport, "transport", None)
        if inner is None or inner is transport:
            return total
        transport = inner
    return total


class PlayerConnection(Protocol):
    """What a :class:`PlaySink` needs of its connection (the RTMP protocol)."""

    peer: str
    app: str | None
    """The application it connected to (for log lines)."""
    write_paused: bool
    """True while the transport pushes back (its buffer is full)."""
    connection: ServerConnection | None

    def write_shared(self, data: bytes) -> None:
        """Write fan-out bytes after whatever the connection queued."""
        ...

    def offer_shared(self, data: bytes, budget: int) -> bool:
        """:meth:`write_shared` if at most ``budget`` bytes are then held unsent, else False."""
        ...

    def pending_bytes(self) -> int:
        """Bytes written to this connection that its socket has not taken yet."""
        ...

    def flush_output(self) -> None:
        """Write what the connection queued (statuses)."""
        ...

    def lose_play(self, stream_id: int) -> None:
        """Forget play ``stream_id`` and close the connection (unless it is closing)."""
        ...


class PlaySink:
    """A player's end of a :class:`~fms.live.stream.LiveStream`: one play on one connection.

    Every method is called from a stream's fan-out, for many players in a row: an exception
    here closes this one player (logged with its traceback once) and never reaches the stream.
    """

    __slots__ = ("name", "proto", "stream_id")

    def __init__(self, proto: PlayerConnection, stream_id: int, name: str) -> None:
        self.proto = proto
        self.stream_id = stream_id
        self.name = name

    def _failed(self, what: str) -> None:
        log.failure(
            "closing player {peer} of {stream}: internal error while {what}",
            peer=self.proto.peer, app=self.proto.app, stream=self.name, what=what,
        )  # fmt: skip
        self.proto.lose_play(self.stream_id)

    def write(self, data: bytes) -> None:
        try:
            self.proto.write_shared(data)
        except Exception:
            self._failed("writing to it")

    def can_write(self) -> bool:
        return not self.proto.write_paused

    def offer(self, data: bytes, budget: int) -> bool:
        """All of ``data`` now, if the connection takes writes and then holds at most
        ``budget`` bytes unsent (:attr:`fms.live.log.Player.offer`)."""
        proto = self.proto
        if proto.write_paused:
            return False
        try:
            return proto.offer_shared(data, budget)
        except Exception:
            self._failed("writing to it")
            return True

    def pending(self) -> int:
        return self.proto.pending_bytes()

    def close(self, reason: str) -> None:
        COUNTERS.add("slow_player_closes")  # the stream drops players that fall behind
        log.info(
            "closing player {peer} of {stream}: {reason}",
            peer=self.proto.peer,
            app=self.proto.app,
            stream=self.name,
            reason=reason,
        )
        self.proto.lose_play(self.stream_id)

    def publish_started(self) -> None:
        try:
            conn = self.proto.connection
            if conn is not None and conn.state is ConnectionState.CONNECTED:
                conn.send_user_control(UserControlEvent.STREAM_BEGIN, self.stream_id)
                conn.send_status(
                    self.stream_id,
                    info(StatusCode.PLAY_PUBLISH_NOTIFY, subject=self.name, details=self.name),
                )
                self.proto.flush_output()
        except Exception:
            self._failed("telling it the stream started")

    def publish_stopped(self) -> None:
        try:
            conn = self.proto.connection
            if conn is not None:
                conn.stop_play(self.stream_id, self.name)
                self.proto.flush_output()
        except Exception:
            self._failed("telling it the stream stopped")
