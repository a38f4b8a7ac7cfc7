"""ClientConnection: the sans-IO client, driven against a real ServerConnection in memory."""

from __future__ import annotations

import itertools
import random
import struct
from collections.abc import Callable
from typing import Any, TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fms.amf import ECMAArray
from fms.errors import LocalProtocolError, RemoteProtocolError
from fms.rtmp import client as cl
from fms.rtmp import events as ev
from fms.rtmp.chunks import ChunkDecoder, ChunkLimits, RawMessage, encode_shared
from fms.rtmp.client import ClientConnection, ClientState
from fms.rtmp.connection import ConnectionLimits, ServerConnection, ServerSettings
from fms.rtmp.constants import HANDSHAKE_SIZE, ChunkStreamId, MessageType
from fms.rtmp.messages import (
    Acknowledgement,
    Command,
    Data,
    Media,
    Message,
    SetChunkSize,
    decode_message,
    encode_message,
)
from fms.rtmp.status import StatusCode

URL = "rtmp://127.0.0.1:1935/live"
E = TypeVar("E")


def seeded(seed: int) -> Callable[[int], bytes]:
    return random.Random(seed).randbytes


class Pair:
    """A client and a server connection joined by an in-memory pipe."""

    def __init__(
        self,
        *,
        digest: bool = True,
        chunk_size: int = 4096,
        settings: ServerSettings | None = None,
        limits: ConnectionLimits | None = None,
    ) -> None:
        self.client = ClientConnection(digest=digest, chunk_size=chunk_size, random_bytes=seeded(1))
        self.server = ServerConnection(limits, settings, random_bytes=seeded(2))
        self.client_sent = bytearray()
        self.server_sent = bytearray()

    def pump(self) -> tuple[list[cl.ClientEvent], list[ev.Event]]:
        """Move bytes both ways until both sides are quiet; return the new events of each."""
        client_events: list[cl.ClientEvent] = []
        server_events: list[ev.Event] = []
        while True:
            up = self.client.data_to_send()
            if up:
                self.client_sent += up
                server_events += self.server.receive_data(up)
            down = self.server.data_to_send()
            if down:
                self.server_sent += down
                client_events += self.client.receive_data(down)
            if not up and not down:
                return client_events, server_events

    def sent_by_client(self) -> list[Message]:
        """Every message the client sent after its handshake, decoded independently."""
        decoder = ChunkDecoder(ChunkLimits())
        decoder.enable_media()
        chunks = bytes(self.client_sent[1 + 2 * HANDSHAKE_SIZE :])
        return [decode_message(raw) for raw in decoder.receive_data(chunks)]


def only(events: list[Any], kind: type[E]) -> E:
    found = [e for e in events if isinstance(e, kind)]
    assert len(found) == 1, events
    return found[0]


def connected(**kwargs: Any) -> Pair:
    pair = Pair(**kwargs)
    pair.client.initiate()
    pair.client.connect("live", URL)
    _, server_events = pair.pump()
    pair.server.accept_connect(only(server_events, ev.ConnectRequested))
    client_events, _ = pair.pump()
    assert isinstance(client_events[-1], cl.Connected)
    return pair


def with_stream(**kwargs: Any) -> tuple[Pair, int]:
    pair = connected(**kwargs)
    pair.client.create_stream()
    _, server_events = pair.pump()
    sid = pair.server.accept_create_stream(only(server_events, ev.CreateStreamRequested))
    client_events, _ = pair.pump()
    assert client_events == [cl.StreamCreated(2.0, 1)] and sid == 1
    return pair, sid


def publishing() -> tuple[Pair, int]:
    pair, sid = with_stream()
    pair.client.publish(sid, "cam")
    _, server_events = pair.pump()
    pair.server.accept_publish(sid, only(server_events, ev.PublishRequested).name)
    pair.pump()
    return pair, sid


def playing(**kwargs: Any) -> tuple[Pair, int, list[cl.ClientEvent]]:
    pair, sid = with_stream(**kwargs)
    pair.client.play(sid, "cam")
    _, server_events = pair.pump()
    pair.server.accept_play(sid, only(server_events, ev.PlayRequested).name)
    client_events, _ = pair.pump()
    return pair, sid, client_events


# ----------------------------------------------------------------------------------- handshake


def test_digest_handshake_completes_on_both_sides() -> None:
    pair = Pair(digest=True)
    pair.client.initiate()
    client_events, server_events = pair.pump()
    assert client_events == [cl.HandshakeDone(digest=True)]
    assert server_events == [ev.HandshakeCompleted(digest=True)]
    assert pair.client.state is ClientState.CONNECTING


def test_simple_handshake_completes_on_both_sides() -> None:
    pair = Pair(digest=False)
    pair.client.initiate()
    client_events, server_events = pair.pump()
    assert client_events == [cl.HandshakeDone(digest=False)]
    assert server_events == [ev.HandshakeCompleted(digest=False)]


def test_connect_called_during_the_handshake_leaves_right_after_c2() -> None:
    pair = Pair()
    pair.client.initiate()
    pair.client.connect("live", URL)
    c0c1 = pair.client.data_to_send()
    assert len(c0c1) == 1 + HANDSHAKE_SIZE  # nothing but C0+C1 before S2
    pair.server.receive_data(c0c1)
    pair.client.receive_data(pair.server.data_to_send())
    events = pair.server.receive_data(pair.client.data_to_send())
    assert [type(e) for e in events] == [
        ev.HandshakeCompleted,
        ev.PeerChunkSizeChanged,
        ev.ConnectRequested,
    ]


# ------------------------------------------------------------------------------------- connect


def test_accepted_connect_reports_connected_with_success() -> None:
    pair = Pair()
    pair.client.initiate()
    tid = pair.client.connect("live", URL)
    _, server_events = pair.pump()
    pair.server.accept_connect(only(server_events, ev.ConnectRequested))
    client_events, _ = pair.pump()
    (event,) = client_events
    assert isinstance(event, cl.Connected) and tid == 1.0
    assert event.code == StatusCode.CONNECT_SUCCESS
    assert event.info["level"] == "status"
    assert str(event.properties["fmsVer"]).startswith("FMS/")
    assert pair.client.state is ClientState.CONNECTED


def test_server_chunk_size_and_window_are_honoured_after_connect() -> None:
    pair = connected(settings=ServerSettings(chunk_size=8192, window_ack_size=123_456))
    assert pair.client.server_chunk_size == 8192
    assert pair.client.window_acknowledgement_size == 123_456


def test_rejected_connect_reports_the_description_and_closes() -> None:
    pair = Pair()
    pair.client.initiate()
    pair.client.connect("live", URL)
    _, server_events = pair.pump()
    pair.server.reject_connect(only(server_events, ev.ConnectRequested), "bad key")
    client_events, _ = pair.pump()
    (event,) = client_events
    assert isinstance(event, cl.ConnectRejected)
    assert (event.code, event.description) == (StatusCode.CONNECT_REJECTED, "bad key")
    assert event.redirect is None
    assert pair.client.state is ClientState.CLOSED
    assert pair.client.receive_data(b"\xff" * 10) == []
    with pytest.raises(LocalProtocolError):
        pair.client.create_stream()


def test_redirect_url_is_carried_by_the_rejection() -> None:
    pair = Pair()
    pair.client.initiate()
    pair.client.connect("live", URL)
    _, server_events = pair.pump()
    event = only(server_events, ev.ConnectRequested)
    pair.server.reject_connect(event, "moved", redirect="rtmp://edge2/live")
    client_events, _ = pair.pump()
    rejected = only(client_events, cl.ConnectRejected)
    assert rejected.redirect == "rtmp://edge2/live"
    assert rejected.info["ex"]["code"] == 302


def test_amf3_object_encoding_round_trips_with_type_17_commands() -> None:
    pair = Pair()
    pair.client.initiate()
    pair.client.connect("live", URL, object_encoding=3)
    _, server_events = pair.pump()
    request = only(server_events, ev.ConnectRequested)
    assert request.object_encoding == 3
    pair.server.accept_connect(request)
    pair.client.create_stream()
    _, server_events = pair.pump()
    # connect itself travels as AMF0 (type 20), as Flash sends it; later commands as type 17.
    assert [c.amf3 for c in pair.sent_by_client() if isinstance(c, Command)] == [False, True]
    pair.server.accept_create_stream(only(server_events, ev.CreateStreamRequested))
    client_events, _ = pair.pump()
    assert client_events == [cl.StreamCreated(2.0, 1)]


# ------------------------------------------------------------------------------ OBS publishing


def test_obs_sends_set_chunk_size_and_connect_in_the_same_data() -> None:
    pair = Pair(digest=False)
    pair.client.initiate()
    pair.pump()
    pair.client.connect("live", URL, extra={"supportsGoAway": True})
    events = pair.server.receive_data(pair.client.data_to_send())
    assert [type(e) for e in events] == [ev.PeerChunkSizeChanged, ev.ConnectRequested]
    assert events[0] == ev.PeerChunkSizeChanged(4096)
    connect = events[1]
    assert isinstance(connect, ev.ConnectRequested)
    assert (connect.app, connect.tc_url, connect.transaction_id) == ("live", URL, 1.0)
    assert connect.flash_ver == "FMLE/3.0 (compatible; FMSc/1.0)"
    assert connect.command_object["type"] == "nonprivate"
    assert connect.command_object["supportsGoAway"] is True
    assert "objectEncoding" not in connect.command_object


def test_obs_publish_sequence_yields_the_expected_server_events() -> None:
    pair = connected(digest=False)
    name = "key?secret=1"
    tids = [pair.client.release_stream(name), pair.client.fc_publish(name)]
    tids.append(pair.client.create_stream())
    assert tids == [2.0, 3.0, 4.0]
    data = pair.client.data_to_send()
    events = pair.server.receive_data(data)
    assert [type(e) for e in events] == [
        ev.CallRequested,
        ev.CallRequested,
        ev.CreateStreamRequested,
    ]
    calls = [e.command for e in events if isinstance(e, ev.CallRequested)]
    assert [(c.name, c.transaction_id, c.arguments) for c in calls] == [
        ("releaseStream", 2.0, (name,)),
        ("FCPublish", 3.0, (name,)),
    ]
    create = events[2]
    assert isinstance(create, ev.CreateStreamRequested)
    sid = pair.server.accept_create_stream(create)
    client_events, _ = pair.pump()
    assert client_events == [cl.StreamCreated(4.0, 1)]
    assert sid == 1 and pair.client.streams == {1}
    assert pair.client.publish(1, name) == 5.0
    _, server_events = pair.pump()
    publish = only(server_events, ev.PublishRequested)
    assert (publish.stream_id, publish.transaction_id) == (1, 5.0)
    assert (publish.name, publish.query, publish.raw_name) == ("key", {"secret": "1"}, name)
    assert publish.publish_type == "live"


def test_accepted_publish_reports_publish_start() -> None:
    pair, sid = with_stream()
    pair.client.publish(sid, "cam")
    _, server_events = pair.pump()
    pair.server.accept_publish(sid, only(server_events, ev.PublishRequested).name)
    client_events, _ = pair.pump()
    status = only(client_events, cl.StatusReceived)
    assert (status.stream_id, status.code, status.level) == (
        sid,
        "NetStream.Publish.Start",
        "status",
    )


def test_media_after_publish_reaches_the_server_unchanged() -> None:
    pair, sid = publishing()
    metadata = ("@setDataFrame", "onMetaData", ECMAArray(width=1280.0, height=720.0))
    pair.client.send_data(sid, metadata)
    audio = Media(MessageType.AUDIO, 23, sid, b"\xaf\x01" + bytes(range(200)))
    video = Media(MessageType.VIDEO, 40, sid, b"\x17\x01" + random.Random(3).randbytes(20_000))
    late = Media(MessageType.VIDEO, 0x1000005, sid, b"\x27\x01late")  # extended timestamp
    for message in (audio, video, late):
        pair.client.send_media(sid, message)
    _, server_events = pair.pump()
    data = only(server_events, ev.DataReceived)
    assert data.message.values == metadata
    media = [e.message for e in server_events if isinstance(e, ev.MediaReceived)]
    assert media == [audio, video, late]


def test_obs_stop_sends_fcunpublish_and_delete_stream() -> None:
    pair, sid = publishing()
    pair.client.fc_unpublish("cam")
    pair.client.delete_stream(sid)
    _, server_events = pair.pump()
    assert [type(e) for e in server_events] == [ev.CallRequested, ev.DeleteStreamRequested]
    assert server_events[1] == ev.DeleteStreamRequested(sid)
    assert pair.client.streams == set()


# -------------------------------------------------------------------------------------- playing


def test_play_reports_stream_begin_then_reset_and_start_statuses() -> None:
    _pair, sid, events = playing()
    assert events[0] == cl.StreamBegan(sid)
    codes = [e.code for e in events if isinstance(e, cl.StatusReceived)]
    assert codes == ["NetStream.Play.Reset", "NetStream.Play.Start"]
    sample = only(events, cl.DataArrived)
    assert sample.message.values == ("|RtmpSampleAccess", True, True)


def test_media_the_server_sends_arrives_identically() -> None:
    pair, sid, _ = playing()
    big = Media(MessageType.VIDEO, 0x1FFFFFF, sid, b"\x17\x00" + bytes(100_000))
    small = Media(MessageType.AUDIO, 0x1FFFFFF, sid, b"\xaf\x01xyz")
    pair.server.send_stream_message(big)
    pair.server.send_stream_message(small)
    events, _ = pair.pump()
    assert events == [cl.MediaArrived(sid, big), cl.MediaArrived(sid, small)]


def test_aggregate_from_a_relay_is_split_into_media() -> None:
    pair, sid, _ = playing()
    body = b""
    for type_id, ts, payload in ((9, 0, b"\x17\x01a"), (8, 20, b"\xaf\x01b")):
        header = struct.pack(">B", type_id) + len(payload).to_bytes(3, "big")
        header += ts.to_bytes(3, "big") + b"\x00" + b"\x00\x00\x00"
        body += header + payload + struct.pack(">I", 11 + len(payload))
    raw = RawMessage(MessageType.AGGREGATE, sid, 1000, body, ChunkStreamId.VIDEO)
    events = pair.client.receive_data(encode_shared(raw, pair.server.chunk_size))
    assert events == [
        cl.MediaArrived(sid, Media(9, 1000, sid, b"\x17\x01a")),
        cl.MediaArrived(sid, Media(8, 1020, sid, b"\xaf\x01b")),
    ]


def test_stop_play_reports_unpublish_notify_and_stream_end() -> None:
    pair, sid, _ = playing()
    pair.server.stop_play(sid, "cam")
    events, _ = pair.pump()
    assert [type(e) for e in events] == [cl.StatusReceived, cl.StreamEnded]
    assert isinstance(events[0], cl.StatusReceived)
    assert events[0].code == StatusCode.PLAY_UNPUBLISH_NOTIFY
    assert events[1] == cl.StreamEnded(sid)


# ------------------------------------------------------------------------- automatic replies


def test_ping_request_is_answered_with_its_timestamp() -> None:
    pair = connected()
    stamp = pair.server.ping(now=7.25)
    client_events, server_events = pair.pump()
    assert client_events == []
    assert server_events == [ev.PingAnswered(stamp)]


def test_our_ping_answer_is_reported() -> None:
    pair = connected()
    stamp = pair.client.ping(now=3.5)
    assert stamp == 3500
    client_events, _ = pair.pump()
    assert client_events == [cl.PingAnswered(3500)]


def test_acknowledgements_follow_the_server_window() -> None:
    window = 10_000
    pair, sid, _ = playing(settings=ServerSettings(window_ack_size=window))
    assert not any(isinstance(m, Acknowledgement) for m in pair.sent_by_client())
    for ts in range(12):
        pair.server.send_stream_message(Media(MessageType.AUDIO, ts, sid, bytes(3000)))
        pair.pump()
    acks = [m.sequence_number for m in pair.sent_by_client() if isinstance(m, Acknowledgement)]
    assert len(acks) == 3
    assert all(b - a >= window for a, b in itertools.pairwise(acks))
    assert acks[-1] <= pair.client.bytes_received < acks[-1] + window


def test_window_acknowledgement_size_from_the_server_enables_acknowledgements() -> None:
    pair = connected(settings=ServerSettings(window_ack_size=5000))
    before = len(pair.sent_by_client())
    pair.client.create_stream()
    _, server_events = pair.pump()
    sid = pair.server.accept_create_stream(only(server_events, ev.CreateStreamRequested))
    assert sid is not None
    pair.pump()
    pair.server.send_stream_message(Data(("onTextData", "x" * 6000), sid))
    pair.pump()
    acks = [m for m in pair.sent_by_client()[before:] if isinstance(m, Acknowledgement)]
    assert acks == [Acknowledgement(pair.client.bytes_received)]


def test_acknowledgement_sequence_number_wraps_at_32_bits() -> None:
    pair, sid, _ = playing()
    pair.client.window_acknowledgement_size = 1000
    # Pretend 4 GiB have gone by: the decoder's byte counter is what acknowledgements count.
    pair.client._decoder.bytes_received = 2**32 - 500
    pair.client._last_ack = 2**32 - 1500
    pair.server.send_stream_message(Media(MessageType.AUDIO, 1, sid, bytes(1200)))
    pair.pump()
    acks = [m.sequence_number for m in pair.sent_by_client() if isinstance(m, Acknowledgement)]
    assert len(acks) == 1 and 0 < acks[0] < 1000
    assert acks[0] == pair.client.bytes_received


def test_server_acknowledgements_are_reported_once_we_announce_a_window() -> None:
    pair, sid = publishing()
    pair.client.set_window_acknowledgement_size(1000)
    pair.client.send_media(sid, Media(MessageType.VIDEO, 0, sid, bytes(1500)))
    client_events, _ = pair.pump()
    (ack,) = client_events
    assert ack == cl.AcknowledgementReceived(pair.server.bytes_received)


# ------------------------------------------------------------------------- calls and answers


def test_answers_are_matched_to_the_request_by_transaction_id() -> None:
    pair = connected()
    release = pair.client.release_stream("cam")
    fcpublish = pair.client.fc_publish("cam")
    pair.pump()
    pair.server.send_result(release, None)
    pair.server.send_error(fcpublish, StatusCode.CALL_FAILED, "no")
    pair.server.send_result(99.0, "stray")  # an answer to nothing we asked
    client_events, _ = pair.pump()
    assert client_events[0] == cl.ResultReceived(release, (None, None), "releaseStream")
    error = client_events[1]
    assert isinstance(error, cl.ErrorReceived) and error.request == "FCPublish"
    assert (error.transaction_id, error.code) == (fcpublish, StatusCode.CALL_FAILED)
    assert len(client_events) == 2


def test_refused_create_stream_is_an_error_event() -> None:
    pair = connected(limits=ConnectionLimits(max_streams=0))
    tid = pair.client.create_stream()
    _, server_events = pair.pump()
    assert pair.server.accept_create_stream(only(server_events, ev.CreateStreamRequested)) is None
    client_events, _ = pair.pump()
    error = only(client_events, cl.ErrorReceived)
    assert (error.transaction_id, error.request) == (tid, "createStream")
    assert pair.client.streams == set()


def test_server_calls_are_reported_and_can_be_answered() -> None:
    pair = connected()
    pair.server.send_onbwdone()
    tid = pair.server.call("whoAreYou", "please")
    client_events, _ = pair.pump()
    assert [e.name for e in client_events if isinstance(e, cl.CallReceived)] == [
        "onBWDone",
        "whoAreYou",
    ]
    pair.client.send_result(tid, "pyFMS client")
    _, server_events = pair.pump()
    assert server_events == [ev.ResultReceived(tid, (None, "pyFMS client"))]


def test_pending_requests_are_bounded_by_forgetting_the_oldest() -> None:
    pair = connected()
    first = pair.client.call("neverAnswered")
    for _ in range(cl.MAX_PENDING_REQUESTS):
        pair.client.call("neverAnswered")
    pair.pump()
    pair.server.send_result(first, "late")
    client_events, _ = pair.pump()
    assert client_events == []


# ------------------------------------------------------------------------------ API misuse


def test_requests_before_connect_are_local_errors() -> None:
    client = ClientConnection()
    client.initiate()
    with pytest.raises(LocalProtocolError, match="connect"):
        client.create_stream()


def test_connect_twice_is_a_local_error() -> None:
    client = ClientConnection()
    client.connect("live", URL)
    with pytest.raises(LocalProtocolError, match="already"):
        client.connect("live", URL)


def test_publishing_on_a_stream_never_created_is_a_local_error() -> None:
    pair = connected()
    with pytest.raises(LocalProtocolError, match="stream 1"):
        pair.client.publish(1, "cam")


def test_after_a_protocol_error_the_client_stays_in_error() -> None:
    pair = connected()
    with pytest.raises(RemoteProtocolError):
        pair.client.receive_data(b"\xc5")  # fmt 3 on a chunk stream never seen
    assert pair.client.state is ClientState.ERROR
    with pytest.raises(LocalProtocolError):
        pair.client.receive_data(b"")
    with pytest.raises(LocalProtocolError):
        pair.client.call("anything")


def test_a_server_that_does_not_answer_with_rtmp_is_a_protocol_error() -> None:
    client = ClientConnection()
    client.initiate()
    with pytest.raises(RemoteProtocolError, match="not RTMP version 3"):
        client.receive_data(b"HTTP/1.1 400 Bad Request\r\n")
    assert client.state is ClientState.ERROR


# ------------------------------------------------------------------ splits and arbitrary input


def _record_play_session() -> tuple[bytes, int]:
    """Every byte a server sends a client through connect, createStream, play, media and an
    unpublish (the client reacts to StreamCreated as :func:`_replay` does), and how many of them
    lead up to the Play.Start: the state in which a relay receives media."""
    pair = Pair()
    pair.client.initiate()
    pair.client.connect("live", URL)
    pair.client.create_stream()
    _, server_events = pair.pump()
    pair.server.accept_connect(only(server_events, ev.ConnectRequested))
    pair.pump()
    for event in pair.server.pending_events():
        assert isinstance(event, ev.CreateStreamRequested)
        pair.server.accept_create_stream(event)
    client_events, _ = pair.pump()
    sid = only(client_events, cl.StreamCreated).stream_id
    pair.client.play(sid, "cam")
    _, server_events = pair.pump()
    pair.server.accept_play(sid, only(server_events, ev.PlayRequested).name)
    pair.pump()
    playing_from = len(pair.server_sent)
    pair.server.ping(now=1.0)
    for ts in range(0, 200, 40):
        pair.server.send_stream_message(Media(MessageType.VIDEO, ts, sid, bytes(5000)))
        pair.server.send_stream_message(Media(MessageType.AUDIO, ts + 1, sid, b"\xaf\x01aa"))
    pair.server.stop_play(sid, "cam")
    pair.pump()
    return bytes(pair.server_sent), playing_from


SESSION, PLAYING_FROM = _record_play_session()


def _replay(pieces: list[bytes]) -> tuple[ClientConnection, list[cl.ClientEvent]]:
    client = ClientConnection(random_bytes=seeded(1))
    client.initiate()
    client.connect("live", URL)
    client.create_stream()
    events: list[cl.ClientEvent] = []
    for piece in pieces:
        new = client.receive_data(piece)
        for event in new:
            if isinstance(event, cl.StreamCreated):
                client.play(event.stream_id, "cam")
        events += new
    return client, events


REFERENCE = _replay([SESSION])[1]


def test_replayed_session_yields_the_whole_play_story() -> None:
    kinds = [type(e).__name__ for e in REFERENCE]
    assert kinds[:4] == ["HandshakeDone", "Connected", "StreamCreated", "StreamBegan"]
    assert kinds.count("MediaArrived") == 10
    assert kinds[-2:] == ["StatusReceived", "StreamEnded"]


def test_events_do_not_depend_on_how_the_bytes_are_split_byte_by_byte() -> None:
    pieces = [SESSION[i : i + 1] for i in range(len(SESSION))]
    assert _replay(pieces)[1] == REFERENCE


@settings(max_examples=40)
@given(st.lists(st.integers(0, len(SESSION)), max_size=40))
def test_events_do_not_depend_on_where_the_bytes_are_split(cuts: list[int]) -> None:
    points = [0, *sorted(cuts), len(SESSION)]
    pieces = [SESSION[a:b] for a, b in itertools.pairwise(points)]
    assert _replay(pieces)[1] == REFERENCE


PREFIX = SESSION[:PLAYING_FROM]


def assert_only_protocol_errors(data: bytes) -> ClientConnection:
    client, _ = _replay([PREFIX])
    assert client.streams == {1}
    try:
        events = client.receive_data(data)
    except RemoteProtocolError:
        assert client.state is ClientState.ERROR
        with pytest.raises(LocalProtocolError):
            client.receive_data(b"")
    else:
        assert all(isinstance(e, cl.ClientEvent) for e in events)
    return client


@given(st.binary(max_size=4096))
def test_arbitrary_bytes_instead_of_a_handshake_raise_only_protocol_errors(junk: bytes) -> None:
    client = ClientConnection(random_bytes=seeded(1))
    client.initiate()
    try:
        client.receive_data(b"\x03" + junk)
    except RemoteProtocolError:
        assert client.state is ClientState.ERROR


@given(st.binary(max_size=2048))
def test_arbitrary_chunk_bytes_raise_only_protocol_errors(junk: bytes) -> None:
    assert_only_protocol_errors(junk)


AMF_VALUES = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers(-(2**31), 2**31) | st.text(max_size=20),
    lambda inner: (
        st.dictionaries(st.text(max_size=10), inner, max_size=4) | st.lists(inner, max_size=4)
    ),
    max_leaves=10,
)

COMMANDS = st.builds(
    Command,
    name=st.sampled_from(["_result", "_error", "onStatus", "onBWDone", "close", "connect"]),
    transaction_id=st.sampled_from([0.0, 1.0, 2.0, 3.0, 4.0, 77.0]),
    command_object=AMF_VALUES,
    arguments=st.lists(AMF_VALUES, max_size=3).map(tuple),
    stream_id=st.integers(0, 2),
    amf3=st.booleans(),
)

RAW = st.builds(
    RawMessage,
    type_id=st.sampled_from([int(t) for t in MessageType] + [0, 7, 21, 255]),
    stream_id=st.integers(0, 2),
    timestamp=st.integers(0, 2**32 - 1),
    payload=st.binary(max_size=64),
    csid=st.integers(3, 8),
)


@given(st.lists(COMMANDS.map(encode_message) | RAW, min_size=1, max_size=6))
def test_arbitrary_messages_raise_only_protocol_errors(messages: list[RawMessage]) -> None:
    data = b"".join(encode_shared(m, 4096) for m in messages)
    assert_only_protocol_errors(data)


def test_a_create_stream_answer_without_a_stream_id_is_a_protocol_error() -> None:
    client, _ = _replay([PREFIX])
    tid = client.create_stream()
    answer = encode_message(Command("_result", tid, None, (float("nan"),)))
    with pytest.raises(RemoteProtocolError, match="stream id"):
        client.receive_data(encode_shared(answer, 4096))


def test_chunk_size_announced_only_once_and_not_for_128() -> None:
    pair = connected(chunk_size=128)
    assert not any(isinstance(m, SetChunkSize) for m in pair.sent_by_client())
