"""Names claimed across workers (:mod:`fms.cluster.claims`), and how a worker's connections use
the claims (:class:`~fms.server.host.NameClaims`).

Record locks belong to a process, so the other worker of the lock tests is another process
(``tests/support/claim_holder.py``), driven line by line over pipes; the folder is ``tmp_path``
(the supervisor's private folder in production). The server side runs on in-memory transports
and a fake clock, two workers sharing an in-memory claim table and the in-memory relay of
``tests/test_relay.py``. No sockets, no sleeps. The real race, on a real two-worker server, is
``tests/e2e/test_worker_claims.py``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from twisted.logger import LogEvent, formatEvent, globalLogPublisher

from fms.cluster import claims
from fms.cluster.claims import NameLocks
from fms.server.factory import RTMPServerFactory
from tests.support.claim_holder import OtherWorker
from tests.test_protocol_live import make, player, publisher
from tests.test_relay import Workers, connected


@pytest.fixture
def logged() -> Iterator[list[str]]:
    lines: list[str] = []

    def observer(event: LogEvent) -> None:
        lines.append(formatEvent(event))

    globalLogPublisher.addObserver(observer)
    yield lines
    globalLogPublisher.removeObserver(observer)


@pytest.fixture
def here(tmp_path: Path) -> Iterator[NameLocks]:
    """This process's claims: one worker."""
    locks = NameLocks(str(tmp_path))
    yield locks
    locks.close()


@pytest.fixture
def other(tmp_path: Path) -> Iterator[OtherWorker]:
    """Another worker (another process) claiming in the same folder."""
    worker = OtherWorker(tmp_path)
    yield worker
    worker.stop()


# ------------------------------------------------------------------------------ the locks


def test_a_name_another_worker_holds_is_refused_here(here: NameLocks, other: OtherWorker) -> None:
    assert other.claim("live", "cam")
    assert not here.claim("live", "cam")
    assert len(here) == 0


def test_a_name_held_here_is_refused_to_another_worker(here: NameLocks, other: OtherWorker) -> None:
    assert here.claim("live", "cam")
    assert not other.claim("live", "cam")


def test_a_worker_cannot_claim_a_name_it_holds(here: NameLocks) -> None:
    assert here.claim("live", "cam")
    assert not here.claim("live", "cam")
    assert len(here) == 1


def test_a_released_name_is_free_for_another_worker(here: NameLocks, other: OtherWorker) -> None:
    here.claim("live", "cam")
    here.release("live", "cam")
    assert other.claim("live", "cam")
    other.release("live", "cam")
    assert here.claim("live", "cam")


def test_a_name_held_by_a_killed_worker_is_free(here: NameLocks, other: OtherWorker) -> None:
    """SIGKILL runs no cleanup: the kernel drops the dead worker's locks."""
    assert other.claim("live", "cam")
    other.kill()
    assert here.claim("live", "cam")


def test_closing_drops_every_claim_of_a_worker(here: NameLocks, other: OtherWorker) -> None:
    here.claim("live", "a")
    here.claim("live", "b")
    here.close()
    assert len(here) == 0
    assert other.claim("live", "a") and other.claim("live", "b")


def test_names_and_apps_are_claimed_apart(here: NameLocks, other: OtherWorker) -> None:
    """``live/a`` + ``b`` and ``live`` + ``a/b`` are two streams, and so are two apps' ``cam``."""
    assert other.claim("live", "a/b")
    assert here.claim("live/a", "b")
    assert here.claim("other", "a/b")
    assert here.claim("live", "A/b")
    assert not here.claim("live", "a/b")


def test_two_names_on_one_byte_are_never_both_granted_to_one_worker(
    here: NameLocks, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The kernel would grant a worker's second lock on a byte it holds: the worker's own table
    refuses it, and releasing the refused name leaves the other's claim alone."""
    monkeypatch.setattr(claims, "place", lambda app, name: (3, 12345))
    assert here.claim("live", "a")
    assert not here.claim("live", "b")
    here.release("live", "b")
    assert len(here) == 1
    assert not here.claim("live", "a")


def test_the_folder_holds_a_bounded_number_of_files_whatever_was_claimed(
    here: NameLocks, tmp_path: Path
) -> None:
    for n in range(500):
        here.claim("live", f"cam{n}")
    for n in range(0, 500, 2):
        here.release("live", f"cam{n}")
    assert len(here) == 250
    assert sorted(os.listdir(tmp_path)) == [f"claims-{n:02x}" for n in range(claims.FILES)]


def test_a_claim_that_cannot_be_made_is_refused_and_logged(
    tmp_path: Path, logged: list[str]
) -> None:
    locks = NameLocks(str(tmp_path / "gone"))
    assert not locks.claim("live", "cam")
    assert any(
        "cannot claim live/cam for this worker: No such file or directory: refusing the publish"
        in line
        for line in logged
    )


# ------------------------------------------------------------------ the server's side of it


class Ledger:
    """A :class:`~fms.server.host.NameClaims` that grants what ``free`` says and records."""

    def __init__(self, free: bool = True) -> None:
        self.free = free
        self.calls: list[tuple[str, str, str]] = []

    def claim(self, app: str, name: str) -> bool:
        self.calls.append(("claim", app, name))
        return self.free

    def release(self, app: str, name: str) -> None:
        self.calls.append(("release", app, name))


def with_claims(claims: Ledger) -> RTMPServerFactory:
    factory = make(flush_interval=0.0)
    factory.name_claims = claims
    return factory


def test_a_publish_whose_name_another_worker_holds_gets_bad_name(logged: list[str]) -> None:
    factory = with_claims(Ledger(free=False))
    pub = publisher(factory, "cam")
    assert pub.statuses()[-1] == "NetStream.Publish.BadName"
    description = [c.arguments[0] for c in pub.client.commands() if c.name == "onStatus"][-1]
    assert description["description"] == "cam is already being published."
    assert any(
        "refusing publish live/cam from 192.0.2.9:1000: already published" in line
        for line in logged
    )


def test_a_publish_refused_by_the_claims_never_reaches_the_waiting_players() -> None:
    factory = with_claims(Ledger(free=False))
    watcher = player(factory, "cam")
    publisher(factory, "cam")
    watcher.pump()
    assert "NetStream.Play.PublishNotify" not in watcher.statuses()
    stream = factory.registry.get("live", "cam")
    assert stream is not None and not stream.published


def test_an_accepted_publish_holds_its_claim_until_it_ends() -> None:
    claims = Ledger()
    factory = with_claims(claims)
    pub = publisher(factory, "cam")
    assert pub.statuses()[-1] == "NetStream.Publish.Start"
    assert claims.calls == [("claim", "live", "cam")]
    pub.send(pub.client.command("deleteStream", 4.0, None, 1.0))
    assert claims.calls == [("claim", "live", "cam"), ("release", "live", "cam")]


def test_a_publisher_that_disconnects_releases_its_claim() -> None:
    claims = Ledger()
    factory = with_claims(claims)
    pub = publisher(factory, "cam")
    pub.proto.connectionLost(None)
    assert claims.calls[-1] == ("release", "live", "cam")


def test_a_claim_taken_for_a_name_this_worker_still_shows_published_is_released() -> None:
    """The registry still holds the name (here: a local publisher; in production, the relay
    link of a publish that just ended elsewhere): the claim just taken is given back."""
    claims = Ledger()
    factory = with_claims(claims)
    publisher(factory, "cam", port=1000)
    factory.name_claims = second = Ledger()
    late = publisher(factory, "cam", port=1001)
    assert late.statuses()[-1] == "NetStream.Publish.BadName"
    assert second.calls == [("claim", "live", "cam"), ("release", "live", "cam")]


def test_a_refused_publish_releases_nothing() -> None:
    claims = Ledger(free=False)
    factory = with_claims(claims)
    pub = publisher(factory, "cam")
    pub.proto.connectionLost(None)
    assert claims.calls == [("claim", "live", "cam")]


# ----------------------------------------------------------------- two workers, in memory


class Table:
    """The claims of every worker, in memory: what the lock file is to the workers' processes.
    :meth:`worker` is one worker's :class:`~fms.server.host.NameClaims`."""

    def __init__(self) -> None:
        self.held: dict[tuple[str, str], int] = {}

    def worker(self, index: int) -> TableClaims:
        return TableClaims(self, index)


class TableClaims:
    def __init__(self, table: Table, index: int) -> None:
        self.table, self.index = table, index

    def claim(self, app: str, name: str) -> bool:
        if (app, name) in self.table.held:
            return False
        self.table.held[(app, name)] = self.index
        return True

    def release(self, app: str, name: str) -> None:
        if self.table.held.get((app, name)) == self.index:
            del self.table.held[(app, name)]


@pytest.fixture
def claiming() -> Workers:
    """Two workers with the in-memory relay of ``tests/test_relay.py`` (worker 0 relays to
    worker 1) and one claim table."""
    w = Workers()
    table = Table()
    w.w0.name_claims = table.worker(0)
    w.w1.name_claims = table.worker(1)
    return w


def test_two_publishes_decided_before_any_relay_link_admit_one(claiming: Workers) -> None:
    """Both reach their worker before a relay link could tell either of the other."""
    first = connected(claiming.w0, 1000).publish()
    second = connected(claiming.w1, 1001).publish()
    assert first.statuses()[-1] == "NetStream.Publish.Start"
    assert second.statuses()[-1] == "NetStream.Publish.BadName"


def test_the_winners_relay_link_is_accepted_where_the_loser_was_refused(
    claiming: Workers,
) -> None:
    """The link does not claim (the winner's worker holds the claim) and finds the loser's
    worker free: its players get the stream without a retry."""
    watcher = connected(claiming.w1, 2000).play()
    connected(claiming.w0, 1000).publish()
    connected(claiming.w1, 1001).publish()
    claiming.reactor.pump()
    watcher.pump()
    assert watcher.statuses().count("NetStream.Play.PublishNotify") == 1
    mirror = claiming.w1.registry.get("live", "cam")
    assert mirror is not None and mirror.published
    assert mirror.publisher.peer.endswith("via worker 0")  # type: ignore[union-attr]
    assert len(claiming.reactor.pairs) == 1  # the clock never moved: no retry was made


def test_a_name_is_free_on_every_worker_once_its_publish_ended(claiming: Workers) -> None:
    first = connected(claiming.w0, 1000).publish()
    claiming.reactor.pump()
    first.send(first.client.command("deleteStream", 4.0, None, 1.0))
    claiming.reactor.pump()
    again = connected(claiming.w1, 1001).publish()
    assert again.statuses()[-1] == "NetStream.Publish.Start"


def test_a_claim_for_a_name_whose_relayed_publish_is_still_ending_is_given_back(
    claiming: Workers,
) -> None:
    """Worker 0's publish ended, but the end has not crossed the relay yet: worker 1 refuses a
    new publish of the name (its registry still shows it) and gives back the claim it took, so
    the name stays free for the next try."""
    first = connected(claiming.w0, 1000).publish()
    claiming.reactor.pump()
    first.send(first.client.command("deleteStream", 4.0, None, 1.0))
    early = connected(claiming.w1, 1001).publish()  # before the relay link delivers the end
    assert early.statuses()[-1] == "NetStream.Publish.BadName"
    assert claiming.w1.name_claims.table.held == {}  # type: ignore[union-attr]
    claiming.reactor.pump()
    again = connected(claiming.w1, 1002).publish()
    assert again.statuses()[-1] == "NetStream.Publish.Start"
