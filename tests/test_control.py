"""The control channel between workers (:mod:`fms.cluster.control`) and the broadcast it
carries (:mod:`fms.cluster.everywhere`).

In memory: each connection is a pair of :class:`ControlProtocol` on
:class:`~twisted.internet.testing.StringTransport`, whose bytes the test moves (whole, or one
byte at a time); timeouts run on a :class:`~twisted.internet.task.Clock`. No sockets, no
sleeps. Between real worker processes: ``tests/e2e/test_worker_seats.py``.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure

from fms.amf import encode_values
from fms.apps.application import Application
from fms.cluster.control import ControlChannel, ControlError, ControlProtocol, Reply
from fms.cluster.everywhere import BROADCAST, Everywhere
from fms.testing import FakeClient
from tests.support.server_peer import factory_for


class Pair:
    """Two connected control protocols; ``move()`` carries the bytes written so far."""

    def __init__(
        self, left: dict[str, Any] | None = None, right: dict[str, Any] | None = None
    ) -> None:
        self.a = ControlProtocol(left or {})
        self.b = ControlProtocol(right or {})
        self.ta, self.tb = StringTransport(), StringTransport()
        self.a.makeConnection(self.ta)
        self.b.makeConnection(self.tb)

    def move(self, *, byte_by_byte: bool = False) -> None:
        """Deliver what each side wrote to the other until nothing is left."""
        while self.ta.value() or self.tb.value():
            for source, target in ((self.ta, self.b), (self.tb, self.a)):
                data = source.value()
                source.clear()
                if byte_by_byte:
                    for i in range(len(data)):
                        target.dataReceived(data[i : i + 1])
                elif data:
                    target.dataReceived(data)


def result_of(d: Deferred[Any]) -> Any:
    box: list[Any] = []
    d.addBoth(box.append)
    assert box, "the Deferred has not fired"
    if isinstance(box[0], Failure):
        box[0].raiseException()
    return box[0]


def test_a_request_is_a_netstring_of_json_with_its_id_operation_and_payload() -> None:
    proto = ControlProtocol({})
    transport = StringTransport()
    proto.makeConnection(transport)
    proto.request("stats", {"name": "Café"})
    data = transport.value()
    length, _, rest = data.partition(b":")
    assert int(length) == len(rest) - 1 and rest.endswith(b",")
    assert json.loads(rest[:-1]) == {"id": 1, "op": "stats", "payload": {"name": "Café"}}


def test_a_reply_answers_its_request() -> None:
    pair = Pair(right={"add": lambda p: {"sum": p["a"] + p["b"]}})
    d = pair.a.request("add", {"a": 2, "b": 3.5})
    pair.move()
    assert result_of(d) == {"sum": 5.5}


@pytest.mark.parametrize("byte_by_byte", [False, True])
def test_requests_and_replies_cut_anywhere_are_read_whole(byte_by_byte: bool) -> None:
    pair = Pair(right={"echo": lambda p: p})
    payload = {"text": "直播 ☕", "nested": {"list": [1, 2.5, None, True]}}
    answers = [pair.a.request("echo", {**payload, "n": n}) for n in range(3)]
    pair.move(byte_by_byte=byte_by_byte)
    assert [result_of(d) for d in answers] == [{**payload, "n": n} for n in range(3)]


def test_replies_arriving_out_of_order_go_to_their_own_requests() -> None:
    waiting: list[Deferred[dict[str, Any]]] = []

    def later(payload: dict[str, Any]) -> Deferred[dict[str, Any]]:
        d: Deferred[dict[str, Any]] = Deferred()
        waiting.append(d)
        return d

    pair = Pair(right={"later": later})
    first, second = pair.a.request("later", {}), pair.a.request("later", {})
    pair.move()
    waiting[1].callback({"which": "second"})
    waiting[0].callback({"which": "first"})
    pair.move()
    assert (result_of(first), result_of(second)) == ({"which": "first"}, {"which": "second"})


def test_an_unknown_operation_is_answered_with_an_error() -> None:
    pair = Pair()
    d = pair.a.request("nope", {})
    pair.move()
    with pytest.raises(ControlError, match="no operation 'nope'"):
        result_of(d)


def test_a_failing_handler_is_answered_with_its_error() -> None:
    def boom(payload: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("out of cheese")

    pair = Pair(right={"boom": boom})
    d = pair.a.request("boom", {})
    pair.move()
    with pytest.raises(ControlError, match="boom failed: out of cheese"):
        result_of(d)


def test_requests_waiting_when_the_connection_is_lost_fail() -> None:
    pair = Pair()
    d = pair.a.request("anything", {})
    pair.a.connectionLost(None)
    with pytest.raises(ControlError, match="lost"):
        result_of(d)
    with pytest.raises(ControlError, match="not connected"):
        result_of(pair.a.request("anything", {}))


def test_an_unreadable_message_closes_the_connection() -> None:
    proto = ControlProtocol({})
    transport = StringTransport()
    proto.makeConnection(transport)
    proto.dataReceived(b"5:nope!,")
    assert transport.disconnecting


def test_a_message_over_the_limit_closes_the_connection() -> None:
    proto = ControlProtocol({})
    transport = StringTransport()
    proto.makeConnection(transport)
    proto.dataReceived(str(ControlProtocol.MAX_LENGTH + 1).encode() + b":")
    assert transport.disconnecting


# ---------------------------------------------------------------------- the channel


class Cluster:
    """Three workers' channels; worker 0 (the one that asks in these tests) reaches the
    others through in-memory pairs."""

    def __init__(self, down: set[int] | None = None) -> None:
        self.clock = Clock()
        self.down = down or set()
        self.pairs: dict[int, Pair] = {}
        self.opened: list[int] = []
        self.channels = [
            ControlChannel(self.clock, "/nonexistent", i, 3, timeout=5.0, connect=self.connect)
            for i in range(3)
        ]

    def connect(self, worker: int) -> Deferred[ControlProtocol]:
        self.opened.append(worker)
        if worker in self.down:
            return fail(ConnectionRefusedError("no such socket"))
        pair = self.pairs[worker] = Pair(self.channels[0].handlers, self.channels[worker].handlers)
        return succeed(pair.a)

    def move(self) -> None:
        for pair in self.pairs.values():
            pair.move()


def test_ask_others_collects_one_reply_per_worker_in_worker_order() -> None:
    cluster = Cluster()
    for index in (1, 2):
        cluster.channels[index].handle("who", lambda p, index=index: {"worker": index})
    d = cluster.channels[0].ask_others("who", {})
    cluster.move()
    assert result_of(d) == [Reply(1, {"worker": 1}), Reply(2, {"worker": 2})]


def test_a_worker_that_cannot_be_reached_is_an_error_reply_not_a_failure() -> None:
    cluster = Cluster(down={2})
    cluster.channels[1].handle("who", lambda p: {"worker": 1})
    d = cluster.channels[0].ask_others("who", {})
    cluster.move()
    replies = result_of(d)
    assert replies[0] == Reply(1, {"worker": 1})
    assert not replies[1].ok and "worker 2 unreachable" in (replies[1].error or "")


def test_a_worker_that_does_not_answer_in_time_is_an_error_reply_then() -> None:
    cluster = Cluster()
    cluster.channels[1].handle("slow", lambda p: Deferred())
    cluster.channels[2].handle("slow", lambda p: {"fine": True})
    d = cluster.channels[0].ask_others("slow", {})
    cluster.move()
    cluster.clock.advance(4.9)
    assert not d.called
    cluster.clock.advance(0.2)
    replies = result_of(d)
    assert replies[1] == Reply(2, {"fine": True})
    assert replies[0].error == "worker 1 did not answer within 5s"


def test_one_connection_per_worker_is_kept_and_opened_again_once_lost() -> None:
    cluster = Cluster()
    cluster.channels[1].handle("n", lambda p: {"n": p["n"]})
    channel = cluster.channels[0]
    asked = [channel.ask(1, "n", {"n": n}) for n in range(3)]
    cluster.move()
    assert [result_of(d)["n"] for d in asked] == [0, 1, 2]
    assert cluster.opened == [1]
    cluster.pairs[1].a.connectionLost(None)
    again = channel.ask(1, "n", {"n": 7})
    cluster.move()
    assert result_of(again) == {"n": 7} and cluster.opened == [1, 1]


# -------------------------------------------------------------------- the broadcast


def test_a_broadcast_from_another_worker_calls_every_client_here_with_its_arguments() -> None:
    factory = factory_for()
    cluster = Cluster()
    Everywhere(cluster.channels[1], factory)
    application = factory.application_for("live")
    assert application is not None
    clients = [FakeClient(app="live"), FakeClient(app="live")]
    for client in clients:
        application.add_client(client)
    arguments = ("Café ☕ 直播", 42, -2.5, True, None, {"nested": {"list": [1, "ü"], "n": 2.25}})
    there = Everywhere(cluster.channels[0], factory_for())
    there.broadcast("live", "onAir", encode_values(arguments))
    cluster.move()
    assert [c.sent for c in clients] == [[("onAir", arguments)]] * 2


def test_an_application_broadcast_goes_to_its_clients_and_elsewhere_unless_told_not_to() -> None:
    told: list[tuple[str, str, bytes]] = []

    class Recorder:
        def broadcast(self, app: str, method: str, values: bytes) -> None:
            told.append((app, method, values))

    factory = factory_for()
    application = factory.application_for("live")
    assert isinstance(application, Application)
    application.elsewhere = Recorder()
    client = FakeClient(app="live")
    application.add_client(client)
    assert application.broadcast("onAir", "cam", {"n": 1}) == 1
    assert application.broadcast("local", "x", everywhere=False) == 1
    assert told == [("live", "onAir", encode_values(("cam", {"n": 1})))]
    assert client.sent == [("onAir", ("cam", {"n": 1})), ("local", ("x",))]


def test_the_broadcast_operation_answers_how_many_clients_it_called() -> None:
    factory = factory_for()
    cluster = Cluster()
    Everywhere(cluster.channels[1], factory)
    application = factory.application_for("live")
    assert application is not None
    application.add_client(FakeClient(app="live"))
    payload = {"app": "live", "method": "m", "values": ""}
    d = cluster.channels[0].ask(1, BROADCAST, payload)
    cluster.move()
    assert result_of(d) == {"clients": 1}


def test_a_request_over_the_size_limit_is_refused_before_it_is_sent() -> None:
    proto = ControlProtocol({})
    transport = StringTransport()
    proto.makeConnection(transport)
    with pytest.raises(ValueError, match="over"):
        proto.request("big", {"text": "x" * ControlProtocol.MAX_LENGTH})
    assert transport.value() == b""


@pytest.mark.parametrize("message", [b"[1,2]", b'{"op":"x"}', b'{"id":"1","op":"x"}'])
def test_a_message_that_is_not_an_object_with_a_numeric_id_closes_the_connection(
    message: bytes,
) -> None:
    proto = ControlProtocol({"x": lambda p: {}})
    transport = StringTransport()
    proto.makeConnection(transport)
    proto.dataReceived(str(len(message)).encode() + b":" + message + b",")
    assert transport.disconnecting and transport.value() == b""


def test_a_request_without_payload_gives_the_handler_an_empty_one_and_an_empty_reply() -> None:
    seen: list[Any] = []
    pair = Pair(right={"x": lambda p: seen.append(p)})
    d = pair.a.request("x", {})
    pair.move()
    assert seen == [{}] and result_of(d) == {}
    message = b'{"id":9,"op":"x"}'
    pair.b.dataReceived(b"%d:%s," % (len(message), message))
    assert seen == [{}, {}]


def test_both_ends_may_ask_at_once_with_the_same_ids() -> None:
    """Each end numbers its own requests: a request numbered 1 from the other end is never
    taken for the reply to this end's request 1."""
    pair = Pair(left={"who": lambda p: {"me": "a"}}, right={"who": lambda p: {"me": "b"}})
    from_a, from_b = pair.a.request("who", {}), pair.b.request("who", {})
    pair.move()
    assert (result_of(from_a), result_of(from_b)) == ({"me": "b"}, {"me": "a"})


def test_an_unknown_operation_is_only_answered_with_the_error() -> None:
    pair = Pair()
    mine = pair.b.request("x", {})  # b waits for its own request 1
    d = pair.a.request("nope", {})  # a's request 1 reaches b
    pair.tb.clear()
    pair.b.dataReceived(pair.ta.value())
    answered = pair.tb.value()
    assert answered == b'38:{"id":1,"error":"no operation \'nope\'"},'  # one message
    assert not mine.called  # b took a's request for no reply of its own
    pair.ta.clear()
    pair.move()
    with pytest.raises(ControlError):
        result_of(d)


def test_a_message_of_exactly_the_size_limit_is_sent() -> None:
    proto = ControlProtocol({})
    transport = StringTransport()
    proto.makeConnection(transport)
    frame = json.dumps({"id": 1, "op": "big", "payload": {"text": ""}}, separators=(",", ":"))
    proto.request("big", {"text": "x" * (ControlProtocol.MAX_LENGTH - len(frame))})
    assert transport.value().startswith(b"%d:" % ControlProtocol.MAX_LENGTH)


def test_a_reply_after_the_timeout_is_ignored_and_the_connection_goes_on() -> None:
    cluster = Cluster()
    late: list[Deferred[dict[str, Any]]] = []
    cluster.channels[1].handle("slow", lambda p: late.append(Deferred()) or late[-1])
    cluster.channels[1].handle("fast", lambda p: {"ok": True})
    channel = cluster.channels[0]
    timed_out = channel.ask(1, "slow", {})
    cluster.move()
    cluster.clock.advance(5.0)
    late[0].callback({"too": "late"})
    cluster.move()
    with pytest.raises(ControlError, match="did not answer"):
        result_of(timed_out)
    after = channel.ask(1, "fast", {})
    cluster.move()
    assert result_of(after) == {"ok": True} and not cluster.pairs[1].ta.disconnecting


def test_a_request_that_timed_out_is_forgotten() -> None:
    cluster = Cluster()
    cluster.channels[1].handle("slow", lambda p: Deferred())
    d = cluster.channels[0].ask(1, "slow", {})
    cluster.move()
    assert cluster.pairs[1].a.pending == 1
    cluster.clock.advance(5.0)
    with pytest.raises(ControlError):
        result_of(d)
    assert cluster.pairs[1].a.pending == 0


def test_requests_asked_while_the_connection_opens_go_once_it_is_open_in_order() -> None:
    opening: Deferred[ControlProtocol] = Deferred()
    pair = Pair(right={"n": lambda p: {"n": p["n"]}})
    channel = ControlChannel(Clock(), "/nonexistent", 0, 2, connect=lambda worker: opening)
    asked = [channel.ask(1, "n", {"n": n}) for n in range(3)]
    assert not any(d.called for d in asked)
    opening.callback(pair.a)
    pair.move()
    assert [result_of(d)["n"] for d in asked] == [0, 1, 2]


# --------------------------------------------------------------------- the service


class Reactor(MemoryReactorClock):
    """Records the listening ports it hands out, and whether they were stopped."""

    def __init__(self) -> None:
        super().__init__()
        self.stopped: list[str] = []

    def listenUNIX(self, address: str, factory: Any, backlog: int = 50, mode: int = 0o666,
                   wantPID: int = 0) -> Any:  # fmt: skip
        super().listenUNIX(address, factory, backlog, mode, wantPID)
        reactor = self

        class Port:
            def stopListening(self) -> None:
                reactor.stopped.append(address)

        return Port()


def test_the_channel_listens_privately_on_its_socket_answering_its_operations(
    tmp_path: Any,
) -> None:
    stale = tmp_path / "control-1.sock"
    stale.write_text("left by this worker's previous life")
    reactor = Reactor()
    channel = ControlChannel(reactor, str(tmp_path), 1, 2)
    channel.handle("ping", lambda p: {"pong": p["n"]})
    channel.startService()
    assert channel.running and not stale.exists()
    [(address, factory, _, mode, _)] = reactor.unixServers
    assert (address, mode) == (str(stale), 0o600)
    pair = Pair()
    pair.b = factory.buildProtocol(None)
    pair.b.makeConnection(pair.tb)
    d = pair.a.request("ping", {"n": 3})
    pair.move()
    assert result_of(d) == {"pong": 3}


def test_the_channel_connects_to_the_other_workers_socket_and_closes_all_when_stopped(
    tmp_path: Any,
) -> None:
    reactor = Reactor()
    channel = ControlChannel(reactor, str(tmp_path), 0, 2)
    channel.startService()
    d = channel.ask(1, "x", {})
    [(address, factory, _, _)] = reactor.unixClients
    assert address == str(tmp_path / "control-1.sock")
    transport = StringTransport()
    factory.buildProtocol(None).makeConnection(transport)
    assert b'"op":"x"' in transport.value()
    channel.stopService()
    assert (
        not channel.running
        and transport.disconnecting
        and reactor.stopped == [str(tmp_path / "control-0.sock")]
    )
    d.cancel()
    with pytest.raises(ControlError):
        result_of(d)
