"""What a connection needs of what it shares with the others, and who hears of publishes:
two small protocols, so that the protocol module never imports the factory (which builds
protocols) and the server never imports the worker relay (which listens to publishes)."""

from __future__ import annotations

from typing import Any, Protocol, TypeVar

from twisted.internet.interfaces import IReactorTime

from fms.apps.application import Application
from fms.config import Config
from fms.live.registry import StreamRegistry
from fms.live.stream import LiveStream
from fms.rtmp.connection import ConnectionLimits, ServerSettings

C = TypeVar("C", contravariant=True)
"""The connection type a host serves (``RTMPServerProtocol``)."""


class PublishListener(Protocol):
    """Follows the publishes that clients of this process make (the worker relay)."""

    def publish_started(self, stream: LiveStream, peer: str) -> None:
        """``peer`` (``host:port``) started publishing ``stream``."""
        ...

    def publish_stopped(self, stream: LiveStream) -> None:
        """That publish ended."""
        ...


class NameClaims(Protocol):
    """Who may publish a name across the processes that serve one port (the workers of ``fms
    run --workers``, :mod:`fms.cluster.claims`): a name claimed by one is refused by the others.
    A claim is decided at once, so a publish is never half-accepted while it is awaited."""

    def claim(self, app: str, name: str) -> bool:
        """Claim (app, name) for a publisher of this process; False when a process (this one
        included) holds it, or when the claim could not be made (fail closed)."""
        ...

    def release(self, app: str, name: str) -> None:
        """That publish ended: the name is free for every process."""
        ...


class DirectoryFigures(Protocol):
    """The cluster directory of this process (:mod:`fms.cluster.directory`), as the HTTP API
    shows it."""

    def figures(self) -> dict[str, Any]:
        """``node_url``, ``connected`` (to Redis), ``entries`` held, ``conflicts``, ``outages``."""
        ...


class ServerHost(Protocol[C]):
    """What a connection needs of what it shares with the others (the
    :class:`~fms.server.factory.RTMPServerFactory`)."""

    config: Config
    clock: IReactorTime
    limits: ConnectionLimits
    settings: ServerSettings
    registry: StreamRegistry
    publish_listener: PublishListener | None
    name_claims: NameClaims | None

    def admit(self, proto: C) -> None: ...
    def connected(self, proto: C) -> None: ...
    def handshake_done(self, proto: C, digest: bool) -> None: ...
    def forget(self, proto: C) -> None: ...
    def schedule(self, proto: C, when: float) -> None: ...
    def application_for(self, app: str) -> Application | None: ...
    def client_left(self, application: Application) -> None: ...
    def flush(self) -> None: ...
    def published(self) -> None: ...
    def claim_name(self, app: str, name: str) -> bool: ...
    def release_name(self, app: str, name: str) -> None: ...
