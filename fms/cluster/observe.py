"""The HTTP API of every worker answers for all of them: :class:`ControlPeers` is the
:class:`~fms.http.peers.Peers` of a worker, over the workers' control channel
(:mod:`fms.cluster.control`).

Each worker registers the API's operations (its own streams, clients, figures; a kick; a stop)
on its channel; the worker that got the HTTP request asks the others and merges. A worker that
does not answer within :data:`TIMEOUT` seconds (restarting, stuck) is left out of the figures,
which say how many workers answered, rather than holding the HTTP answer.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from fms.cluster.control import ControlChannel, Reply
from fms.http.peers import Handler, PeerError

TIMEOUT = 2.0
"""Seconds the HTTP API waits for another worker's part."""


class ControlPeers:
    """The other workers, reached over ``channel``."""

    def __init__(self, channel: ControlChannel, index: int, count: int) -> None:
        self.channel = channel
        self.index = index
        self.count = count

    def handle(self, op: str, handler: Handler) -> None:
        self.channel.handle(op, handler)

    def ask_others(self, op: str, payload: dict[str, Any]) -> Deferred[list[dict[str, Any]]]:
        def answered(replies: list[Reply]) -> list[dict[str, Any]]:
            return [reply.value for reply in replies if reply.ok and reply.value is not None]

        return self.channel.ask_others(op, payload, TIMEOUT).addCallback(answered)

    def ask(self, worker: int, op: str, payload: dict[str, Any]) -> Deferred[dict[str, Any]]:
        def failed(failure: Failure) -> dict[str, Any]:
            raise PeerError(failure.getErrorMessage())

        return self.channel.ask(worker, op, payload, TIMEOUT).addErrback(failed)
