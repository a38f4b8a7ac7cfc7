"""Low-Latency HLS requests (fms.http.hls_ll through fms.http.hls) with Twisted's in-memory
transport and a fake clock: blocking playlist reloads (answered when the part appears, 503 at
their deadline and not before, 400 for what RFC 8216bis says to refuse), preload-hinted parts
held until made, the cap on held requests, the ``_HLS_*`` directives not making new viewers,
and the memory cap across streams (``[hls] max_bytes_total``).

The default settings: 2 s segments (a keyframe a second), 0.5 s parts. ``publish(server, 5)``
closes segments at 2 s and 4 s and leaves the third being made with two parts (cut when the
frames at 4.48 s and 4.96 s arrived)."""

from __future__ import annotations

from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport

from fms.http.web import APISite, LimitedHTTPChannel
from fms.rtmp.constants import MessageType
from fms.rtmp.messages import Media
from fms.server.factory import RTMPServerFactory
from tests.support.live_sink import AAC_HEADER, AVC_HEADER, audio, inter, key
from tests.test_http_hls import START, Recorder, get, parse, publish, setup, uris, with_plugin

FIRST = int(START)
OPEN = FIRST + 2
"""The segment being made after ``publish(server, 5)``."""


def frames(server: RTMPServerFactory, start: int, end: int, name: str = "cam") -> None:
    """Publish live/NAME's frames from ``start`` to ``end`` ms (25 fps, a keyframe a
    second, AAC beside each frame)."""
    stream = server.registry.get("live", name)
    assert stream is not None
    for ts in range(start, end, 40):
        stream.publish_message(audio(ts))
        stream.publish_message(key(ts) if ts % 1000 == 0 else inter(ts))


class Held:
    """A request sent on its own connection, whose answer may come later."""

    def __init__(self, site: APISite, path: str) -> None:
        address = IPv4Address("TCP", "192.0.2.7", 5000)
        channel = site.buildProtocol(address)
        assert isinstance(channel, LimitedHTTPChannel)
        self.channel = channel
        self.transport = StringTransport(peerAddress=address)
        channel.makeConnection(self.transport)
        channel.dataReceived(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())

    @property
    def answered(self) -> bool:
        return self.transport.value() != b""

    def answer(self) -> tuple[int, dict[str, str], bytes]:
        return parse(self.transport)


def held_count(site: APISite) -> int:
    return int(site.resource.hls.held.held)  # type: ignore[attr-defined]


def test_a_blocking_reload_is_answered_when_the_part_asked_for_appears() -> None:
    site, server, clock = setup()
    publish(server, 5)
    request = Held(site, f"/live/cam/ll.m3u8?_HLS_msn={OPEN}&_HLS_part=2")
    clock.advance(1)
    frames(server, 5000, 5400)  # part 2 is cut when the frame at 5.44 s arrives
    assert not request.answered
    frames(server, 5400, 5480)
    status, headers, body = request.answer()
    assert status == 200 and headers["Content-Type"] == "application/vnd.apple.mpegurl"
    text = body.decode()
    assert f'URI="seg{OPEN}.2.m4s"' in text
    assert f'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="seg{OPEN}.3.m4s"' in text
    assert held_count(site) == 0


def test_a_blocking_reload_for_a_whole_segment_waits_for_it_to_close() -> None:
    site, server, _ = setup()
    publish(server, 5)
    request = Held(site, f"/live/cam/ll.m3u8?_HLS_msn={OPEN}")
    frames(server, 5000, 5960)
    assert not request.answered  # parts of it came, not the whole segment
    frames(server, 5960, 6040)  # the keyframe at 6 s closes it
    status, _, body = request.answer()
    assert status == 200 and f"seg{OPEN}.m4s" in uris(body)


def test_a_blocking_reload_gets_503_at_three_target_durations_and_not_before() -> None:
    site, server, clock = setup()
    publish(server, 5)
    request = Held(site, f"/live/cam/ll.m3u8?_HLS_msn={OPEN + 1}")
    clock.advance(3 * 2.0 - 0.01)
    assert not request.answered
    clock.advance(0.02)
    assert request.answer()[0] == 503
    assert held_count(site) == 0


def test_what_the_spec_refuses_is_a_400_at_once() -> None:
    """An msn more than two beyond the last closed segment, a part beyond the advance limit
    (3 / 0.5 = 6 parts beyond the last made), negative, non-numeric, huge, repeated values and
    a part without an msn: 400 without waiting (nothing held)."""
    site, server, _ = setup()
    publish(server, 5)
    bad = [
        f"_HLS_msn={FIRST + 4}",
        f"_HLS_msn={OPEN}&_HLS_part={2 + 6}",
        "_HLS_msn=-1",
        f"_HLS_msn={OPEN}&_HLS_part=-1",
        "_HLS_msn=abc",
        "_HLS_msn=1e3",
        "_HLS_msn=",
        "_HLS_msn=99999999999999999999",
        f"_HLS_msn={OPEN}&_HLS_msn={OPEN}",
        "_HLS_part=1",
    ]
    for query in bad:
        status, _, _ = get(site, f"/live/cam/ll.m3u8?{query}")
        assert status == 400, query
    assert held_count(site) == 0
    # the limits themselves: one step closer is held, not refused
    assert not Held(site, f"/live/cam/ll.m3u8?_HLS_msn={FIRST + 3}").answered
    assert not Held(site, f"/live/cam/ll.m3u8?_HLS_msn={OPEN}&_HLS_part={2 + 5}").answered
    assert held_count(site) == 2


def test_an_msn_already_there_or_an_ended_stream_is_answered_at_once() -> None:
    site, server, _ = setup()
    publisher = publish(server, 5)
    assert get(site, f"/live/cam/ll.m3u8?_HLS_msn={FIRST}&_HLS_part=9")[0] == 200
    request = Held(site, f"/live/cam/ll.m3u8?_HLS_msn={OPEN + 1}")
    stream = server.registry.get("live", "cam")
    assert stream is not None
    server.registry.release(stream, publisher)
    status, _, body = request.answer()
    assert status == 200 and body.decode().endswith("#EXT-X-ENDLIST\n")


def test_a_preload_hinted_part_is_held_until_made() -> None:
    site, server, _ = setup()
    publish(server, 5)
    request = Held(site, f"/live/cam/seg{OPEN}.2.m4s")
    assert not request.answered
    frames(server, 5000, 5480)
    status, headers, body = request.answer()
    entry = site.resource.hls.streams.streams[("live", "cam")]  # type: ignore[attr-defined]
    assert (status, headers["Content-Type"]) == (200, "video/iso.segment")
    assert headers["Cache-Control"] == "public, max-age=86400, immutable"
    assert body == entry.segments.part(OPEN, 2) and body[4:8] == b"moof"


def test_a_hinted_part_its_segment_closed_without_is_404() -> None:
    site, server, _ = setup()
    publish(server, 5)
    request = Held(site, f"/live/cam/seg{OPEN}.5.m4s")  # the segment closes after part 4
    frames(server, 5000, 6040)
    assert request.answer()[0] == 404


def test_parts_out_of_the_window_or_too_far_ahead_are_404_at_once() -> None:
    site, server, _ = setup(window=2)
    publish(server, 9)  # segments closed at 2, 4, 6, 8 s: FIRST + 2 and FIRST + 3 are kept
    assert get(site, f"/live/cam/seg{FIRST + 1}.0.m4s")[0] == 404
    assert get(site, f"/live/cam/seg{FIRST + 2}.0.m4s")[0] == 200
    assert get(site, f"/live/cam/seg{FIRST + 4}.9.m4s")[0] == 404  # beyond the advance limit
    assert get(site, f"/live/cam/seg{FIRST + 5}.0.m4s")[0] == 404  # not the segment being made
    assert get(site, "/live/other/seg1.0.m4s")[0] == 404
    assert held_count(site) == 0


def test_held_requests_are_capped_and_the_extra_one_gets_503_at_once() -> None:
    site, server, _ = setup(max_blocked_requests=2)
    publish(server, 5)
    first = Held(site, f"/live/cam/ll.m3u8?_HLS_msn={OPEN}&_HLS_part=2")
    second = Held(site, f"/live/cam/seg{OPEN}.2.m4s")
    assert not first.answered and not second.answered
    assert get(site, f"/live/cam/ll.m3u8?_HLS_msn={OPEN}&_HLS_part=3")[0] == 503
    assert get(site, f"/live/cam/seg{OPEN}.3.m4s")[0] == 503
    assert get(site, "/live/cam/ll.m3u8")[0] == 200  # nothing to wait for: not capped
    frames(server, 5000, 5480)
    assert first.answer()[0] == 200 and second.answer()[0] == 200
    assert not Held(site, f"/live/cam/ll.m3u8?_HLS_msn={OPEN}&_HLS_part=3").answered


def test_a_client_that_leaves_frees_its_place() -> None:
    site, server, _ = setup(max_blocked_requests=1)
    publish(server, 5)
    request = Held(site, f"/live/cam/ll.m3u8?_HLS_msn={OPEN + 1}")
    assert held_count(site) == 1
    request.channel.connectionLost(Exception("gone"))  # type: ignore[arg-type]
    assert held_count(site) == 0
    entry = site.resource.hls.streams.streams[("live", "cam")]  # type: ignore[attr-defined]
    assert entry.progress == []
    assert not Held(site, f"/live/cam/ll.m3u8?_HLS_msn={OPEN + 1}").answered


def test_blocking_directives_are_not_a_new_viewer_and_uris_do_not_carry_them() -> None:
    site, server, _ = setup()
    plugin = Recorder()
    with_plugin(server, plugin)
    publish(server, 5)
    for part in range(2):
        status, _, body = get(site, f"/live/cam/ll.m3u8?t=1&_HLS_msn={OPEN}&_HLS_part={part}")
        assert status == 200
    assert plugin.seen == [("connect", "hls", {"t": "1"}), ("play", "cam", {"t": "1"})]
    assert all(uri.endswith("?t=1") for uri in uris(body))
    assert "_HLS" not in body.decode()


def test_ll_playlist_is_404_without_parts_and_index_stays_plain() -> None:
    site, server, _ = setup(part_duration=0.0)
    publish(server, 5)
    assert get(site, "/live/cam/ll.m3u8")[0] == 404
    site, server, _ = setup()
    publish(server, 5)
    status, _, body = get(site, "/live/cam/index.m3u8")
    assert status == 200 and b"#EXT-X-PART" not in body and b"#EXT-X-VERSION:7" in body
    assert uris(body) == [f"seg{FIRST}.m4s", f"seg{FIRST + 1}.m4s"]


def publish_named(server: RTMPServerFactory, name: str) -> None:
    stream = server.registry.claim("live", name, object())
    assert stream is not None
    stream.publish_message(Media(MessageType.VIDEO, 0, 1, AVC_HEADER))
    stream.publish_message(Media(MessageType.AUDIO, 0, 1, AAC_HEADER))


def test_past_max_bytes_total_the_largest_stream_loses_its_oldest_segments() -> None:
    """Two streams, 1 MiB in all: the heavy one (200 kB/s, 400 kB segments) cannot keep its
    window, the light one (2.5 kB/s) keeps all its segments; the total never passes the cap
    by more than the frame just added, and the count kept matches what the streams hold."""
    cap = 1024 * 1024
    site, server, _ = setup(max_bytes_total=cap, window=6)
    publish_named(server, "heavy")
    publish_named(server, "light")
    streams = site.resource.hls.streams  # type: ignore[attr-defined]
    heavy = server.registry.get("live", "heavy")
    light = server.registry.get("live", "light")
    assert heavy is not None and light is not None
    peak = 0
    for i in range(12 * 25):
        ts = i * 40
        heavy.publish_message(key(ts, 8_000) if i % 25 == 0 else inter(ts, 8_000))
        light.publish_message(key(ts) if i % 25 == 0 else inter(ts))
        held = sum(e.segments.memory for e in streams.streams.values())
        assert streams.total == held
        peak = max(peak, held)
    assert peak <= cap + 8_000
    kept = {name: streams.streams[("live", name)].segments for name in ("heavy", "light")}
    assert len(kept["light"].segments) == 5  # 12 s: closed at 2, 4, ..., 10 s
    assert 0 < len(kept["heavy"].segments) < 5
    assert streams.evicted >= 5 - len(kept["heavy"].segments)
