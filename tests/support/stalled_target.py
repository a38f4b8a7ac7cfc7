"""A push target that accepts a publish and then never reads again, in its own process.

``python -m tests.support.stalled_target`` listens on 127.0.0.1 (a free port, printed as
``listening PORT`` on standard output), and for every connection: answers the RTMP handshake,
``connect``, ``createStream`` and ``publish`` (``NetStream.Publish.Start``) with pyFMS's own
sans-IO server connection, prints ``stalled N``, and from then on reads nothing, holding the
socket open with a small receive buffer so the sender's side fills quickly. It stops when its
standard input closes (the test ends it by closing the pipe or killing it).
"""

from __future__ import annotations

import socket
import sys
import threading

from fms.rtmp import events as ev
from fms.rtmp.connection import ServerConnection

RECEIVE_BUFFER = 4096
"""Bytes of kernel receive buffer asked for (the kernel doubles it; at least a page or two)."""


def _serve(sock: socket.socket, number: int) -> None:
    conn = ServerConnection()
    published = False

    def handle(event: ev.Event) -> None:
        nonlocal published
        if isinstance(event, ev.ConnectRequested):
            conn.accept_connect(event)
            for held in conn.pending_events():
                handle(held)
        elif isinstance(event, ev.CreateStreamRequested):
            conn.accept_create_stream(event)
        elif isinstance(event, ev.PublishRequested):
            conn.accept_publish(event.stream_id, event.name)
            published = True

    try:
        while not published:
            data = sock.recv(65536)
            if not data:
                return
            for event in conn.receive_data(data, 0.0):
                handle(event)
            sock.sendall(conn.data_to_send())
    except OSError:
        return
    print(f"stalled {number}", flush=True)
    # From here on nothing is read: the socket stays open until the process ends.


def main() -> None:
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    print(f"listening {listener.getsockname()[1]}", flush=True)
    held: list[socket.socket] = []

    def accept() -> None:
        number = 0
        while True:
            try:
                sock, _ = listener.accept()
            except OSError:
                return
            number += 1
            held.append(sock)
            threading.Thread(target=_serve, args=(sock, number), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    sys.stdin.read()  # until the test closes the pipe


if __name__ == "__main__":
    main()
