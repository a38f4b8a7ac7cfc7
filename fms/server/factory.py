"""What the connections of one RTMP listener share: :class:`RTMPServerFactory`.

The configuration (a reload swaps it for new connections), the stream registry, the
applications and their plugin chains, admission (:mod:`fms.server.admission`), the deadline
queue served by one delayed call, the fan-out flush loop, and the graceful shutdown.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Generator
from typing import Any

from twisted.internet.defer import Deferred, TimeoutError, gatherResults
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.protocol import Factory
from twisted.internet.task import LoopingCall
from twisted.python.failure import Failure

from fms.apps.application import Application
from fms.apps.loader import build_all
from fms.apps.shared import Elsewhere, LocalSeats, SeatTable
from fms.config import Config
from fms.counters import COUNTERS
from fms.live.registry import StreamRegistry
from fms.live.stream import LiveStream
from fms.log import Logger, LogThrottle
from fms.rtmp.connection import ServerSettings
from fms.server import reconnect
from fms.server.admission import (
    PULSE_INTERVAL,
    REFUSAL_LOG_INTERVAL,
    Admission,
    AttentionClock,
    address_group,
    effective_max_connections,
)
from fms.server.deadlines import EPSILON, DeadlineQueue
from fms.server.flushing import FLUSH_SLICE_PLAYERS, Flushes, flushes_for
from fms.server.host import DirectoryFigures, NameClaims, PublishListener
from fms.server.limits import connection_limits, fanout_limits
from fms.server.protocol import RTMPServerProtocol
from fms.server.proxied import ProxiedRTMPServerProtocol, ProxyCheckingRTMPServerProtocol
from fms.server.proxy import TrustedProxies
from fms.server.pull import PullService
from fms.server.push import PushService
from fms.server.tally import count_handshake_failure, refusal_kind

log = Logger(namespace="fms.server.factory")


class RTMPServerFactory(Factory[RTMPServerProtocol]):
    """Builds one :class:`RTMPServerProtocol` per accepted connection, and holds what they
    share: the configuration, the stream registry, the applications, the fan-out flush loop,
    the deadline queue and the admission counts."""

    protocol = RTMPServerProtocol
    noisy = False

    def __init__(self, config: Config, clock: IReactorTime | None = None) -> None:
        if clock is None:
            from twisted.internet import reactor

            clock = reactor
        assert clock is not None
        self.clock: IReactorTime = clock
        self.config = config
        self.limits = connection_limits(config)
        self.connections: set[RTMPServerProtocol] = set()
        self.registry = StreamRegistry(
            lambda app: fanout_limits(self.config, app), clock=self.clock.seconds
        )
        self.chains = build_all(config)  # raises ConfigError: a broken plugin stops startup
        self.applications: dict[str, Application] = {}
        self.settings = ServerSettings(chunk_size=config.streams.chunk_size)
        self.deadlines: DeadlineQueue[int] = DeadlineQueue()
        self.shutting_down = False
        self.admission = Admission()
        self.max_connections = effective_max_connections(config.limits.max_connections)
        """``[limits] max_connections``, or (0) what the open-file ceiling allows."""
        self.trusted_proxies = TrustedProxies(config.server.trusted_proxies)
        self.attention = AttentionClock(PULSE_INTERVAL)
        """What the ages of pending connections are measured on (the server's lateness left
        out), beaten by ``_pulse``."""
        self._pulse: LoopingCall | None = None
        self._by_id: dict[int, RTMPServerProtocol] = {}
        self._retired: set[Application] = set()
        self._timer: IDelayedCall | None = None
        self._flusher: Flushes | None = None
        self._refusals = LogThrottle(REFUSAL_LOG_INTERVAL)
        self._all_closed: Deferred[None] | None = None
        self.publish_listener: PublishListener | None = None
        """Told of every publish accepted from a client (not from a relay link): the worker
        relay (:mod:`fms.cluster.relay`) with ``fms run --workers``, else None."""
        self.relay_links = 0
        """Connections among :attr:`connections` that are relay links from other workers
        (:mod:`fms.cluster.link`), not clients."""
        self.name_claims: NameClaims | None = None
        """Asked before a client's publish is accepted: the names claimed across the workers
        (:mod:`fms.cluster.claims`) with ``fms run --workers``, else None."""
        self.seats: SeatTable = LocalSeats()
        """The applications' seats (``app.take_seat``): in memory, or shared by the workers
        (:mod:`fms.cluster.seats`) with ``fms run --workers``."""
        self.departures: reconnect.Departures | None = None
        """During a shutdown: the clients asked to reconnect that have not left yet."""
        self.elsewhere: Elsewhere | None = None
        """The other workers, for ``app.broadcast`` (:mod:`fms.cluster.everywhere`)."""
        self.pushes = PushService(clock, lambda name: self.config.path(name))
        """The pushes (restreams) of this process's publishes (:mod:`fms.server.push`)."""
        self.chain_tail: list[Any] = []
        """Plugins after every application's own chain: the cluster directory's
        (:mod:`fms.cluster.directory`) when ``[cluster]`` is on."""
        self.directory: DirectoryFigures | None = None
        """The cluster directory of this process, for the HTTP API (None: no cluster)."""
        self.pulls = PullService(self, lambda name: self.config.path(name))
        """Streams pulled from other servers (:mod:`fms.server.pull`)."""
        self.protocol_variants: dict[type[RTMPServerProtocol], type[RTMPServerProtocol]] = {}
        """Subclasses built instead of the server's protocols: the cluster's, which tell the
        other nodes' private-path links from clients (:mod:`fms.cluster.private`)."""
        self._pulls_started = False

    # --------------------------------------------------------------------------- start/stop

    def startFactory(self) -> None:
        self._start_flusher()
        if not self._pulls_started:  # once, though RTMP and RTMPS listeners share the factory
            self._pulls_started = True
            self.pulls.start_always()
        if self._pulse is None:
            self._pulse = LoopingCall(lambda: self.attention.beat(self.clock.seconds()))
            self._pulse.clock = self.clock
            self._pulse.start(PULSE_INTERVAL, now=True)

    def _stop_pulse(self) -> None:
        if self._pulse is not None and self._pulse.running:
            self._pulse.stop()
        self._pulse = None

    def admission_time(self) -> float:
        """Now on the :class:`~fms.server.admission.AttentionClock` (seconds)."""
        return self.attention.time(self.clock.seconds())

    def _start_flusher(self) -> None:
        if self._flusher is None:
            self._flusher = flushes_for(
                self.config.streams, self.clock, self.flush, flush_round=self.flush_round
            )
            self._flusher.start()

    def _stop_flusher(self) -> None:
        if self._flusher is not None and self._flusher.running:
            self._flusher.stop()
        self._flusher = None

    def stopFactory(self) -> None:
        if self.shutting_down:
            return  # shutdown() stops the applications once their clients were told
        self._stop_flusher()
        self._stop_pulse()
        self.pulls.stop_all()
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        for application in [*self.applications.values(), *self._retired]:
            application.stop()

    def shutdown(self, timeout: float | None = None) -> Deferred[None]:
        """Stop gracefully: refuse new connections, tell every client its streams ended and
        close it once that is written, let plugins finish (recordings are closed by their
        ``unpublish``/``app_stop``), all within ``timeout`` seconds (``[server]
        shutdown_timeout``); whatever is left then is aborted. Clients that announced Enhanced
        RTMP Reconnect are first asked to reconnect (to ``[server] reconnect_url``) and given
        ``reconnect_grace`` seconds to leave; those still here then are told and closed as the
        others, and ``timeout`` counts from then. The Deferred never fails."""
        if timeout is None:
            timeout = self.config.server.shutdown_timeout
        self.shutting_down = True
        self.pulls.stop_all()  # their players are told below, as those of a publisher
        log.info(
            "shutting down: {clients} connections, {streams} streams",
            clients=len(self.connections), streams=len(self.registry),
        )  # fmt: skip
        server = self.config.server
        moving: set[RTMPServerProtocol] = set()
        if server.reconnect_grace > 0:  # those that can move are asked first
            asked, _ = reconnect.request_all(
                self.connections, server.reconnect_url, reconnect.ON_SHUTDOWN
            )
            moving.update(asked)
        self.departures = reconnect.Departures(moving)
        self._shut_down([proto for proto in self.connections if proto not in moving])
        return Deferred.fromCoroutine(self._finish_shutdown(timeout, server.reconnect_grace))

    def _shut_down(self, protos: list[RTMPServerProtocol]) -> None:
        for proto in protos:
            try:
                proto.shut_down()
            except Exception:
                log.failure("internal error while telling {peer} of the shutdown", peer=proto.peer)
                proto._abort()

    async def _finish_shutdown(self, timeout: float, grace: float) -> None:
        if self.departures is not None and self.departures.waiting:
            self._shut_down(await self.departures.wait(grace, self.clock))  # closed as the others
        deadline = self.clock.seconds() + timeout
        if self.connections:
            waiter: Deferred[None] = Deferred()
            self._all_closed = waiter
            try:
                await waiter.addTimeout(max(deadline - self.clock.seconds(), 0), self.clock)
            except TimeoutError:
                log.warn(
                    "{count} connections did not close within the shutdown timeout: aborted",
                    count=len(self.connections),
                )
                for proto in list(self.connections):
                    proto._abort()
            self._all_closed = None
        applications = [*self.applications.values(), *self._retired]
        stopping = gatherResults([app.stop() for app in applications])
        try:
            await stopping.addTimeout(max(deadline - self.clock.seconds(), 0.1), self.clock)
        except TimeoutError:
            log.warn("plugins did not finish stopping within the shutdown timeout")
        except Exception:
            log.failure("stopping the applications failed")
        self._stop_flusher()
        self._stop_pulse()
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    # ------------------------------------------------------------------------- admission

    def buildProtocol(self, addr: Any) -> RTMPServerProtocol | None:
        limits = self.config.limits
        peer = str(getattr(addr, "host", "?"))
        host = address_group(peer, limits.ipv6_prefix_length)
        proxied = self.config.server.proxy_protocol and peer in self.trusted_proxies
        now = self.admission_time()
        if self.shutting_down:
            reason: str | None = "the server is shutting down"
        elif proxied:  # the proxy is exempt from the per-address cap: its clients are not
            reason = self.admission.total_refusal(self.max_connections)
        else:
            reason = self.admission.refusal(host, limits, now, self.max_connections)
        if reason is not None:
            self._refuse(host, reason)
            return None  # Twisted closes the socket at once
        kind: type[RTMPServerProtocol]
        if proxied:
            kind = ProxiedRTMPServerProtocol
        elif self.config.server.proxy_protocol:
            kind = ProxyCheckingRTMPServerProtocol
        else:
            kind = RTMPServerProtocol
        proto = self.protocol_variants.get(kind, kind)(self)
        proto.factory = self
        return proto

    def _refuse(self, host: str, reason: str) -> None:
        COUNTERS.add("admission_refusals", reason=refusal_kind(reason))
        held = self._refusals.allow(reason.split(" (")[-1], self.clock.seconds())
        if held is not None:
            log.warn(
                "refusing connection from {host}: {reason}{held}",
                host=host, reason=reason,
                held=f"; {held} more refused since the last report" if held else "",
            )  # fmt: skip

    def admit(self, proto: RTMPServerProtocol) -> None:
        """A connection was made: count it until it is forgotten. One from a trusted proxy
        counts as connecting once its PROXY header named the client (:meth:`proxied`)."""
        self.connections.add(proto)
        self._by_id[proto.id] = proto
        if isinstance(proto, ProxiedRTMPServerProtocol):
            self.admission.opened()
            return
        proto.address_group = address_group(proto.host, self.config.limits.ipv6_prefix_length)
        self.admission.admit(proto.address_group, proto.id, self.admission_time())
        proto.counted_connecting = True

    def proxied(self, proto: RTMPServerProtocol) -> bool:
        """``proto``'s PROXY header named its client (``proto.host``): count it as connecting
        from the client's address, or refuse it (logged, closed; False) when that address has
        ``max_connecting_per_ip`` parked connections already."""
        limits = self.config.limits
        group = address_group(proto.host, limits.ipv6_prefix_length)
        now = self.admission_time()
        reason = self.admission.address_refusal(group, limits, now)
        if reason is not None:
            self._refuse(group, reason)
            proto._abort()
            return False
        proto.address_group = group
        self.admission.connecting_from(group, proto.id, now)
        proto.counted_connecting = True
        return True

    def handshake_done(self, proto: RTMPServerProtocol, digest: bool) -> None:
        """The handshake finished (``digest``: in its FP9 form). That is progress: a
        connection still connecting is judged by the per-address cap from now on, so a
        legitimate client has ``connecting_grace`` for each step however slow the server is
        to bring it there."""
        log.debug("handshake with {peer} done (digest: {d})", peer=proto.peer, d=digest)
        if proto.counted_connecting:
            self.admission.progressed(proto.address_group, proto.id, self.admission_time())

    def connected(self, proto: RTMPServerProtocol) -> None:
        """``connect`` was accepted: the connection no longer counts as connecting."""
        if proto.counted_connecting:
            proto.counted_connecting = False
            self.admission.connected(proto.address_group, proto.id)

    def forget(self, proto: RTMPServerProtocol) -> None:
        """A connection was lost."""
        count_handshake_failure(proto, self.clock.seconds())
        self.connected(proto)
        if proto in self.connections:
            self.connections.discard(proto)
            self.admission.closed()
        self._by_id.pop(proto.id, None)
        self.deadlines.discard(proto.id)
        self._arm()
        if self.departures is not None:
            self.departures.left(proto)
        if not self.connections and self._all_closed is not None:
            waiter, self._all_closed = self._all_closed, None
            waiter.callback(None)

    def by_age(self) -> list[RTMPServerProtocol]:
        """The open connections, oldest first (admission order)."""
        return list(self._by_id.values())

    def connecting_from(self, host: str) -> int:
        """Connections from ``host`` whose ``connect`` was not accepted yet."""
        return self.admission.connecting(address_group(host, self.config.limits.ipv6_prefix_length))

    # ------------------------------------------------------------------------- deadlines

    def schedule(self, proto: RTMPServerProtocol, when: float) -> None:
        """Check ``proto`` at ``when`` (seconds) unless it is due earlier already."""
        if proto.id in self._by_id and self.deadlines.schedule(proto.id, when):
            self._arm()

    def _arm(self) -> None:
        """Keep the one delayed call armed for the earliest deadline."""
        when = self.deadlines.next_time()
        timer = self._timer
        if when is None:
            if timer is not None and timer.active():
                timer.cancel()
            self._timer = None
            return
        if timer is not None and timer.active():
            if timer.getTime() <= when:
                return
            timer.cancel()
        delay = max(when - self.clock.seconds() - EPSILON / 2, 0.0)
        self._timer = self.clock.callLater(delay, self._run_deadlines)

    def _run_deadlines(self) -> None:
        self._timer = None
        now = self.clock.seconds()
        for key in self.deadlines.pop_due(now + EPSILON):
            proto = self._by_id.get(key)
            if proto is None:
                continue
            try:
                when = proto.check(now)
            except Exception:
                log.failure("closing {peer}: internal error in its deadlines", peer=proto.peer)
                proto._abort()
                continue
            if when is not None and key in self._by_id:
                self.deadlines.schedule(key, when)
        self._arm()

    # ------------------------------------------------------------------------- name claims

    def claim_name(self, app: str, name: str) -> bool:
        """Claim ``name`` on every process serving this port before it is published here, so
        that two publishes on two workers at the same moment cannot both be accepted."""
        claims = self.name_claims
        return claims is None or claims.claim(app, name)

    def release_name(self, app: str, name: str) -> None:
        if self.name_claims is not None:
            self.name_claims.release(app, name)

    # ---------------------------------------------------------------------- applications

    def application_for(self, app: str) -> Application | None:
        """The :class:`Application` serving ``app`` (``live/room1`` is served by ``live``), or
        None when the configuration refuses unknown apps."""
        settings = self.config.app(app)
        if settings.name is None and settings.policy == "refuse":
            return None
        key = settings.name or app.split("/", 1)[0]
        application = self.applications.get(key)
        if application is None:
            chain = self.chains.get(settings.name, []) + self.chain_tail
            application = Application(
                key, settings, chain, self.registry, self.clock,
                seats=self.seats, elsewhere=self.elsewhere, pusher=self.pushes,
                puller=self.pulls,
            )  # fmt: skip
            self.applications[key] = application
            application.start()
        return application

    def applications_named(self, name: str) -> list[Application]:
        """The applications called ``name``: the current one and those a reload replaced
        that still have clients."""
        current = self.applications.get(name)
        retired = [a for a in self._retired if a.name == name and a is not current]
        return ([current] if current is not None else []) + retired

    def client_left(self, application: Application) -> None:
        """Stop an application replaced by a reload once its last client has gone."""
        if application in self._retired and not application.clients:
            self._retired.discard(application)
            application.stop()

    def reload(self, config: Config) -> None:
        """Use ``config`` for new connections: new plugin chains, limits and stream settings.

        Existing clients keep the configuration and plugins they arrived with (their streams
        go on); clients of an application the new configuration refuses are closed. Raises
        :class:`~fms.errors.ConfigError` (and changes nothing) when a plugin cannot be built.
        The outgoing chunk size is shared by every player of a stream, so it keeps its value
        until a restart, as do the listening address and port. ``always`` pulls follow the new
        tables at once (:meth:`~fms.server.pull.PullService.reload`).
        """
        old = self.config
        if config.streams.chunk_size != old.streams.chunk_size:
            log.warn("streams.chunk_size stays {size} until a restart", size=old.streams.chunk_size)
            config = dataclasses.replace(
                config,
                streams=dataclasses.replace(config.streams, chunk_size=old.streams.chunk_size),
            )
        if (config.server.host, config.server.port) != (old.server.host, old.server.port):
            log.warn("server.host and server.port changes take effect at the next restart")
        if config.cluster != old.cluster:
            log.warn("[cluster] changes take effect at the next restart")
        if (config.server.workers, config.server.worker_ports) != (
            old.server.workers,
            old.server.worker_ports,
        ):
            log.warn("server.workers and server.worker_ports take effect at the next restart")
        if config.http != old.http:
            log.warn("[http] changes take effect at the next restart")
        chains = build_all(config)  # ConfigError: nothing has changed yet
        self.config = config
        self.chains = chains
        self.limits = connection_limits(config)
        self.max_connections = effective_max_connections(config.limits.max_connections)
        self.trusted_proxies = TrustedProxies(config.server.trusted_proxies)
        self.settings = ServerSettings(chunk_size=config.streams.chunk_size)
        flushing = ("flush", "flush_interval", "flush_share", "flush_busy_share")
        if self._flusher and any(
            getattr(old.streams, key) != getattr(config.streams, key) for key in flushing
        ):
            self._stop_flusher()
            self._start_flusher()
        if self._pulls_started:
            self.pulls.reload(old, config)
        retiring, self.applications = self.applications, {}
        for application in retiring.values():
            self._retired.add(application)
            self.client_left(application)
        for proto in list(self.connections):
            if proto.app is not None and self.application_for(proto.app) is None:
                log.info(
                    "closing {peer}: application {app!r} is no longer served",
                    peer=proto.peer, app=proto.app,
                )  # fmt: skip
                proto._abort()

    # ---------------------------------------------------------------------------- fan-out

    def published(self) -> None:
        """A publisher's read (a relay link's included) added messages: the flush loop
        decides when they go out (:mod:`fms.server.flushing`)."""
        if self._flusher is not None:
            self._flusher.published()
        elif self.config.streams.flush_interval == 0:
            self.flush()  # not started (in-memory tests): as before, at once

    def flush(self) -> None:
        """Deliver what publishers sent since the last flush to every player. A stream whose
        flush fails is logged and skipped; the loop and the other streams go on."""
        self._log_failures(self.registry.flush(self.clock.seconds()))

    def flush_round(self) -> Generator[None, None, None]:
        """:meth:`flush` handed over in slices of :data:`FLUSH_SLICE_PLAYERS` players, yielding
        in between so that the reactor reads publishers while a long flush goes on (the
        adaptive loop's rounds, :mod:`fms.server.flushing`)."""
        failures: list[tuple[LiveStream, Exception]] = []
        for _ in self.registry.flush_round(self.clock.seconds(), FLUSH_SLICE_PLAYERS, failures):
            self._log_failures(failures)
            yield
        self._log_failures(failures)

    @staticmethod
    def _log_failures(failures: list[tuple[LiveStream, Exception]]) -> None:
        for stream, failure in failures:
            log.failure(
                "internal error while delivering {app}/{stream}",
                Failure(failure), app=stream.app, stream=stream.name,
            )  # fmt: skip
        failures.clear()
