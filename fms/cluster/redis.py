"""The Redis connection of the cluster directory (:mod:`fms.cluster.directory`).

The client is ``txredisapi`` (a Twisted protocol): ``benchmarks/redis_clients.py`` measured it
against redis-py's asyncio client (which would move the whole server onto Twisted's asyncio
reactor) and redis-py's synchronous client in the thread pool; ``docs/cluster.md`` has the
figures. One connection per process: txredisapi pipelines concurrent requests on it, so a
heartbeat of every entry is one burst, not one round trip after the other.

:class:`RedisStore` keeps that connection up: it connects, reconnects after a loss with a
doubling backoff, and tells its owner when it is up and when it went down. The directory's
four requests are here, each one atomic in Redis (a ``SET ... NX`` or a Lua script), so that
no other node can slip in between a read and a write.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import unquote, urlsplit

from twisted.internet.defer import Deferred
from twisted.internet.endpoints import HostnameEndpoint
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.protocol import Factory, Protocol
from twisted.python.failure import Failure

from fms.config.cluster import redis_db
from fms.log import Logger

log = Logger(namespace="fms.cluster.redis")

HOLD = """
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return false
end
if (not v) or string.sub(v, 1, string.len(ARGV[2])) == ARGV[2] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
  return false
end
return v
"""
"""Keep KEYS[1] for this process: refresh it when it holds ARGV[1] (this process's value), take
it when it is absent or another process of this node (ARGV[2], ``NODE_URL#``) holds it; return
the value of another node that holds it (nil: ours now). ARGV[3]: time to live in ms."""

DROP = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
"""Delete KEYS[1] only while it holds ARGV[1]: an entry another node took meanwhile stays."""


class RedisStore:
    """One connection to the Redis of ``url`` (``redis://[[user]:password@]host[:port][/db]``).

    ``up()`` is called each time the connection is ready (after AUTH and SELECT), ``down(why)``
    each time it is lost or an attempt failed; attempts follow each other after ``initial``
    seconds, doubling up to ``maximum``. ``timeout`` (seconds) bounds a connection attempt and
    each reply: a Redis that does not answer counts as unreachable."""

    def __init__(
        self,
        reactor: Any,
        url: str,
        *,
        up: Callable[[], None],
        down: Callable[[str], None],
        timeout: float = 2.0,
        initial: float = 0.5,
        maximum: float = 10.0,
    ) -> None:
        parts = urlsplit(url)
        self.reactor = reactor
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 6379
        self.password = unquote(parts.password) if parts.password else None
        self.username = unquote(parts.username) if parts.username else None
        self.db = redis_db(url)
        self.up, self.down = up, down
        self.timeout, self.initial, self.maximum = timeout, initial, maximum
        self.delay = initial
        self._proto: Any = None
        self._retry: IDelayedCall | None = None
        self._stopped = True

    @property
    def connected(self) -> bool:
        return self._proto is not None

    def start(self) -> None:
        self._stopped = False
        self._connect()

    def stop(self) -> None:
        """Stop reconnecting and close the connection."""
        self._stopped = True
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        self._retry = None
        proto, self._proto = self._proto, None
        if proto is not None:
            proto.transport.loseConnection()

    def _connect(self) -> None:
        self._retry = None
        Deferred.fromCoroutine(self._attempt()).addErrback(self._failed)

    async def _attempt(self) -> None:
        import txredisapi

        endpoint = HostnameEndpoint(self.reactor, self.host, self.port, timeout=self.timeout)
        proto = txredisapi.RedisProtocol(replyTimeout=self.timeout, convertNumbers=False)
        await endpoint.connect(_Once(proto))
        try:
            if self.password is not None:
                await proto.auth(self.password, self.username)
            if self.db:
                await proto.select(self.db)
        except BaseException:
            proto.transport.abortConnection()
            raise
        if self._stopped:
            proto.transport.loseConnection()
            return
        self._ready(proto)

    def _ready(self, proto: Any) -> None:
        """``proto`` is connected and ready: the backoff starts afresh."""
        self._retry = None
        proto.whenDisconnected().addCallback(lambda _: self._lost(proto))
        self._proto = proto
        self.delay = self.initial
        self.up()

    def _failed(self, failure: Failure) -> None:
        self.down(failure.getErrorMessage() or repr(failure.value))
        self._again()

    def _lost(self, proto: Any) -> None:
        if self._proto is not proto:
            return  # stop() closed it
        self._proto = None
        self.down("connection lost")
        self._again()

    def _again(self) -> None:
        if self._stopped or self._retry is not None:
            return
        delay, self.delay = self.delay, min(self.delay * 2, self.maximum)
        self._retry = self.reactor.callLater(delay, self._connect)

    # ------------------------------------------------------------------------------ requests

    def _call(self, method: str, *args: Any) -> Deferred[Any]:
        proto = self._proto
        if proto is None:
            return Deferred.fromCoroutine(_unreachable())
        result: Deferred[Any] = getattr(proto, method)(*args)
        return result

    def claim(self, key: str, value: str, ttl_ms: int) -> Deferred[bool]:
        """``SET key value NX PX ttl_ms``: True when the key was free (it is ``value`` now)."""
        return self._call("set", key, value, None, ttl_ms, True).addCallback(bool)

    def get(self, key: str) -> Deferred[str | None]:
        return self._call("get", key)

    def hold(self, key: str, value: str, node: str, ttl_ms: int) -> Deferred[str | None]:
        """The :data:`HOLD` script: None when ``key`` is ``value`` for ``ttl_ms`` more
        milliseconds, else the value of the other node that holds it."""
        return self._call("eval", HOLD, [key], [value, node, str(ttl_ms)])

    def drop(self, key: str, value: str) -> Deferred[bool]:
        """The :data:`DROP` script: True when ``key`` held ``value`` and is gone."""
        return self._call("eval", DROP, [key], [value]).addCallback(bool)


class _Once(Factory):
    """Builds the one protocol of one connection attempt, quietly (no "Starting factory"
    line at each attempt)."""

    noisy = False

    def __init__(self, proto: Protocol) -> None:
        self.proto = proto

    def buildProtocol(self, addr: Any) -> Protocol:
        return self.proto


async def _unreachable() -> Any:
    raise ConnectionError("not connected to Redis")
