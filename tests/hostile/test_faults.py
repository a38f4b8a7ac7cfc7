"""Item 7: a plugin that raises, or never answers, costs only the client it was deciding for:
one log line with the traceback, a clear refusal, and everyone else goes on."""

from __future__ import annotations

import pytest

from fms.rtmp.client import ConnectRejected, ErrorReceived, MediaArrived
from tests.hostile.conftest import HostileServer
from tests.hostile.support import (
    AVC_HEADER,
    CLOSE_TIMEOUT,
    INTERFRAME,
    KEYFRAME,
    Client,
    closed_within,
    count_log,
    wait_for_log,
)

pytestmark = pytest.mark.hostile


def connect_refused(server: HostileServer, query: str) -> ConnectRejected:
    client = Client(server.port)
    client.conn.connect("faulty", f"rtmp://127.0.0.1/faulty?{query}")
    event = client.until(lambda e: isinstance(e, ConnectRejected), timeout=CLOSE_TIMEOUT)
    assert isinstance(event, ConnectRejected)
    closed_within(client.sock, CLOSE_TIMEOUT)
    return event


def test_a_plugin_raising_in_connect_refuses_that_client_with_one_traceback(
    good: HostileServer,
) -> None:
    mark = good.mark()
    event = connect_refused(good, "boom")
    assert event.code == "NetConnection.Connect.Rejected"
    wait_for_log(good.process, r"RuntimeError: faulty plugin: connect", mark)
    assert count_log(good.process, r"RuntimeError: faulty plugin: connect", mark) == 1


def test_a_plugin_that_never_decides_refuses_that_client_after_the_decision_timeout(
    good: HostileServer,
) -> None:
    mark = good.mark()
    event = connect_refused(good, "hang")
    assert "did not decide in time" in event.description
    wait_for_log(good.process, r"Faulty did not decide connect .* within 1.0s", mark)


@pytest.mark.parametrize(
    ("action", "code"),
    [("publish", "NetStream.Publish.Denied"), ("play", "NetStream.Play.Failed")],
)
def test_a_plugin_raising_in_publish_or_play_refuses_that_stream(
    good: HostileServer, action: str, code: str
) -> None:
    mark = good.mark()
    client = Client(good.port).connect("faulty")
    sid = client.create_stream()
    getattr(client.conn, action)(sid, "boom")
    client.flush()
    client.status(code)
    wait_for_log(good.process, rf"RuntimeError: faulty plugin: {action}", mark)
    assert count_log(good.process, rf"RuntimeError: faulty plugin: {action}", mark) == 1
    getattr(client.conn, action)(sid, "fine")  # the same connection goes on
    client.flush()
    client.status("NetStream.Publish.Start" if action == "publish" else "NetStream.Play.Start")
    client.close()


def test_a_plugin_raising_in_a_call_answers_error_and_the_connection_goes_on(
    good: HostileServer,
) -> None:
    mark = good.mark()
    client = Client(good.port).connect("faulty")
    tid = client.conn.call("boom")
    client.flush()
    event = client.until(lambda e: isinstance(e, ErrorReceived) and e.transaction_id == tid)
    assert isinstance(event, ErrorReceived) and event.code == "NetConnection.Call.Failed"
    wait_for_log(good.process, r"RuntimeError: faulty plugin: call", mark)
    assert count_log(good.process, r"RuntimeError: faulty plugin: call", mark) == 1
    client.play("after-boom")
    client.close()


def test_a_plugin_raising_on_every_frame_is_logged_once_and_the_stream_flows(
    good: HostileServer,
) -> None:
    mark = good.mark()
    player = Client(good.port).connect("faulty")
    player.play("boom-media")
    publisher = Client(good.port).connect("faulty")
    sid = publisher.publish("boom-media")
    publisher.send_video(sid, 0, AVC_HEADER)
    for i in range(50):
        publisher.send_video(sid, i * 40, KEYFRAME if i % 25 == 0 else INTERFRAME)
    got: list[MediaArrived] = []

    def all_frames(event: object) -> bool:
        if isinstance(event, MediaArrived):
            got.append(event)
        return len(got) >= 51

    player.until(all_frames)
    wait_for_log(good.process, r"Faulty failed in media for faulty/boom-media", mark)
    wait_for_log(good.process, r"RuntimeError: faulty plugin: media", mark)
    assert count_log(good.process, r"RuntimeError: faulty plugin: media", mark) == 1
    player.close()
    publisher.close()
