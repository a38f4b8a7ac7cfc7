"""The other workers, as the HTTP API sees them: :class:`Peers`.

With ``fms run --workers N`` every figure covers every worker and an action reaches the
worker that holds the client or stream, whichever worker answered the HTTP request. The API
asks the others through this small interface; :class:`NoPeers` (one process) has none, and
:class:`fms.cluster.observe.ControlPeers` puts it on the workers' control channel.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from twisted.internet.defer import Deferred, fail, succeed

Handler = Callable[[dict[str, Any]], Any]
"""Answers one operation's JSON payload with a JSON object (or a Deferred of one)."""


class PeerError(Exception):
    """A worker did not answer (unreachable, restarting, too slow, or its handler failed)."""


class Peers(Protocol):
    """The other workers of this server (none on one process)."""

    @property
    def index(self) -> int:
        """This worker's number (0 on one process)."""
        ...

    @property
    def count(self) -> int:
        """How many workers the server has, this one included."""
        ...

    def handle(self, op: str, handler: Handler) -> None:
        """Answer the other workers' requests ``op`` with ``handler``."""
        ...

    def ask_others(self, op: str, payload: dict[str, Any]) -> Deferred[list[dict[str, Any]]]:
        """Ask every other worker; fires with the replies of those that answered (a worker
        that did not is left out: the caller compares the count with :attr:`count`). Never
        fails."""
        ...

    def ask(self, worker: int, op: str, payload: dict[str, Any]) -> Deferred[dict[str, Any]]:
        """Ask worker ``worker``; fails with :class:`PeerError` when it does not answer."""
        ...


class NoPeers:
    """One process: nobody else to ask."""

    index = 0
    count = 1

    def handle(self, op: str, handler: Handler) -> None:
        pass

    def ask_others(self, op: str, payload: dict[str, Any]) -> Deferred[list[dict[str, Any]]]:
        return succeed([])

    def ask(self, worker: int, op: str, payload: dict[str, Any]) -> Deferred[dict[str, Any]]:
        return fail(PeerError(f"there is no worker {worker}"))
