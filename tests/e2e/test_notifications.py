"""The notification hooks with the real server (started by ``fms.testing.running_server``), a
plugin file in ``plugin_dirs`` that logs what it is told, FFmpeg publishers and an ffprobe
player: one ``published``/``unpublished`` per publish that went on air, none for the
duplicate the server refused although the chain accepted it, one ``play_started`` and one
``play_stopped`` per play."""

from __future__ import annotations

from pathlib import Path

import pytest

from fms.testing import running_server
from tests.e2e.harness import ffmpeg_publish_command, finish, frames_by_codec, probe_command, start

pytestmark = pytest.mark.e2e

PLUGIN = """
from twisted.logger import Logger

from fms.apps.api import Plugin

log = Logger(namespace="told")


class Told(Plugin):
    def published(self, stream):
        log.info("told published {name} by {peer}", name=stream.name, peer=stream.publisher.peer)

    def unpublished(self, stream):
        log.info("told unpublished {name}", name=stream.name)

    def play_started(self, client, stream):
        log.info("told play_started {name} for {peer}", name=stream.name, peer=client.peer)

    def play_stopped(self, client, stream):
        log.info("told play_stopped {name} for {peer}", name=stream.name, peer=client.peer)
"""


def test_notifications_tell_what_happened_once_each(tmp_path: Path) -> None:
    (tmp_path / "told.py").write_text(PLUGIN)
    with running_server("told", plugin_dirs=[tmp_path]) as server:
        url = f"{server.app_url}/cam"
        player = start(probe_command(url))
        server.wait_for_line(r"told play_started cam for ")
        first = start(ffmpeg_publish_command(url, 6))
        server.wait_for_line(r"publish started live/cam from ")
        duplicate = start(ffmpeg_publish_command(url, 2))
        server.wait_for_line(r"refusing publish live/cam from .*: already published")
        assert finish(duplicate)[0] != 0
        assert finish(first)[0] == 0
        status, out, err = finish(player)
        assert status == 0, err.decode(errors="replace")
        assert frames_by_codec(out)["h264"] == 150  # the first publisher's 6 s at 25 fps
        server.wait_for_line(r"told unpublished cam")
        server.wait_for_line(r"told play_stopped cam for ")
    # The server has stopped: its whole log is read.
    published = [line for line in server.lines if "told published cam" in line]
    assert len(published) == 1
    first_peer = published[0].rsplit(" by ", 1)[1]
    publish_lines = [line for line in server.lines if "publish started live/cam" in line]
    assert len(publish_lines) == 1 and publish_lines[0].endswith(f"from {first_peer}")
    for hook in ("unpublished", "play_started", "play_stopped"):
        assert len([line for line in server.lines if f"told {hook} cam" in line]) == 1, hook
