"""DeadlineQueue: one entry per key, earliest first, superseded entries skipped."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from fms.server.deadlines import DeadlineQueue


def test_keys_come_out_in_time_order_once() -> None:
    queue: DeadlineQueue[str] = DeadlineQueue()
    queue.schedule("b", 2.0)
    queue.schedule("a", 1.0)
    queue.schedule("c", 3.0)
    assert queue.next_time() == 1.0
    assert queue.pop_due(2.5) == ["a", "b"]
    assert queue.pop_due(2.5) == []
    assert queue.next_time() == 3.0 and len(queue) == 1


def test_scheduling_later_keeps_the_earlier_time() -> None:
    queue: DeadlineQueue[int] = DeadlineQueue()
    assert queue.schedule(1, 5.0)
    assert not queue.schedule(1, 9.0)
    assert queue.when(1) == 5.0
    assert queue.schedule(1, 2.0)
    assert queue.pop_due(2.0) == [1]
    assert queue.pop_due(100.0) == []  # the superseded 5.0 entry is skipped


def test_a_discarded_key_never_comes_out() -> None:
    queue: DeadlineQueue[int] = DeadlineQueue()
    queue.schedule(1, 1.0)
    queue.schedule(2, 2.0)
    queue.discard(1)
    assert 1 not in queue
    assert queue.next_time() == 2.0
    assert queue.pop_due(10.0) == [2]


def test_the_heap_stays_bounded_when_keys_are_moved_earlier_again_and_again() -> None:
    queue: DeadlineQueue[int] = DeadlineQueue()
    for step in range(10_000):
        queue.schedule(step % 10, 1e6 - step)
    assert len(queue) == 10
    assert len(queue._heap) <= 2 * 10 + 64 + 1


@given(st.lists(st.tuples(st.integers(0, 20), st.floats(0, 100), st.booleans()), max_size=200))
def test_pop_due_matches_a_plain_model(operations: list[tuple[int, float, bool]]) -> None:
    queue: DeadlineQueue[int] = DeadlineQueue()
    model: dict[int, float] = {}
    for key, when, discard in operations:
        if discard:
            queue.discard(key)
            model.pop(key, None)
        else:
            queue.schedule(key, when)
            model[key] = min(model.get(key, when), when)
    now = 50.0
    due = queue.pop_due(now)
    expected = sorted((t, k) for k, t in model.items() if t <= now)
    assert sorted(due) == sorted(k for _, k in expected)
    assert [model[k] for k in due] == sorted(model[k] for k in due)
    rest = {k: t for k, t in model.items() if t > now}
    assert len(queue) == len(rest)
    assert queue.next_time() == (min(rest.values()) if rest else None)
