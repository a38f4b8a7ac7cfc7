"""The whole-write of a flush (:attr:`fms.live.log.Player.offer`): one call per player when it
can take all it lacks, the piecewise path otherwise, and sinks without it served as before."""

from __future__ import annotations

from fms.live.stream import FanoutLimits
from tests.support.live_sink import PlainSink, Sink, audio, inter, key, published


def test_a_player_that_can_take_everything_gets_one_offer_per_flush() -> None:
    stream = published()
    sink = Sink()
    stream.add_player(sink, 1)
    stream.publish_message(key(0))
    stream.publish_message(audio(10))
    stream.flush(0.0)
    stream.publish_message(inter(40))
    stream.flush(0.1)
    assert sink.offers == 2
    assert len(sink.writes) == 2
    assert [m.timestamp for m in sink.messages()] == [0, 10, 40]


def test_a_sink_without_offer_gets_the_same_bytes_as_one_with_it() -> None:
    stream = published()
    plain, offering = PlainSink(), Sink()
    stream.add_player(plain, 1)
    stream.add_player(offering, 1)
    for ts in range(0, 400, 40):
        stream.publish_message(key(ts) if ts == 0 else inter(ts, size=3000))
        stream.flush(ts / 1000)
    assert plain.offers == 0 and offering.offers == 10
    assert b"".join(plain.writes) == b"".join(offering.writes)
    assert len(plain.messages()) == 10


def test_an_offer_refused_for_want_of_room_falls_back_to_what_fits() -> None:
    """Offered whole (the 2,000-byte frame does not fit the 1,000 bytes left), refused, then
    handed over in pieces of at most the room left (this sink's socket takes each piece at
    once, so the room stays 1,000), as without the whole-write."""
    stream = published(FanoutLimits(player_buffer=4096))
    sink = Sink()
    sink.held = 4096 - 1000
    stream.add_player(sink, 1)
    stream.publish_message(key(0, size=2000))
    stream.flush(0.0)
    assert sink.offers == 1
    assert len(sink.writes) > 1 and max(len(w) for w in sink.writes) == 1000
    assert [m.timestamp for m in sink.messages()] == [0]
    assert len(sink.messages()[0].payload) == 2005
