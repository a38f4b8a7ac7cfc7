"""Enhanced RTMP reconnect requests: asking clients to connect again, here or elsewhere.

A client that announced the Reconnect capability in ``connect`` (``capsEx`` bit 0x01, see
:func:`fms.rtmp.capabilities.announces_reconnect`) understands the ``onStatus``
``NetConnection.Connect.ReconnectRequest`` (level ``status``, on message stream 0): it goes on
streaming to this server up to a convenient point (a keyframe), connects to the ``tcUrl`` the
request names (its own when there is none) and leaves. The server keeps serving it meanwhile.

Three things send it: a graceful shutdown (:class:`Departures` lets those clients leave by
themselves within ``[server] reconnect_grace`` seconds before they are closed as the others
were), SIGHUP when ``[server] reconnect_on_reload`` is set, and the HTTP API (one client or
all). Clients that did not announce the capability are never sent it: they get what they
always got. Kept out of :mod:`fms.server.protocol`; this module only uses its public state.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from twisted.internet.defer import Deferred, TimeoutError
from twisted.internet.interfaces import IReactorTime

from fms.log import Logger
from fms.rtmp.capabilities import announces_reconnect
from fms.rtmp.states import ConnectionState
from fms.rtmp.status import StatusCode, info

if TYPE_CHECKING:
    from fms.server.protocol import RTMPServerProtocol

log = Logger(namespace="fms.server.reconnect")

ON_SHUTDOWN = "The server is shutting down; please reconnect."
ON_RELOAD = "The server's configuration changed; please reconnect."
ON_REQUEST = "The operator asks this client to reconnect."
"""The ``description`` of the request, by what sent it."""


def can_reconnect(proto: RTMPServerProtocol) -> bool:
    """Whether ``proto`` is a client (not a relay link between workers) whose ``connect`` was
    accepted, that is not closing, and that announced the Reconnect capability."""
    conn, view = proto.connection, proto.client_view
    return (
        proto.claims_names
        and not proto._closing
        and conn is not None
        and conn.state is ConnectionState.CONNECTED
        and view is not None
        and announces_reconnect(view.params)
    )


def target_url(template: str, app: str | None) -> str:
    """The ``tcUrl`` to send: ``template`` with ``{app}`` replaced by the client's app; empty
    (no ``tcUrl`` property: the client reconnects to its own URL) when ``template`` is."""
    return template.replace("{app}", app or "") if template else ""


def request_reconnect(proto: RTMPServerProtocol, tc_url: str = "", description: str = "") -> bool:
    """Send ``NetConnection.Connect.ReconnectRequest`` to ``proto`` (with ``tcUrl`` when
    ``tc_url``, after ``{app}`` is replaced, is not empty) and write it at once. False, and
    nothing sent, when the client cannot take it (:func:`can_reconnect`)."""
    if not can_reconnect(proto):
        return False
    conn = proto.connection
    assert conn is not None
    extra = {}
    url = target_url(tc_url, proto.app)
    if url:
        extra["tcUrl"] = url
    conn.send_status(0, info(StatusCode.CONNECT_RECONNECT_REQUEST, description or None, **extra))
    proto.flush_output()
    log.info("asked {peer} to reconnect{to}", peer=proto.peer, to=f" to {url}" if url else "")
    return True


def request_all(
    protos: Iterable[RTMPServerProtocol], tc_url: str = "", description: str = ""
) -> tuple[list[RTMPServerProtocol], list[RTMPServerProtocol]]:
    """Ask every client among ``protos`` that can take it (relay links are left out): returns
    (those asked, the clients that could not be: no capability, or not connected yet)."""
    asked: list[RTMPServerProtocol] = []
    unable: list[RTMPServerProtocol] = []
    for proto in list(protos):
        if not proto.claims_names:
            continue
        try:
            sent = request_reconnect(proto, tc_url, description)
        except Exception:
            log.failure("internal error asking {peer} to reconnect", peer=proto.peer)
            sent = False
        (asked if sent else unable).append(proto)
    return asked, unable


class Departures:
    """The clients a shutdown asked to reconnect, until each has left: :attr:`all_left` fires
    when the last one goes (at once when there is none). The factory reports every lost
    connection to :meth:`left`."""

    def __init__(self, protos: Iterable[RTMPServerProtocol]) -> None:
        self.waiting: set[RTMPServerProtocol] = set(protos)
        self.all_left: Deferred[None] = Deferred()
        if not self.waiting:
            self.all_left.callback(None)

    def left(self, proto: RTMPServerProtocol) -> None:
        self.waiting.discard(proto)
        if not self.waiting and not self.all_left.called:
            self.all_left.callback(None)

    async def wait(self, grace: float, clock: IReactorTime) -> list[RTMPServerProtocol]:
        """Wait at most ``grace`` seconds for every client to leave; return those still
        connected then (oldest first is not promised)."""
        if self.waiting:
            try:
                await self.all_left.addTimeout(grace, clock)
            except TimeoutError:
                log.info(
                    "{count} clients asked to reconnect were still here after {grace:g}s",
                    count=len(self.waiting), grace=grace,
                )  # fmt: skip
        return list(self.waiting)
