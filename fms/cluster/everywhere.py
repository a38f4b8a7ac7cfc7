"""``app.broadcast`` on every worker: the :class:`~fms.apps.shared.Elsewhere` of a worker.

A plugin's broadcast calls its own worker's clients at once and hands the call to this module,
which sends it to the other workers over the control channel (:mod:`fms.cluster.control`,
operation ``broadcast``). There each worker calls it on its own clients of the application
(those of the current configuration and of one a reload replaced), never passing it on again.

The arguments travel as the AMF0 bytes the clients will get (:func:`fms.amf.encode_values`),
base64 in the JSON message, and are decoded once on arrival: whatever AMF0 carries (strings in
any script, numbers, nested objects and arrays, dates, ``undefined``) arrives as it left.
"""

from __future__ import annotations

import base64
from typing import Any

from fms.amf import decode_values
from fms.cluster.control import ControlChannel, Reply
from fms.log import Logger
from fms.server.factory import RTMPServerFactory

log = Logger(namespace="fms.cluster.everywhere")

BROADCAST = "broadcast"
"""The control operation: payload ``{"app", "method", "values"}`` (values: base64 of AMF0),
reply ``{"clients": N}``, the clients of that worker it called."""


class Everywhere:
    """Sends this worker's broadcasts to the other workers, and makes theirs here."""

    def __init__(self, channel: ControlChannel, server: RTMPServerFactory) -> None:
        self.channel = channel
        self.server = server
        channel.handle(BROADCAST, self.received)

    def broadcast(self, app: str, method: str, values: bytes) -> None:
        payload = {"app": app, "method": method, "values": base64.b64encode(values).decode()}
        self.channel.ask_others(BROADCAST, payload).addCallback(self._told, app, method)

    @staticmethod
    def _told(replies: list[Reply], app: str, method: str) -> None:
        for reply in replies:
            if not reply.ok:
                log.warn(
                    "broadcast {method} of {app} did not reach worker {worker}: {error}",
                    method=method, app=app, worker=reply.worker, error=reply.error,
                )  # fmt: skip

    def received(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Another worker's broadcast: call it on this worker's clients of the application."""
        values = decode_values(base64.b64decode(str(payload["values"]), validate=True))
        method = str(payload["method"])
        count = 0
        for application in self.server.applications_named(str(payload["app"])):
            for client in application.clients:
                client.send(method, *values)
                count += 1
        return {"clients": count}
