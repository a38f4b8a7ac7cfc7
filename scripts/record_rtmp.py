"""Record what an RTMP client sends: a one-connection TCP proxy that writes a capture file.

The proxy listens on ``127.0.0.1:LISTEN``, accepts one client, connects to the upstream server,
forwards bytes both ways until either side closes, and records the client->server bytes as
segments, one per ``recv`` from the client (so a replay can feed them back with the same
boundaries). It then writes them as hex, one segment per line, after ``#`` comment lines
(``--comment``, repeatable, then a line naming this script); :func:`read_capture` reads it back.

Usage (standard library only)::

    .venv/bin/fms run --host 127.0.0.1 --port 19350 &
    python scripts/record_rtmp.py --listen 19351 --upstream 127.0.0.1:19350 \\
        --out tests/rtmp/captures/ffmpeg_publish.hex --comment "ffmpeg ... rtmp://..."
    ffmpeg ... -f flv rtmp://127.0.0.1:19351/live/cam

It prints ``listening on 127.0.0.1:LISTEN`` once it accepts connections, and the number of
segments and bytes it recorded when the client is done.
"""

from __future__ import annotations

import argparse
import selectors
import socket
import sys
from pathlib import Path

RECV_SIZE = 65536
"""Bytes asked of each ``recv`` (a segment is at most this long)."""


def read_capture(path: Path) -> list[bytes]:
    """The segments of a capture file: one hex line each; ``#`` lines and blank lines skipped."""
    segments = []
    for line in path.read_text(encoding="ascii").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            segments.append(bytes.fromhex(line))
    return segments


def write_capture(path: Path, segments: list[bytes], comments: list[str]) -> None:
    """Write ``comments`` as ``# `` lines, then each segment as one line of hex."""
    lines = [f"# {comment}" for comment in comments]
    lines.extend(segment.hex() for segment in segments)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="ascii")


def _send_all(sock: socket.socket, data: bytes) -> bool:
    try:
        sock.sendall(data)
    except OSError:
        return False
    return True


def relay(client: socket.socket, upstream: socket.socket) -> list[bytes]:
    """Forward both ways until one side closes; return what the client sent, per ``recv``."""
    recorded: list[bytes] = []
    selector = selectors.DefaultSelector()
    selector.register(client, selectors.EVENT_READ, upstream)
    selector.register(upstream, selectors.EVENT_READ, client)
    try:
        while True:
            for key, _ in selector.select():
                source: socket.socket = key.fileobj  # type: ignore[assignment]
                target: socket.socket = key.data
                try:
                    data = source.recv(RECV_SIZE)
                except OSError:
                    data = b""
                if not data:
                    return recorded
                if source is client:
                    recorded.append(data)
                if not _send_all(target, data):
                    return recorded
    finally:
        selector.close()


def record(listen_port: int, upstream: tuple[str, int]) -> list[bytes]:
    """Accept one client on ``127.0.0.1:listen_port``, proxy it to ``upstream``, record it."""
    with socket.create_server(("127.0.0.1", listen_port)) as listener:
        print(f"listening on 127.0.0.1:{listener.getsockname()[1]}", flush=True)
        client, peer = listener.accept()
    with client, socket.create_connection(upstream) as server:
        print(f"client {peer[0]}:{peer[1]} -> upstream {upstream[0]}:{upstream[1]}", flush=True)
        return relay(client, server)


def _upstream(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host, int(port)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--listen", type=int, required=True, help="port on 127.0.0.1")
    parser.add_argument("--upstream", type=_upstream, required=True, help="HOST:PORT")
    parser.add_argument("--out", type=Path, required=True, help="capture file to write (hex)")
    parser.add_argument(
        "--comment", action="append", default=[], help="a header line for the file (repeatable)"
    )
    args = parser.parse_args(argv)
    segments = record(args.listen, args.upstream)
    host, port = args.upstream
    comments = [
        *args.comment,
        f"Recorded with scripts/record_rtmp.py --listen {args.listen} --upstream {host}:{port}:",
        "client->server bytes, one line per recv() from the client, in hex.",
    ]
    write_capture(args.out, segments, comments)
    total = sum(len(s) for s in segments)
    print(f"recorded {len(segments)} segments, {total} bytes -> {args.out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
