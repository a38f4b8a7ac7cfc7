"""Item 9: graceful shutdown on SIGTERM and configuration reload on SIGHUP, on the real
process with our own clients (and the recorder plugin writing a real FLV file)."""

from __future__ import annotations

import json
import signal
import socket
import time
from pathlib import Path

import pytest

from fms.amf import decode_values
from fms.rtmp.client import ClientEvent, MediaArrived, StatusReceived, StreamEnded
from tests.e2e.harness import ServerProcess
from tests.hostile.support import (
    AVC_HEADER,
    INTERFRAME,
    KEYFRAME,
    Client,
    GoodTraffic,
    measure,
    wait_for_log,
)
from tests.support.flv import read_tags

pytestmark = pytest.mark.hostile

EARLY = 0.05
"""Seconds the exit may come before the shutdown timeout, counted from just before SIGTERM."""

LATE = 5.0
"""Seconds it may come after (generous, for a loaded machine): the log line shows the timeout
fired, the lower bound that it was not early."""


def read_until_closed(client: Client, timeout: float = 10.0) -> list[ClientEvent]:
    deadline = time.monotonic() + timeout
    while client.read(max(deadline - time.monotonic(), 0.01)):
        assert time.monotonic() < deadline, "the server did not close the connection"
    return client.events


def codes(events: list[ClientEvent]) -> list[str]:
    return [e.code for e in events if isinstance(e, StatusReceived)]


def signal_and_wait_exit(server: ServerProcess, timeout: float) -> tuple[int, float]:
    """SIGTERM the server; return its exit status and the seconds from just before the
    signal to its exit (fails if it takes more than ``timeout``)."""
    start = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    status = server.process.wait(timeout)
    return status, time.monotonic() - start


def test_sigterm_tells_every_client_closes_the_recording_and_exits_in_time(
    tmp_path: Path,
) -> None:
    recordings = tmp_path / "recordings"
    config = tmp_path / "fms.toml"
    config.write_text(
        f'[[apps.rec.plugins]]\nuse = "recorder"\ndirectory = {json.dumps(str(recordings))}\n'
    )
    server = ServerProcess("--log-level", "info", config=config)
    try:
        publisher = Client(server.port).connect("rec")
        sid = publisher.publish("cam")
        player = Client(server.port).connect("rec")
        player.play("cam")
        waiting = Client(server.port).connect("rec")
        waiting.play("nobody")
        idle = Client(server.port).connect("chat")
        publisher.send_video(sid, 0, AVC_HEADER)
        for i in range(50):
            publisher.send_video(sid, i * 40, KEYFRAME if i % 25 == 0 else INTERFRAME)
        player.until(
            lambda e: isinstance(e, MediaArrived) and e.message.timestamp == 49 * 40, timeout=5
        )
        mark = len(server.lines)
        status, took = signal_and_wait_exit(server, 10.0)
        assert status == 0, server.log()
        server.stop()  # collects the rest of its log
        # Everyone closed when told to: the shutdown timeout (5 s) did not have to abort anyone.
        assert not any("shutdown timeout" in line for line in server.lines[mark:]), server.log()
    finally:
        server.stop()
    assert "NetStream.Unpublish.Success" in codes(read_until_closed(publisher))
    player_events = read_until_closed(player)
    assert codes(player_events)[-1] == "NetStream.Play.UnpublishNotify"
    assert any(isinstance(e, StreamEnded) for e in player_events)
    assert codes(read_until_closed(waiting))[-1] == "NetStream.Play.UnpublishNotify"
    assert codes(read_until_closed(idle))[-1] == "NetConnection.Connect.AppShutdown"
    (path,) = (recordings / "rec").glob("cam-*.flv")
    tags = read_tags(path)
    assert sum(1 for t in tags if t.type_id == 9) == 51
    name, meta, *_filler = decode_values(tags[0].data)  # the recorder pads its onMetaData
    assert name == "onMetaData" and meta["indexed"] is True
    assert meta["duration"] == pytest.approx(2.0)
    assert meta["filesize"] == path.stat().st_size
    measure(f"SIGTERM with 4 clients and a recording: exited (status 0) after {took:.2f} s")


def test_sigterm_with_a_player_that_stopped_reading_exits_within_the_shutdown_timeout(
    tmp_path: Path,
) -> None:
    config = tmp_path / "fms.toml"
    config.write_text("[server]\nshutdown_timeout = 1.0\n")
    server = ServerProcess("--log-level", "info", config=config)
    try:
        stalled = Client(server.port)
        stalled.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.connect()
        stalled.play("cam")
        reader = Client(server.port).connect()
        reader.play("cam")
        publisher = Client(server.port).connect()
        sid = publisher.publish("cam")
        big = b"\x17\x01\x00\x00\x00" + b"B" * 200_000
        for i in range(60):  # 12 MB that the stalled player never reads
            publisher.send_video(sid, i * 40, big)
            reader.read(0.0)
        last = 59 * 40  # once the reader has it, the server wrote it to the stalled one too
        reader.until(lambda e: isinstance(e, MediaArrived) and e.message.timestamp == last)
        mark = len(server.lines)
        status, took = signal_and_wait_exit(server, 1.0 + LATE)
        assert status == 0
        assert took >= 1.0 - EARLY  # it waited for the stalled player as long as it was told
        wait_for_log(server, r"did not close within the shutdown timeout: aborted", mark)
        measure(
            f"SIGTERM with a player that stopped reading (timeout 1 s): exited after {took:.2f} s"
        )
    finally:
        server.stop()


def test_sighup_reloads_without_dropping_streams_and_keeps_the_config_when_broken(
    tmp_path: Path,
) -> None:
    config = tmp_path / "fms.toml"
    config.write_text("[apps.live]\n")
    server = ServerProcess("--log-level", "info", config=config)
    try:
        traffic = GoodTraffic(server.port, "before-reload")
        config.write_text(
            '[apps.live]\n[[apps.live.plugins]]\nuse = "streamkey"\nkeys = { b = "s3cret" }\n'
        )
        mark = len(server.lines)
        server.process.send_signal(signal.SIGHUP)
        wait_for_log(server, r"configuration reloaded from", mark)
        assert not publish_accepted(server.port, "c")
        assert publish_accepted(server.port, "b?key=s3cret")

        config.write_text("[limits]\nidle_timeout = 'x'\n")
        mark = len(server.lines)
        server.process.send_signal(signal.SIGHUP)
        wait_for_log(server, r"not reloaded \(1 problems\); keeping the running one", mark)
        wait_for_log(server, r"limits\.idle_timeout: expected float", mark)
        assert not publish_accepted(server.port, "c")  # the reloaded config still rules
        gap = traffic.stop()  # the stream from before both reloads never stopped
        measure(f"SIGHUP reloads: the stream from before went on, longest gap {gap * 1000:.0f} ms")
    finally:
        assert server.stop() == 0, server.log()


def publish_accepted(port: int, name: str) -> bool:
    client = Client(port).connect()
    sid = client.create_stream()
    client.conn.publish(sid, name)
    client.flush()
    event = client.until(
        lambda e: isinstance(e, StatusReceived) and e.code.startswith("NetStream.Publish.")
    )
    client.close()
    assert isinstance(event, StatusReceived)
    return event.code == "NetStream.Publish.Start"
