"""Item 3: hostile AMF in commands, on a real socket: nesting, entry counts, lengths beyond
the bytes present, peer-chosen class names, non-finite numbers."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from fms.rtmp.chunks import RawMessage
from fms.rtmp.client import CallReceived, ResultReceived
from tests.hostile.conftest import HostileServer
from tests.hostile.support import (
    CLOSE_TIMEOUT,
    Client,
    closed_within,
    encoded,
    handshake,
    local_port,
    measure,
    open_socket,
    wait_for_log,
)

pytestmark = pytest.mark.hostile

COMMAND_AMF0 = 20


def string(text: str) -> bytes:
    raw = text.encode()
    return b"\x02" + struct.pack(">H", len(raw)) + raw


def number(value: float) -> bytes:
    return b"\x00" + struct.pack(">d", value)


def key(text: str) -> bytes:
    raw = text.encode()
    return struct.pack(">H", len(raw)) + raw


END = b"\x00\x00\x09"
CONNECT_OBJECT = (
    b"\x03" + key("app") + string("live") + key("tcUrl") + string("rtmp://h/live") + END
)


def command(payload: bytes, stream_id: int = 0) -> bytes:
    return encoded(RawMessage(COMMAND_AMF0, stream_id, 0, payload, 3))


def assert_closes(server: HostileServer, payload: bytes, reason: str) -> float:
    mark = server.mark()
    sock = open_socket(server.port)
    handshake(sock)
    sock.sendall(command(payload))
    took = closed_within(sock, CLOSE_TIMEOUT)
    wait_for_log(server.process, rf"closing 127\.0\.0\.1:{local_port(sock)}: .*{reason}", mark)
    return took


def test_nesting_deeper_than_the_limit_closes_the_connection(good: HostileServer) -> None:
    deep = (b"\x03" + key("a")) * 40 + b"\x05" + END * 40
    took = assert_closes(good, string("connect") + number(1.0) + deep, "depth")
    measure(f"AMF nesting 40 > 32: closed after {took * 1000:.0f} ms")


def test_more_entries_than_the_limit_closes_the_connection(good: HostileServer) -> None:
    wide = b"\x03" + b"".join(key(f"k{i}") + b"\x05" for i in range(1100)) + END
    assert_closes(good, string("connect") + number(1.0) + wide, "1024")


def test_a_string_longer_than_the_bytes_present_closes_the_connection(
    good: HostileServer,
) -> None:
    lying = b"\x02" + struct.pack(">H", 60_000) + b"abc"
    assert_closes(good, string("connect") + number(1.0) + lying, "AMF")


def test_a_long_string_longer_than_the_message_closes_the_connection(good: HostileServer) -> None:
    lying = b"\x0c" + struct.pack(">I", 0xFFFFFFF0) + b"abc"  # AMF0 long string
    assert_closes(good, string("connect") + number(1.0) + lying, "AMF")


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_a_non_finite_transaction_id_closes_the_connection(
    good: HostileServer, value: float
) -> None:
    assert_closes(
        good, string("connect") + number(value) + CONNECT_OBJECT, "non-finite transaction id"
    )


def test_a_peer_chosen_class_name_is_never_imported_nor_built(good: HostileServer) -> None:
    typed = b"\x10" + key("tests.hostile.canary.Canary") + key("x") + number(1.0) + END
    client = Client(good.port).connect()
    tid = client.conn.call("_checkbw", None)
    client.flush()
    client.until(lambda e: isinstance(e, ResultReceived) and e.transaction_id == tid)
    client.sock.sendall(command(string("whatever") + number(9.0) + b"\x05" + typed))
    client.sock.sendall(command(string("connect") + number(10.0) + typed))  # a second connect
    closed_within(client.sock, CLOSE_TIMEOUT)
    canary = Path(__import__("os").environ["FMS_HOSTILE_CANARY"])
    assert not canary.exists(), canary.read_text()


def test_a_non_finite_number_where_the_server_reads_one_is_taken_as_absent(
    good: HostileServer,
) -> None:
    client = Client(good.port).connect()
    sid = client.play("nan-start")
    client.sock.sendall(command(string("seek") + number(5.0) + b"\x05" + number(float("nan")), sid))
    client.sock.sendall(command(string("deleteStream") + number(6.0) + b"\x05" + number(1e308)))
    tid = client.conn.call("_checkbw", None)
    client.flush()
    client.until(lambda e: isinstance(e, ResultReceived) and e.transaction_id == tid)
    assert not any(isinstance(e, CallReceived) and e.name == "close" for e in client.events)
    client.close()
