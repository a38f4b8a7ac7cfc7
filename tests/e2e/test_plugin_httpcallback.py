"""The httpcallback plugin end to end: a real server asks a real HTTP endpoint, FFmpeg publishes
and plays, and each test checks what the player decoded and what the endpoint was told.

The endpoint (the standard library's ``http.server`` in a thread, on 127.0.0.1 and a free port)
answers like an operator's auth service would: publish 'ok' -> 200, 'moveme' -> 302 to
'renamed', anything else -> 403; play 'alias' -> 302 to '/live/ok', anything else -> 200.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl

import pytest

from tests.e2e.harness import (
    ServerProcess,
    ffmpeg_publish_command,
    finish,
    frames_by_codec,
    probe_command,
    start,
)

pytestmark = pytest.mark.e2e

FPS = 25
SECONDS = 3

Form = dict[str, str]


def answer(path: str, form: Form) -> tuple[int, dict[str, str], bytes]:
    """The endpoint's policy: (status, headers, body) for one callback."""
    name = form.get("name", "")
    if path == "/publish":
        if name == "ok":
            return 200, {}, b""
        if name == "moveme":
            return 302, {"Location": "renamed"}, b""
        return 403, {}, b"not on the list"
    if path == "/play" and name == "alias":
        return 302, {"Location": "/live/ok"}, b""
    return 200, {}, b""


class CallbackEndpoint:
    """The operator's HTTP service, recording every form it received (path, fields)."""

    def __init__(self) -> None:
        self.forms: list[tuple[str, Form]] = []
        self._changed = threading.Condition()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                size = int(self.headers.get("Content-Length", "0"))
                form = dict(parse_qsl(self.rfile.read(size).decode("ascii")))
                status, headers, body = answer(self.path, form)
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                with endpoint._changed:
                    endpoint.forms.append((self.path, form))
                    endpoint._changed.notify_all()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    def wait_for(self, wanted: Callable[[str, Form], bool], timeout: float = 10.0) -> Form:
        """The first form for which ``wanted(path, form)``, waiting for it if need be."""
        with self._changed:
            found: list[Form] = []

            def seen() -> bool:
                found[:] = [f for p, f in self.forms if wanted(p, f)][:1]
                return bool(found)

            assert self._changed.wait_for(seen, timeout), f"not received; got {self.forms}"
            return found[0]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)


@pytest.fixture
def endpoint() -> Iterator[CallbackEndpoint]:
    service = CallbackEndpoint()
    try:
        yield service
    finally:
        service.close()


@pytest.fixture
def server(endpoint: CallbackEndpoint, tmp_path: Path) -> Iterator[ServerProcess]:
    """``fms run`` whose app 'live' asks ``endpoint`` before connect, publish and play."""
    config = tmp_path / "fms.toml"
    config.write_text(
        f"""
[apps.live]
decision_timeout = 10

[[apps.live.plugins]]
use = "httpcallback"
on_connect = "{endpoint.url}/connect"
on_publish = "{endpoint.url}/publish"
on_play = "{endpoint.url}/play"
on_publish_done = "{endpoint.url}/publish_done"
timeout = 5
"""
    )
    proc = ServerProcess("--log-level", "debug", config=config)
    try:
        yield proc
    finally:
        status = proc.stop()
    assert status == 0, f"server exited with {status}; log:\n{proc.log()}"


def test_a_publish_the_callback_answers_403_is_refused(
    server: ServerProcess, endpoint: CallbackEndpoint
) -> None:
    status, _, err = finish(start(ffmpeg_publish_command(f"{server.url}/live/denied", 2)))
    assert status != 0, err.decode(errors="replace")
    server.wait_for_line(
        r"publish live/denied from .* refused by the application: "
        r"publish refused by the HTTP callback: 403 Forbidden: not on the list"
    )
    form = endpoint.wait_for(lambda path, _: path == "/publish")
    assert (form["call"], form["app"], form["name"]) == ("publish", "live", "denied")
    assert not re.search(r"publish started live/", server.log())


def test_a_publish_the_callback_redirects_lands_under_the_new_name(
    server: ServerProcess, endpoint: CallbackEndpoint
) -> None:
    player = start(probe_command(f"{server.url}/live/renamed"))
    server.wait_for_line(r"play live/renamed for .*waiting for publisher", timeout=15)
    publisher = start(ffmpeg_publish_command(f"{server.url}/live/moveme?key=abc", SECONDS))
    server.wait_for_line(r"publish started live/renamed from")
    status, _, err = finish(publisher)
    assert status == 0, err.decode(errors="replace")
    status, out, err = finish(player, timeout=30)
    assert status == 0, err.decode(errors="replace")
    assert frames_by_codec(out)["h264"] == SECONDS * FPS

    form = endpoint.wait_for(lambda path, f: path == "/publish" and f.get("name") == "moveme")
    assert form["call"] == "publish" and form["app"] == "live" and form["type"] == "live"
    assert form["addr"] == "127.0.0.1" and form["key"] == "abc"
    assert form["tcurl"].startswith("rtmp://127.0.0.1:") and form["clientid"].isdigit()
    connect = endpoint.wait_for(lambda path, f: path == "/connect")
    assert connect["call"] == "connect" and connect["app"] == "live"
    done = endpoint.wait_for(lambda path, _: path == "/publish_done")
    assert (done["call"], done["name"]) == ("publish_done", "renamed")


def test_a_redirecting_play_hook_sends_the_player_to_another_stream(
    server: ServerProcess, endpoint: CallbackEndpoint
) -> None:
    player = start(probe_command(f"{server.url}/live/alias"))
    server.wait_for_line(r"play live/ok for .*waiting for publisher", timeout=15)
    publisher = start(ffmpeg_publish_command(f"{server.url}/live/ok", SECONDS))
    status, _, err = finish(publisher)
    assert status == 0, err.decode(errors="replace")
    status, out, err = finish(player, timeout=30)
    assert status == 0, err.decode(errors="replace")
    assert frames_by_codec(out)["h264"] == SECONDS * FPS

    form = endpoint.wait_for(lambda path, f: path == "/play")
    assert (form["call"], form["app"], form["name"]) == ("play", "live", "alias")
    assert "publish started live/alias" not in server.log()  # nobody published 'alias'
