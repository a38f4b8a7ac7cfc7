"""ServerConnection: the sans-IO server state machine, driven by a scripted client."""

from __future__ import annotations

import struct
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fms.errors import LocalProtocolError, RemoteProtocolError
from fms.rtmp import events as ev
from fms.rtmp.chunks import RawMessage
from fms.rtmp.connection import ConnectionLimits, ConnectionState, ServerConnection, StreamState
from fms.rtmp.constants import MessageType, UserControlEvent
from fms.rtmp.messages import (
    Acknowledgement,
    Data,
    Media,
    SetChunkSize,
    SetPeerBandwidth,
    UserControl,
    WindowAcknowledgementSize,
)
from fms.rtmp.status import StatusCode
from tests.support.rtmp_peer import ScriptedClient


def handshaken(**kwargs: Any) -> tuple[ServerConnection, ScriptedClient]:
    server = ServerConnection(**kwargs)
    client = ScriptedClient()
    events = server.receive_data(client.hello())
    assert events == []
    c2 = client.receive(server.data_to_send())
    events = server.receive_data(c2)
    assert events == [ev.HandshakeCompleted(digest=True)]
    assert server.state is ConnectionState.AWAITING_CONNECT
    return server, client


def exchange(server: ServerConnection, client: ScriptedClient, data: bytes) -> list[ev.Event]:
    events = server.receive_data(data)
    client.receive(server.data_to_send())
    return events


def connected(**kwargs: Any) -> tuple[ServerConnection, ScriptedClient]:
    server, client = handshaken(**kwargs)
    (event,) = exchange(server, client, client.connect())
    assert isinstance(event, ev.ConnectRequested)
    server.accept_connect(event)
    client.receive(server.data_to_send())
    return server, client


def with_stream(**kwargs: Any) -> tuple[ServerConnection, ScriptedClient, int]:
    server, client = connected(**kwargs)
    (event,) = exchange(server, client, client.command("createStream", 2.0))
    assert isinstance(event, ev.CreateStreamRequested)
    sid = server.accept_create_stream(event)
    assert sid is not None
    client.receive(server.data_to_send())
    return server, client, sid


def test_simple_handshake_client_is_reported_without_digest() -> None:
    server = ServerConnection()
    client = ScriptedClient(digest=False)
    server.receive_data(client.hello())
    c2 = client.receive(server.data_to_send())
    assert server.receive_data(c2) == [ev.HandshakeCompleted(digest=False)]


def test_connect_is_reported_with_app_tcurl_and_query() -> None:
    server, client = handshaken()
    data = client.connect("live/room1", tcUrl="rtmp://h/live/room1?token=abc")
    (event,) = server.receive_data(data)
    assert isinstance(event, ev.ConnectRequested)
    assert event.app == "live/room1"
    assert event.query == {"token": "abc"}
    assert event.object_encoding == 0
    assert event.flash_ver.startswith("FMLE/3.0")
    assert server.state is ConnectionState.CONNECT_PENDING


def test_accept_connect_sends_window_bandwidth_chunk_size_then_success() -> None:
    server, client = handshaken()
    (event,) = exchange(server, client, client.connect())
    server.accept_connect(event)
    client.receive(server.data_to_send())
    kinds = [type(m) for m in client.received]
    assert kinds[:3] == [WindowAcknowledgementSize, SetPeerBandwidth, SetChunkSize]
    (result,) = client.commands()
    assert result.name == "_result" and result.transaction_id == 1.0
    assert result.command_object["fmsVer"].startswith("FMS/")
    assert result.arguments[0]["code"] == "NetConnection.Connect.Success"
    assert result.arguments[0]["level"] == "status"
    assert result.arguments[0]["objectEncoding"] == 0
    assert server.state is ConnectionState.CONNECTED


def test_amf3_object_encoding_is_echoed_in_the_connect_result() -> None:
    server, client = handshaken()
    (event,) = exchange(server, client, client.connect(objectEncoding=3.0))
    assert isinstance(event, ev.ConnectRequested)
    assert event.object_encoding == 3
    server.accept_connect(event)
    client.receive(server.data_to_send())
    result = client.commands()[-1]
    assert result.amf3
    assert result.arguments[0]["objectEncoding"] == 3


def test_app_falls_back_to_the_tcurl_path() -> None:
    server, client = handshaken()
    data = client.command("connect", 1.0, {"tcUrl": "rtmp://h:1935/live/x"})
    (event,) = server.receive_data(data)
    assert isinstance(event, ev.ConnectRequested)
    assert event.app == "live/x"


def test_command_before_connect_is_a_protocol_error_and_the_state_stays_error() -> None:
    server, client = handshaken()
    with pytest.raises(RemoteProtocolError, match="before connect"):
        server.receive_data(client.command("createStream", 2.0))
    assert server.state is ConnectionState.ERROR
    with pytest.raises(LocalProtocolError):
        server.receive_data(b"\x00")


def test_second_connect_is_a_protocol_error() -> None:
    server, client = connected()
    with pytest.raises(RemoteProtocolError, match="second connect"):
        server.receive_data(client.connect(tid=5.0))


def test_commands_during_pending_connect_are_held_until_accepted() -> None:
    server, client = handshaken()
    data = client.connect() + client.command("releaseStream", 2.0, None, "cam")
    data += client.command("FCPublish", 3.0, None, "cam") + client.command("createStream", 4.0)
    events = server.receive_data(data)
    assert len(events) == 1 and isinstance(events[0], ev.ConnectRequested)
    server.accept_connect(events[0])
    held = server.receive_data(b"")
    assert [type(e) for e in held] == [ev.CallRequested, ev.CallRequested, ev.CreateStreamRequested]
    assert [e.name for e in held[:2] if isinstance(e, ev.CallRequested)] == [
        "releaseStream",
        "FCPublish",
    ]


def test_reject_connect_answers_error_with_the_reason_and_closes() -> None:
    server, client = handshaken()
    (event,) = exchange(server, client, client.connect())
    server.reject_connect(event, "no entry")
    client.receive(server.data_to_send())
    (error,) = client.commands()
    assert error.name == "_error"
    assert error.arguments[0]["code"] == "NetConnection.Connect.Rejected"
    assert error.arguments[0]["description"] == "no entry"
    assert error.arguments[0]["level"] == "error"
    assert server.state is ConnectionState.CLOSED


def test_redirect_carries_code_302_and_the_url() -> None:
    server, client = handshaken()
    (event,) = exchange(server, client, client.connect())
    server.reject_connect(event, "moved", redirect="rtmp://other/live")
    client.receive(server.data_to_send())
    info = client.commands()[0].arguments[0]
    assert info["ex"] == {"code": 302, "redirect": "rtmp://other/live"}


def test_create_stream_answers_a_new_stream_id() -> None:
    server, client, sid = with_stream()
    assert sid == 1
    result = client.commands()[-1]
    assert result.name == "_result" and result.transaction_id == 2.0
    assert result.arguments == (1.0,)
    assert server.streams == {1: StreamState.IDLE}


def test_create_stream_beyond_the_limit_is_refused_with_error() -> None:
    server, client = connected(limits=ConnectionLimits(max_streams=1))
    for tid in (2.0, 3.0):
        (event,) = exchange(server, client, client.command("createStream", tid))
        assert isinstance(event, ev.CreateStreamRequested)
        server.accept_create_stream(event)
        client.receive(server.data_to_send())
    last = client.commands()[-1]
    assert last.name == "_error" and last.transaction_id == 3.0
    assert len(server.streams) == 1


def test_publish_name_and_query_are_split() -> None:
    server, client, sid = with_stream()
    data = client.command("publish", 5.0, None, "key?token=s3cret&x=1", "live", stream_id=sid)
    (event,) = server.receive_data(data)
    assert isinstance(event, ev.PublishRequested)
    assert (event.name, event.query, event.publish_type) == (
        "key",
        {"token": "s3cret", "x": "1"},
        "live",
    )
    assert event.raw_name == "key?token=s3cret&x=1"


def test_media_before_publish_accepted_is_dropped_and_counted() -> None:
    server, client, sid = with_stream()
    (_publish,) = server.receive_data(client.command("publish", 5.0, None, "k", stream_id=sid))
    server.hold_publish(sid)
    media = client.send(Media(MessageType.VIDEO, 40, sid, b"\x17\x01frame"))
    assert server.receive_data(media) == []
    assert server.dropped_messages == 1


def test_media_after_publish_accepted_is_reported() -> None:
    server, client, sid = with_stream()
    server.receive_data(client.command("publish", 5.0, None, "k", stream_id=sid))
    server.accept_publish(sid, "k")
    client.receive(server.data_to_send())
    assert client.statuses()[-1] == "NetStream.Publish.Start"
    (event,) = server.receive_data(client.send(Media(MessageType.AUDIO, 20, sid, b"\xaf\x01x")))
    assert isinstance(event, ev.MediaReceived)
    assert event.message == Media(MessageType.AUDIO, 20, sid, b"\xaf\x01x")


def test_large_video_is_allowed_only_after_publish() -> None:
    server, client, sid = with_stream()
    big = client.send(Media(MessageType.VIDEO, 0, sid, b"\x17" * 100_000))
    with pytest.raises(RemoteProtocolError):
        server.receive_data(big)


def test_metadata_is_reported_as_data_on_a_publishing_stream() -> None:
    server, client, sid = with_stream()
    server.receive_data(client.command("publish", 5.0, None, "k", stream_id=sid))
    server.accept_publish(sid, "k")
    values = ("@setDataFrame", "onMetaData", {"width": 640.0})
    (event,) = server.receive_data(client.send(Data(values, sid)))
    assert isinstance(event, ev.DataReceived)
    assert event.message.values == values


def test_aggregate_is_split_into_media_events() -> None:
    server, client, sid = with_stream()
    server.receive_data(client.command("publish", 5.0, None, "k", stream_id=sid))
    server.accept_publish(sid, "k")
    body = b""
    for type_id, ts, payload in ((9, 0, b"\x17\x01a"), (8, 20, b"\xaf\x01b")):
        header = struct.pack(">B", type_id) + len(payload).to_bytes(3, "big")
        header += ts.to_bytes(3, "big") + b"\x00" + b"\x00\x00\x00"
        body += header + payload + struct.pack(">I", 11 + len(payload))
    data = client.encoder.encode(RawMessage(MessageType.AGGREGATE, sid, 1000, body, 6))
    events = server.receive_data(data)
    assert [type(e) for e in events] == [ev.MediaReceived, ev.MediaReceived]
    assert [e.message.timestamp for e in events if isinstance(e, ev.MediaReceived)] == [
        1000,
        1020,
    ]


def test_play_accept_sends_stream_begin_reset_start_and_sample_access() -> None:
    server, client, sid = with_stream()
    (event,) = server.receive_data(client.command("play", 5.0, None, "cam", -1000, stream_id=sid))
    assert isinstance(event, ev.PlayRequested) and event.name == "cam" and event.start == -1000
    server.accept_play(sid, "cam")
    client.receive(server.data_to_send())
    tail = client.received[-4:]
    assert tail[0] == UserControl(UserControlEvent.STREAM_BEGIN, sid)
    assert client.statuses()[-2:] == ["NetStream.Play.Reset", "NetStream.Play.Start"]
    data = [m.values for m in tail if isinstance(m, Data)]
    assert data == [("|RtmpSampleAccess", True, True)]


def test_stop_play_sends_unpublish_notify_and_stream_eof() -> None:
    server, client, sid = with_stream()
    server.receive_data(client.command("play", 5.0, None, "cam", stream_id=sid))
    server.accept_play(sid, "cam")
    server.stop_play(sid, "cam")
    client.receive(server.data_to_send())
    assert client.statuses()[-1] == str(StatusCode.PLAY_UNPUBLISH_NOTIFY)
    assert client.received[-1] == UserControl(UserControlEvent.STREAM_EOF, sid)


def test_ping_request_is_answered_with_the_same_timestamp() -> None:
    server, client = connected()
    exchange(server, client, client.send(UserControl(UserControlEvent.PING_REQUEST, 123456)))
    assert client.received[-1] == UserControl(UserControlEvent.PING_RESPONSE, 123456)


def test_ping_answer_is_reported() -> None:
    server, client = connected()
    stamp = server.ping(now=2.5)
    client.receive(server.data_to_send())
    assert client.received[-1] == UserControl(UserControlEvent.PING_REQUEST, stamp)
    reply = client.send(UserControl(UserControlEvent.PING_RESPONSE, stamp))
    assert server.receive_data(reply) == [ev.PingAnswered(stamp)]


def test_acknowledgement_is_sent_per_the_window_the_peer_announced() -> None:
    server, client = connected()
    exchange(server, client, client.send(WindowAcknowledgementSize(1000)))
    before = server.bytes_received
    acks: list[Acknowledgement] = []
    for _ in range(10):
        exchange(server, client, client.send(UserControl(UserControlEvent.PING_RESPONSE, 1)) * 40)
        acks = [m for m in client.received if isinstance(m, Acknowledgement)]
    assert server.bytes_received - before >= 2000
    assert len(acks) >= 2
    assert acks[-1].sequence_number <= server.bytes_received
    assert acks[-1].sequence_number >= server.bytes_received - 1000


def test_unknown_call_is_reported_for_the_application() -> None:
    server, client = connected()
    (event,) = server.receive_data(client.command("myMethod", 7.0, None, "arg", 2.0))
    assert isinstance(event, ev.CallRequested)
    assert event.command.name == "myMethod" and event.command.arguments == ("arg", 2.0)


def test_result_to_our_call_is_matched_by_transaction_id() -> None:
    server, client = connected()
    tid = server.call("clientMethod", 1.0)
    client.receive(server.data_to_send())
    assert client.commands()[-1].name == "clientMethod"
    (event,) = server.receive_data(client.command("_result", tid, None, "ok"))
    assert event == ev.ResultReceived(tid, (None, "ok"))
    # An answer to nothing we asked is ignored.
    assert server.receive_data(client.command("_result", 99.0, None, "stray")) == []


def test_delete_stream_names_the_stream() -> None:
    server, client, sid = with_stream()
    (event,) = server.receive_data(client.command("deleteStream", 6.0, None, float(sid)))
    assert event == ev.DeleteStreamRequested(sid)
    assert server.delete_stream(sid) is StreamState.IDLE


def test_events_do_not_depend_on_how_the_bytes_are_split() -> None:
    _server, client = handshaken()
    data = client.connect() + client.command("releaseStream", 2.0, None, "cam")
    data += client.command("createStream", 3.0) + client.command("_checkbw", 4.0)
    reference = ServerConnection()
    reference_client = ScriptedClient()
    reference.receive_data(reference_client.hello())
    reference.receive_data(reference_client.receive(reference.data_to_send()))
    expected = [type(e) for e in reference.receive_data(data)]
    for step in (1, 2, 3, 7, 64, 1000):
        conn = ServerConnection()
        peer = ScriptedClient()
        conn.receive_data(peer.hello())
        conn.receive_data(peer.receive(conn.data_to_send()))
        got: list[ev.Event] = []
        for i in range(0, len(data), step):
            got.extend(conn.receive_data(data[i : i + step]))
        assert [type(e) for e in got] == expected


@given(st.binary(max_size=2048))
def test_arbitrary_bytes_after_the_handshake_raise_only_protocol_errors(junk: bytes) -> None:
    server, _ = handshaken()
    try:
        server.receive_data(junk)
    except RemoteProtocolError:
        assert server.state is ConnectionState.ERROR


@given(st.binary(max_size=4096))
def test_arbitrary_bytes_from_accept_raise_only_protocol_errors(junk: bytes) -> None:
    server = ServerConnection()
    try:
        server.receive_data(junk)
    except RemoteProtocolError:
        assert server.state is ConnectionState.ERROR


COMMANDS = [
    "connect",
    "createStream",
    "publish",
    "play",
    "deleteStream",
    "closeStream",
    "pause",
    "seek",
    "receiveAudio",
    "receiveVideo",
    "_result",
    "_error",
    "FCPublish",
    "releaseStream",
    "_checkbw",
    "whatever",
]
STATES = ["awaiting connect", "connect pending", "connected", "with stream"]


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_in_every_state_gives_events_or_a_protocol_error(
    state: str, name: str
) -> None:
    if state == "awaiting connect":
        server, client = handshaken()
        sid = 1
    elif state == "connect pending":
        server, client = handshaken()
        server.receive_data(client.connect())
        sid = 1
    elif state == "connected":
        server, client = connected()
        sid = 1
    else:
        server, client, sid = with_stream()
    data = client.command(name, 9.0, {"app": "x"}, "cam", 1.0, stream_id=sid)
    try:
        events = server.receive_data(data)
    except RemoteProtocolError:
        assert server.state is ConnectionState.ERROR
        assert state == "awaiting connect" or name == "connect"
        return
    assert all(isinstance(e, ev.Event) for e in events)
    if state == "connect pending":
        assert events == []  # held until connect is decided


def test_a_chunk_size_below_the_minimum_is_a_protocol_error() -> None:
    server, client = handshaken(limits=ConnectionLimits(min_chunk_size=128))
    with pytest.raises(RemoteProtocolError, match="chunk size 64 below the minimum 128"):
        server.receive_data(client.send(SetChunkSize(64)))
    assert server.state is ConnectionState.ERROR


def test_the_minimum_chunk_size_itself_is_accepted() -> None:
    server, client = handshaken(limits=ConnectionLimits(min_chunk_size=128))
    assert server.receive_data(client.send(SetChunkSize(128))) == [ev.PeerChunkSizeChanged(128)]


@pytest.mark.parametrize("field", ["app", "tcUrl"])
def test_a_name_just_past_its_limit_is_left_to_the_layer_above(field: str) -> None:
    server, client = handshaken()
    value = "a" * 600 if field == "app" else "rtmp://h/" + "a" * 600
    (event,) = server.receive_data(client.connect(**{field: value}))
    assert isinstance(event, ev.ConnectRequested)


@pytest.mark.parametrize("field", ["app", "tcUrl"])
def test_a_name_far_past_its_limit_is_a_protocol_error(field: str) -> None:
    server, client = handshaken()
    with pytest.raises(RemoteProtocolError, match="far longer"):
        server.receive_data(client.connect(**{field: "a" * 4000}))
