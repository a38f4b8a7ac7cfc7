"""Arbitrary command sequences against the whole server side, in memory: two clients of one
factory (a live app and a chat room) send any mix of commands with any AMF arguments, media,
control messages, time passing and disconnects.

What must hold: nothing escapes the adapter, nothing is logged as an internal error (a
traceback), and once every client has gone, no connection, stream, deadline, admission count or
timer is left behind.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.logger import LogEvent, LogLevel, globalLogPublisher

from fms.config import parse_config
from fms.rtmp.constants import UserControlEvent
from fms.rtmp.messages import (
    Command,
    Data,
    Media,
    SetChunkSize,
    UserControl,
    WindowAcknowledgementSize,
)
from fms.server.factory import RTMPServerFactory
from tests.amf.strategies import amf0_values
from tests.support.server_peer import Peer

CONFIG = """
[limits]
publish_or_play_timeout = 5.0
idle_timeout = 20.0
ping_interval = 2.0
ping_timeout = 1.0
publisher_timeout = 3.0
[streams]
flush_interval = 0
[apps.chat]
publish_or_play_timeout = 0
[[apps.chat.plugins]]
use = "chat"
"""

COMMAND_NAMES = [
    "connect", "createStream", "publish", "play", "play2", "deleteStream", "closeStream",
    "pause", "seek", "receiveAudio", "receiveVideo", "FCPublish", "FCUnpublish",
    "releaseStream", "FCSubscribe", "_checkbw", "getStreamLength", "_result", "_error",
    "join", "say", "who", "onStatus", "whatever",
]  # fmt: skip

names = st.sampled_from(["cam", "cam?key=1", "room/cam", "../x", "", "a\x00b", "n" * 300])
arguments = st.one_of(names, amf0_values(max_leaves=4, switches=False))

commands = st.builds(
    lambda name, tid, obj, args, sid: ("command", Command(name, tid, obj, tuple(args), sid)),
    st.sampled_from(COMMAND_NAMES),
    st.sampled_from([0.0, 1.0, 2.0, 3.0, 7.5, 1e9]),
    st.one_of(st.none(), st.fixed_dictionaries({"app": st.sampled_from(["live", "chat", ""])})),
    st.lists(arguments, max_size=4),
    st.integers(0, 3),
)
media = st.builds(
    lambda type_id, ts, sid, payload: ("send", Media(type_id, ts, sid, payload)),
    st.sampled_from([8, 9]),
    st.integers(0, 2**32 - 1),
    st.integers(0, 3),
    st.one_of(
        st.binary(max_size=40),
        st.sampled_from([b"\x17\x00\x00\x00\x00\x01", b"\x17\x01\x00\x00\x00ab", b"\xaf\x00\x12"]),
    ),
)
data = st.builds(
    lambda values, sid: ("send", Data(tuple(values), sid)),
    st.lists(st.one_of(st.sampled_from(["@setDataFrame", "onMetaData"]), arguments), max_size=3),
    st.integers(0, 3),
)
control = st.one_of(
    st.builds(lambda size: ("send", SetChunkSize(size)), st.sampled_from([128, 4096, 65536])),
    st.builds(lambda size: ("send", WindowAcknowledgementSize(size)), st.integers(0, 2**31)),
    st.builds(
        lambda event, value: ("send", UserControl(event, value)),
        st.sampled_from(
            [
                UserControlEvent.PING_RESPONSE,
                UserControlEvent.PING_REQUEST,
                UserControlEvent.SET_BUFFER_LENGTH,
            ]
        ),
        st.integers(0, 2**32 - 1),
    ),
)
create = st.just(("command", Command("createStream", 4.0, None, ())))
publish = st.builds(
    lambda name, sid: ("command", Command("publish", 5.0, None, (name, "live"), sid)),
    st.sampled_from(["cam", "room/cam", "other"]),
    st.integers(1, 2),
)
play = st.builds(
    lambda name, sid: ("command", Command("play", 6.0, None, (name, -2.0), sid)),
    st.sampled_from(["cam", "room/cam", "other"]),
    st.integers(1, 2),
)
frames = st.builds(
    lambda ts, sid, key: ("send", Media(9, ts, sid, (b"\x17" if key else b"\x27") + b"\x01xyz")),
    st.integers(0, 10_000),
    st.integers(1, 2),
    st.booleans(),
)
steps = st.lists(
    st.tuples(
        st.integers(0, 1),
        st.one_of(
            create,
            publish,
            play,
            frames,
            commands,
            media,
            data,
            control,
            st.builds(lambda s: ("advance", s), st.sampled_from([0.01, 0.5, 1.5, 4.0, 25.0])),
            st.just(("lose", None)),
            st.just(("reconnect", None)),
        ),
    ),
    max_size=40,
)


class Side(Peer):
    """One client: a :class:`Peer` driven by :meth:`feed` only, which stops at the first close
    as a real client would."""

    def __init__(self, factory: RTMPServerFactory, port: int, app: str) -> None:
        super().__init__(factory, port, host="192.0.2.5")
        self.lost = False
        self.feed(self.client.hello())
        self.feed(self.client.connect(app))
        for tid in (2.0, 3.0):  # streams 1 and 2, so that short scripts reach publish and play
            self.feed(self.client.send(Command("createStream", tid, None, ())))

    def feed(self, data: bytes) -> None:
        """Send ``data``; read what the server answered (it must decode); send the handshake's
        C2 when due; and lose the connection once the server closed it, as Twisted would."""
        if self.lost:
            return
        self.proto.dataReceived(data)
        answer = self.transport.value()
        self.transport.clear()
        reply = self.client.receive(answer)
        if reply and not self.transport.disconnecting:
            self.feed(reply)
        if self.transport.disconnecting:
            self.lose()

    def lose(self) -> None:
        if not self.lost:
            self.lost = True
            self.proto.connectionLost(None)


@pytest.fixture
def failures() -> Iterator[list[str]]:
    found: list[str] = []

    def observer(event: LogEvent) -> None:
        if event.get("log_failure") is not None or event.get("log_level") == LogLevel.critical:
            failure = event.get("log_failure")
            found.append(failure.getTraceback() if failure is not None else str(event))

    globalLogPublisher.addObserver(observer)
    yield found
    globalLogPublisher.removeObserver(observer)


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(script=steps)
def test_arbitrary_command_sequences_never_break_the_server(
    failures: list[str], script: list[tuple[int, tuple[str, Any]]]
) -> None:
    failures.clear()  # the fixture is shared by every example: start each one empty
    published, played = [0], [0]

    def count(log_event: LogEvent) -> None:
        text = log_event.get("log_format", "")
        published[0] += text.startswith("publish started")
        played[0] += text.startswith("play {app}")

    globalLogPublisher.addObserver(count)
    clock = Clock()
    factory = RTMPServerFactory(parse_config(CONFIG), clock=clock)  # type: ignore[arg-type]
    ports = iter(range(1000, 2000))
    sides = [Side(factory, next(ports), "live"), Side(factory, next(ports), "chat")]
    for index, (kind, value) in script:
        side = sides[index]
        if kind == "command":
            side.feed(side.client.send(value))
        elif kind == "send":
            side.feed(side.client.send(value))
        elif kind == "advance":
            clock.advance(value)
        elif kind == "lose":
            side.lose()
        elif kind == "reconnect":
            side.lose()
            sides[index] = Side(factory, next(ports), "chat" if index else "live")
        assert not failures, failures[0]
    event(f"publishes accepted: {min(published[0], 3)}")
    event(f"plays accepted: {min(played[0], 3)}")
    for side in sides:
        side.lose()
    assert not failures, failures[0]
    assert factory.connections == set()
    assert len(factory.registry) == 0
    assert len(factory.deadlines) == 0
    assert factory.connecting_from("192.0.2.5") == 0
    globalLogPublisher.removeObserver(count)
    clock.advance(60.0)  # decision timeouts of plugins that were still deciding
    assert clock.getDelayedCalls() == []
    assert not failures, failures[0]
