"""A recording's playback without sockets: start and length, real-time pacing a buffer ahead,
seek to keyframes, pause, the end, and the bound on what one step hands out."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from hypothesis import given
from hypothesis import strategies as st

from fms.vod.pacing import MAX_BUFFER_MS, Pacer
from fms.vod.playback import Playback, Recording


@dataclass(frozen=True)
class Tag:
    tag_type: int
    timestamp: int
    body: bytes


META = Tag(18, 0, b"meta")
CONFIG = Tag(9, 0, b"\x17\x00config")


class ListSource:
    """Tags at fake offsets 100, 101, ... (offset = 100 + index)."""

    def __init__(self, tags: list[Tag]) -> None:
        self.tags = tags
        self.reads: list[int] = []

    def tags_from(self, offset: int) -> Iterator[Tag]:
        self.reads.append(offset)
        return iter(self.tags[offset - 100 :])


def recording(
    seconds: int = 10, gop_ms: int = 2000, frame_ms: int = 40
) -> tuple[Recording, ListSource]:
    """Video frames every ``frame_ms``, a keyframe every ``gop_ms``, for ``seconds``."""
    tags = [
        Tag(9, t, (b"\x17" if t % gop_ms == 0 else b"\x27") + b"\x01" + bytes(100))
        for t in range(0, seconds * 1000, frame_ms)
    ]
    keyframes = [(tag.timestamp, 100 + i) for i, tag in enumerate(tags) if tag.body[0] == 0x17]
    return Recording(seconds * 1000, keyframes, [META, CONFIG], 100), ListSource(tags)


def times(tags: list) -> list[int]:
    return [t.timestamp for t in tags if t.tag_type == 9 and t.body[1] == 1]


def test_the_first_step_sends_the_headers_then_one_buffer_of_media() -> None:
    rec, source = recording()
    playback = Playback(rec, source, now=0.0, buffer_ms=1000)
    step = playback.step(0.0)
    assert step.tags[:2] == [META, CONFIG]
    assert times(step.tags) == list(range(0, 1001, 40))
    assert step.wait is not None and abs(step.wait - 0.04) < 1e-9


def test_media_comes_in_real_time_after_the_buffer() -> None:
    rec, source = recording()
    playback = Playback(rec, source, now=0.0, buffer_ms=1000)
    playback.step(0.0)
    assert times(playback.step(0.5).tags) == list(range(1040, 1501, 40))
    assert playback.step(0.5).tags == []


def test_start_begins_at_the_keyframe_at_or_before_it() -> None:
    rec, source = recording()
    playback = Playback(rec, source, now=0.0, start_ms=5000, buffer_ms=0)
    assert playback.start_ms == 4000
    assert times(playback.step(0.0).tags) == [4000]
    assert source.reads == [100 + 100]


def test_length_stops_after_that_much_media_and_says_complete() -> None:
    rec, source = recording()
    playback = Playback(rec, source, now=0.0, start_ms=2000, length_ms=1000, buffer_ms=5000)
    step = playback.step(0.0)
    assert times(step.tags) == list(range(2000, 3001, 40))
    assert step.complete
    assert playback.step(10.0).tags == []


def test_length_counts_from_the_time_asked_not_from_the_keyframe_before() -> None:
    rec, source = recording()
    step = Playback(rec, source, now=0.0, start_ms=2500, length_ms=1000, buffer_ms=9000).step(0.0)
    assert times(step.tags) == list(range(2000, 3501, 40))
    assert step.complete


def test_a_seek_keeps_the_length_from_the_time_sought() -> None:
    rec, source = recording()
    playback = Playback(rec, source, now=0.0, length_ms=1000, buffer_ms=0)
    playback.seek(6500, now=0.0)
    step = playback.step(5.0)
    assert times(step.tags) == list(range(6000, 7501, 40))
    assert step.complete


def test_length_zero_sends_the_single_frame_at_start() -> None:
    rec, source = recording()
    step = Playback(rec, source, now=0.0, start_ms=6000, length_ms=0).step(0.0)
    assert times(step.tags) == [6000]
    assert step.complete


def test_the_end_of_the_file_completes_the_playback() -> None:
    rec, source = recording(seconds=2)
    playback = Playback(rec, source, now=0.0, buffer_ms=500)
    assert not playback.step(0.0).complete
    final = playback.step(1.6)
    assert final.complete
    assert times(final.tags)[-1] == 1960


def test_seek_goes_to_the_keyframe_before_and_resends_the_headers() -> None:
    rec, source = recording()
    playback = Playback(rec, source, now=0.0, buffer_ms=0)
    playback.step(0.0)
    assert playback.seek(7500, now=1.0) == 6000
    step = playback.step(1.0)
    assert step.tags[:2] == [META, CONFIG]
    assert times(step.tags) == [6000]
    assert playback.position(2.0) == 7000


def test_seek_past_the_end_is_kept_inside_the_recording() -> None:
    rec, source = recording()
    playback = Playback(rec, source, now=0.0)
    assert playback.seek(99_000, now=0.0) == 8000


def test_a_paused_playback_sends_nothing_and_its_clock_stands_still() -> None:
    rec, source = recording()
    playback = Playback(rec, source, now=0.0, buffer_ms=0)
    playback.step(0.0)
    playback.pause(True, now=1.0)
    step = playback.step(5.0)
    assert step.tags == [] and step.wait is None
    assert playback.position(5.0) == 1000
    playback.pause(False, now=5.0)
    assert times(playback.step(5.5).tags) == list(range(40, 1501, 40))


def test_unpause_at_a_time_restarts_from_its_keyframe() -> None:
    rec, source = recording()
    playback = Playback(rec, source, now=0.0, buffer_ms=0)
    playback.pause(True, now=0.0)
    playback.pause(False, now=1.0, at_ms=4100)
    assert times(playback.step(1.0).tags) == [4000]


def test_one_step_hands_out_at_most_max_bytes_but_at_least_one_tag() -> None:
    rec, source = recording()
    playback = Playback(rec, source, now=0.0, buffer_ms=10_000, max_bytes=250)
    step = playback.step(0.0)
    assert len(times(step.tags)) == 2 and step.wait == 0.0
    tiny = Playback(rec, ListSource(source.tags), now=0.0, buffer_ms=10_000, max_bytes=1)
    tiny.step(0.0)
    assert len(times(tiny.step(0.0).tags)) == 1


def test_a_file_without_an_index_plays_from_its_first_media_tag() -> None:
    rec, source = recording()
    bare = Recording(rec.duration_ms, [], rec.headers, 100)
    playback = Playback(bare, source, now=0.0, start_ms=5000, buffer_ms=0)
    assert playback.start_ms == 0
    assert times(playback.step(0.0).tags) == [0]


def test_the_buffer_a_client_asks_for_is_capped() -> None:
    pacer = Pacer.starting(0, 0.0, buffer_ms=10**9)
    assert pacer.buffer_ms == MAX_BUFFER_MS
    pacer.set_buffer(-5)
    assert pacer.buffer_ms == 0


@given(
    events=st.lists(
        st.tuples(st.sampled_from(["pause", "resume", "seek", "wait"]), st.integers(0, 4000)),
        max_size=30,
    )
)
def test_the_clock_never_runs_backwards_between_seeks_or_while_paused(
    events: list[tuple[str, int]],
) -> None:
    pacer = Pacer.starting(0, 0.0)
    now = 0.0
    last = pacer.position(now)
    for action, value in events:
        if action == "seek":
            pacer.seek(value, now)
            last = value
            continue
        if action == "pause":
            pacer.pause(now)
        elif action == "resume":
            pacer.resume(now)
        else:
            before = pacer.position(now)
            now += value / 1000
            expected = before if pacer.paused else before + value
            assert pacer.position(now) == expected
        assert pacer.position(now) >= last
        last = pacer.position(now)
