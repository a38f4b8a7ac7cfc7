"""A push (:mod:`fms.server.push`) against a sans-IO target, on a fake reactor: the reconnect
backoff, what the target receives first, the bounds of a target that reads nothing, and
stopping. No sockets, no wall clock: connections are ``StringTransport``s and time is a
``MemoryReactorClock``."""

from __future__ import annotations

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone, ConnectionRefusedError
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure

from fms.amf.types import ECMAArray
from fms.apps.pushes import HOPS_KEY, PushRequest
from fms.live.stream import FanoutLimits, LiveStream
from fms.rtmp import events as ev
from fms.rtmp.connection import ServerConnection
from fms.rtmp.constants import MessageType
from fms.rtmp.messages import Data, Media
from fms.server.outgoing import ANSWER_TIMEOUT, Backoff, OutgoingLink
from fms.server.push import PUSH_FLASH_VER, Push, PushService, PushState

AVC_HEADER = bytes([0x17, 0, 0, 0, 0]) + b"\x01avc-config"
AAC_HEADER = bytes([0xAF, 0]) + b"\x12\x10"


def _key(ts: int, size: int = 100) -> Media:
    return Media(MessageType.VIDEO, ts, 1, bytes([0x17, 1, 0, 0, 0]) + b"k" * size)


def _inter(ts: int, size: int = 100) -> Media:
    return Media(MessageType.VIDEO, ts, 1, bytes([0x27, 1, 0, 0, 0]) + b"i" * size)


def _audio(ts: int) -> Media:
    return Media(MessageType.AUDIO, ts, 1, bytes([0xAF, 1]) + b"a" * 20)


def test_backoff_doubles_from_its_first_delay_up_to_its_maximum() -> None:
    backoff = Backoff(0.5, 3.0)
    assert [backoff.next() for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_backoff_starts_over_after_a_reset() -> None:
    backoff = Backoff(1.0, 8.0)
    backoff.next(), backoff.next()
    backoff.reset()
    assert backoff.next() == 1.0


class Target:
    """The other server of a push: a ServerConnection answering as pyFMS would, fed the link's
    bytes by :meth:`pump`; ``accept`` False refuses the publish with ``BadName``."""

    def __init__(self, link: OutgoingLink, transport: StringTransport, accept: bool = True):
        self.link = link
        self.transport = transport
        self.conn = ServerConnection()
        self.accept = accept
        self.received: list[Media | Data] = []
        self.calls: list[str] = []
        self.deleted = False
        self.connect_object: dict[str, object] = {}

    def pump(self) -> None:
        for _ in range(10):
            data = self.transport.value()
            self.transport.clear()
            if not data:
                return
            for event in self.conn.receive_data(data, 0.0):
                self._handle(event)
            answer = self.conn.data_to_send()
            if answer:
                self.link.dataReceived(answer)

    def _handle(self, event: ev.Event) -> None:
        conn = self.conn
        if isinstance(event, ev.ConnectRequested):
            self.connect_object = dict(event.command_object)
            conn.accept_connect(event)
            for held in conn.pending_events():  # what was pipelined behind connect
                self._handle(held)
        elif isinstance(event, ev.CreateStreamRequested):
            conn.accept_create_stream(event)
        elif isinstance(event, ev.PublishRequested):
            if self.accept:
                conn.accept_publish(event.stream_id, event.name)
            else:
                conn.reject_publish(event.stream_id, event.name, "NetStream.Publish.BadName", "")
        elif isinstance(event, ev.MediaReceived):
            self.received.append(event.message)
        elif isinstance(event, ev.DataReceived):
            self.received.append(event.message)
        elif isinstance(event, ev.CallRequested):
            self.calls.append(event.name)
        elif isinstance(event, ev.DeleteStreamRequested):
            self.deleted = True


def _stream(limits: FanoutLimits | None = None) -> LiveStream:
    stream = LiveStream("live", "cam", limits)
    stream.start_publish(object(), now=0.0)
    return stream


def _push(
    stream: LiveStream, reactor: MemoryReactorClock, initial: float = 1.0, maximum: float = 8.0
) -> Push:
    service = PushService(reactor)
    return service.start(
        stream, PushRequest("rtmp://127.0.0.1:1936/live", "copy", initial, maximum)
    )


def _connect(reactor: MemoryReactorClock, accept: bool = True) -> Target:
    """Make the newest connection attempt succeed; return the target at its other end."""
    _host, _port, factory, _timeout, _bind = reactor.tcpClients[-1]
    link = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 1936))
    transport = StringTransport()
    link.makeConnection(transport)
    target = Target(link, transport, accept)
    target.pump()
    return target


def _refuse(reactor: MemoryReactorClock) -> None:
    _host, _port, factory, _timeout, _bind = reactor.tcpClients[-1]
    factory.clientConnectionFailed(None, Failure(ConnectionRefusedError()))


def test_an_unreachable_target_is_retried_after_doubling_delays() -> None:
    reactor = MemoryReactorClock()
    push = _push(_stream(), reactor, initial=1.0, maximum=4.0)
    delays = []
    for _ in range(4):
        _refuse(reactor)
        assert push.state == "retrying"
        attempts = len(reactor.tcpClients)
        (call,) = reactor.getDelayedCalls()
        delays.append(call.getTime() - reactor.seconds())
        reactor.advance(delays[-1])
        assert len(reactor.tcpClients) == attempts + 1 and push.state == "connecting"
    assert delays == [1.0, 2.0, 4.0, 4.0]
    assert "refused" in push.figures()["last_error"]


def test_a_push_goes_live_once_the_target_accepts_the_publish() -> None:
    reactor = MemoryReactorClock()
    stream = _stream()
    push = _push(stream, reactor)
    assert push.state == "connecting"
    target = _connect(reactor)
    assert push.state == "live"
    assert [c for c in target.calls if c in ("releaseStream", "FCPublish")] == [
        "releaseStream",
        "FCPublish",
    ]
    assert len(stream.players) == 1


def test_a_push_tells_its_target_the_stream_came_through_one_push_more() -> None:
    reactor = MemoryReactorClock()
    stream = _stream()
    stream.push_hops = 2
    _push(stream, reactor)
    target = _connect(reactor)
    assert target.connect_object[HOPS_KEY] == 3.0
    assert target.connect_object["flashVer"] == PUSH_FLASH_VER


def test_a_push_starts_with_metadata_every_sequence_header_and_the_gop() -> None:
    reactor = MemoryReactorClock()
    stream = _stream()
    stream.set_metadata(("onMetaData", ECMAArray({"width": 320.0})))
    stream.publish_message(Media(MessageType.VIDEO, 0, 1, AVC_HEADER))
    stream.publish_message(Media(MessageType.AUDIO, 0, 1, AAC_HEADER))
    stream.publish_message(_key(0))
    stream.publish_message(_inter(40))
    stream.publish_message(_key(1000))  # the GOP the push starts with
    stream.publish_message(_audio(1010))
    stream.publish_message(_inter(1040))
    push = _push(stream, reactor)
    target = _connect(reactor)
    stream.flush(reactor.seconds())
    target.pump()
    stream.publish_message(_inter(1080))  # live, after the GOP
    stream.flush(reactor.seconds())
    target.pump()
    got = target.received
    assert isinstance(got[0], Data) and got[0].values[0] == "onMetaData"
    assert [m.payload for m in got[1:3]] == [AVC_HEADER, AAC_HEADER]
    assert [m.timestamp for m in got[3:]] == [1000, 1010, 1040, 1080]
    assert push.figures()["messages_sent"] == len(got)


def test_a_refused_publish_is_retried_with_its_status_as_the_last_error() -> None:
    reactor = MemoryReactorClock()
    push = _push(_stream(), reactor)
    _connect(reactor, accept=False)
    assert push.state == "retrying"
    assert "NetStream.Publish.BadName" in push.figures()["last_error"]


def test_a_push_that_was_live_retries_from_the_first_delay_when_the_target_drops() -> None:
    reactor = MemoryReactorClock()
    stream = _stream()
    push = _push(stream, reactor, initial=1.0, maximum=8.0)
    _refuse(reactor)
    reactor.advance(1.0)
    _refuse(reactor)
    reactor.advance(2.0)
    target = _connect(reactor)
    assert push.state == "live"
    target.link.connectionLost(Failure(ConnectionDone()))
    (call,) = reactor.getDelayedCalls()
    assert push.state == "retrying" and call.getTime() - reactor.seconds() == 1.0
    assert stream.players == set()


def test_a_target_that_reads_nothing_is_handed_nothing_and_skips_to_keyframes() -> None:
    """The push's link is paused (its socket buffer full): the stream hands it nothing, and
    once it is further behind than soft_seconds it skips to the newest keyframe."""
    reactor = MemoryReactorClock()
    stream = _stream(FanoutLimits(soft_seconds=1.0, hard_bytes=1 << 30, stall_timeout=1e9))
    stream.publish_message(Media(MessageType.VIDEO, 0, 1, AVC_HEADER))
    stream.publish_message(_key(0))
    push = _push(stream, reactor)
    target = _connect(reactor)
    stream.flush(0.0)
    target.pump()
    link = target.link
    link.pauseProducing()
    before = len(target.transport.value())
    for second in range(1, 6):
        stream.publish_message(_key(second * 1000))
        for frame in range(1, 25):
            stream.publish_message(_inter(second * 1000 + frame * 40))
        stream.flush(float(second))
    figures = push.figures()
    assert len(target.transport.value()) == before  # nothing handed over while paused
    assert figures["skips"] >= 1 and figures["skipped_messages"] >= 25
    assert stream.memory() < 3 * 25 * 110  # at most the newest GOPs are kept for it


def test_stopping_a_push_unpublishes_on_the_target_and_retries_no_more() -> None:
    reactor = MemoryReactorClock()
    stream = _stream()
    push = _push(stream, reactor)
    target = _connect(reactor)
    push.stop()
    target.pump()
    assert "FCUnpublish" in target.calls and target.deleted
    assert target.transport.disconnecting
    target.link.connectionLost(Failure(ConnectionDone()))
    assert push.state == PushState.STOPPED.value
    assert reactor.getDelayedCalls() == [] and stream.players == set()
    assert push.service.of(stream) == []


def test_a_push_stopped_while_retrying_cancels_its_retry() -> None:
    reactor = MemoryReactorClock()
    push = _push(_stream(), reactor)
    _refuse(reactor)
    push.stop()
    reactor.advance(60)
    assert len(reactor.tcpClients) == 1 and push.state == "stopped"


def test_a_target_that_never_answers_is_given_up_on_at_the_answer_deadline() -> None:
    reactor = MemoryReactorClock()
    push = _push(_stream(), reactor)
    _host, _port, factory, _timeout, _bind = reactor.tcpClients[-1]
    link = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 1936))
    link.makeConnection(StringTransport())  # connected, and the target says nothing
    reactor.advance(ANSWER_TIMEOUT - 0.1)
    assert push.state == "connecting"
    reactor.advance(0.1)
    assert push.state == "retrying" and "no answer" in push.figures()["last_error"]


def test_a_live_push_is_not_held_to_the_answer_deadline() -> None:
    reactor = MemoryReactorClock()
    push = _push(_stream(), reactor)
    _connect(reactor)
    reactor.advance(ANSWER_TIMEOUT * 3)
    assert push.state == "live" and push.connects == 1


def test_a_push_stalled_past_the_stall_timeout_is_closed_and_reconnected_from_a_keyframe() -> None:
    reactor = MemoryReactorClock()
    stream = _stream(FanoutLimits(soft_seconds=1e9, soft_bytes=1 << 40, stall_timeout=2.0))
    stream.publish_message(Media(MessageType.VIDEO, 0, 1, AVC_HEADER))
    stream.publish_message(_key(0))
    push = _push(stream, reactor, initial=1.0)
    target = _connect(reactor)
    stream.flush(0.0)
    target.link.pauseProducing()
    for tick in range(1, 5):
        stream.publish_message(_inter(tick * 1000))
        stream.flush(float(tick))
    figures = push.figures()
    assert figures["slow_closes"] == 1 and push.state == "retrying"
    assert "too slow" in figures["last_error"] and stream.players == set()
    assert figures["wire_bytes"] == target.link.bytes_sent  # counted once
    reactor.advance(1.0)
    again = _connect(reactor)
    stream.flush(5.0)
    again.pump()
    assert push.state == "live" and push.figures()["slow_closes"] == 1
    assert [m.timestamp for m in again.received if isinstance(m, Media)][:2] == [0, 0]
