"""What an operator may do to clients and streams from outside RTMP (the HTTP API): read one
client's figures, disconnect it, stop a publish.

Kept here, beside the protocol, because they reach into a connection's state; the HTTP room
(:mod:`fms.http`) only calls them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fms.log import Logger
from fms.rtmp.states import ConnectionState

if TYPE_CHECKING:
    from fms.server.factory import RTMPServerFactory
    from fms.server.protocol import RTMPServerProtocol

log = Logger(namespace="fms.server.actions")

CLOSE_GRACE = 5.0
"""Seconds a publisher told that its publish was stopped has to read the status before its
connection is aborted."""


def is_client(proto: RTMPServerProtocol) -> bool:
    """Whether ``proto`` is a client's connection (not a relay link from another worker, which
    is a connection of the server to itself)."""
    return proto.claims_names


def connection_state(proto: RTMPServerProtocol) -> str:
    """``connecting`` (handshake or ``connect`` not accepted yet), ``publishing``,
    ``playing`` (a connection doing both says ``publishing``) or ``idle``."""
    conn = proto.connection
    if conn is None or conn.state is not ConnectionState.CONNECTED:
        return "connecting"
    if proto.publishing:
        return "publishing"
    if proto.playing:
        return "playing"
    return "idle"


def client_figures(proto: RTMPServerProtocol, now: float) -> dict[str, Any]:
    """One client's figures (without its id): ``address`` (host:port), ``app``, ``agent``
    (flashVer), ``state``, ``publishing``/``playing`` (the stream name, the first one of a
    client with several, or None), ``bytes_in`` (bytes received after the handshake),
    ``bytes_out`` (media bytes sent to its plays), ``lag_seconds`` (media seconds its
    furthest-behind play is behind the live edge), ``skipped`` (messages it never got for
    being too slow), ``connected_seconds``. Read once per client per request: kept to plain
    attribute reads (10,000 players are listed in tens of milliseconds)."""
    conn = proto.connection
    view = proto.client_view
    publishing = proto.publishing
    playing = proto.playing
    bytes_out = skipped = 0
    lag = 0.0
    first_play = None
    for stream, player in playing.values():
        if first_play is None:
            first_play = stream.name
        bytes_out += player.bytes_sent
        skipped += player.skipped_messages
        log = player.log
        if log is not None and player.cursor < log.head:
            lag = max(lag, log.behind(player.cursor, player.offset)[1])
    decoder = getattr(conn, "_decoder", None)
    started = getattr(conn, "_started", now)
    return {
        "address": proto.peer,
        "app": proto.app,
        "agent": view.agent if view is not None else None,
        "state": connection_state(proto),
        "publishing": next(iter(publishing.values())).name if publishing else None,
        "playing": first_play,
        "bytes_in": decoder.bytes_received if decoder is not None else 0,
        "bytes_out": bytes_out,
        "lag_seconds": lag,
        "skipped": skipped,
        "connected_seconds": round(now - started if now > started else 0.0, 3),
    }


def plays_or_publishes(proto: RTMPServerProtocol, name: str) -> bool:
    """Whether ``proto`` publishes or plays a stream called ``name``."""
    return any(s.name == name for s in proto.publishing.values()) or any(
        s.name == name for s, _ in proto.playing.values()
    )


def disconnect(proto: RTMPServerProtocol, reason: str) -> None:
    """Close ``proto`` at once (its publishes end: their players are told, as when a client
    goes away)."""
    proto.close(reason)


def publisher_of(factory: RTMPServerFactory, app: str, name: str) -> RTMPServerProtocol | None:
    """The client connection publishing ``app``/``name`` on this process (None when nobody
    does, or when it is published on another worker and relayed here)."""
    stream = factory.registry.get(app, name)
    if stream is None or stream.publisher is None:
        return None
    for proto in factory.connections:
        if is_client(proto) and any(s is stream for s in proto.publishing.values()):
            return proto
    return None


def stop_publish(
    factory: RTMPServerFactory, proto: RTMPServerProtocol, app: str, name: str
) -> None:
    """End ``proto``'s publish of ``app``/``name``: its players get
    ``NetStream.Play.UnpublishNotify`` (as when a publisher stops), the publisher
    ``NetStream.Unpublish.Success``; then its connection is closed once that is written
    (aborted after :data:`CLOSE_GRACE` seconds), since an encoder would go on sending."""
    for sid, stream in list(proto.publishing.items()):
        if stream.app == app and stream.name == name:
            proto._stop_publishing(sid)
    log.info("closing {peer}: its publish of {app}/{name} was stopped through the HTTP API",
             peer=proto.peer, app=app, name=name)  # fmt: skip
    proto.flush_output()
    proto._closing = True
    transport: Any = proto.transport
    transport.loseConnection()
    factory.clock.callLater(CLOSE_GRACE, _abort_if_open, proto)


def _abort_if_open(proto: RTMPServerProtocol) -> None:
    transport: Any = proto.transport
    if transport is not None and getattr(transport, "connected", False):
        transport.abortConnection()
