"""What an application shares with the other processes serving its port: seats and broadcasts.

With ``fms run --workers N`` each worker runs its own copy of every application, so a figure a
plugin counts in its memory (players of a stream) is one worker's share, and a broadcast from
one worker reaches that worker's clients only. Two things must hold for the whole server:

- **Seats.** ``app.take_seat(key, limit, client)`` takes one of ``limit`` seats named ``key``
  for ``client``, atomically across every process, or answers False when all are taken. The
  seat table is a :class:`SeatTable`: :class:`LocalSeats` (memory) on one process,
  :class:`fms.cluster.seats.LockSeats` (record locks the kernel drops with a dead worker)
  with workers. A seat lasts as long as what it was taken for (:class:`Seating`): taken while
  ``play`` decides, until that play ends (or at once when the play is refused after all);
  taken elsewhere, until the client leaves; ``app.release_seat(key, client)`` ends it sooner.
- **Broadcasts.** ``app.broadcast(method, *args)`` sends to this process's clients and hands
  the same call, AMF0-encoded, to an :class:`Elsewhere` that delivers it to the other
  processes' clients of the application (:mod:`fms.cluster.everywhere`).

This module imports nothing of ``fms.server`` or ``fms.cluster``: they implement the two
protocols below and hand them to the application.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

MAX_SEATS = 1 << 20
"""The largest ``limit`` of a seat key (a worker's seats are bytes of a file: 1 MiB of them)."""


class SeatTable(Protocol):
    """Numbered seats per (app, key), shared by every process serving the port."""

    def take(self, app: str, key: str, limit: int) -> int | None:
        """A seat number below ``limit`` that no process held and this one holds now, or None
        when all ``limit`` are held (or the seat could not be taken: fail closed)."""
        ...

    def release(self, app: str, key: str, seat: int) -> None:
        """This process gives seat ``seat`` of (app, key) back."""
        ...


class LocalSeats:
    """The seat table of one process (no workers): sets of numbers in memory."""

    def __init__(self) -> None:
        self._held: dict[tuple[str, str], set[int]] = {}

    def take(self, app: str, key: str, limit: int) -> int | None:
        held = self._held.setdefault((app, key), set())
        for seat in range(limit):
            if seat not in held:
                held.add(seat)
                return seat
        if not held:
            del self._held[(app, key)]
        return None

    def release(self, app: str, key: str, seat: int) -> None:
        held = self._held.get((app, key))
        if held is not None:
            held.discard(seat)
            if not held:
                del self._held[(app, key)]

    def __len__(self) -> int:
        """How many keys have seats taken (keys without are forgotten)."""
        return len(self._held)

    def held(self, app: str, key: str) -> int:
        """How many seats of (app, key) are held (for tests and figures)."""
        return len(self._held.get((app, key), ()))


class Elsewhere(Protocol):
    """The other processes serving the port (``fms run --workers``), as an application needs
    them."""

    def broadcast(self, app: str, method: str, values: bytes) -> None:
        """Call ``method`` on every client of application ``app`` of every *other* process;
        ``values`` are its arguments, AMF0-encoded (:func:`fms.amf.encode_values`). Does not
        wait; a process that cannot be reached is logged."""
        ...


@dataclass(slots=True)
class _Hold:
    """One seat a client holds: bound to ``plays`` plays (or play decisions) and, when
    ``sticky``, to the connection itself."""

    seat: int
    plays: int = 0
    sticky: bool = False


@dataclass(slots=True)
class PlayDecision:
    """A play being decided for one client: the seat keys its hooks took."""

    client: int
    keys: set[str] = field(default_factory=set)
    abandoned: bool = False
    """The client left before the decision ended: its seats are already back."""


class Seating:
    """The seats the clients of one application hold, and when each ends.

    A client holds at most one seat per key. A seat taken while ``play`` is decided for the
    client is bound to that play: released when the play is refused (by a later plugin or the
    server's own checks) or when the play that started ends (``play_stopped``). A seat taken
    at any other time (``connect``, a client call) is held until the client leaves. Every seat
    of a client is released when it leaves, and :meth:`release` ends one at once.

    When one client has several plays decided at the same moment, a seat taken then is bound
    to all of them and lasts until the last one ends: never shorter than what it was taken for.
    """

    def __init__(self, app: str, table: SeatTable) -> None:
        self.app = app
        self.table = table
        self._holds: dict[tuple[int, str], _Hold] = {}
        self._deciding: dict[int, list[PlayDecision]] = {}
        self._plays: dict[tuple[int, str], list[set[str]]] = {}
        """(client, stream name) -> the keys of each accepted play of it, oldest first."""

    def take(self, key: str, limit: int, client: int) -> bool:
        """Take a seat of ``key`` for ``client`` (see the class docstring); True when it holds
        one now (it may have held it already)."""
        if not isinstance(key, str):
            raise TypeError(f"a seat key is a str, not {type(key).__name__}")
        if not 0 <= limit <= MAX_SEATS:
            raise ValueError(f"a seat limit is between 0 and {MAX_SEATS}, not {limit}")
        hold = self._holds.get((client, key))
        if hold is None:
            seat = self.table.take(self.app, key, limit)
            if seat is None:
                return False
            hold = self._holds[(client, key)] = _Hold(seat)
        deciding = self._deciding.get(client)
        if deciding:
            for decision in deciding:
                if key not in decision.keys:
                    decision.keys.add(key)
                    hold.plays += 1
        else:
            hold.sticky = True
        return True

    def release(self, key: str, client: int) -> None:
        """``client`` gives its seat of ``key`` back (nothing if it holds none)."""
        hold = self._holds.pop((client, key), None)
        if hold is not None:
            self.table.release(self.app, key, hold.seat)

    def holds(self, client: int) -> tuple[str, ...]:
        """The keys of the seats ``client`` holds."""
        return tuple(key for (cid, key) in self._holds if cid == client)

    @property
    def tracked(self) -> int:
        """How many clients something is kept for (seats, plays, decisions): 0 once every
        client has left, so memory follows the clients present."""
        return len({c for c, _ in self._holds} | set(self._deciding) | {c for c, _ in self._plays})

    def deciding(self, client: int) -> PlayDecision:
        """A play decision for ``client`` begins: seats taken until :meth:`decided` are its."""
        decision = PlayDecision(client)
        self._deciding.setdefault(client, []).append(decision)
        return decision

    def decided(self, decision: PlayDecision, accepted: bool, name: str) -> None:
        """The decision ended: an accepted play of ``name`` keeps its seats until
        :meth:`play_stopped`; a refused one gives them back now."""
        if decision.abandoned:
            return
        deciding = self._deciding.get(decision.client, [])
        if decision in deciding:
            deciding.remove(decision)
        if not deciding:
            self._deciding.pop(decision.client, None)
        if accepted:
            if decision.keys:
                self._plays.setdefault((decision.client, name), []).append(decision.keys)
        else:
            self._unbind(decision.client, decision.keys)

    def play_stopped(self, client: int, name: str) -> None:
        """A play of ``name`` by ``client`` ended: the seats of its oldest accepted play of
        that name go back (unless something else still holds them)."""
        plays = self._plays.get((client, name))
        if plays:
            self._unbind(client, plays.pop(0))
            if not plays:
                del self._plays[(client, name)]

    def client_left(self, client: int) -> None:
        """``client`` is gone: every seat it held goes back."""
        for key in self.holds(client):
            self.release(key, client)
        for decision in self._deciding.pop(client, ()):
            decision.abandoned = True
        for where in [w for w in self._plays if w[0] == client]:
            del self._plays[where]

    def _unbind(self, client: int, keys: set[str]) -> None:
        for key in keys:
            hold = self._holds.get((client, key))
            if hold is None:
                continue
            hold.plays -= 1
            if hold.plays <= 0 and not hold.sticky:
                self.release(key, client)
