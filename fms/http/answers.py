"""What the HTTP viewers' routes (HTTP-FLV, WebSocket-FLV, HLS) share: the JSON error answer,
who is asking, and the application a path names.

Errors are ``{"error": "..."}`` with ``Cache-Control: no-store`` (a caching proxy in front
must not keep a refusal), no body for ``HEAD``. The caller's address and headers become the
:class:`~fms.apps.views.ClientView` plugins see, so every route describes its viewers alike.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from twisted.web.server import Request

from fms.apps.application import Application
from fms.live.names import name_problem

if TYPE_CHECKING:
    from fms.server.factory import RTMPServerFactory


def error(request: Request, status: int, message: str) -> None:
    """Finish ``request`` with ``status`` and ``{"error": message}``."""
    body = json.dumps({"error": message}).encode()
    request.setResponseCode(status)
    request.setHeader(b"Content-Type", b"application/json; charset=utf-8")
    request.setHeader(b"Cache-Control", b"no-store")
    request.setHeader(b"Content-Length", str(len(body)).encode())
    if request.method != b"HEAD":
        request.write(body)
    request.finish()


@dataclass(frozen=True, slots=True)
class Caller:
    """Who sent a request: ``host`` (its IP address), ``peer`` (``host:port``, brackets
    around an IPv6 address), and what its headers said (``Host``, ``User-Agent``)."""

    host: str
    peer: str
    header_host: str
    agent: str


def caller_of(request: Request) -> Caller:
    address = request.getClientAddress()
    host = str(getattr(address, "host", "?"))
    port = getattr(address, "port", "?")
    peer = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    header_host = (request.getHeader(b"host") or b"").decode("latin-1")
    agent = (request.getHeader(b"user-agent") or b"").decode("latin-1")
    return Caller(host, peer, header_host, agent)


def application_for(server: RTMPServerFactory, request: Request, app: str) -> Application | None:
    """The application ``app`` names; None after answering 400 (an invalid name) or 404 (no
    such application)."""
    problem = name_problem(app, server.config.limits.max_app_name, allow_slash=True)
    if problem is not None:
        error(request, 400, f"invalid application: {problem}")
        return None
    application = server.application_for(app)
    if application is None:
        error(request, 404, f"no such application: {app}")
    return application
