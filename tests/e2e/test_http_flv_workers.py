"""HTTP-FLV with ``fms run --workers 2``: a viewer on either worker plays a stream published on
worker 0, as RTMP players do (the relay mirrors the stream to every worker and sends its media
to a worker while that worker has players, HTTP viewers counted with RTMP ones).

The kernel hands each HTTP connection to either worker (``SO_REUSEPORT``), so the test opens
viewers one at a time and reads from the server's log (``wN ... HTTP-FLV play live/cam``) which
worker took each, until both workers hold one: first viewers waiting for the publisher
(``flv_wait``), then viewers that arrive while it publishes. Every viewer is ffprobe reading to
the end of the stream; what is checked is what each decoded: H.264 and AAC, frames of both,
the source's picture size, and a clean end when the publisher stops.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from benchmarks.fanout import free_ports
from tests.e2e.harness import (
    ServerProcess,
    ffmpeg_publish_command,
    finish,
    require_client,
    start,
)

pytestmark = pytest.mark.e2e

HTTP_LISTENING = re.compile(r"listening on (http://127\.0\.0\.1:\d+)/ \(2 workers\)")
WIDTH, HEIGHT = 320, 240
"""The publisher's picture (tests/e2e/harness.py ffmpeg_publish_command)."""
MAX_TRIES = 40
"""Viewers opened per phase before giving up on the kernel handing one to each worker (all
on one worker by chance: 2 ** -39)."""
KEEP = 2
"""Viewers kept per worker and phase; more that land on a worker are closed at once, so that
a run of connections to one worker does not pile up decoders on a 2-core machine."""
DEADLINE = 60.0
"""Seconds to wait for each step on a loaded machine (never a timing under test)."""


def play_line(worker: str, waiting: bool) -> re.Pattern[str]:
    """The log line of an HTTP-FLV play of live/cam on worker ``worker`` (a regex: "0", "[01]")."""
    suffix = r" \(waiting for publisher\)$" if waiting else r"$"
    return re.compile(rf"\bw{worker} .*HTTP-FLV play live/cam for \S+{suffix}")


def probe(url: str) -> subprocess.Popen[bytes]:
    """ffprobe decoding ``url`` to its end: codecs, picture size, decoded frames."""
    command = [require_client("ffprobe"), "-v", "error", "-count_frames", "-of", "json"]
    entries = "stream=codec_type,codec_name,width,height,nb_read_frames"
    return start([*command, "-show_entries", entries, url])


def open_viewers(
    server: ServerProcess,
    url: str,
    waiting: bool,
    viewers: list[tuple[int, subprocess.Popen[bytes]]],
) -> set[int]:
    """Open viewers one at a time, each waited for in the log, until both workers hold one
    started this way; append (worker, process) to ``viewers`` (at most KEEP per worker);
    the workers hit."""
    hit: set[int] = set()
    first = len(viewers)
    for _ in range(MAX_TRIES):
        before = [len(server.wait_for_lines(play_line(str(w), waiting), 0)) for w in (0, 1)]
        viewer = probe(url)
        server.wait_for_lines(play_line("[01]", waiting), sum(before) + 1, timeout=DEADLINE)
        after = [len(server.wait_for_lines(play_line(str(w), waiting), 0)) for w in (0, 1)]
        (worker,) = [w for w in (0, 1) if after[w] > before[w]]
        hit.add(worker)
        if sum(1 for w, _ in viewers[first:] if w == worker) >= KEEP:
            viewer.kill()
            viewer.communicate()
            continue
        viewers.append((worker, viewer))
        if hit == {0, 1}:
            return hit
    raise AssertionError(f"{MAX_TRIES} HTTP connections in a row went to worker {hit}")


def test_http_flv_viewers_on_both_workers_play_a_stream_published_on_one(tmp_path: Path) -> None:
    """Viewers waiting before the publish and viewers arriving during it, on both workers,
    each decode H.264 and AAC frames of the source's size from the publish on worker 0, and
    each ends cleanly when it stops."""
    ports = free_ports(2)
    config = tmp_path / "fms.toml"
    config.write_text(
        f"[server]\nworker_ports = {ports}\n[http]\nenabled = true\nport = 0\nflv_wait = 60\n"
    )
    server = ServerProcess("--config", str(config), "--workers", "2")
    viewers: list[tuple[int, subprocess.Popen[bytes]]] = []
    publisher: subprocess.Popen[bytes] | None = None
    try:
        match = HTTP_LISTENING.search(server.wait_for_line(HTTP_LISTENING, timeout=DEADLINE))
        assert match is not None
        url = f"{match.group(1)}/live/cam.flv"
        open_viewers(server, url, True, viewers)
        early = len(viewers)

        publisher = start(ffmpeg_publish_command(f"rtmp://127.0.0.1:{ports[0]}/live/cam", 12))
        server.wait_for_line(r"\bw0 .*publish started live/cam", timeout=DEADLINE)
        open_viewers(server, url, False, viewers)

        assert finish(publisher, timeout=DEADLINE)[0] == 0
        for index, (worker, viewer) in enumerate(viewers):
            code, out, err = finish(viewer, timeout=DEADLINE)
            when = "waiting" if index < early else "late"
            assert code == 0, f"{when} viewer on worker {worker}: {err.decode(errors='replace')}"
            streams = {s["codec_type"]: s for s in json.loads(out)["streams"]}
            video, audio = streams["video"], streams["audio"]
            assert (video["codec_name"], audio["codec_name"]) == ("h264", "aac"), streams
            assert (video["width"], video["height"]) == (WIDTH, HEIGHT), (when, worker, video)
            assert int(video["nb_read_frames"]) > 0, (when, worker, video)
            assert int(audio["nb_read_frames"]) > 0, (when, worker, audio)
        print("viewers by worker:", [w for w, _ in viewers], "of which waiting:", early)
    finally:
        for proc in [p for _, p in viewers] + ([publisher] if publisher else []):
            if proc.poll() is None:
                proc.kill()
            proc.communicate()
        assert server.stop() == 0, server.log()
