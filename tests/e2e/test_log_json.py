"""``[server] log_format = "json"`` in a real server process: FFmpeg publishes, ffprobe plays,
a plugin logs with stdlib ``logging``. Every line the server writes (stderr and stdout) is one
JSON object, and the connect, publish and play lines carry the app, stream, peer and client
of the clients that did them."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import (
    ServerProcess,
    ffmpeg_publish_command,
    finish,
    frames_by_codec,
    probe_command,
    start,
)
from tests.e2e.test_plugin_doc import block

pytestmark = pytest.mark.e2e

FPS = 25
SECONDS = 2
TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
PEER = re.compile(r"^127\.0\.0\.1:\d+$")


def config_for(tmp_path: Path, *, workers: int = 1) -> Path:
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "greeter.py").write_text(block("plugins/greeter.py"))
    config = tmp_path / "fms.toml"
    config.write_text(
        f'[server]\nlog_format = "json"\nlog_level = "info"\nworkers = {workers}\n'
        f"plugin_dirs = [{json.dumps(str(tmp_path / 'plugins'))}]\n"
        '[[apps.live.plugins]]\nuse = "greeter"\n'
    )
    return config


def parsed(lines: list[str], where: str) -> list[dict[str, Any]]:
    """Each line as its JSON object; fails naming the first line that is not one."""
    records = []
    for line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            pytest.fail(f"{where}: not a JSON line: {line!r}")
        assert isinstance(record, dict), line
        assert TIME.match(record["time"]) and record["level"] in ("debug", "info", "warn"), line
        assert isinstance(record["system"], str) and isinstance(record["message"], str), line
        records.append(record)
    return records


def only(records: list[dict[str, Any]], start: str) -> dict[str, Any]:
    found = [r for r in records if r["message"].startswith(start)]
    assert len(found) == 1, (start, [r["message"] for r in records])
    return found[0]


def test_every_line_is_json_and_connect_publish_play_name_app_stream_and_peer(
    tmp_path: Path,
) -> None:
    stdout = tmp_path / "stdout"
    server = ServerProcess(config=config_for(tmp_path), stdout=stdout)
    try:
        url = f"{server.url}/live/cam"
        player = start(probe_command(url))
        server.wait_for_line(r'"message":"play live/cam for .*waiting for publisher', timeout=20)
        publisher = start(ffmpeg_publish_command(url, SECONDS))
        status, _, err = finish(publisher)
        assert status == 0, err.decode(errors="replace")
        status, out, err = finish(player, timeout=30)
        assert status == 0, err.decode(errors="replace")
        assert frames_by_codec(out)["h264"] == SECONDS * FPS  # the play really happened
        server.wait_for_line(r'"message":"publish stopped live/cam', timeout=20)
    finally:
        assert server.stop() == 0, server.log()
    records = parsed(server.lines, "stderr")
    parsed(stdout.read_text().splitlines(), "stdout")
    assert records[0]["message"].startswith("listening on rtmp://127.0.0.1:"), records[0]

    play = only(records, "play live/cam for")
    publish = only(records, "publish started live/cam")
    for line, action in ((play, "play"), (publish, "publish")):
        assert (line["app"], line["stream"]) == ("live", "cam"), line
        assert PEER.match(line["peer"]) and line["peer"] in line["message"], line
        assert isinstance(line["client"], int), line
        connect = only(records, f"connect from {line['peer']}:")
        assert connect["app"] == "live", connect
        assert (connect["peer"], connect["client"]) == (line["peer"], line["client"]), action
        assert "stream" not in connect
    assert play["client"] != publish["client"] and play["peer"] != publish["peer"]
    stopped = only(records, "publish stopped live/cam")
    assert (stopped["peer"], stopped["stream"]) == (publish["peer"], "cam")

    greetings = [r for r in records if r["system"] == "fms_user_plugins.greeter"]
    assert [(g["level"], g["message"]) for g in greetings] == [
        ("info", "hello 127.0.0.1, welcome to live")
    ] * 2
    assert all("worker" not in r for r in records)  # one process: no worker field


def test_with_workers_each_workers_lines_name_it_and_the_supervisors_do_not(
    tmp_path: Path,
) -> None:
    server = ServerProcess(config=config_for(tmp_path, workers=2))
    try:
        server.wait_for_lines(r'"message":"worker \d accepting on', 2, timeout=30)
        url = f"{server.url}/live/cam"
        status, _, err = finish(start(ffmpeg_publish_command(url, 1)))
        assert status == 0, err.decode(errors="replace")
        server.wait_for_line(r'"message":"publish stopped live/cam from 127\.0\.0\.1:\d+"', 20)
    finally:
        assert server.stop() == 0, server.log()
    records = parsed(server.lines, "stderr")
    for record in records:  # the supervisor's own lines have none
        if record["system"] == "fms.cluster.supervisor":
            assert "worker" not in record, record
        assert record.get("worker", "w0") in ("w0", "w1"), record
    for index in (0, 1):
        accepting = only(records, f"worker {index} accepting on")
        assert accepting["worker"] == f"w{index}"
    started = [r for r in records if r["message"].startswith("publish started live/cam from")]
    [publish] = [r for r in started if "via worker" not in r["message"]]
    [relayed] = [r for r in started if "via worker" in r["message"]]  # on the other worker
    assert {publish["worker"], relayed["worker"]} == {"w0", "w1"}
    connect = only(records, f"connect from {publish['peer']}:")
    assert (connect["worker"], connect["client"]) == (publish["worker"], publish["client"])
    assert publish["stream"] == "cam"
