"""Pushes (restreams): which publishes of an application are relayed to other servers.

An application relays a publish to every ``[[apps.NAME.push]]`` target whose ``match`` glob
takes the stream's name, from the moment it goes on air until it ends (the next publish of the
name is pushed afresh); a plugin may push a stream it decides with ``app.push(stream, url,
name)``, until the handle's ``stop()`` or the end of the publish. *How* a stream is pushed (an
RTMP client connection that publishes on the target and is fed like a player) is the server's
business: it implements :class:`Pusher` and hands it to the application, so this room imports
nothing of ``fms.server``.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlencode

from fms.config.push import PushConfig, push_url_problem, render_push_name
from fms.live.stream import LiveStream
from fms.log import Logger

log = Logger(namespace="fms.apps.pushes")

HOPS_KEY = "pyfmsPushHops"
"""The ``connect`` command-object property through which a push tells its target how many
pushes the stream has come through, its own included. Other servers ignore a property they do
not know; a pyFMS target counts it against ``[streams] max_push_hops``, so that pushes that
lead back to a server that pushes again (to itself under a new name, or between two servers)
end after a few hops instead of multiplying."""
MOST_HOPS_READ = 1_000_000
"""A larger (or negative, or non-numeric) count is read as 0: only pyFMS sends one."""


def push_hops(command_object: dict[str, Any]) -> int:
    """The hop count a client's ``connect`` announces (:data:`HOPS_KEY`), else 0."""
    value = command_object.get(HOPS_KEY)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return 0
    if not 0 <= value <= MOST_HOPS_READ:
        return 0
    return int(value)


@dataclass(frozen=True, slots=True)
class PushRequest:
    """What to push where: the target ``url`` (``rtmp[s]://host[:port]/app``), the stream
    ``name`` to publish there (query included), the reconnect backoff (seconds: first delay,
    largest delay), ``tls_trust`` (a PEM file of the certificate trusted for ``rtmps``, or "";
    relative names are the configuration file's), and ``origin``: ``"config"`` or
    ``"plugin"``, for the figures."""

    url: str
    name: str
    retry_initial: float = 1.0
    retry_max: float = 30.0
    tls_trust: str = ""
    origin: str = "plugin"


class PushHandle(Protocol):
    """One push of one stream to one target, as the server runs it."""

    @property
    def state(self) -> str:
        """``connecting``, ``live``, ``retrying`` or ``stopped``."""
        ...

    def stop(self) -> None:
        """Stop pushing: unpublish on the target and close (idempotent)."""
        ...

    def figures(self) -> dict[str, Any]:
        """The push's figures (state, bytes and messages sent, skips, last error...)."""
        ...


class Pusher(Protocol):
    """What the server offers an application to push streams (``fms.server.push``)."""

    def start(self, stream: LiveStream, request: PushRequest) -> PushHandle:
        """Start pushing ``stream`` (published now) as ``request`` says; reconnects on its
        own until stopped."""
        ...


class PushError(ValueError):
    """A push a plugin asked for cannot be made (a bad URL, no publisher, no pusher)."""


def query_string(query: dict[str, str]) -> str:
    """The publish's query as the ``{query}`` field of a name template: ``k=v&...``."""
    return urlencode(query)


class AppPushes:
    """The pushes of one application's streams: the configured ones, started when a matching
    publish goes on air, and those plugins start; all stopped when the publish ends.

    ``resolve``: a ``tls_trust`` file name relative to the configuration file -> its path."""

    def __init__(
        self,
        configs: tuple[PushConfig, ...],
        pusher: Pusher | None,
        resolve: Any = str,
        max_hops: int = 4,
    ) -> None:
        self.configs = configs
        self.pusher = pusher
        self.resolve = resolve
        self.max_hops = max_hops
        """A publish that came through this many pushes already is pushed no further."""
        self._handles: dict[int, tuple[LiveStream, list[PushHandle]]] = {}

    def published(self, stream: LiveStream) -> list[PushHandle]:
        """``stream`` went on air: start the configured pushes whose ``match`` takes it."""
        started: list[PushHandle] = []
        if self.pusher is None:
            return started
        if self.configs and self._too_far(stream):
            log.warn(
                "not pushing {app}/{stream}: it came through {hops} pushes already "
                "([streams] max_push_hops = {most}; a push loop?)",
                app=stream.app, stream=stream.name, hops=stream.push_hops, most=self.max_hops,
            )  # fmt: skip
            return started
        query = query_string(stream.publish_query)
        for config in self.configs:
            if not fnmatch.fnmatchcase(stream.name, config.match):
                continue
            request = PushRequest(
                config.url,
                render_push_name(config.name, name=stream.name, app=stream.app, query=query),
                config.retry_initial,
                config.retry_max,
                config.tls_trust,
                "config",
            )
            started.append(self._start(stream, request))
        return started

    def push(self, stream: LiveStream, request: PushRequest) -> PushHandle:
        """A plugin's push of ``stream``; raises :class:`PushError` when it cannot be made."""
        if self.pusher is None:
            raise PushError("this server cannot push streams")
        why = push_url_problem(request.url)
        if why is not None:
            raise PushError(f"push URL {request.url!r}: {why}")
        if not request.name:
            raise PushError("push: empty target stream name")
        if not stream.published:
            raise PushError(f"{stream.app}/{stream.name} is not published")
        if self._too_far(stream):
            raise PushError(
                f"{stream.app}/{stream.name} came through {stream.push_hops} pushes already "
                f"([streams] max_push_hops = {self.max_hops})"
            )
        return self._start(stream, request)

    def _too_far(self, stream: LiveStream) -> bool:
        return stream.push_hops >= self.max_hops

    def _start(self, stream: LiveStream, request: PushRequest) -> PushHandle:
        assert self.pusher is not None
        handle = self.pusher.start(stream, request)
        self._handles.setdefault(id(stream), (stream, []))[1].append(handle)
        return handle

    def ended(self, stream: LiveStream) -> None:
        """The publish of ``stream`` ended: every push of it stops."""
        _, handles = self._handles.pop(id(stream), (stream, []))
        for handle in handles:
            handle.stop()

    def stop_all(self) -> None:
        """The application stops: every push stops."""
        for key in list(self._handles):
            self.ended(self._handles[key][0])

    def of(self, stream: LiveStream) -> list[PushHandle]:
        """The pushes of ``stream`` started by this application (stopped ones included)."""
        entry = self._handles.get(id(stream))
        return list(entry[1]) if entry is not None else []
