"""The HTTP clients of one process (HTTP-FLV and WebSocket-FLV viewers) as the API shows them.

RTMP clients are the server's connections (:mod:`fms.http.documents` reads them); an HTTP
viewer is a request of the HTTP listener, so this table keeps them: each gets a number from the
same count as RTMP connections, so an API id (``WORKER-N``) names one client whatever it
speaks, and ``GET /api/v1/clients`` lists both in one order (oldest first), ``DELETE
/api/v1/clients/{id}`` closes either. No Twisted here: a viewer is reached through the small
:class:`Viewer` protocol that :class:`fms.http.flv.FLVViewer` implements.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from fms.live.log import Player
from fms.server.protocol import RTMPServerProtocol


class Viewer(Protocol):
    """What the table reads of an HTTP viewer, and the one thing it may do to it."""

    number: int
    protocol: str
    """``"http-flv"`` or ``"websocket-flv"``."""
    peer: str
    app: str
    name: str
    """The stream it plays ("" until its play was accepted)."""
    agent: str
    started_at: float
    """When its request arrived (seconds, the server's clock)."""
    player: Player | None

    def disconnect(self, reason: str) -> None:
        """Close its connection, logging ``reason``."""
        ...


def next_number() -> int:
    """A client number not used by any RTMP connection or HTTP viewer of this process."""
    return next(RTMPServerProtocol._ids)  # one numbering for every kind of client


def figures(viewer: Viewer, now: float) -> dict[str, Any]:
    """An HTTP viewer's figures, the fields of an RTMP client's
    (:func:`fms.server.actions.client_figures`) plus ``protocol``: ``state`` is
    ``connecting`` while plugins decide and ``playing`` once it is a player (waiting for a
    publisher included); ``bytes_in`` is 0 (a viewer sends its request, nothing more);
    ``bytes_out`` the FLV bytes handed to its connection."""
    player = viewer.player
    lag = 0.0
    if player is not None and player.log is not None and player.cursor < player.log.head:
        lag = player.log.behind(player.cursor, player.offset)[1]
    return {
        "protocol": viewer.protocol,
        "address": viewer.peer,
        "app": viewer.app,
        "agent": viewer.agent,
        "state": "playing" if player is not None else "connecting",
        "publishing": None,
        "playing": viewer.name if player is not None else None,
        "bytes_in": 0,
        "bytes_out": player.bytes_sent if player is not None else 0,
        "lag_seconds": lag,
        "skipped": player.skipped_messages if player is not None else 0,
        "connected_seconds": round(max(now - viewer.started_at, 0.0), 3),
    }


class HTTPClients:
    """This process's HTTP viewers, oldest first."""

    def __init__(self) -> None:
        self._viewers: dict[int, Viewer] = {}

    def __len__(self) -> int:
        return len(self._viewers)

    def add(self, viewer: Viewer) -> None:
        self._viewers[viewer.number] = viewer

    def remove(self, viewer: Viewer) -> None:
        self._viewers.pop(viewer.number, None)

    def find(self, number: int) -> Viewer | None:
        return self._viewers.get(number)

    def playing(self) -> int:
        """Viewers that are players of a stream in the registry (their play accepted,
        waiting for a publisher included): a walk over the HTTP viewers only."""
        return sum(1 for viewer in self._viewers.values() if viewer.player is not None)

    def documents(
        self,
        ident: Callable[[int], str],
        now: float,
        app: str | None = None,
        stream: str | None = None,
        limit: int | None = None,
    ) -> tuple[list[dict[str, Any]], int]:
        """The viewers of ``app`` playing ``stream`` (when given), oldest first, at most
        ``limit``, each ``{"id": ident(number), **figures}``; and how many matched."""
        chosen = [
            viewer
            for viewer in self._viewers.values()
            if (app is None or viewer.app == app)
            and (stream is None or (viewer.player is not None and viewer.name == stream))
        ]
        shown = chosen if limit is None else chosen[:limit]
        return [{"id": ident(v.number), **figures(v, now)} for v in shown], len(chosen)


__all__ = ["HTTPClients", "Viewer", "figures", "next_number"]
