"""Item 4: commands out of order, too many streams, and names that are too long, carry control
characters or play path tricks: refused with a clear status, or closed when the protocol
leaves no other answer."""

from __future__ import annotations

import pytest

from fms.rtmp.chunks import RawMessage
from fms.rtmp.client import ConnectRejected, ErrorReceived, StatusReceived, StreamCreated
from tests.hostile.conftest import HostileServer
from tests.hostile.support import (
    CLOSE_TIMEOUT,
    Client,
    closed_within,
    encoded,
    handshake,
    local_port,
    open_socket,
    wait_for_log,
)
from tests.hostile.test_amf import number, string

pytestmark = pytest.mark.hostile


def test_a_command_before_connect_closes_the_connection(good: HostileServer) -> None:
    mark = good.mark()
    sock = open_socket(good.port)
    handshake(sock)
    sock.sendall(encoded(RawMessage(20, 0, 0, string("createStream") + number(1.0) + b"\x05", 3)))
    assert closed_within(sock, CLOSE_TIMEOUT) < CLOSE_TIMEOUT
    line = wait_for_log(good.process, rf"{local_port(sock)}: .*'createStream' before connect", mark)
    assert "'createStream' before connect" in line


def test_streams_past_the_limit_are_refused_and_the_connection_goes_on(
    good: HostileServer,
) -> None:
    client = Client(good.port).connect()
    for _ in range(17):
        client.conn.create_stream()
    client.flush()
    client.until(lambda e: isinstance(e, ErrorReceived))
    created = [e for e in client.events if isinstance(e, StreamCreated)]
    errors = [e for e in client.events if isinstance(e, ErrorReceived)]
    assert len(created) == 16 and len(errors) == 1
    assert "at most 16 streams" in errors[0].info["description"]
    client.conn.publish(created[0].stream_id, "sixteen")
    client.flush()
    client.status("NetStream.Publish.Start")
    client.close()


def rejected(server: HostileServer, app: str, tc_url: str) -> ConnectRejected:
    client = Client(server.port)
    client.conn.connect(app, tc_url)
    event = client.until(lambda e: isinstance(e, ConnectRejected))
    assert isinstance(event, ConnectRejected)
    closed_within(client.sock, CLOSE_TIMEOUT)
    return event


@pytest.mark.parametrize(
    ("app", "code", "reason"),
    [
        ("a" * 129, "NetConnection.Connect.InvalidApp", "at most 128"),
        ("live\x07", "NetConnection.Connect.InvalidApp", "control character U+0007"),
        ("live/../etc", "NetConnection.Connect.InvalidApp", "'..' segment"),
    ],
)
def test_a_bad_app_is_refused_with_a_status(
    good: HostileServer, app: str, code: str, reason: str
) -> None:
    event = rejected(good, app, "rtmp://127.0.0.1/live")
    assert event.code == code and reason in event.description


def test_a_long_tc_url_is_refused_with_a_status(good: HostileServer) -> None:
    event = rejected(good, "live", "rtmp://127.0.0.1/live/" + "x" * 500)
    assert event.code == "NetConnection.Connect.Rejected"
    assert "at most 512" in event.description


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("n" * 257, "at most 256"),
        ("cam\x00", "control character U+0000"),
        ("cam\u202e", "control character U+202E"),
        ("../../etc/passwd", "'..' segment"),
        ("a\\b", "backslash"),
        ("a//b", "empty path segment"),
    ],
)
@pytest.mark.parametrize("action", ["publish", "play"])
def test_a_bad_stream_name_is_refused_with_a_status(
    good: HostileServer, name: str, reason: str, action: str
) -> None:
    client = Client(good.port).connect()
    sid = client.create_stream()
    getattr(client.conn, action)(sid, name)
    client.flush()
    code = "NetStream.Publish.BadName" if action == "publish" else "NetStream.Play.Failed"
    event = client.status(code)
    assert isinstance(event, StatusReceived) and reason in event.description
    client.conn.call("_checkbw", None)  # the connection goes on
    client.flush()
    assert client.read(0.2)
    client.close()
