"""Low-Latency HLS across workers, in memory: two workers wired through a dictionary control
channel (tests/test_http_hls_ts.py's ``two_workers``), one fake clock. Worker 0 muxes
live/cam; worker 1 forwards ``ll.m3u8`` blocking reloads and parts to it.

``publish(server, 5)`` (2 s segments, a keyframe a second, 0.5 s parts) closes segments at 2 s
and 4 s and leaves segment ``OPEN`` being made with two parts; part 2 is cut when the frame
at 5.44 s arrives, part 3 at 5.92 s (see tests/test_http_hls_ll.py)."""

from __future__ import annotations

from fms.http import hlsforward
from fms.http.web import APISite
from tests.test_http_hls import get, publish
from tests.test_http_hls_ll import OPEN, Held, frames, held_count
from tests.test_http_hls_ts import DictPeers, two_workers


def lower(headers: dict[str, str]) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


def target_of(site: APISite) -> float:
    """The owner's target duration (s): a blocking deadline is three of them."""
    entry = site.resource.hls.streams.streams[("live", "cam")]  # type: ignore[attr-defined]
    return float(entry.segments.target_duration)


def asks(peers: DictPeers) -> int:
    return len(peers.asked)


def test_a_forwarded_blocking_reload_is_answered_when_the_part_appears_on_the_owner() -> None:
    """Worker 1 holds the reload (counted in its held requests, and the owner's ask in the
    owner's) and answers with worker 0's playlist once worker 0 makes the part."""
    clock, sites, servers, _ = two_workers()
    publish(servers[0], 5)
    request = Held(sites[1], f"/live/cam/ll.m3u8?_HLS_msn={OPEN}&_HLS_part=2")
    clock.advance(1)
    assert not request.answered
    assert held_count(sites[1]) == 1 and held_count(sites[0]) == 1
    frames(servers[0], 5000, 5400)
    assert not request.answered
    frames(servers[0], 5400, 5480)
    status, headers, body = request.answer()
    assert status == 200 and headers["Content-Type"] == "application/vnd.apple.mpegurl"
    assert lower(headers)["x-fms-worker"] == "1" and lower(headers)["x-fms-hls-muxer"] == "0"
    text = body.decode()
    assert f'URI="seg{OPEN}.2.m4s"' in text
    assert f'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="seg{OPEN}.3.m4s"' in text
    assert body == get(sites[0], "/live/cam/ll.m3u8")[2]
    assert held_count(sites[1]) == 0 and held_count(sites[0]) == 0


def test_a_forwarded_reload_outlasting_several_asks_is_asked_again_until_answered() -> None:
    """The owner holds an ask at most BLOCK_WAIT seconds and says "blocked"; worker 1 asks
    again, so a part made after three such asks still answers the reload."""
    clock, sites, servers, peers = two_workers()
    publish(servers[0], 5)
    peers.asked.clear()
    request = Held(sites[1], f"/live/cam/ll.m3u8?_HLS_msn={OPEN}&_HLS_part=2")
    before = asks(peers)
    for _ in range(3):
        clock.advance(hlsforward.BLOCK_WAIT)
        assert not request.answered
    assert asks(peers) == before + 3  # one more ask after each hold ran out
    assert 3 * hlsforward.BLOCK_WAIT < 3 * target_of(sites[0])
    frames(servers[0], 5000, 5480)
    status, _, body = request.answer()
    assert status == 200 and f'URI="seg{OPEN}.2.m4s"' in body.decode()
    assert held_count(sites[1]) == 0 and held_count(sites[0]) == 0


def test_a_forwarded_reload_gets_503_at_three_target_durations_and_not_before() -> None:
    """No part made: worker 1 answers 503 at three of the owner's target durations from the
    request's arrival, not before, and neither worker holds anything after."""
    clock, sites, servers, _ = two_workers()
    publish(servers[0], 5)
    deadline = 3 * target_of(sites[0])
    request = Held(sites[1], f"/live/cam/ll.m3u8?_HLS_msn={OPEN}&_HLS_part=5")
    clock.advance(deadline - 0.01)
    assert not request.answered
    clock.advance(0.02)
    status, headers, body = request.answer()
    assert status == 503 and b"not made in time" in body
    assert lower(headers)["x-fms-worker"] == "1"
    assert held_count(sites[1]) == 0 and held_count(sites[0]) == 0


def test_parts_are_forwarded_byte_for_byte_and_kept() -> None:
    """Every part worker 0 lists is worker 1's answer byte for byte, with the part's type and
    long caching; a second request for one is served without asking worker 0 again."""
    _clock, sites, servers, peers = two_workers()
    publish(servers[0], 5)
    listed = [
        line.split('URI="')[1].split('"')[0]
        for line in get(sites[0], "/live/cam/ll.m3u8")[2].decode().splitlines()
        if line.startswith("#EXT-X-PART:")
    ]
    assert f"seg{OPEN}.1.m4s" in listed and len(listed) >= 4
    for part in listed:
        mine, theirs = get(sites[0], f"/live/cam/{part}"), get(sites[1], f"/live/cam/{part}")
        assert theirs[0] == 200 and theirs[2] == mine[2] and len(mine[2]) > 0
        assert theirs[1]["Content-Type"] == mine[1]["Content-Type"] == "video/iso.segment"
        assert theirs[1]["Cache-Control"] == mine[1]["Cache-Control"]
        assert lower(theirs[1])["x-fms-hls-muxer"] == "0"
    peers.asked.clear()
    assert get(sites[1], f"/live/cam/{listed[0]}")[0] == 200
    assert peers.asked == []


def test_a_forwarded_preload_hinted_part_is_held_until_made_on_the_owner() -> None:
    """``seg<OPEN>.2.m4s``, hinted but not made: worker 1 holds it across asks and answers
    with the part's bytes once worker 0 makes it."""
    clock, sites, servers, _ = two_workers()
    publish(servers[0], 5)
    request = Held(sites[1], f"/live/cam/seg{OPEN}.2.m4s")
    clock.advance(2 * hlsforward.BLOCK_WAIT)
    assert not request.answered and held_count(sites[1]) == 1
    frames(servers[0], 5000, 5480)
    status, headers, body = request.answer()
    assert status == 200 and headers["Content-Type"] == "video/iso.segment"
    assert body == get(sites[0], f"/live/cam/seg{OPEN}.2.m4s")[2] and body


def test_a_far_future_msn_or_part_is_400_at_once_through_another_worker() -> None:
    """The owner's limits apply to forwarded reloads: ``_HLS_msn`` three segments beyond the
    last closed one, or ``_HLS_part`` at the Advance Part Limit past the parts made, is 400 at
    once; one step short of each is held."""
    _clock, sites, servers, _ = two_workers()
    publish(servers[0], 5)
    last = OPEN - 1
    for query in (f"_HLS_msn={last + 3}", f"_HLS_msn={OPEN}&_HLS_part={2 + 6}"):
        status, headers, body = get(sites[1], f"/live/cam/ll.m3u8?{query}")
        assert status == 400, (query, body)
        assert lower(headers)["x-fms-worker"] == "1"
    for query in (f"_HLS_msn={last + 2}", f"_HLS_msn={OPEN}&_HLS_part={2 + 5}"):
        assert not Held(sites[1], f"/live/cam/ll.m3u8?{query}").answered
    assert held_count(sites[1]) == 2


def test_forwarded_held_requests_count_against_the_asking_workers_cap() -> None:
    """With ``max_blocked_requests = 2`` on both workers, worker 1 holds two forwarded
    reloads and answers a third 503 at once, without asking worker 0 to hold it."""
    _clock, sites, servers, peers = two_workers(max_blocked_requests=2)
    publish(servers[0], 5)
    first = Held(sites[1], f"/live/cam/ll.m3u8?_HLS_msn={OPEN}&_HLS_part=2")
    second = Held(sites[1], f"/live/cam/seg{OPEN}.2.m4s")
    assert not first.answered and not second.answered
    peers.asked.clear()
    status, _, body = get(sites[1], f"/live/cam/ll.m3u8?_HLS_msn={OPEN}&_HLS_part=3")
    assert status == 503 and b"too many" in body
    assert held_count(sites[1]) == 2 and held_count(sites[0]) == 2
    assert len(peers.asked) == 1  # the first, non-holding ask only


def test_the_owner_answers_a_held_ask_within_the_control_channels_timeout() -> None:
    """An ask to hold longer than BLOCK_WAIT is answered "blocked" at BLOCK_WAIT, which is
    below the per-ask timeout of the real control channel, so no ask ever times out."""
    from fms.cluster.observe import TIMEOUT

    clock, sites, servers, peers = two_workers()
    publish(servers[0], 5)
    ask = {"app": "live", "name": "cam", "file": "ll.m3u8", "msn": OPEN, "part": 5, "hold": 60}
    replies: list[dict[str, object]] = []
    peers.ask(0, hlsforward.OP, ask).addCallback(replies.append)
    clock.advance(hlsforward.BLOCK_WAIT - 0.01)
    assert replies == []
    clock.advance(0.02)
    assert replies and replies[0]["blocked"] is True and replies[0]["target"] == target_of(sites[0])
    assert hlsforward.BLOCK_WAIT < TIMEOUT
