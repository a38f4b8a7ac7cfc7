"""The streamkey plugin in a real server: FFmpeg publishes with and without a key, ffprobe plays.

Generated media: 25 fps H.264 with a keyframe every second, 44.1 kHz AAC.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fms.plugins.streamkey import sign

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
HMAC_SECRET = "e2e-hmac-secret"
CONFIG = f"""
[[apps.live.plugins]]
use = "streamkey"
keys = {{ cam = "s3cret" }}
hmac_secret = "{HMAC_SECRET}"
"""


@pytest.fixture
def keyed_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A server whose app ``live`` runs streamkey; it must stop cleanly afterwards."""
    config = tmp_path / "fms.toml"
    config.write_text(CONFIG, encoding="utf-8")
    proc = ServerProcess(config=config)
    try:
        yield proc
    finally:
        status = proc.stop()
    assert status == 0, f"server exited with {status}; log:\n{proc.log()}"


@pytest.mark.parametrize(
    ("suffix", "reason"), [("", "stream key required"), ("?key=wrong", "invalid stream key")]
)
def test_publishing_without_the_key_is_refused_and_relays_nothing(
    keyed_server: ServerProcess, suffix: str, reason: str
) -> None:
    url = f"{keyed_server.url}/live/cam"
    player = start(probe_command(url))
    keyed_server.wait_for_line(r"play live/cam for .*waiting for publisher", timeout=15)
    status, _, err = finish(start(ffmpeg_publish_command(url + suffix, 2)), timeout=20)
    assert status != 0
    assert f"Server error: {reason}".encode() in err, err.decode(errors="replace")
    keyed_server.wait_for_line(rf"publish live/cam from \S+ refused by the application: {reason}")
    assert "publish started" not in keyed_server.log()
    # The player is still waiting: stopping the server ends it, having found no stream at all.
    assert keyed_server.stop() == 0
    _, out, err = finish(player, timeout=10)
    assert frames_by_codec(out) == {}, err.decode(errors="replace")


def test_publishing_with_the_stream_s_key_reaches_the_player(keyed_server: ServerProcess) -> None:
    url = f"{keyed_server.url}/live/cam"
    player = start(probe_command(url))
    keyed_server.wait_for_line(r"play live/cam for .*waiting for publisher", timeout=15)
    status, _, err = finish(start(ffmpeg_publish_command(f"{url}?key=s3cret", 3)))
    assert status == 0, err.decode(errors="replace")
    keyed_server.wait_for_line(r"publish started live/cam from")
    status, out, err = finish(player, timeout=20)
    assert status == 0, err.decode(errors="replace")
    frames = frames_by_codec(out)
    assert frames["h264"] == 3 * FPS  # every frame
    assert frames["aac"] >= 3 * 44100 // 1024 - 2


def test_publishing_with_a_signed_key_reaches_the_player(keyed_server: ServerProcess) -> None:
    url = f"{keyed_server.url}/live/signed"
    player = start(probe_command(url))
    keyed_server.wait_for_line(r"play live/signed for .*waiting for publisher", timeout=15)
    key = sign(HMAC_SECRET, "live", "signed", int(time.time()) + 600)
    status, _, err = finish(start(ffmpeg_publish_command(f"{url}?key={key}", 2)))
    assert status == 0, err.decode(errors="replace")
    status, out, err = finish(player, timeout=20)
    assert status == 0, err.decode(errors="replace")
    assert frames_by_codec(out)["h264"] == 2 * FPS
