"""One worker of ``fms run --workers N``: its service tree, and how it notices that its
supervisor is gone."""

from __future__ import annotations

from typing import Any

from twisted.application.service import MultiService
from twisted.internet.endpoints import TCP4ServerEndpoint, TCP6ServerEndpoint
from twisted.python.failure import Failure

from fms.cluster.claims import NameLocks
from fms.cluster.control import ControlChannel
from fms.cluster.everywhere import Everywhere
from fms.cluster.relay import RelayHub
from fms.cluster.seats import LockSeats
from fms.cluster.spec import READY_FD, RELEASE_LOG, WorkerSpec
from fms.config import Config
from fms.log import Logger, release_held_lines
from fms.server.endpoints import ReusePortEndpoint
from fms.server.factory import RTMPServerFactory
from fms.server.service import ExtraListenerService, RTMPListenerService

log = Logger(namespace="fms.cluster.worker")


def make_worker_service(
    reactor: Any, config: Config, worker: WorkerSpec
) -> tuple[MultiService, RTMPListenerService]:
    """The service tree of one worker: its listeners share their ports with the other workers
    (SO_REUSEPORT), the worker's own port (``[server] worker_ports``) is added, and so is the
    relay to the other workers (:class:`~fms.cluster.relay.RelayHub`), which the factory tells
    of every accepted publish, and the name claims shared by the workers
    (:class:`~fms.cluster.claims.NameLocks`), which it asks before it accepts one; the
    applications get the seats shared by the workers (:class:`~fms.cluster.seats.LockSeats`)
    and the control channel (:mod:`fms.cluster.control`) that takes their broadcasts to the
    other workers. Every service that listens has a ``listening`` Deferred."""
    root = MultiService()
    factory = RTMPServerFactory(config)
    server = config.server
    tls = config.tls
    tag = f"worker {worker.index}"
    shared = ReusePortEndpoint(
        reactor,
        server.host,
        worker.port,
        server.listen_backlog,
    )
    listener = RTMPListenerService(
        reactor, config, factory, endpoint=shared, announce=tag + " accepting on {url}"
    )
    listener.setServiceParent(root)
    if tls.enabled:
        from fms.server.endpoints import tls_wrapper

        wrap = tls_wrapper(config.path(tls.certificate), config.path(tls.private_key))
        endpoint = ReusePortEndpoint(
            reactor,
            tls.host or server.host,
            worker.tls_port,
            server.listen_backlog,
            wrap=wrap,
        )
        secure = ExtraListenerService(
            reactor, config, factory, endpoint=endpoint, announce=tag + " accepting on {url}"
        )
        secure.scheme = "rtmps"
        secure.setServiceParent(root)
    if worker.index < len(server.worker_ports):
        endpoint_type = TCP6ServerEndpoint if ":" in server.host else TCP4ServerEndpoint
        own = endpoint_type(
            reactor,
            server.worker_ports[worker.index],
            backlog=server.listen_backlog,
            interface=server.host,
        )
        ExtraListenerService(
            reactor, config, factory, endpoint=own, announce=tag + " alone on {url}"
        ).setServiceParent(root)
    hub = RelayHub(reactor, worker, factory)
    factory.publish_listener = hub
    factory.name_claims = NameLocks(worker.directory)
    hub.setServiceParent(root)
    factory.seats = LockSeats(worker.directory)
    control = ControlChannel(reactor, worker.directory, worker.index, worker.count)
    factory.elsewhere = Everywhere(control, factory)
    control.setServiceParent(root)
    if config.http.enabled:
        from fms.cluster.observe import ControlPeers
        from fms.http.web import make_http_service

        http = make_http_service(
            reactor, config.http, factory,
            peers=ControlPeers(control, worker.index, worker.count),
            endpoint=ReusePortEndpoint(
                reactor, config.http.host, worker.http_port, server.listen_backlog
            ),
            announce=tag + " accepting on {url}",
        )  # fmt: skip
        http.api.metrics_extra = lambda: {"worker_restarts": worker.restarts}
        http.setServiceParent(root)
    return root, listener


class ParentWatch:
    """In a worker: tells the supervisor it is ready (descriptor 3) and stops the worker when
    the supervisor is gone (its stdin, the supervisor's pipe, reaches end of file)."""

    def __init__(self, reactor: Any) -> None:
        self.reactor = reactor

    def start(self) -> None:
        from twisted.internet import stdio
        from twisted.internet.protocol import Protocol

        watch = self

        class _Pipe(Protocol):
            def dataReceived(self, data: bytes) -> None:
                if RELEASE_LOG.strip() in data:
                    release_held_lines()

            def connectionLost(self, reason: Failure | None = None) -> None:
                watch.parent_gone()

        self._stdio = stdio.StandardIO(  # type: ignore[call-arg]
            _Pipe(), stdin=0, stdout=READY_FD, reactor=self.reactor
        )

    def ready(self) -> None:
        self._stdio.write(b"ready\n")

    def parent_gone(self) -> None:
        from twisted.internet.error import ReactorNotRunning

        try:
            self.reactor.stop()
        except ReactorNotRunning:
            return  # already stopping: this is the pipe closing at exit
        log.warn("the supervisor is gone: stopping")
