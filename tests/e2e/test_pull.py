"""Pull between real server processes: Debian's FFmpeg publishes H.264+AAC to server A, and
server B, configured with ``[[apps.live.pull]]``, fetches it for its own players: twenty
players (ffprobe, FFmpeg, rtmpdump) on B decode it while A serves exactly one player (the
pull), which A loses ``idle_timeout`` seconds after B's last player left and not before; an
``always`` pull comes back after A is killed and restarted; an HTTP-FLV source (A's
``/live/cam.flv``) plays for an RTMP player on B; a pull of a stream A does not have keeps
B's player waiting while it retries with backoff."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import (
    ServerProcess,
    ffmpeg_publish_command,
    finish,
    require_client,
    run_client,
    start,
)
from tests.e2e.test_http_api import HTTP_LISTENING, call, metrics, wait_until

pytestmark = pytest.mark.e2e

WIDTH, HEIGHT = 320, 240
PLAYERS = 20
IDLE = 3.0


def _server(tmp_path: Path, name: str, text: str, *args: str) -> tuple[ServerProcess, str]:
    """A server configured by ``text`` with the HTTP API on a free port: (process, API base)."""
    config = tmp_path / f"{name}.toml"
    config.write_text(f"[http]\nenabled = true\nport = 0\n{text}")
    server = ServerProcess("--config", str(config), *args)
    match = HTTP_LISTENING.search(server.wait_for_line(HTTP_LISTENING, timeout=20))
    assert match is not None
    return server, match.group(1)


def _stream(base: str, name: str) -> dict[str, Any] | None:
    status, body = call(base, "GET", f"/api/v1/streams/live/{name}")
    return body if status == 200 else None


def _players(base: str, name: str) -> int:
    doc = _stream(base, name)
    return int(doc["players"]) if doc is not None else 0


def _pull(base: str, name: str) -> dict[str, Any] | None:
    doc = _stream(base, name)
    return doc.get("pull") if doc is not None else None


def _ffprobe(url: str, seconds: float) -> list[str]:
    entries = "stream=codec_type,codec_name,width,height,nb_read_frames"
    return [require_client("ffprobe"), "-v", "error", "-rw_timeout", "60000000",
            "-read_intervals", f"%+{seconds:g}", "-count_frames", "-show_entries", entries,
            "-of", "json", url]  # fmt: skip


def _ffmpeg(url: str, seconds: float) -> list[str]:
    return [require_client("ffmpeg"), "-hide_banner", "-loglevel", "error", "-i", url,
            "-t", f"{seconds:g}", "-f", "flv", "-c", "copy", "-"]  # fmt: skip


def _rtmpdump(url: str, seconds: float) -> list[str]:
    """rtmpdump for ``seconds`` of wall time (its ``--stop`` counts in the stream's own
    timestamps, which a pulled stream keeps from its publisher): stopped by SIGINT, after
    which it closes its file."""
    return ["timeout", "-s", "INT", f"{seconds:g}", require_client("rtmpdump"), "-q", "-r",
            url, "--live", "-o", "-"]  # fmt: skip


def _decoded_from_file(data: bytes, tmp_path: Path, index: int) -> dict[str, Any]:
    """What ffprobe decodes of an FLV a client wrote: {codec: frames} and the video size."""
    path = tmp_path / f"got-{index}.flv"
    path.write_bytes(data)
    out = run_client(_ffprobe(str(path), 3600), timeout=60)
    return _summary(out.stdout)


def _always_table(port: int) -> str:
    """An ``always`` pull of live/cam from 127.0.0.1:``port``, retried every 0.5-1 s."""
    return (
        f'[[apps.live.pull]]\nurl = "rtmp://127.0.0.1:{port}/live"\nmatch = "cam"\n'
        'mode = "always"\nretry_initial = 0.5\nretry_max = 1.0\nstart_timeout = 2\n'
    )


def _reload(server: ServerProcess, config: Path, text: str) -> None:
    """Write ``text`` to the server's configuration file and send it SIGHUP."""
    config.write_text(text)
    server.process.send_signal(signal.SIGHUP)


def _summary(stdout: bytes) -> dict[str, Any]:
    streams = json.loads(stdout or b"{}").get("streams", [])
    frames = {s["codec_name"]: int(s.get("nb_read_frames", 0)) for s in streams}
    video = next((s for s in streams if s.get("codec_type") == "video"), {})
    return {"frames": frames, "size": (video.get("width"), video.get("height"))}


def test_twenty_players_on_b_share_one_pull_from_a_which_stops_after_the_idle_timeout(
    tmp_path: Path,
) -> None:
    origin, api_a = _server(tmp_path, "a", "")
    edge, api_b = _server(
        tmp_path,
        "b",
        f'[[apps.live.pull]]\nurl = "rtmp://127.0.0.1:{origin.port}/live"\nmatch = "c*"\n'
        f"idle_timeout = {IDLE}\nretry_initial = 0.5\nretry_max = 1.0\n",
    )
    publisher = start(ffmpeg_publish_command(f"{origin.url}/live/cam", 600))
    players: list[tuple[str, subprocess.Popen[bytes]]] = []
    try:
        wait_until("the publish on A", lambda: (_stream(api_a, "cam") or {}).get("published"))
        url = f"{edge.url}/live/cam"
        makers = {"ffprobe": _ffprobe, "ffmpeg": _ffmpeg, "rtmpdump": _rtmpdump}
        kinds = list(makers)
        for index in range(PLAYERS):
            kind = kinds[index % len(kinds)]
            with (tmp_path / f"out-{index}").open("wb") as out:  # no pipe to fill meanwhile
                proc = subprocess.Popen(
                    makers[kind](url, 12), stdout=out, stderr=subprocess.PIPE,
                    start_new_session=True,  # killed as a group: timeout and its rtmpdump
                )  # fmt: skip
            players.append((kind, proc))
        wait_until(f"{PLAYERS} players on B", lambda: _players(api_b, "cam") == PLAYERS, 90)
        on_a = _stream(api_a, "cam")
        assert on_a is not None and on_a["players"] == 1  # the pull, for all twenty
        plays = [line for line in origin.log().splitlines() if "play live/cam for" in line]
        assert len(plays) == 1, plays  # and never more than one at a time or in turn
        pull = _pull(api_b, "cam")
        assert pull is not None and pull["state"] == "live" and pull["connects"] == 1
        assert pull["url"] == f"rtmp://127.0.0.1:{origin.port}/live"
        doc_b = _stream(api_b, "cam")
        assert doc_b is not None and doc_b["publisher"]["agent"] == "pyFMS pull"
        assert doc_b["video"]["width"] == WIDTH
        samples = metrics(api_b)
        labels = (("app", "live"), ("state", "live"), ("stream", "cam"), ("url", pull["url"]))
        assert samples[("fms_pull_state", labels)] == 1.0

        # The pull outlives the last player by idle_timeout, then A loses its one player.
        last_seen = time.monotonic()  # when B was seen with a player
        deadline = last_seen + 120
        while time.monotonic() < deadline:
            asked = time.monotonic()
            if _players(api_b, "cam") == 0:
                break
            last_seen = asked
            time.sleep(0.1)
        else:
            raise AssertionError("B's players did not leave")
        wait_until("A's player gone", lambda: _players(api_a, "cam") == 0, 30)
        assert time.monotonic() - last_seen >= IDLE, edge.log()[-3000:]
        wait_until("B's pull gone", lambda: _pull(api_b, "cam") is None)
        assert "no player for 3s: stopped" in edge.log()
        # Every player decoded H.264 and AAC at 320x240.
        for index, (kind, proc) in enumerate(players):
            code, _, err = finish(proc, timeout=120)
            ok = (0, 2, 124) if kind == "rtmpdump" else (0,)  # 124: stopped by timeout
            assert code in ok, f"{kind}: {err.decode(errors='replace')[-2000:]}"
            out = (tmp_path / f"out-{index}").read_bytes()
            got = _summary(out) if kind == "ffprobe" else _decoded_from_file(out, tmp_path, index)
            assert got["frames"].get("h264", 0) > 0 and got["frames"].get("aac", 0) > 0, (kind, got)
            assert got["size"] == (WIDTH, HEIGHT), (kind, got)
    finally:
        for _, proc in players:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
        publisher.kill()
        publisher.communicate()
        edge.stop()
        origin.stop()


def test_an_always_pull_comes_back_after_the_origin_is_killed_and_restarted(
    tmp_path: Path,
) -> None:
    origin, _ = _server(tmp_path, "a", "")
    port = origin.port
    edge, api_b = _server(
        tmp_path,
        "b",
        _always_table(port),
    )
    publisher = start(ffmpeg_publish_command(f"{origin.url}/live/cam", 600))
    try:
        # Nobody plays on B: an always pull fetches it anyway.
        wait_until("the pull live", lambda: (_pull(api_b, "cam") or {}).get("state") == "live")
        first = _summary(run_client(_ffprobe(f"{edge.url}/live/cam", 2), timeout=90).stdout)
        assert first["frames"].get("h264", 0) > 0 and first["size"] == (WIDTH, HEIGHT)
        publisher.kill()
        publisher.communicate()
        origin.stop(signal.SIGKILL)
        wait_until("the pull retrying", lambda: (_pull(api_b, "cam") or {}).get("state")
                   in ("retrying", "connecting"))  # fmt: skip
        failed = _pull(api_b, "cam")
        assert failed is not None and failed["last_error"]
        # A try made while the origin is down fails too (refused) and is retried: seen before
        # the origin comes back, so a slow machine cannot let the first retry find it up.
        down = wait_until("a try refused while the origin is down", lambda: (
            pull := _pull(api_b, "cam")) and pull["connects"] > failed["connects"]
            and pull["state"] == "retrying" and pull)  # fmt: skip
        assert down["lives"] == 1, down
        origin = ServerProcess("--port", str(port))
        publisher = start(ffmpeg_publish_command(f"{origin.url}/live/cam", 600))
        again = wait_until("the pull live again", lambda: (pull := _pull(api_b, "cam")) and
                           pull["state"] == "live" and pull["lives"] >= 2 and pull)  # fmt: skip
        assert again["connects"] > again["lives"] >= 2
        second = _summary(run_client(_ffprobe(f"{edge.url}/live/cam", 2), timeout=90).stdout)
        assert second["frames"].get("aac", 0) > 0 and second["size"] == (WIDTH, HEIGHT)
    finally:
        publisher.kill()
        publisher.communicate()
        edge.stop()
        origin.stop()


def test_an_http_flv_source_plays_for_an_rtmp_player(tmp_path: Path) -> None:
    origin, api_a = _server(tmp_path, "a", "")
    edge, api_b = _server(
        tmp_path,
        "b",
        f'[[apps.live.pull]]\nurl = "{api_a}/live/{{name}}.flv"\nretry_initial = 0.5\n'
        "retry_max = 1.0\n",
    )
    publisher = start(ffmpeg_publish_command(f"{origin.url}/live/cam", 600))
    try:
        wait_until("the publish on A", lambda: (_stream(api_a, "cam") or {}).get("published"))
        got = _summary(run_client(_ffprobe(f"{edge.url}/live/cam", 3), timeout=90).stdout)
        assert got["frames"].get("h264", 0) > 0 and got["frames"].get("aac", 0) > 0, got
        assert got["size"] == (WIDTH, HEIGHT)
        samples = metrics(api_b)
        url = f"{api_a}/live/cam.flv"
        key = (("app", "live"), ("stream", "cam"), ("url", url))
        assert samples[("fms_pull_bytes_in_total", key)] > 0
    finally:
        publisher.kill()
        publisher.communicate()
        edge.stop()
        origin.stop()


def test_a_player_waits_while_a_pull_of_a_missing_stream_retries_with_backoff(
    tmp_path: Path,
) -> None:
    origin, _ = _server(tmp_path, "a", "")
    edge, api_b = _server(
        tmp_path,
        "b",
        f'[[apps.live.pull]]\nurl = "rtmp://127.0.0.1:{origin.port}/live"\n'
        "retry_initial = 0.5\nretry_max = 1.0\nstart_timeout = 1\n",
    )
    waiting = start([require_client("rtmpdump"), "-q", "-r", f"{edge.url}/live/ghost", "--live",
                     "-o", "/dev/null"])  # fmt: skip
    try:
        tried = wait_until("three tries", lambda: (pull := _pull(api_b, "ghost")) and
                           pull["connects"] >= 3 and pull)  # fmt: skip
        assert tried["last_error"] == "nothing received within 1s"
        assert tried["lives"] == 0 and tried["bytes_in"] > 0
        assert _players(api_b, "ghost") == 1 and waiting.poll() is None
        assert "pull live/ghost <- rtmp://127.0.0.1" in edge.log()
    finally:
        waiting.kill()
        waiting.communicate()
        edge.stop()
        origin.stop()


def test_a_reload_starts_an_always_pull_it_adds_and_stops_it_when_the_table_goes(
    tmp_path: Path,
) -> None:
    origin, api_a = _server(tmp_path, "a", "")
    edge, api_b = _server(tmp_path, "b", "")
    table = _always_table(origin.port)
    publisher = start(ffmpeg_publish_command(f"{origin.url}/live/cam", 600))
    try:
        wait_until("the publish on A", lambda: _stream(api_a, "cam") is not None)
        assert _pull(api_b, "cam") is None
        config = tmp_path / "b.toml"
        _reload(edge, config, config.read_text() + table)
        # Nobody plays on B: the table the reload added pulls it anyway.
        wait_until("the pull live", lambda: (_pull(api_b, "cam") or {}).get("state") == "live")
        got = _summary(run_client(_ffprobe(f"{edge.url}/live/cam", 2), timeout=90).stdout)
        assert got["frames"].get("h264", 0) > 0 and got["size"] == (WIDTH, HEIGHT)
        wait_until("B's probe gone", lambda: _players(api_b, "cam") == 0)
        assert _players(api_a, "cam") == 1  # the pull
        _reload(edge, config, config.read_text().replace(table, ""))
        wait_until("the pull gone from A", lambda: _players(api_a, "cam") == 0)
        assert _pull(api_b, "cam") is None
    finally:
        publisher.kill()
        publisher.communicate()
        edge.stop()
        origin.stop()


def test_with_two_workers_a_reload_keeps_one_always_pull_and_stops_it_when_the_table_goes(
    tmp_path: Path,
) -> None:
    """SIGHUP reaches both workers of B: both start the pull the new table asks for, the name
    claim keeps one (A serves one player), and the table removed again stops it."""
    origin, api_a = _server(tmp_path, "a", "")
    edge, api_b = _server(tmp_path, "b", "", "--workers", "2")
    table = _always_table(origin.port)
    publisher = start(ffmpeg_publish_command(f"{origin.url}/live/cam", 600))
    try:
        wait_until("the publish on A", lambda: _stream(api_a, "cam") is not None)
        config = tmp_path / "b.toml"
        _reload(edge, config, config.read_text() + table)
        wait_until("the pull live", lambda: (_pull(api_b, "cam") or {}).get("state") == "live")
        edge.wait_for_line(r"published here meanwhile: pull stopped", timeout=30)
        # The other worker's link closed: A serves one player, whichever worker B's API is.
        wait_until("one link on A", lambda: _players(api_a, "cam") == 1)
        assert [_players(api_a, "cam") for _ in range(4)] == [1, 1, 1, 1]
        assert [(_pull(api_b, "cam") or {}).get("state") for _ in range(4)] == ["live"] * 4
        got = _summary(run_client(_ffprobe(f"{edge.url}/live/cam", 2), timeout=90).stdout)
        assert got["frames"].get("h264", 0) > 0 and got["size"] == (WIDTH, HEIGHT)
        _reload(edge, config, config.read_text().replace(table, ""))
        wait_until("the pull gone from A", lambda: _players(api_a, "cam") == 0)
    finally:
        publisher.kill()
        publisher.communicate()
        edge.stop()
        origin.stop()
