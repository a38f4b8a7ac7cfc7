"""A flush handed over in slices (:meth:`fms.live.stream.LiveStream.flush_round`): the reactor
reads between slices, so what arrives during a long flush reaches the players the round has
not served yet; those it had served get it at the next round."""

from __future__ import annotations

from fms.rtmp.constants import MessageType
from tests.support.live_sink import Sink, inter, key, published


def video_stamps(sink: Sink) -> list[int]:
    return [m.timestamp for m in sink.messages() if m.type_id == MessageType.VIDEO]


def test_a_message_published_mid_round_reaches_the_players_not_served_yet() -> None:
    stream = published()
    sinks = [Sink() for _ in range(4)]
    for sink in sinks:
        stream.add_player(sink, 1)
    stream.publish_message(key(0))
    stream.flush(0.0)
    stream.publish_message(inter(40))
    round_ = stream.flush_round(0.04, slice_players=2)
    next(round_)  # the first slice: two players served, then the reactor would read
    early = [sink for sink in sinks if video_stamps(sink) == [0, 40]]
    assert len(early) == 2
    stream.publish_message(inter(80))
    for _ in round_:
        pass
    late = [sink for sink in sinks if sink not in early]
    assert [video_stamps(sink) for sink in late] == [[0, 40, 80]] * 2
    assert [video_stamps(sink) for sink in early] == [[0, 40]] * 2
    assert stream.dirty  # what arrived mid-round is owed to the early ones
    stream.flush(0.08)
    assert [video_stamps(sink) for sink in sinks] == [[0, 40, 80]] * 4


def test_a_player_that_leaves_mid_round_is_not_served_by_its_rest() -> None:
    stream = published()
    sinks = [Sink() for _ in range(4)]
    players = [stream.add_player(sink, 1) for sink in sinks]
    stream.publish_message(key(0))
    stream.flush(0.0)
    stream.publish_message(inter(40))
    round_ = stream.flush_round(0.04, slice_players=2)
    next(round_)
    waiting = [i for i, sink in enumerate(sinks) if video_stamps(sink) == [0]]
    assert len(waiting) == 2
    stream.remove_player(players[waiting[0]])
    for _ in round_:
        pass
    assert video_stamps(sinks[waiting[0]]) == [0]
    assert video_stamps(sinks[waiting[1]]) == [0, 40]
