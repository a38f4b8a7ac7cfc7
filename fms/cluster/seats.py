"""Seats shared by the workers of ``fms run --workers N``: ``app.take_seat`` across processes.

A viewer limit counted in a plugin's memory counts one worker's players; one counted from the
player totals the workers report to each other (``subscriber_count``) is up to a second late,
so six players arriving at once against a limit of 2 got 3 in. A seat must therefore be taken
where every worker sees it, at once, and given back when its worker dies.

Seat ``i`` of (app, key) is one byte of one of the ``seats-*`` files in the supervisor's
private folder (:attr:`~fms.cluster.spec.WorkerSpec.directory`, mode 0700), and a worker holds
the seat while it holds an exclusive POSIX record lock (``lockf``) on that byte. Taking a seat
tries bytes ``0 .. limit-1`` with non-blocking locks and keeps the first one granted: the
kernel grants each byte to one process only, so no two workers ever hold the same seat and
every worker's seats count, with nothing to ask and nothing to wait for. The kernel drops the
locks of a process that ends, however it ends (SIGKILL included): a dead worker's seats are
free at once.

Record locks belong to a process, not to a descriptor, and never conflict with the same
process's own locks: a worker keeps its own seats in a table and skips them (trying its own
byte again would succeed), and opens each file once, here (closing *any* descriptor of a file
drops all of the process's locks on it). The same layout as :mod:`fms.cluster.claims`, whose
docstring gives the measurements: 16 files, so that the kernel's lock lists stay short.

Where a key's seats lie: 64 bits of SHA-256 of (app, key), the low 4 choosing the file and
the next 42 the block of ``2**20`` bytes (``MAX_SEATS``) that holds the seats (offsets stay
below 2**62, inside a signed 64-bit ``off_t``). Two keys whose 46 bits coincide share their
seats: both count against the smaller limit, which refuses more (never less); with 10,000 keys
in use, the chance that any two coincide is about 1 in 1.4 million.

Cost: taking a seat makes up to ``limit`` system calls when the seats are nearly all taken (one
``lockf`` per byte tried), a few microseconds each; releasing makes one.
"""

from __future__ import annotations

import fcntl
import hashlib

from fms.apps.shared import MAX_SEATS
from fms.cluster.lockfiles import FILES, TAKEN, LockFiles
from fms.log import Logger

log = Logger(namespace="fms.cluster.seats")


BLOCK_BITS = 20
"""A key's seats are a block of ``2**BLOCK_BITS`` bytes (``MAX_SEATS``)."""


assert 1 << BLOCK_BITS == MAX_SEATS


def place(app: str, key: str) -> tuple[int, int]:
    """(file, offset of seat 0) for the seats of (app, key); NUL separates the two, as in
    :func:`fms.cluster.claims.place`."""
    text = f"{app}\0{key}".encode("utf-8", "surrogatepass")
    bits = int.from_bytes(hashlib.sha256(text).digest()[:8], "big")
    block = (bits // FILES) % (1 << 42)
    return bits % FILES, block << BLOCK_BITS


class LockSeats(LockFiles):
    """The seat table of one worker (:class:`~fms.apps.shared.SeatTable`; see the module
    docstring). ``directory`` is the supervisor's private folder."""

    def __init__(self, directory: str) -> None:
        super().__init__(directory, "seats")
        self._held: set[tuple[int, int]] = set()
        """(file, offset) of every seat this worker holds."""

    def __len__(self) -> int:
        return len(self._held)

    def take(self, app: str, key: str, limit: int) -> int | None:
        number, base = place(app, key)
        try:
            fd = self._file(number)
        except OSError as exc:
            log.error(
                "cannot open the seats of {app}/{key!r}: {reason}: no seat given",
                app=app, key=key, reason=exc.strerror or exc,
            )  # fmt: skip
            return None
        for seat in range(min(limit, MAX_SEATS)):
            where = (number, base + seat)
            if where in self._held:
                continue
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, base + seat)
            except OSError as exc:
                if exc.errno in TAKEN:
                    continue
                log.error(
                    "cannot take a seat of {app}/{key!r}: {reason}: no seat given",
                    app=app, key=key, reason=exc.strerror or exc,
                )  # fmt: skip
                return None
            self._held.add(where)
            return seat
        return None

    def release(self, app: str, key: str, seat: int) -> None:
        number, base = place(app, key)
        where = (number, base + seat)
        if where not in self._held:
            return
        self._held.discard(where)
        try:
            fcntl.lockf(self._files[number], fcntl.LOCK_UN, 1, base + seat)
        except OSError as exc:
            log.error(
                "cannot give back seat {seat} of {app}/{key!r}: {reason}; it stays taken until "
                "this worker ends",
                seat=seat, app=app, key=key, reason=exc.strerror or exc,
            )  # fmt: skip

    def close(self) -> None:
        """Give every seat of this worker back at once (what its end does)."""
        self._held.clear()
        self.close_files()
