"""Item 1: deadlines that bytes do not extend, and liveness judged by bytes received.

The suite's server: handshake 1 s, connect 1 s, publish-or-play 1.5 s, idle 2 s, publisher
1 s, pings every 0.5 s of silence with 0.5 s to answer (see conftest.py).
"""

from __future__ import annotations

import time

import pytest

from fms.rtmp.client import CallReceived, StatusReceived
from fms.rtmp.handshake import ClientHandshake
from tests.hostile.conftest import HostileServer
from tests.hostile.support import (
    AVC_HEADER,
    KEYFRAME,
    Client,
    closed_within,
    local_port,
    measure,
    open_socket,
    still_open,
    wait_for_log,
)

pytestmark = pytest.mark.hostile

EARLY = 0.05
"""Seconds a close may come before its deadline, counted from a time the test took before the
server's own start of that deadline (the server fires deadlines at most 1 ms early)."""

LATE = 3.0
"""Seconds a close may come after its deadline: generous, for a loaded 2-core machine. That it
fired is shown by the close and its log line; that it was not early, by the lower bound."""


def test_a_silent_socket_is_closed_at_the_handshake_deadline(good: HostileServer) -> None:
    mark = good.mark()
    start = time.monotonic()  # before the connect: the server's deadline runs from its accept
    sock = open_socket(good.port)
    took = closed_within(sock, 1.0 + LATE, since=start)
    assert took >= 1.0 - EARLY
    wait_for_log(
        good.process, rf"closing 127\.0\.0\.1:{local_port(sock)}: handshake deadline", mark
    )
    measure(f"handshake deadline 1.0 s: closed after {took:.2f} s")


def test_a_handshake_dribbled_a_byte_at_a_time_does_not_extend_the_deadline(
    good: HostileServer,
) -> None:
    mark = good.mark()
    start = time.monotonic()
    sock = open_socket(good.port)
    client = ClientHandshake(digest=False)
    client.initiate()
    hello = client.data_to_send()
    took = None
    for byte in hello:  # 1,537 bytes, one every 50 ms: 77 s if each byte extended the deadline
        try:
            sock.sendall(bytes((byte,)))
        except (ConnectionResetError, BrokenPipeError):
            took = time.monotonic() - start
            break
        if not still_open(sock, 0.05):
            took = time.monotonic() - start
            break
    if took is None:
        took = closed_within(sock, 1.0 + LATE, since=start)
    assert 1.0 - EARLY <= took <= 1.0 + LATE
    wait_for_log(
        good.process, rf"closing 127\.0\.0\.1:{local_port(sock)}: handshake deadline", mark
    )
    measure(f"handshake deadline, one byte every 50 ms: closed after {took:.2f} s")


def test_no_connect_after_the_handshake_is_closed_at_the_connect_deadline(
    good: HostileServer,
) -> None:
    mark = good.mark()
    sock = open_socket(good.port)
    client = ClientHandshake(digest=False)
    client.initiate()
    sock.sendall(client.data_to_send())
    while not client.done:
        data = sock.recv(65536)
        assert data, "the server closed during the handshake"
        client.receive_data(data)
    start = time.monotonic()  # before C2: the server's deadline runs from its receipt
    sock.sendall(client.data_to_send())
    took = closed_within(sock, 1.0 + LATE, since=start)
    assert took >= 1.0 - EARLY
    wait_for_log(good.process, rf"closing 127\.0\.0\.1:{local_port(sock)}: connect deadline", mark)
    measure(f"connect deadline 1.0 s: closed after {took:.2f} s")


def test_a_client_that_neither_publishes_nor_plays_is_closed_though_it_keeps_talking(
    good: HostileServer,
) -> None:
    mark = good.mark()
    client = Client(good.port)
    start = time.monotonic()  # before its connect: the deadline runs from the server's answer
    client.connect()
    took = None
    while took is None and time.monotonic() - start < 1.5 + LATE:
        client.conn.call("_checkbw")  # bytes received: they keep it alive, not engaged
        try:
            client.flush()
        except (ConnectionResetError, BrokenPipeError):
            took = time.monotonic() - start  # the server closed it in the meantime
            break
        if not client.read(0.2):
            took = time.monotonic() - start
    assert took is not None, "the server kept the connection open"
    assert took >= 1.5 - EARLY
    wait_for_log(good.process, rf"127\.0\.0\.1:{client.port}: publish or play deadline", mark)
    measure(f"publish-or-play deadline 1.5 s: closed after {took:.2f} s")


def test_a_chat_client_is_exempt_from_the_publish_or_play_deadline(good: HostileServer) -> None:
    client = Client(good.port).connect("chat")
    client.conn.call("join", "alice")
    client.flush()
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline:  # answering pings is all it does
        assert client.read(0.2), "the chat client was closed"
    client.conn.call("say", "still here")
    client.until(lambda e: isinstance(e, CallReceived) and e.name == "onMessage")
    client.close()


def test_a_publisher_that_goes_silent_is_closed_and_its_name_freed(good: HostileServer) -> None:
    mark = good.mark()
    client = Client(good.port).connect()
    sid = client.publish("silent")
    client.send_video(sid, 0, AVC_HEADER)
    start = time.monotonic()  # before its last media: the deadline runs from the server's receipt
    client.send_video(sid, 0, KEYFRAME)
    took = None
    while took is None and time.monotonic() - start < 1.0 + LATE:  # it answers pings, no media
        if not client.read(0.2):
            took = time.monotonic() - start
    assert took is not None, "the server kept the silent publisher"
    assert took >= 1.0 - EARLY
    wait_for_log(good.process, rf"127\.0\.0\.1:{client.port}: publisher deadline", mark)
    again = Client(good.port).connect()
    again.publish("silent")  # the name is free for the encoder's reconnect
    again.close()
    measure(f"publisher deadline 1.0 s: closed after {took:.2f} s")


def test_a_player_that_stops_answering_pings_is_closed(good: HostileServer) -> None:
    mark = good.mark()
    client = Client(good.port).connect()
    client.play("nobody-publishes-this")
    # It answers for a while (the server learns that it answers pings)...
    answered = 0
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline or answered < 2:
        sent = client.last_sent
        assert client.read(0.1)
        answered += client.last_sent != sent
    # ...then stops, while still reading. The server heard it last after ``last_sent``: it
    # pings 0.5 s after that and closes 0.5 s after the ping.
    client.answering = False
    last_sent = client.last_sent
    took = closed_within(client.sock, 0.5 + 0.5 + LATE, since=last_sent)
    assert took >= 0.5 + 0.5 - EARLY
    wait_for_log(good.process, rf"127\.0\.0\.1:{client.port}: ping answer deadline", mark)
    measure(
        f"ping answer deadline 0.5 s (pings every 0.5 s): closed {took:.2f} s after the last answer"
    )


def test_a_player_that_never_answers_pings_is_held_to_the_idle_timeout(
    good: HostileServer,
) -> None:
    mark = good.mark()
    client = Client(good.port).connect()
    client.play("nobody-publishes-this-either")
    client.answering = False  # from now on it sends nothing at all
    took = closed_within(client.sock, 2.0 + LATE, since=client.last_sent)
    assert took >= 2.0 - EARLY
    wait_for_log(good.process, rf"127\.0\.0\.1:{client.port}: idle deadline", mark)
    measure(f"idle deadline 2.0 s (a client that never answers pings): closed after {took:.2f} s")


def test_a_player_that_answers_pings_watches_far_longer_than_the_idle_timeout(
    good: HostileServer,
) -> None:
    watcher = Client(good.port).connect()
    watcher.play("quiet")
    publisher = Client(good.port).connect()
    sid = publisher.publish("quiet")
    publisher.send_video(sid, 0, AVC_HEADER)
    start = time.monotonic()
    frames = 0
    while time.monotonic() - start < 5.0:  # 2.5 idle timeouts; two small frames a second
        publisher.send_video(sid, frames * 500, KEYFRAME)
        frames += 1
        end = time.monotonic() + 0.5
        while (left := end - time.monotonic()) > 0:
            assert watcher.read(left), "the watching player was closed"
            publisher.read(0.0)
    statuses = [e.code for e in watcher.events if isinstance(e, StatusReceived)]
    assert "NetStream.Play.UnpublishNotify" not in statuses
    watcher.close()
    publisher.close()
