"""Seats shared by workers (:mod:`fms.cluster.seats`): record locks on bytes of files.

Record locks belong to a process, so the other worker is another process
(``tests/support/seat_holder.py``), driven line by line over pipes; the folder is ``tmp_path``
(the supervisor's private folder in production). The real race, six players at once on a
real two-worker server, is ``tests/e2e/test_worker_seats.py``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from twisted.logger import LogEvent, formatEvent, globalLogPublisher

from fms.apps.shared import MAX_SEATS, Seating
from fms.cluster import seats
from fms.cluster.seats import LockSeats
from tests.support.seat_holder import OtherWorker


@pytest.fixture
def here(tmp_path: Path) -> Iterator[LockSeats]:
    """This process's seats: one worker."""
    table = LockSeats(str(tmp_path))
    yield table
    table.close()


@pytest.fixture
def other(tmp_path: Path) -> Iterator[OtherWorker]:
    """Another worker (another process) taking seats in the same folder."""
    worker = OtherWorker(tmp_path)
    yield worker
    worker.stop()


def test_one_worker_gives_each_seat_once_up_to_the_limit(here: LockSeats) -> None:
    """Its own locks never conflict with each other: the table skips the seats it holds."""
    assert [here.take("live", "cam", 3) for _ in range(4)] == [0, 1, 2, None]


def test_the_seats_of_another_worker_count_here(here: LockSeats, other: OtherWorker) -> None:
    assert other.take("live", "cam", 2) == 0
    assert here.take("live", "cam", 2) == 1
    assert here.take("live", "cam", 2) is None
    assert other.take("live", "cam", 2) is None


def test_a_seat_given_back_by_another_worker_is_free_here(
    here: LockSeats, other: OtherWorker
) -> None:
    other.take("live", "cam", 1)
    assert here.take("live", "cam", 1) is None
    other.release("live", "cam", 0)
    assert here.take("live", "cam", 1) == 0


def test_a_seat_given_back_here_is_free_for_another_worker(
    here: LockSeats, other: OtherWorker
) -> None:
    assert here.take("live", "cam", 1) == 0
    assert other.take("live", "cam", 1) is None
    here.release("live", "cam", 0)
    assert other.take("live", "cam", 1) == 0


def test_the_seats_of_a_killed_worker_are_free_at_once(tmp_path: Path, here: LockSeats) -> None:
    other = OtherWorker(tmp_path)
    assert [other.take("live", "cam", 2) for _ in range(2)] == [0, 1]
    assert here.take("live", "cam", 2) is None
    other.kill()
    assert [here.take("live", "cam", 2) for _ in range(2)] == [0, 1]


def test_keys_and_apps_have_their_own_seats(here: LockSeats, other: OtherWorker) -> None:
    assert other.take("live", "cam", 1) == 0
    assert here.take("live", "other", 1) == 0
    assert here.take("tv", "cam", 1) == 0


def test_releasing_a_seat_this_worker_does_not_hold_changes_nothing(
    here: LockSeats, other: OtherWorker
) -> None:
    assert other.take("live", "cam", 1) == 0
    here.release("live", "cam", 0)
    assert here.take("live", "cam", 1) is None


def test_seats_lie_inside_a_signed_64_bit_offset_and_apart_per_key() -> None:
    starts = {seats.place("live", f"cam{i}") for i in range(1000)}
    assert len(starts) == 1000
    assert all(0 <= start and start + MAX_SEATS < 1 << 63 for _, start in starts)
    assert seats.place("live/a", "b") != seats.place("live", "a/b")


def test_closing_gives_every_seat_back(here: LockSeats, other: OtherWorker) -> None:
    here.take("live", "cam", 1)
    here.close()
    assert other.take("live", "cam", 1) == 0


def test_a_folder_that_cannot_hold_seats_refuses_them_and_says_why(tmp_path: Path) -> None:
    """Fail closed: a seat that cannot be taken is not given."""
    lines: list[str] = []

    def observer(event: LogEvent) -> None:
        lines.append(formatEvent(event))

    globalLogPublisher.addObserver(observer)
    try:
        table = LockSeats(str(tmp_path / "missing"))
        assert table.take("live", "cam", 2) is None
    finally:
        globalLogPublisher.removeObserver(observer)
    assert lines == [
        "cannot open the seats of live/'cam': No such file or directory: no seat given"
    ]


def test_giving_one_seat_back_keeps_the_next_one_taken(here: LockSeats, other: OtherWorker) -> None:
    assert [here.take("live", "cam", 3) for _ in range(3)] == [0, 1, 2]
    here.release("live", "cam", 1)
    assert other.take("live", "cam", 3) == 1
    assert other.take("live", "cam", 3) is None


def test_after_closing_a_worker_takes_its_seats_afresh(here: LockSeats) -> None:
    assert here.take("live", "cam", 2) == 0
    here.close()
    assert here.take("live", "cam", 2) == 0 and len(here) == 1


def test_the_applications_seating_counts_the_other_workers_seats(
    here: LockSeats, other: OtherWorker
) -> None:
    """What ``app.take_seat`` does with workers: clients of this worker against a limit the
    other worker already uses part of."""
    seating = Seating("live", here)
    other.take("live", "cam", 3)
    assert [seating.take("cam", 3, client) for client in (1, 2, 3)] == [True, True, False]
    seating.client_left(1)
    assert other.take("live", "cam", 3) == 1  # the seat client 1 held
    assert len(here) == 1


def test_the_files_are_made_private(here: LockSeats, tmp_path: Path) -> None:
    here.take("live", "cam", 1)
    [name] = os.listdir(tmp_path)
    assert name.startswith("seats-") and (os.stat(tmp_path / name).st_mode & 0o777) == 0o600
