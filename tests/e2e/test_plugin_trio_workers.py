"""The three plugins of issue 13, as docs/plugins.md writes them, together on a real server with
``fms run --workers 2``: the asynchronous stream key read from a JSON file (``keyfile``), the
on-air notifier (``onair``) and the viewer limit (``viewerlimit``).

Each is taken from the page as written. Clients go to each worker's own port, so the publisher
and the players are spread over both workers. What must hold: a publish without the file's key
is refused and one with it goes on air; the on-air call reaches a client of each worker exactly
once for that publish (none for the refused one); three players starting together against
``max_players = 2``, two on the publisher's worker and one on the other, let exactly two decode
the stream; and the documented kit test of ``keyfile`` passes as written.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from fms.rtmp.client import CallReceived
from tests.e2e.harness import ffmpeg_publish_command, finish, start
from tests.e2e.test_plugin_doc import block
from tests.e2e.test_worker_seats import decoded_frames, player_command
from tests.e2e.test_workers import Workers
from tests.hostile.support import Client

pytestmark = pytest.mark.e2e

LIMIT = 2


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Workers]:
    for name in ("keyfile", "onair", "viewerlimit"):
        (tmp_path / f"{name}.py").write_text(block(f"plugins/{name}.py"), encoding="utf-8")
    (tmp_path / "keys.json").write_text(json.dumps({"cam": "s3cret"}), encoding="utf-8")
    extra = block("fms-keyfile.toml") + (
        f'[[apps.live.plugins]]\nuse = "onair"\n'
        f'[[apps.live.plugins]]\nuse = "viewerlimit"\nmax_players = {LIMIT}\n'
    )
    w = Workers(tmp_path, extra)
    try:
        yield w
    finally:
        status = w.server.stop()
    assert status == 0, w.server.log()


def on_air_calls(client: Client) -> list[list[object]]:
    return [
        list(e.command.arguments)
        for e in client.events
        if isinstance(e, CallReceived) and e.name == "onAir"
    ]


def test_the_three_documented_plugins_hold_across_two_workers(workers: Workers) -> None:
    listeners = [Client(workers.ports[w]).connect() for w in (0, 1)]
    try:
        refused = start(ffmpeg_publish_command(f"{workers.url(1)}/live/cam?key=wrong", 2))
        assert finish(refused)[0] != 0
        workers.line(1, r"publish live/cam from .* refused by the application: wrong or", 30)

        publisher = start(ffmpeg_publish_command(f"{workers.url(1)}/live/cam?key=s3cret", 20))
        workers.line(1, r"publish started live/cam", 30)
        for listener in listeners:
            event = listener.until(
                lambda e: isinstance(e, CallReceived) and e.name == "onAir", 30.0
            )
            assert isinstance(event, CallReceived)

        # two players on the publisher's worker, one on the other, all at once: two play
        players = [start(player_command(f"{workers.url(w)}/live/cam", 3)) for w in (1, 1, 0)]
        results = [finish(p, timeout=90) for p in players]
        frames = sorted(decoded_frames(out) for _, out, _ in results)
        assert frames[0] == 0, results
        assert frames[1] > 0 and frames[2] > 0, results
        refusals = [err for status, _, err in results if status != 0]
        assert len(refusals) == 1
        assert b"this stream has all the players it can take" in refusals[0]
        publisher.kill()
        publisher.wait()
    finally:
        for listener in listeners:
            listener.close()
    # exactly one onAir per client for the one publish that went on air, naming it
    for listener in listeners:
        calls = on_air_calls(listener)
        assert len(calls) == 1, calls
        assert calls[0][0] == "cam"


def test_the_documented_kit_test_of_the_key_file_passes(tmp_path: Path) -> None:
    (tmp_path / "keyfile.py").write_text(block("plugins/keyfile.py"), encoding="utf-8")
    test_file = tmp_path / "test_keyfile.py"
    test_file.write_text(block("plugins/test_keyfile.py"), encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test_file)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout


def test_check_config_stops_at_a_missing_key_file(tmp_path: Path) -> None:
    (tmp_path / "keyfile.py").write_text(block("plugins/keyfile.py"), encoding="utf-8")
    config = tmp_path / "fms.toml"
    config.write_text(
        f"[server]\nplugin_dirs = [{json.dumps(str(tmp_path))}]\n" + block("fms-keyfile.toml"),
        encoding="utf-8",
    )
    result = subprocess.run(
        [sys.executable, "-m", "fms", "check-config", str(config)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode != 0
    assert "keys.json" in result.stdout + result.stderr
