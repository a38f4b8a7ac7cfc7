"""The ``twisted.application`` service tree that ``fms run`` starts.

:class:`RTMPListenerService` owns one listening port. Later services (workers, HTTP stats) hang
off the same :class:`~twisted.application.service.MultiService`.
"""

from __future__ import annotations

import resource
import signal
from typing import Any

from twisted.application.service import MultiService, Service
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.endpoints import TCP4ServerEndpoint, TCP6ServerEndpoint
from twisted.internet.interfaces import (
    IListeningPort,
    IProtocolFactory,
    IReactorTCP,
    IStreamServerEndpoint,
)
from twisted.python.failure import Failure

from fms.config import Config
from fms.log import Logger
from fms.server.admission import FILE_DESCRIPTOR_MARGIN as FILE_DESCRIPTOR_MARGIN
from fms.server.endpoints import format_url

log = Logger(namespace="fms.server.service")


def raise_open_file_limit(needed: int | None = None) -> int:
    """Raise the soft open-file limit to the hard limit; return the limit now in force.

    Every player is a socket, so the default soft limit (often 1,024) would cap the server far
    below what one process can serve. With ``needed`` (``max_connections`` plus a margin), a
    limit that stays below it is logged as a warning: connections past it are accepted and
    closed at once (the listener survives EMFILE), so the cap is not what the operator set.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    limit = soft
    if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
        target = hard
        if hard == resource.RLIM_INFINITY:
            target = max(soft, needed or 0)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            limit = target
        except (ValueError, OSError):
            pass
    if needed is not None and limit != resource.RLIM_INFINITY and limit < needed:
        log.warn(
            "the open-file limit is {limit} but max_connections needs about {needed}: raise "
            "it (ulimit -n, LimitNOFILE=) or lower max_connections",
            limit=limit,
            needed=needed,
        )
    return limit


class RTMPListenerService(Service):
    """Listens on the configured address with an RTMP server factory.

    ``listening`` fires with the port once it is bound, so callers (and tests) learn the actual
    port when the configuration asked for port 0.
    """

    scheme = "rtmp"

    def __init__(
        self,
        reactor: IReactorTCP,
        config: Config,
        factory: IProtocolFactory,
        *,
        endpoint: IStreamServerEndpoint | None = None,
        announce: str = "listening on {url}",
    ) -> None:
        self._reactor = reactor
        self._config = config
        self._factory = factory
        self._endpoint = endpoint
        self._announce = announce
        self.factory = factory
        self.port: IListeningPort | None = None
        self.listening: Deferred[IListeningPort] = Deferred()

    def endpoint(self) -> IStreamServerEndpoint:
        if self._endpoint is not None:
            return self._endpoint
        host = self._config.server.host
        endpoint_type = TCP6ServerEndpoint if ":" in host else TCP4ServerEndpoint
        endpoint: IStreamServerEndpoint = endpoint_type(
            self._reactor,
            self._config.server.port,
            backlog=self._config.server.listen_backlog,
            interface=host,
        )
        return endpoint

    def startService(self) -> None:
        super().startService()
        d = self.endpoint().listen(self._factory)
        d.addCallback(self._listened)
        d.addErrback(self._failed)

    def _listened(self, port: IListeningPort) -> IListeningPort:
        self.port = port
        address = port.getHost()
        assert isinstance(address, (IPv4Address, IPv6Address))
        url = format_url(address.host, address.port).replace("rtmp://", f"{self.scheme}://", 1)
        if self._announce.startswith("listening on"):
            log.info(self._announce, url=url, always=True, announce=True)  # the contract line
        else:
            log.info(self._announce, url=url)
        self.listening.callback(port)
        return port

    def _failed(self, failure: Failure) -> None:
        self.listening.errback(failure)

    def stopService(self) -> Deferred[None] | None:
        """Stop accepting, then let the factory shut down gracefully (bounded by
        ``[server] shutdown_timeout``)."""
        super().stopService()
        waits: list[Deferred[Any]] = []
        if self.port is not None:
            port, self.port = self.port, None
            stopped = port.stopListening()
            if stopped is not None:
                waits.append(stopped)
        shutdown = getattr(self._factory, "shutdown", None)
        if shutdown is not None:
            waits.append(shutdown())
        if not waits:
            return None
        return gatherResults(waits, consumeErrors=True).addBoth(lambda _: None)


class ExtraListenerService(RTMPListenerService):
    """Another listener on the same factory (RTMPS, a worker's own port): only the main
    listener shuts the factory down."""

    def stopService(self) -> Deferred[None] | None:
        Service.stopService(self)
        if self.port is None:
            return None
        port, self.port = self.port, None
        return port.stopListening()


def make_service(reactor: IReactorTCP, config: Config) -> tuple[MultiService, RTMPListenerService]:
    """Build the service tree for ``config``: the root, its RTMP listener and, when a
    certificate is configured, an RTMPS listener sharing the same factory. Every service that
    listens has a ``listening`` Deferred. (A worker of ``fms run --workers`` builds its own:
    :func:`fms.cluster.worker.make_worker_service`.)"""
    from fms.server.factory import RTMPServerFactory

    root = MultiService()
    factory = RTMPServerFactory(config)
    server = config.server
    tls = config.tls
    listener = RTMPListenerService(reactor, config, factory)
    listener.setServiceParent(root)
    if tls.enabled:
        from fms.server.endpoints import tls_server_endpoint

        # Built now, so unusable certificate files stop the server at start (ConfigError).
        endpoint = tls_server_endpoint(
            reactor,  # type: ignore[arg-type]
            tls.host or server.host,
            tls.port,
            config.path(tls.certificate),
            config.path(tls.private_key),
        )
        secure = ExtraListenerService(reactor, config, factory, endpoint=endpoint)
        secure.scheme = "rtmps"
        secure.setServiceParent(root)
    return root, listener


def stop_on_signals(reactor: Any, signals: tuple[int, ...]) -> None:
    """Stop the reactor (gracefully, through its shutdown triggers) on the first of
    ``signals``; later ones are logged and ignored rather than failing inside Twisted (an
    operator's second Ctrl-C, or SIGTERM sent to both a wrapper and the server). Call once the
    reactor runs: Twisted installs its own handlers when it starts."""
    from twisted.internet.error import ReactorNotRunning

    def stop() -> None:
        try:
            reactor.stop()
        except ReactorNotRunning:
            log.info("already stopping")

    def handler(signum: int, frame: object) -> None:
        log.info("{name}: stopping", name=signal.Signals(signum).name)
        reactor.callFromThread(stop)

    for signum in signals:
        if signal.getsignal(signum) is not signal.SIG_IGN:
            signal.signal(signum, handler)
