"""Each ``[limits]`` (and ``[streams] max_stream_name``) option, set in a configuration to a
value other than its default, holds at its boundary through the Twisted adapter.

The sans-IO layers test their limits with the limit objects they are given; these tests check
that the server builds those objects from the configuration and acts on a broken limit as
``conf/fms.toml`` and README.md say (close the connection with one log line naming the limit,
or refuse with a status, and nobody else notices). Each bound is exact: the limit itself is
accepted, one byte, entry or level more is not, so a limit that is dropped, loosened or left
at its default fails a test. Also: a stream deleted while a plugin decides its publish stays
deleted, and tight checks of the ping and decision deadlines.

In-memory transports and a fake clock: no sockets, no sleeps.
"""

from __future__ import annotations

import struct
from typing import Any

import pytest
from twisted.internet.defer import Deferred

from fms.apps.api import Plugin
from fms.apps.interfaces import IClientView
from fms.rtmp.constants import MessageType, UserControlEvent
from fms.rtmp.messages import Command, Media, SetChunkSize, UserControl, encode_message
from fms.server.factory import RTMPServerFactory
from tests.support.rtmp_peer import ScriptedClient
from tests.support.server_peer import Peer, clock_of, factory_for

KEYFRAME = b"\x17\x01\x00\x00\x00"
"""The start of an AVC keyframe; tests pad it to the size they need."""


# Raw chunk headers, to announce a message without sending it (limits are checked on the header).


def fmt0(csid: int, length: int, type_id: int, stream_id: int = 0) -> bytes:
    """A type-0 chunk header (timestamp 0) on chunk stream ``csid`` (3..63)."""
    return (
        bytes([csid])
        + (0).to_bytes(3, "big")
        + length.to_bytes(3, "big")
        + bytes([type_id])
        + struct.pack("<I", stream_id)
    )


def fmt3(csid: int) -> bytes:
    return bytes([0xC0 | csid])


def checkbw_of_size(size: int) -> bytes:
    """A ``_checkbw`` command (answered with ``_result``, transaction 7) whose AMF payload is
    exactly ``size`` bytes, padded with a string argument."""
    empty = len(encode_message(Command("_checkbw", 7.0, None, ("",))).payload)
    command = Command("_checkbw", 7.0, None, ("x" * (size - empty),))
    assert len(encode_message(command).payload) == size
    return ScriptedClient().send(command)


# ------------------------------------------------------------------------- max_command_message


def test_a_command_of_exactly_max_command_message_is_answered() -> None:
    peer = Peer(factory_for("[limits]\nmax_command_message = 2000\n")).connect()
    peer.send(checkbw_of_size(2000))
    assert peer.answers(7.0) == ["_result"] and not peer.closed


def test_a_command_one_byte_over_max_command_message_closes_on_its_header(
    logged: list[str],
) -> None:
    peer = Peer(factory_for("[limits]\nmax_command_message = 2000\n")).connect()
    peer.send(fmt0(3, 2001, MessageType.COMMAND_AMF0))  # no payload: the header is enough
    assert peer.closed_for(logged, "message too large: 2001 bytes > maximum 2000")


# ------------------------------------------------------- max_audio_message / max_video_message

MEDIA_LIMITS = (
    "[limits]\nmax_command_message = 2000\nmax_audio_message = 3000\n"
    "max_video_message = 5000\n[streams]\nflush_interval = 0\n"
)


@pytest.mark.parametrize(
    ("type_id", "size"), [(MessageType.VIDEO, 5000), (MessageType.AUDIO, 3000)]
)
def test_media_of_exactly_its_limit_reaches_a_player(type_id: int, size: int) -> None:
    factory = factory_for(MEDIA_LIMITS)
    publisher = Peer(factory, 1).connect().create_stream().publish()
    player = Peer(factory, 2).connect().create_stream().play()
    head = KEYFRAME if type_id == MessageType.VIDEO else b"\xaf\x01"
    publisher.send(publisher.client.send(Media(type_id, 0, 1, head.ljust(size, b"x"))))
    player.pump()
    assert [len(m.payload) for m in player.media()] == [size]
    assert not publisher.closed


@pytest.mark.parametrize(
    ("type_id", "size", "kind"),
    [(MessageType.VIDEO, 5001, "video"), (MessageType.AUDIO, 3001, "audio")],
)
def test_media_one_byte_over_its_limit_closes_the_publisher_on_its_header(
    logged: list[str], type_id: int, size: int, kind: str
) -> None:
    factory = factory_for(MEDIA_LIMITS)
    publisher = Peer(factory, 1).connect().create_stream().publish()
    publisher.send(fmt0(6, size, type_id, stream_id=1))
    assert publisher.closed_for(
        logged, f"{kind} message too large: {size} bytes > maximum {size - 1}"
    )


def test_before_a_publish_is_accepted_video_is_held_to_max_command_message(
    logged: list[str],
) -> None:
    peer = Peer(factory_for(MEDIA_LIMITS), 1).connect().create_stream()
    peer.send(fmt0(6, 2001, MessageType.VIDEO, stream_id=1))
    assert peer.closed_for(logged, "message too large: 2001 bytes > maximum 2000")


# --------------------------------------------------------------------------- max_chunk_size etc.


@pytest.mark.parametrize(
    ("size", "problem"),
    [
        (255, "chunk size 255 below the minimum 256"),
        (65537, "chunk size too large: 65537 bytes > maximum 65536"),
    ],
)
def test_a_set_chunk_size_outside_the_configured_range_closes(
    logged: list[str], size: int, problem: str
) -> None:
    peer = Peer(factory_for("[limits]\nmin_chunk_size = 256\nmax_chunk_size = 65536\n"))
    peer.handshake()
    peer.send(peer.client.send(SetChunkSize(size)))
    assert peer.closed_for(logged, problem)


@pytest.mark.parametrize("size", [256, 65536])
def test_a_set_chunk_size_at_either_end_of_the_configured_range_is_used(size: int) -> None:
    peer = Peer(factory_for("[limits]\nmin_chunk_size = 256\nmax_chunk_size = 65536\n"))
    peer.client = ScriptedClient(chunk_size=size)  # announces it with its first message
    peer.connect()
    assert peer.client.statuses() == ["NetConnection.Connect.Success"]
    assert not peer.closed


# ------------------------------------------------------------------- max_partial_chunk_streams


def partial_commands(csids: range) -> bytes:
    """One 200-byte command started (its first 128-byte chunk) on each chunk stream."""
    return b"".join(fmt0(csid, 200, MessageType.COMMAND_AMF0) + bytes(128) for csid in csids)


def test_max_partial_chunk_streams_partial_messages_are_held(logged: list[str]) -> None:
    peer = Peer(factory_for("[limits]\nmax_partial_chunk_streams = 4\n")).connect()
    peer.send(partial_commands(range(3, 7)))
    assert not peer.closed


def test_one_more_partial_chunk_stream_than_configured_closes(logged: list[str]) -> None:
    peer = Peer(factory_for("[limits]\nmax_partial_chunk_streams = 4\n")).connect()
    peer.send(partial_commands(range(3, 8)))
    assert peer.closed_for(logged, "too many chunk streams with a partial message: 5 > maximum 4")


# -------------------------------------------------------------------------- max_buffered_bytes


def partial_bytes(count: int) -> bytes:
    """``count`` payload bytes of a 20,000-byte command, in 128-byte chunks (the initial chunk
    size), none of it completing the message."""
    data = fmt0(3, 20_000, MessageType.COMMAND_AMF0)
    sent = 0
    while sent < count:
        if sent:
            data += fmt3(3)
        take = min(128, count - sent)
        data += bytes(take)
        sent += take
    return data


BUFFER_LIMITS = "[limits]\nmax_command_message = 100000\nmax_buffered_bytes = 10000\n"


def test_max_buffered_bytes_of_partial_messages_are_held() -> None:
    peer = Peer(factory_for(BUFFER_LIMITS)).connect()
    peer.send(partial_bytes(10_000))
    assert not peer.closed


def test_one_byte_of_partial_messages_over_max_buffered_bytes_closes(logged: list[str]) -> None:
    peer = Peer(factory_for(BUFFER_LIMITS)).connect()
    peer.send(partial_bytes(10_000))
    peer.send(b"\x00")  # the first byte of the next chunk's payload (79th chunk, 16 sent)
    assert peer.closed_for(
        logged, "too many bytes buffered for partial messages: 10001 > maximum 10000"
    )


# ---------------------------------------------------------------- amf_max_depth / _entries


def nested(depth: int) -> Any:
    """A value ``depth`` arrays deep."""
    value: Any = None
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("argument", "problem"),
    [
        (nested(5), "nesting deeper than max_depth=4"),
        ({f"k{i}": None for i in range(9)}, "more than max_entries=8 members"),
    ],
)
def test_a_command_past_the_configured_amf_limits_closes(
    logged: list[str], argument: Any, problem: str
) -> None:
    peer = Peer(factory_for("[limits]\namf_max_depth = 4\namf_max_entries = 8\n")).connect()
    peer.send(peer.client.command("_checkbw", 7.0, None, argument))
    assert peer.closed_for(logged, problem)


@pytest.mark.parametrize("argument", [nested(4), {f"k{i}": None for i in range(8)}])
def test_a_command_at_the_configured_amf_limits_is_answered(argument: Any) -> None:
    peer = Peer(factory_for("[limits]\namf_max_depth = 4\namf_max_entries = 8\n")).connect()
    peer.send(peer.client.command("_checkbw", 7.0, None, argument))
    assert peer.answers(7.0) == ["_result"] and not peer.closed


# ------------------------------------------------------------------ max_streams_per_connection


def test_create_stream_past_max_streams_per_connection_is_refused_and_the_connection_goes_on() -> (
    None
):
    peer = Peer(factory_for("[limits]\nmax_streams_per_connection = 2\n")).connect()
    for tid in (2.0, 3.0, 4.0):
        peer.send(peer.client.command("createStream", tid))
    assert [peer.answers(t) for t in (2.0, 3.0, 4.0)] == [["_result"], ["_result"], ["_error"]]
    error = next(c for c in peer.client.commands() if c.transaction_id == 4.0)
    assert "at most 2 streams per connection" in error.arguments[0]["description"]
    peer.send(peer.client.command("publish", 5.0, None, "cam", "live", stream_id=2))
    assert peer.client.statuses()[-1] == "NetStream.Publish.Start"


# ------------------------------------------------------------ max_app_name, max_tc_url, names


def connect_result(factory: RTMPServerFactory, **fields: Any) -> tuple[Peer, dict[str, Any]]:
    """Connect with ``fields`` in the command object; the info object of the answer."""
    peer = Peer(factory).connect(**fields)
    (answer,) = [c for c in peer.client.commands() if c.name in ("_result", "_error")]
    info = answer.arguments[0]
    assert isinstance(info, dict)
    return peer, info


APP_LIMITS = "[limits]\nmax_app_name = 16\nmax_tc_url = 64\n"


def test_an_app_name_of_exactly_max_app_name_bytes_connects() -> None:
    _, info = connect_result(factory_for(APP_LIMITS), app="é" * 8)  # 16 bytes in UTF-8
    assert info["code"] == "NetConnection.Connect.Success"


def test_an_app_name_one_byte_over_max_app_name_is_refused_as_invalid() -> None:
    peer, info = connect_result(factory_for(APP_LIMITS), app="é" * 8 + "x")
    assert info["code"] == "NetConnection.Connect.InvalidApp"
    assert "17 bytes long (at most 16)" in info["description"]
    assert peer.closed


def tc_url(size: int) -> str:
    url = "rtmp://192.0.2.80/live/"
    return url + "x" * (size - len(url))


def test_a_tc_url_of_exactly_max_tc_url_bytes_connects() -> None:
    _, info = connect_result(factory_for(APP_LIMITS), tcUrl=tc_url(64))
    assert info["code"] == "NetConnection.Connect.Success"


def test_a_tc_url_one_byte_over_max_tc_url_is_refused() -> None:
    peer, info = connect_result(factory_for(APP_LIMITS), tcUrl=tc_url(65))
    assert info["code"] == "NetConnection.Connect.Rejected"
    assert "the tcUrl is 65 bytes long (at most 64)" in info["description"]
    assert peer.closed


NAME_LIMIT = "[streams]\nmax_stream_name = 32\n"


@pytest.mark.parametrize(
    ("action", "refused"),
    [("publish", "NetStream.Publish.BadName"), ("play", "NetStream.Play.Failed")],
)
@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("n" * 33, "33 bytes long (at most 32)"),
        ("cam\x07", "control character U+0007"),
        ("cam\u200b", "control character U+200B"),
        ("live/../cam", "'..' segment"),
    ],
)
def test_a_stream_name_too_long_or_with_control_characters_or_dot_dot_is_refused(
    action: str, refused: str, name: str, problem: str
) -> None:
    peer = Peer(factory_for(NAME_LIMIT)).connect().create_stream()
    peer.send(peer.client.command(action, 3.0, None, name, stream_id=1))
    (info,) = [c.arguments[0] for c in peer.client.commands() if c.name == "onStatus"]
    assert info["code"] == refused and problem in info["description"]
    assert not peer.closed


@pytest.mark.parametrize(
    ("action", "accepted"),
    [("publish", "NetStream.Publish.Start"), ("play", "NetStream.Play.Start")],
)
def test_a_stream_name_of_exactly_max_stream_name_bytes_is_accepted(
    action: str, accepted: str
) -> None:
    peer = Peer(factory_for(NAME_LIMIT)).connect().create_stream()
    peer.send(peer.client.command(action, 3.0, None, "n" * 32, stream_id=1))
    assert peer.client.statuses()[-1] == accepted


# ------------------------------------------------- deleteStream while a publish is decided


class SlowPublish(Plugin):
    """Decides every publish when the test fires :attr:`gate`."""

    def __init__(self) -> None:
        self.gate: Deferred[None] = Deferred()

    def publish(self, client: IClientView, name: str, query: dict[str, str], kind: str) -> Any:
        return self.gate


def test_a_stream_deleted_while_its_publish_is_decided_stays_deleted() -> None:
    """The decision (an accept) arrives after deleteStream: no Publish.Start for a stream the
    client deleted, and the name is not held by it."""
    plugin = SlowPublish()
    factory = factory_for("[apps.live]\n")
    factory.chains["live"] = [plugin]
    peer = Peer(factory, 1).connect().create_stream().publish("cam")
    peer.send(peer.client.command("deleteStream", 4.0, None, 1.0))
    plugin.gate.callback(None)
    peer.pump()
    assert "NetStream.Publish.Start" not in peer.client.statuses()
    assert peer.proto.publishing == {} and factory.registry.get("live", "cam") is None
    assert peer.proto.connection is not None and 1 not in peer.proto.connection.streams
    assert not peer.closed
    factory.chains["live"] = []
    other = Peer(factory, 2).connect().create_stream().publish("cam")
    assert other.client.statuses()[-1] == "NetStream.Publish.Start"


# ------------------------------------------------------------- ping and decision deadlines


def test_a_silent_client_is_pinged_after_exactly_ping_interval() -> None:
    factory = factory_for("[limits]\nping_interval = 4.0\nidle_timeout = 600.0\n")
    clock = clock_of(factory)
    player = Peer(factory).connect().create_stream().play()
    clock.advance(3.99)
    player.pump()
    assert player.pings() == []
    clock.advance(0.02)
    player.pump()
    assert len(player.pings()) == 1


def test_ping_interval_zero_never_pings() -> None:
    factory = factory_for("[limits]\nping_interval = 0\nidle_timeout = 600.0\n")
    clock = clock_of(factory)
    player = Peer(factory).connect().create_stream().play()
    for _ in range(60):
        clock.advance(5.0)
    player.pump()
    assert player.pings() == [] and not player.closed


def test_a_client_that_answered_is_closed_exactly_ping_timeout_after_an_unanswered_ping(
    logged: list[str],
) -> None:
    factory = factory_for(
        "[limits]\nping_interval = 4.0\nping_timeout = 2.0\nidle_timeout = 600.0\n"
    )
    clock = clock_of(factory)
    player = Peer(factory).connect().create_stream().play()
    clock.advance(4.0)
    player.pump()
    (first,) = player.pings()
    player.send(player.client.send(UserControl(UserControlEvent.PING_RESPONSE, first)))
    clock.advance(4.0)  # 4 s of silence since the answer: the next ping, never answered
    player.pump()
    assert len(player.pings()) == 2
    clock.advance(1.99)
    assert not player.closed
    clock.advance(0.02)
    assert player.closed_for(logged, "ping answer deadline of 2s passed")


def test_a_plugin_that_does_not_decide_is_refused_at_decision_timeout_not_before() -> None:
    factory = factory_for("[apps.live]\ndecision_timeout = 3.0\n")
    factory.chains["live"] = [SlowPublish()]
    peer = Peer(factory).connect().create_stream().publish()
    clock_of(factory).advance(2.99)
    peer.pump()
    assert "NetStream.Publish.Start" not in peer.client.statuses()
    assert peer.client.statuses()[-1] == "NetConnection.Connect.Success"
    clock_of(factory).advance(0.02)
    peer.pump()
    assert peer.client.statuses()[-1] == "NetStream.Publish.Denied"
