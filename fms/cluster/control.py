"""The control channel between workers: small requests and their replies, by operation name.

The relay (:mod:`fms.cluster.relay`) carries streams between workers as RTMP; what is not a
stream (a plugin's broadcast to every client, and later a figure every worker adds to, or an
action on a client another worker holds) travels here. Every worker listens on a second Unix
socket in the supervisor's private folder (``control-N.sock``, :func:`control_path`) and
connects, when it first has something to say, to each other worker's.

Messages are netstrings (``LEN:BYTES,``; Twisted's :class:`NetstringReceiver`, at most
``MAX_MESSAGE`` bytes) holding a JSON object:

- a request ``{"id": 7, "op": "broadcast", "payload": {...}}``, answered by
- a reply ``{"id": 7, "reply": {...}}`` or ``{"id": 7, "error": "why"}``.

Requests go out on the connection a worker opened, replies come back on it; a worker answers
the requests that arrive on the connections others opened. Messages from one worker to another
arrive in the order they were sent (one connection each way).

How to use it (a feature that needs every worker): register a handler for an operation on every
worker, ``channel.handle("stats", lambda payload: {...})`` (it may return a Deferred), then
``channel.ask_others("stats", {})`` fires with one :class:`Reply` per other worker, an error
standing for a worker that did not answer within ``timeout`` seconds or could not be reached
(restarting), so a total is never blocked by one worker. ``channel.ask(worker, op, payload)``
asks one worker (the one that holds a client, to act on it). Payloads and replies are JSON:
binary values (AMF0 arguments) go as base64 text.

Why JSON in netstrings rather than RTMP calls on the relay sockets: a request is not a stream,
a netstring cannot be misread at any split of the bytes, and JSON is read by anything that may
one day sit on the other end (a command line tool asking the workers for figures).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList, fail, maybeDeferred, succeed
from twisted.internet.endpoints import UNIXClientEndpoint
from twisted.internet.interfaces import IListeningPort
from twisted.internet.protocol import Factory
from twisted.protocols.basic import NetstringReceiver
from twisted.python.failure import Failure

from fms.log import Logger

log = Logger(namespace="fms.cluster.control")

MAX_MESSAGE = 1 << 20
"""The largest message, in bytes: a longer one closes the connection."""

TIMEOUT = 5.0
"""Seconds a request waits for its reply by default."""


def control_path(directory: str, index: int) -> str:
    """The Unix socket on which worker ``index`` takes control requests."""
    return os.path.join(directory, f"control-{index}.sock")


class ControlError(Exception):
    """A request was not answered: the other worker's handler failed, knows no such
    operation, could not be reached, or did not answer in time."""


@dataclass(frozen=True, slots=True)
class Reply:
    """One worker's answer to :meth:`ControlChannel.ask_others`: ``value`` when it answered,
    else ``error`` (why not)."""

    worker: int
    value: dict[str, Any] | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


Handler = Callable[[dict[str, Any]], Any]
"""Answers one operation's payload with a JSON object (or a Deferred of one)."""


class ControlProtocol(NetstringReceiver):
    """One control connection, either end: sends requests and matches their replies, and
    answers the requests that arrive with ``handlers``."""

    MAX_LENGTH = MAX_MESSAGE

    def __init__(self, handlers: dict[str, Handler]) -> None:
        self.handlers = handlers
        self._next_id = 1
        self._waiting: dict[int, Deferred[dict[str, Any]]] = {}

    @property
    def pending(self) -> int:
        """Requests sent and waiting for their reply."""
        return len(self._waiting)

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.connected = False
        waiting, self._waiting = self._waiting, {}
        for d in waiting.values():
            d.errback(ControlError("the connection was lost"))

    def request(self, op: str, payload: dict[str, Any]) -> Deferred[dict[str, Any]]:
        """Send request ``op``; fires with the reply, fails with :class:`ControlError`."""
        if not self.connected:
            return fail(ControlError("not connected"))
        ident = self._next_id
        self._next_id += 1

        def forget(_: Deferred[dict[str, Any]]) -> None:
            self._waiting.pop(ident, None)

        d: Deferred[dict[str, Any]] = Deferred(forget)
        self._waiting[ident] = d
        self._send({"id": ident, "op": op, "payload": payload})
        return d

    def _send(self, message: dict[str, Any]) -> None:
        data = json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        if len(data) > MAX_MESSAGE:
            raise ValueError(f"a control message of {len(data)} bytes is over {MAX_MESSAGE}")
        self.sendString(data)

    def stringReceived(self, string: bytes) -> None:
        try:
            message = json.loads(string.decode("utf-8"))
            if not isinstance(message, dict) or not isinstance(message.get("id"), int):
                raise ValueError("not an object with an id")
        except ValueError as exc:
            log.error("control message unreadable ({exc}): closing", exc=exc)
            self.transport.loseConnection()  # type: ignore[union-attr]
            return
        ident = message["id"]
        if "op" in message:
            self._answer(ident, str(message["op"]), message.get("payload") or {})
            return
        d = self._waiting.pop(ident, None)
        if d is None:
            return  # timed out meanwhile
        if "error" in message:
            d.errback(ControlError(str(message["error"])))
        else:
            d.callback(message.get("reply") or {})

    def _answer(self, ident: int, op: str, payload: dict[str, Any]) -> None:
        handler = self.handlers.get(op)
        if handler is None:
            self._send({"id": ident, "error": f"no operation {op!r}"})
            return

        def done(reply: Any) -> None:
            if self.connected:
                self._send({"id": ident, "reply": reply if isinstance(reply, dict) else {}})

        def failed(failure: Failure) -> None:
            log.failure("control operation {op} failed", failure, op=op)
            if self.connected:
                self._send({"id": ident, "error": f"{op} failed: {failure.getErrorMessage()}"})

        maybeDeferred(handler, payload).addCallbacks(done, failed)


class _ControlFactory(Factory):
    noisy = False

    def __init__(self, handlers: dict[str, Handler]) -> None:
        self.handlers = handlers

    def buildProtocol(self, addr: Any) -> ControlProtocol:
        proto = ControlProtocol(self.handlers)
        proto.factory = self
        return proto


Connect = Callable[[int], Deferred[ControlProtocol]]
"""Opens a control connection to worker N."""


class ControlChannel(Service):
    """This worker's end of the control channel (see the module docstring): listens on its
    socket, keeps one connection to each other worker, opened when first needed and again
    after it was lost."""

    def __init__(
        self,
        reactor: Any,
        directory: str,
        index: int,
        count: int,
        *,
        timeout: float = TIMEOUT,
        connect: Connect | None = None,
    ) -> None:
        self.reactor = reactor
        self.directory = directory
        self.index = index
        self.peers = [i for i in range(count) if i != index]
        self.timeout = timeout
        self.handlers: dict[str, Handler] = {}
        self._connect = connect or self._connect_unix
        self._protos: dict[int, ControlProtocol] = {}
        self._opening: dict[int, list[Deferred[ControlProtocol]]] = {}
        self._port: IListeningPort | None = None

    def handle(self, op: str, handler: Handler) -> None:
        """Answer requests ``op`` with ``handler`` (one per operation)."""
        self.handlers[op] = handler

    def startService(self) -> None:
        super().startService()
        path = control_path(self.directory, self.index)
        if os.path.exists(path):
            os.unlink(path)  # left by this worker's previous life
        self._port = self.reactor.listenUNIX(path, _ControlFactory(self.handlers), mode=0o600)

    def stopService(self) -> Deferred[None] | None:
        super().stopService()
        protos, self._protos = self._protos, {}
        for proto in protos.values():
            if proto.transport is not None:
                proto.transport.loseConnection()
        if self._port is not None:
            port, self._port = self._port, None
            return port.stopListening()
        return None

    def ask(
        self, worker: int, op: str, payload: dict[str, Any], timeout: float | None = None
    ) -> Deferred[dict[str, Any]]:
        """Ask worker ``worker``; fires with its reply, fails with :class:`ControlError`
        (unreachable, no answer within ``timeout`` seconds, or its handler failed)."""
        limit = self.timeout if timeout is None else timeout

        def send(proto: ControlProtocol) -> Deferred[dict[str, Any]]:
            return proto.request(op, payload)

        def unreachable(failure: Failure) -> Failure:
            if not failure.check(ControlError):
                reason = _reason(failure)
                return Failure(ControlError(f"worker {worker} unreachable: {reason}"))
            return failure

        d = self._link(worker).addCallback(send)
        d.addTimeout(limit, self.reactor, onTimeoutCancel=self._timed_out(worker, limit))
        return d.addErrback(unreachable)

    @staticmethod
    def _timed_out(worker: int, limit: float) -> Callable[[Any, float], Any]:
        def raise_(result: Any, timeout: float) -> Any:
            if isinstance(result, Failure):
                raise ControlError(f"worker {worker} did not answer within {limit:g}s")
            return result

        return raise_

    def ask_others(
        self, op: str, payload: dict[str, Any], timeout: float | None = None
    ) -> Deferred[list[Reply]]:
        """Ask every other worker at once; fires (never fails) with one :class:`Reply` per
        worker, in worker order."""
        asked = [self.ask(worker, op, payload, timeout) for worker in self.peers]

        def collect(results: list[tuple[bool, Any]]) -> list[Reply]:
            return [
                Reply(worker, value=value) if ok else Reply(worker, error=_reason(value))
                for worker, (ok, value) in zip(self.peers, results, strict=True)
            ]

        return DeferredList(asked, consumeErrors=True).addCallback(collect)

    def _link(self, worker: int) -> Deferred[ControlProtocol]:
        """The connection to ``worker``: the open one, or one opened now (those who ask
        while it opens wait for it, and are answered in the order they asked)."""
        proto = self._protos.get(worker)
        if proto is not None and proto.connected:
            return succeed(proto)
        waiter: Deferred[ControlProtocol] = Deferred()
        waiters = self._opening.get(worker)
        if waiters is not None:
            waiters.append(waiter)
            return waiter
        self._opening[worker] = [waiter]
        self._connect(worker).addCallbacks(
            lambda proto: self._opened(worker, proto), lambda f: self._not_opened(worker, f)
        )
        return waiter

    def _opened(self, worker: int, proto: ControlProtocol) -> None:
        self._protos[worker] = proto
        for waiter in self._opening.pop(worker, []):
            waiter.callback(proto)  # ignored by a waiter that timed out (cancelled)

    def _not_opened(self, worker: int, failure: Failure) -> None:
        for waiter in self._opening.pop(worker, []):
            waiter.errback(failure)

    def _connect_unix(self, worker: int) -> Deferred[ControlProtocol]:
        endpoint = UNIXClientEndpoint(self.reactor, control_path(self.directory, worker), 5)
        connected: Deferred[ControlProtocol] = endpoint.connect(_ControlFactory(self.handlers))
        return connected


def _reason(failure: Any) -> str:
    if isinstance(failure, Failure):
        return failure.getErrorMessage() or repr(failure.value)
    return str(failure)


__all__ = ["ControlChannel", "ControlError", "ControlProtocol", "Reply", "control_path"]
