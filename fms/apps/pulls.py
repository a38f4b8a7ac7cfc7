"""Pulls: streams fetched from another server and published here as a local publisher's.

An application pulls a stream that nobody publishes here from the first ``[[apps.NAME.pull]]``
source whose ``match`` glob takes its name: on demand (the first player starts it, it stops
``idle_timeout`` seconds after the last one left) or always (from the server's start). A plugin
may pull a stream it decides with ``app.pull(name, url)``, until the handle's ``stop()``.
*How* a stream is pulled (an RTMP client connection that plays upstream, or an HTTP-FLV
request, publishing what arrives into the local stream) is the server's business: it
implements :class:`Puller`, so this room imports nothing of ``fms.server``. The same
:class:`PullRequest` is what a cluster directory will hand the server to fetch a stream from the
node that holds it.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Any, Protocol

from fms.config.pull import PullConfig, is_http_source, pull_url_problem, render_pull


@dataclass(frozen=True, slots=True)
class PullRequest:
    """What to pull: the local stream ``app``/``name``; the source ``url`` (``rtmp[s]://host
    [:port]/app``, or ``http[s]://.../x.flv``, already rendered) and ``upstream``, the stream
    name played there (``?query`` allowed; unused for HTTP sources); ``mode``
    (``on-demand`` or ``always``) and ``idle_timeout`` (seconds an on-demand pull outlives
    its last player); the reconnect backoff (seconds: first delay, largest delay);
    ``start_timeout`` (seconds a try may take to deliver its first message); ``tls_trust`` (a
    PEM file, relative names being the configuration file's); ``origin``: ``config``,
    ``plugin`` (or a cluster's name for itself), for the figures."""

    app: str
    name: str
    url: str
    upstream: str
    mode: str = "on-demand"
    idle_timeout: float = 10.0
    retry_initial: float = 1.0
    retry_max: float = 30.0
    start_timeout: float = 10.0
    tls_trust: str = ""
    origin: str = "config"

    @property
    def http(self) -> bool:
        return is_http_source(self.url)


class PullHandle(Protocol):
    """One pull of one stream, as the server runs it."""

    @property
    def state(self) -> str:
        """``connecting``, ``live``, ``retrying`` or ``stopped``."""
        ...

    def stop(self) -> None:
        """Stop pulling: the local publish ends (its players are told) (idempotent)."""
        ...

    def figures(self) -> dict[str, Any]:
        """The pull's figures (state, url, bytes in, connects, last error...)."""
        ...


class Puller(Protocol):
    """What the server offers an application to pull streams (``fms.server.pull``)."""

    def pull(self, request: PullRequest) -> PullHandle:
        """Pull ``request.app``/``request.name`` as the request says, unless it is pulled
        already (then that pull's handle); reconnects on its own until stopped (on demand:
        until it has had no player for ``idle_timeout`` seconds)."""
        ...


class PullError(ValueError):
    """A pull a plugin asked for cannot be made (a bad URL or name, no puller)."""


def request_for(configs: tuple[PullConfig, ...], app: str, name: str) -> PullRequest | None:
    """The pull of ``app``/``name`` the first matching ``[[apps.NAME.pull]]`` table asks
    for, or None."""
    for config in configs:
        if not fnmatch.fnmatchcase(name, config.match):
            continue
        upstream = render_pull(config.name, name=name, app=app)
        url = (
            render_pull(config.url, name=name, app=app)
            if is_http_source(config.url)
            else (config.url)
        )
        return PullRequest(
            app, name, url, upstream, config.mode, config.idle_timeout, config.retry_initial,
            config.retry_max, config.start_timeout, config.tls_trust, "config",
        )  # fmt: skip
    return None


def always_requests(configs: tuple[PullConfig, ...], app: str) -> list[PullRequest]:
    """The ``always`` pulls of ``app`` (their ``match`` is the stream name)."""
    found = []
    for config in configs:
        if config.mode == "always":
            request = request_for((config,), app, config.match)
            if request is not None:
                found.append(request)
    return found


def plugin_request(app: str, name: str, url: str, upstream: str | None) -> PullRequest:
    """A plugin's pull of ``app``/``name`` (kept until stopped); raises :class:`PullError`."""
    why = pull_url_problem(url)
    if why is not None:
        raise PullError(f"pull URL {url!r}: {why}")
    if not name:
        raise PullError("pull: empty stream name")
    return PullRequest(
        app, name, url, upstream or name, mode="always", idle_timeout=0.0, origin="plugin"
    )
