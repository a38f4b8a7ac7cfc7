"""A WebSocket-FLV viewer for the end-to-end tests: Autobahn's Twisted client in its own process.

    python -m tests.e2e.ws_client ws://127.0.0.1:PORT/live/cam.flv OUT

appends the payload of every message it receives to OUT, in order, and prints one JSON line
when the connection ends: ``opened`` (the upgrade succeeded), ``messages``, ``binary`` (every
message was binary), ``clean``, ``code`` and ``reason`` of the close, and ``failure`` (why the
handshake failed, e.g. ``WebSocket connection upgrade failed [403]: Forbidden``). It exits 0.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol, connectWS
from twisted.internet import reactor


class Viewer(WebSocketClientProtocol):
    out: Any = None
    report: dict[str, Any] = {"opened": False, "messages": 0, "binary": True}

    def onOpen(self) -> None:
        self.report["opened"] = True

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        self.report["messages"] += 1
        self.report["binary"] = self.report["binary"] and isBinary
        self.out.write(payload)
        self.out.flush()

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        self.report.update(clean=wasClean, code=code, reason=reason, failure=self.wasNotCleanReason)
        print(json.dumps(self.report), flush=True)
        reactor.callLater(0, reactor.stop)  # type: ignore[attr-defined]


class Factory(WebSocketClientFactory):
    def clientConnectionFailed(self, connector: Any, reason: Any) -> None:
        print(json.dumps({"opened": False, "failure": str(reason.value)}), flush=True)
        reactor.stop()  # type: ignore[attr-defined]


def main() -> None:
    url, out = sys.argv[1], sys.argv[2]
    factory = Factory(url)
    factory.protocol = Viewer
    # The server answers the upgrade when the stream's first bytes are ready: wait for it.
    factory.setProtocolOptions(openHandshakeTimeout=0, closeHandshakeTimeout=10)
    with open(out, "ab") as file:
        Viewer.out = file
        connectWS(factory, timeout=30)
        reactor.run()  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
