"""The good traffic of the hostile suite, in a process of its own: a publisher sending
synthetic H.264-shaped frames at 25 per second and a player of that stream, both on one
select loop, so that neither competes with the attacking test for the GIL of the pytest
process (the server is a third process).

Run as ``python -m tests.hostile.good_traffic PORT NAME [HTTP_PORT]`` (with ``HTTP_PORT``
the player is an HTTP-FLV viewer of ``/live/NAME.flv``, :mod:`tests.hostile.http_viewer`).
It prints ``{"ready": true}`` once its player receives frames, then answers commands read
from stdin, one per line, each with one JSON line on stdout:

``mark``
    Start a new window (an attack begins): ``{"frames": <received so far>}``.
``after N SECONDS``
    Wait until the player received ``N`` more frames, or ``SECONDS`` passed, then answer
    ``{"during": <frames from the mark to this command>, "after": <frames since this
    command>, "max_gap": <the longest wait for a frame since the mark, seconds>, "waited":
    <seconds this command waited>}``.
``stop`` (or the end of stdin)
    Answer like ``after 0 0`` and exit with status 0.

When the server closes the publisher or the player, or anything else fails, it prints
``{"error": "..."}`` and exits with status 1. Times are ``time.monotonic()`` seconds.
"""

from __future__ import annotations

import json
import os
import selectors
import sys
import time
from typing import Any

from fms.rtmp.client import MediaArrived
from fms.rtmp.constants import MessageType
from fms.rtmp.messages import Media
from tests.hostile.http_viewer import HTTPViewer
from tests.hostile.support import AVC_HEADER, INTERFRAME, KEYFRAME, Client

FRAME_INTERVAL = 0.04
"""Seconds between two frames of the publisher (25 frames a second)."""

READY_FRAMES = 5
"""Frames the player receives before the traffic counts as flowing."""


def say(answer: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(answer) + "\n")
    sys.stdout.flush()


class Traffic:
    """One publisher and one player of the stream ``name`` on the server at ``port``."""

    def __init__(self, port: int, name: str, http_port: int | None = None) -> None:
        self.publisher = Client(port)
        self.publisher.connect()
        self.sid = self.publisher.publish(name)
        self.publisher.send_video(self.sid, 0, AVC_HEADER)
        self.publisher.send_video(self.sid, 0, KEYFRAME)
        self.player: Client | HTTPViewer
        if http_port is not None:  # the player is an HTTP-FLV viewer (tests/hostile/test_http)
            self.player = HTTPViewer(http_port, name)
        else:
            self.player = Client(port)
            self.player.connect()
            self.player.play(name)
        self.started = time.monotonic()
        self.frames = 0
        """Media messages the player received."""
        self.last_arrival = self.started
        self.mark_frames = 0
        self.window_gap = 0.0
        """The longest wait for a frame since the last mark (seconds)."""
        self.waiting: tuple[int, int, float, float] | None = None
        """An ``after`` command being served: (frames at the command, frames wanted, when it
        came, when to give up)."""
        self.ready = False
        self.stdin_buffer = b""

    def run(self) -> None:
        selector = selectors.DefaultSelector()
        for client in (self.publisher, self.player):
            client.sock.setblocking(False)
            selector.register(client.sock, selectors.EVENT_READ, client)
        selector.register(sys.stdin.fileno(), selectors.EVENT_READ, None)
        frame = 1
        next_frame = time.monotonic()
        while True:
            now = time.monotonic()
            timeout = max(next_frame - now, 0.0)
            if self.waiting is not None:
                timeout = min(timeout, max(self.waiting[3] - now, 0.0))
            for key, _ in selector.select(timeout):
                if key.data is None:
                    if not self.read_commands():
                        return
                else:
                    self.receive(key.data)
            now = time.monotonic()
            if now >= next_frame:
                payload = KEYFRAME if frame % 25 == 0 else INTERFRAME
                timestamp = int((now - self.started) * 1000)
                media = Media(MessageType.VIDEO, timestamp, self.sid, payload)
                self.publisher.conn.send_media(self.sid, media)
                self.send(self.publisher)
                frame += 1
                # Late (a loaded machine): carry on from now rather than send a burst.
                next_frame = max(next_frame + FRAME_INTERVAL, now)
            self.answer_after(now)

    def receive(self, client: Client) -> None:
        try:
            data = client.sock.recv(1 << 20)
        except BlockingIOError:
            return
        except ConnectionError:
            data = b""
        who = "player" if client is self.player else "publisher"
        if not data:
            raise RuntimeError(f"the server closed the good {who} (port {client.port})")
        now = time.monotonic()
        events = client.conn.receive_data(data, now)
        if client is self.player:
            arrived = sum(1 for event in events if isinstance(event, MediaArrived))
            if arrived:
                self.window_gap = max(self.window_gap, now - self.last_arrival)
                self.last_arrival = now
                self.frames += arrived
                if not self.ready and self.frames >= READY_FRAMES:
                    self.ready = True
                    say({"ready": True})
        self.send(client)  # ping answers, acknowledgements

    @staticmethod
    def send(client: Client) -> None:
        view = memoryview(client.conn.data_to_send())
        give_up = time.monotonic() + 30.0
        while view:
            try:
                sent = client.sock.send(view)
            except BlockingIOError:
                if time.monotonic() > give_up:
                    raise RuntimeError(
                        "the server read nothing from a good client for 30 s"
                    ) from None
                time.sleep(0.001)
                continue
            view = view[sent:]

    def read_commands(self) -> bool:
        """Serve the complete command lines on stdin; False at ``stop`` or its end."""
        data = os.read(sys.stdin.fileno(), 4096)
        if not data:
            self.finish()
            return False
        self.stdin_buffer += data
        while b"\n" in self.stdin_buffer:
            line, self.stdin_buffer = self.stdin_buffer.split(b"\n", 1)
            words = line.decode().split()
            if not words:
                continue
            if words[0] == "mark":
                self.mark_frames = self.frames
                self.window_gap = 0.0
                say({"frames": self.frames})
            elif words[0] == "after":
                now = time.monotonic()
                self.waiting = (self.frames, int(words[1]), now, now + float(words[2]))
            elif words[0] == "stop":
                self.finish()
                return False
            else:
                raise RuntimeError(f"unknown command {line!r}")
        return True

    def answer_after(self, now: float) -> None:
        if self.waiting is None:
            return
        at_command, wanted, since, give_up = self.waiting
        if self.frames - at_command < wanted and now < give_up:
            return
        self.waiting = None
        gap = max(self.window_gap, now - self.last_arrival)  # a wait still going on counts
        say(
            {
                "during": at_command - self.mark_frames,
                "after": self.frames - at_command,
                "max_gap": round(gap, 4),
                "waited": round(now - since, 4),
            }
        )

    def finish(self) -> None:
        now = time.monotonic()
        self.waiting = (self.frames, 0, now, now)
        self.answer_after(now)
        self.publisher.close()
        self.player.close()


def main(argv: list[str]) -> int:
    port, name = int(argv[0]), argv[1]
    http_port = int(argv[2]) if len(argv) > 2 else None
    try:
        traffic = Traffic(port, name, http_port)
        traffic.run()
    except BaseException as exc:  # reported to the test, which fails on it
        say({"error": f"{type(exc).__name__}: {exc}"})
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
