"""The HTTP API's reconnect actions: ``POST /api/v1/clients/{id}/reconnect`` and
``POST /api/v1/reconnect`` (every client on every worker), each with an optional JSON body
``{"tcUrl": "rtmp://node2/{app}"}`` (absent: ``[server] reconnect_url``; ``""``: the client
reconnects to its own URL).

Only clients that announced the Enhanced RTMP Reconnect capability can be asked
(:mod:`fms.server.reconnect`); the answer lists the ids of those asked and of those that could
not be (``unable``: no capability, or still connecting). Nobody is closed: a client asked
moves by itself, and one that cannot be asked goes on as before.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from fms.http.documents import client_id
from fms.server import reconnect
from fms.server.actions import is_client

if TYPE_CHECKING:
    from fms.server.factory import RTMPServerFactory

MAX_URL = 1024
"""Longest ``tcUrl`` accepted (characters): the RTMP default limit on a client's own tcUrl."""


SHAPE = 'the body must be a JSON object such as {"tcUrl": "rtmp://node2/live"}'


class BodyError(ValueError):
    """The request body is not what a reconnect action takes (the message says why: 400)."""


def parse_body(body: bytes) -> str | None:
    """The ``tcUrl`` asked for in ``body`` (None: none given, use the configuration's).
    Raises :class:`BodyError` for anything but an empty body or a JSON object whose only key
    is a ``tcUrl`` string without control characters of at most :data:`MAX_URL` characters."""
    if not body.strip():
        return None
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise BodyError(SHAPE) from None
    if not isinstance(document, dict):
        raise BodyError(SHAPE)
    unknown = sorted(set(document) - {"tcUrl"})
    if unknown:
        raise BodyError(f"unknown field {unknown[0]!r} (known: tcUrl)")
    url = document.get("tcUrl")
    if url is None:
        return None
    if not isinstance(url, str):
        raise BodyError("tcUrl must be a string")
    if len(url) > MAX_URL or any(ord(c) < 32 or ord(c) == 127 for c in url):
        raise BodyError(f"tcUrl must be at most {MAX_URL} characters, without control characters")
    return url


def reconnect_here(
    server: RTMPServerFactory, worker: int, payload: dict[str, Any]
) -> dict[str, Any]:
    """Ask this process's client ``payload["number"]`` (or every client when it is None) to
    reconnect to ``payload["tcUrl"]`` (None: the configuration's URL). Answers
    ``{"found": bool, "asked": [ids], "unable": [ids]}``."""
    url = payload.get("tcUrl")
    if url is None:
        url = server.config.server.reconnect_url
    number = payload.get("number")
    if number is None:
        protos = [proto for proto in server.connections if is_client(proto)]
    else:
        protos = [p for p in server.connections if p.id == int(number) and is_client(p)]
    asked, unable = reconnect.request_all(protos, str(url), reconnect.ON_REQUEST)
    return {
        "found": bool(protos),
        "asked": [client_id(worker, proto.id) for proto in asked],
        "unable": [client_id(worker, proto.id) for proto in unable],
    }
