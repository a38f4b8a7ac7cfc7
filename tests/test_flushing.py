"""The fan-out flush loop (:mod:`fms.server.flushing`, :mod:`fms.live.pacing`): the adaptive
interval follows what flushes cost, a message published on an idle server goes out at once,
the fixed loop is the one the server had before, and one loop serves every kind of viewer.

No wall clock: Twisted's ``task.Clock`` schedules, and a flush "costs" what the test makes it
spend on a fake cost clock (:class:`Meter`)."""

from __future__ import annotations

import itertools
from collections.abc import Generator

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from fms.cluster.relay import RelayHub
from fms.cluster.spec import WorkerSpec
from fms.config import Config, HTTPConfig, StreamsConfig, parse_config
from fms.counters import COUNTERS
from fms.errors import ConfigError
from fms.http.api import API
from fms.http.web import APISite
from fms.live import flv
from fms.live.pacing import FLOOR, FlushPace
from fms.rtmp.constants import MessageType
from fms.server.factory import RTMPServerFactory
from fms.server.flushing import SLICE_SECONDS, AdaptiveFlushes, FixedFlushes, flushes_for
from tests.support.server_peer import Peer
from tests.test_relay import FakeReactor

AVC_HEADER = b"\x17\x00\x00\x00\x00\x01\x64\x00\x1f"

KEYFRAME = b"\x17\x01\x00\x00\x00" + b"k" * 40
INTERFRAME = b"\x27\x01\x00\x00\x00" + b"i" * 40
CEILING = 0.1


class Meter:
    """A fake ``time.perf_counter``: each flush advances it by ``cost`` seconds, and records
    when (on the reactor's clock) it ran."""

    def __init__(self, clock: Clock, cost: float) -> None:
        self.clock = clock
        self.cost = cost
        self.now = 0.0
        self.flushes: list[float] = []

    def __call__(self) -> float:
        return self.now

    def flush(self) -> None:
        self.flushes.append(self.clock.seconds())
        self.now += self.cost


def adaptive(cost: float, share: float = 0.5) -> tuple[AdaptiveFlushes, Meter, Clock]:
    clock = Clock()
    meter = Meter(clock, cost)
    loop = AdaptiveFlushes(clock, meter.flush, CEILING, share, cost_clock=meter)
    loop.start()
    return loop, meter, clock


def publish_every(loop: AdaptiveFlushes, clock: Clock, step: float, count: int) -> None:
    """A publisher's read every ``step`` seconds, ``count`` times (flushes run in between)."""
    for _ in range(count):
        loop.published()
        clock.advance(step)


def gaps(times: list[float]) -> list[float]:
    return [round(b - a, 9) for a, b in itertools.pairwise(times)]


# ------------------------------------------------------------------------- the pace


def test_a_cheap_flush_brings_the_interval_down_to_the_floor() -> None:
    pace = FlushPace(ceiling=CEILING, share=0.5)
    pace.flushed(started=0.0, cost=0.08)
    pace.flushed(started=0.1, cost=0.0001)
    assert pace.interval == FLOOR


def test_an_expensive_flush_brings_the_interval_up_to_the_ceiling() -> None:
    pace = FlushPace(ceiling=CEILING, share=0.5)
    pace.flushed(started=0.0, cost=0.0001)
    pace.flushed(started=0.01, cost=0.08)
    assert pace.interval == CEILING


def test_between_floor_and_ceiling_the_interval_is_the_cost_over_the_share() -> None:
    """A flush of 10 ms with half the time for fan-out: the next may start 20 ms after it."""
    pace = FlushPace(ceiling=CEILING, share=0.5)
    assert pace.flushed(started=1.0, cost=0.01) == pytest.approx(1.02)
    assert pace.interval == pytest.approx(0.02)


def test_a_flush_longer_than_the_ceiling_is_followed_after_its_cost_over_the_busy_share() -> None:
    """Not at the next slot of the ceiling's grid (as ``LoopingCall`` does for the fixed flush,
    300 ms here): 105 ms of flushing at a 100 ms ceiling and a busy share of 0.9 puts the next
    start at 116.7 ms, leaving a tenth of the time for everything else."""
    pace = FlushPace(ceiling=CEILING, share=0.5, busy_share=0.9)
    assert pace.flushed(started=0.0, cost=0.105) == pytest.approx(0.105 / 0.9)
    assert pace.flushed(started=1.0, cost=0.25) == pytest.approx(1.0 + 0.25 / 0.9)


def test_a_message_waits_for_the_interval_only_if_it_has_not_passed() -> None:
    pace = FlushPace(ceiling=CEILING, share=0.5)
    pace.flushed(started=0.0, cost=0.02)  # interval 40 ms
    assert pace.due(0.01) == pytest.approx(0.04)
    assert pace.due(0.5) == 0.5


# --------------------------------------------------------------------- the adaptive loop


def test_a_message_published_on_an_idle_server_is_flushed_within_the_floor() -> None:
    loop, meter, clock = adaptive(cost=0.0001)
    clock.advance(1.05)  # ceiling flushes only: nothing was published
    before = len(meter.flushes)
    loop.published()
    clock.advance(FLOOR)
    assert len(meter.flushes) == before + 1
    assert 1.05 <= meter.flushes[-1] <= 1.05 + FLOOR


def test_cheap_flushes_follow_a_steady_publisher_at_the_floor() -> None:
    """Reads every 1 ms, flushes of 0.1 ms: one flush every 5 ms (the floor), not every read
    and not every 100 ms."""
    loop, meter, clock = adaptive(cost=0.0001)
    publish_every(loop, clock, 0.001, 200)
    assert gaps(meter.flushes)[-10:] == [pytest.approx(FLOOR)] * 10


def test_flushes_longer_than_the_ceiling_do_not_skip_to_every_other_slot() -> None:
    """Flushes of 105 ms with a publisher reading every 10 ms: one every 116.7 ms (105 / 0.9),
    not one every 200 ms (the next slot of a 100 ms grid)."""
    loop, meter, clock = adaptive(cost=0.105)
    publish_every(loop, clock, 0.001, 2000)
    assert gaps(meter.flushes)[-5:] == [pytest.approx(0.105 / 0.9, abs=0.0011)] * 5


def test_an_overrun_flush_without_publishers_waits_for_its_cost_over_the_busy_share() -> None:
    """Nothing published: after a 250 ms flush (the preambles of many joining players), the
    ceiling's flush comes 250 / 0.9 ms after it started."""
    _loop, meter, clock = adaptive(cost=0.25)
    clock.advance(CEILING)
    clock.advance(0.25 / 0.9 - 0.001)
    assert meter.flushes == [pytest.approx(CEILING)]
    clock.advance(0.002)  # Clock runs a call at the time it was advanced to
    assert gaps(meter.flushes) == [pytest.approx(0.25 / 0.9, abs=0.0011)]


def test_expensive_flushes_space_out_to_the_ceiling() -> None:
    """Flushes of 80 ms (160 ms of time at a half share): one every 100 ms, the ceiling."""
    loop, meter, clock = adaptive(cost=0.08)
    publish_every(loop, clock, 0.01, 100)
    assert gaps(meter.flushes)[-5:] == [pytest.approx(CEILING)] * 5


def test_flushes_of_middling_cost_are_spaced_by_cost_over_share() -> None:
    loop, meter, clock = adaptive(cost=0.01, share=0.25)
    publish_every(loop, clock, 0.001, 300)
    assert gaps(meter.flushes)[-5:] == [pytest.approx(0.04)] * 5


def test_the_interval_shrinks_again_when_flushes_get_cheap() -> None:
    """After a spell of expensive flushes (players joined), cheap ones (they left) bring the
    spacing back to the floor."""
    loop, meter, clock = adaptive(cost=0.08)
    publish_every(loop, clock, 0.01, 50)
    meter.cost = 0.0001
    start = len(meter.flushes)
    publish_every(loop, clock, 0.001, 100)
    assert gaps(meter.flushes[start:])[-5:] == [pytest.approx(FLOOR)] * 5


def test_with_nothing_published_the_loop_flushes_at_the_ceiling_only() -> None:
    """What does not come from a publisher (a joining player's preamble, stall deadlines)
    still gets its flush, and an idle server is not woken every 5 ms."""
    _, meter, clock = adaptive(cost=0.0001)
    step = CEILING / 4
    for _ in range(10):
        clock.advance(step)
    assert len(meter.flushes) == 2
    for n, when in enumerate(meter.flushes, start=1):
        assert n * CEILING <= when + 1e-9 and when <= n * CEILING + step


def test_a_stopped_loop_flushes_no_more() -> None:
    loop, meter, clock = adaptive(cost=0.0001)
    loop.stop()
    loop.published()
    clock.advance(1.0)
    assert meter.flushes == [] and not loop.running


def test_a_flush_that_raises_keeps_the_loop_going() -> None:
    clock = Clock()
    calls: list[float] = []

    def failing() -> None:
        calls.append(clock.seconds())
        raise RuntimeError("flush bug")

    loop = AdaptiveFlushes(clock, failing, CEILING, 0.5)
    loop.start()
    for _ in range(2):
        with pytest.raises(RuntimeError):
            clock.advance(CEILING)
    assert calls == [pytest.approx(CEILING), pytest.approx(2 * CEILING)]


# ------------------------------------------------------------------------ the fixed loop


def test_the_fixed_loop_flushes_every_interval_whatever_is_published() -> None:
    clock = Clock()
    meter = Meter(clock, 0.0001)
    loop = FixedFlushes(clock, meter.flush, 0.125)  # binary fractions: exact sums
    loop.start()
    for _ in range(24):
        loop.published()
        clock.advance(1 / 64)
    assert meter.flushes == [0.125, 0.25, 0.375]


def test_a_fixed_interval_of_zero_flushes_in_the_publishers_read() -> None:
    clock = Clock()
    meter = Meter(clock, 0.0001)
    loop = FixedFlushes(clock, meter.flush, 0.0)
    loop.start()
    loop.published()
    assert meter.flushes == [0.0]


@pytest.mark.parametrize(
    ("mode", "interval", "kind"),
    [
        ("adaptive", 0.1, AdaptiveFlushes),
        ("fixed", 0.1, FixedFlushes),
        ("adaptive", 0.0, FixedFlushes),  # 0: at once, nothing to adapt
    ],
)
def test_the_configuration_picks_the_loop(mode: str, interval: float, kind: type) -> None:
    streams = StreamsConfig(flush=mode, flush_interval=interval)
    assert isinstance(flushes_for(streams, Clock(), lambda: None), kind)


def test_the_flush_mode_is_one_of_adaptive_and_fixed() -> None:
    assert Config().streams.flush == "adaptive"
    with pytest.raises(ConfigError) as caught:
        parse_config('[streams]\nflush = "sometimes"\n', "fms.toml")
    assert caught.value.problems == [
        "fms.toml: streams.flush: 'sometimes' is not one of adaptive, fixed"
    ]


# ------------------------------------------------------------- one loop, every viewer


def test_an_rtmp_player_gets_a_frame_at_the_next_reactor_turn() -> None:
    factory = RTMPServerFactory(Config(), clock=Clock())
    clock = factory.clock
    assert isinstance(clock, Clock)
    factory.doStart()
    try:
        clock.advance(1.0)  # a ceiling flush at 1.0 (the clock jumped there)
        clock.advance(0.05)  # idle since: more than the floor
        publisher = Peer(factory, port=1).connect(create_stream=True).publish()
        watcher = Peer(factory, port=2).connect(create_stream=True).play()
        publisher.send_media(MessageType.VIDEO, 0, KEYFRAME)
        watcher.pump()
        assert watcher.video() == []  # not inside the publisher's read
        clock.advance(0)
        watcher.pump()
        assert watcher.video() == [KEYFRAME]
    finally:
        factory.doStop()


def test_a_reload_to_fixed_replaces_the_adaptive_loop() -> None:
    factory = RTMPServerFactory(Config(), clock=Clock())
    factory.doStart()
    try:
        assert isinstance(factory._flusher, AdaptiveFlushes)
        factory.reload(parse_config('[streams]\nflush = "fixed"\n'))
        assert isinstance(factory._flusher, FixedFlushes) and factory._flusher.running
    finally:
        factory.doStop()


def flv_tags(transport: StringTransport) -> list[bytes]:
    """Payloads of the FLV tags an HTTP-FLV viewer was sent so far."""
    body = transport.value().partition(b"\r\n\r\n")[2]
    data = b""
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            break
        data += rest[:size]
        body = rest[size + 2 :]
    return [tag.payload for tag in flv.read_file(data)[1]] if data else []


def test_an_http_flv_viewer_gets_a_frame_at_the_next_reactor_turn() -> None:
    """HTTP-FLV viewers are players of the same registry: the same loop flushes them."""
    clock = Clock()
    factory = RTMPServerFactory(Config(), clock=clock)
    config = HTTPConfig(enabled=True)
    site = APISite(API(factory, config), config, clock)
    factory.doStart()
    try:
        publisher = Peer(factory, port=1).connect(create_stream=True).publish()
        publisher.send_media(MessageType.VIDEO, 0, AVC_HEADER)
        publisher.send_media(MessageType.VIDEO, 0, KEYFRAME)
        address = IPv4Address("TCP", "192.0.2.7", 5000)
        channel = site.buildProtocol(address)
        assert channel is not None
        transport = StringTransport(peerAddress=address)
        channel.makeConnection(transport)
        channel.dataReceived(b"GET /live/cam.flv HTTP/1.1\r\nHost: x\r\n\r\n")
        clock.advance(CEILING)  # the viewer's start, whatever the loop's state
        assert flv_tags(transport) == [AVC_HEADER, KEYFRAME]
        clock.advance(0.05)  # idle
        publisher.send_media(MessageType.VIDEO, 40, INTERFRAME)
        assert flv_tags(transport) == [AVC_HEADER, KEYFRAME]
        clock.advance(0)
        assert flv_tags(transport) == [AVC_HEADER, KEYFRAME, INTERFRAME]
    finally:
        factory.doStop()


def test_a_player_of_a_relayed_stream_gets_a_frame_at_the_next_reactor_turn() -> None:
    """A relay link from another worker publishes here like a client: its reads wake the
    same loop as a client publisher's."""
    reactor = FakeReactor()
    w0 = RTMPServerFactory(Config(), clock=reactor)
    w1 = RTMPServerFactory(Config(), clock=reactor)
    reactor.target = w1
    hub = RelayHub(reactor, WorkerSpec(0, 2, "/nonexistent", 1935), w0)
    w0.publish_listener = hub
    w0.doStart()
    w1.doStart()
    try:
        watcher = Peer(w1, port=2).connect(create_stream=True).play()
        publisher = Peer(w0, port=1).connect(create_stream=True).publish()
        reactor.pump()
        publisher.send_media(MessageType.VIDEO, 0, AVC_HEADER)
        publisher.send_media(MessageType.VIDEO, 0, KEYFRAME)
        reactor.pump()
        reactor.advance(CEILING)
        reactor.pump()
        watcher.pump()
        assert watcher.video() == [AVC_HEADER, KEYFRAME]
        reactor.advance(0.05)  # idle
        publisher.send_media(MessageType.VIDEO, 40, INTERFRAME)
        reactor.pump()  # worker 1 read it from the link
        watcher.pump()
        assert watcher.video() == [AVC_HEADER, KEYFRAME]
        reactor.advance(0)
        watcher.pump()
        assert watcher.video() == [AVC_HEADER, KEYFRAME, INTERFRAME]
    finally:
        hub.stopService()
        w0.doStop()
        w1.doStop()


def test_the_adaptive_loop_counts_each_flush_and_the_time_between_starts() -> None:
    """Flushes of 105 ms, the next 116.7 ms after each start: the metrics see both."""
    COUNTERS.clear()
    try:
        loop, meter, clock = adaptive(cost=0.105)
        publish_every(loop, clock, 0.001, 1000)
        figures = COUNTERS.snapshot()["histograms"]
    finally:
        COUNTERS.clear()
    [[_, bounds, costs, total]] = figures["flush_seconds"]
    assert sum(costs) == len(meter.flushes)
    assert total == pytest.approx(0.105 * len(meter.flushes))
    [[_, bounds, gaps_, _]] = figures["flush_interval_seconds"]
    assert sum(gaps_) == len(meter.flushes) - 1
    assert sum(gaps_[: bounds.index(0.1) + 1]) <= 1  # the first gap may be shorter, none other


def test_a_round_longer_than_a_slice_lets_the_reactor_turn_between_slices() -> None:
    """A round of three slices, each costing 1.5 SLICE_SECONDS on the cost clock: each slice in
    its own reactor call; a publisher's read during the round starts no second round; the pace
    is given the round's whole cost (3 slices)."""
    clock = Clock()
    meter = Meter(clock, 0.0)
    rounds: list[int] = []
    calls: list[float] = []

    def round_() -> Generator[None, None, None]:
        rounds.append(1)
        for _ in range(3):
            meter.now += 1.5 * SLICE_SECONDS
            loop.published()  # as if a publisher were read between the slices
            yield

    loop = AdaptiveFlushes(clock, meter.flush, CEILING, 0.5, cost_clock=meter, flush_round=round_)
    run_slice = loop._slice
    loop._slice = lambda: (calls.append(clock.seconds()), run_slice())  # type: ignore[method-assign]
    loop.start()
    clock.advance(CEILING)  # the ceiling's flush (Clock runs the zero-delay calls at once)
    assert rounds == [1]
    # the first slice from the flush, one reactor call for each of the two others, and one
    # that finds the round over
    assert len(calls) == 4
    assert loop.pace.interval == pytest.approx(4.5 * SLICE_SECONDS / 0.5)
    assert meter.flushes == []  # the flush in one piece was never called
