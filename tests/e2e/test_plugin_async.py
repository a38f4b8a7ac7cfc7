"""An asynchronous publish decision, end to end: Publish.Start waits for it, and nothing the
encoder sent before it reaches a player."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from fms.amf import decode_values
from fms.rtmp.client import StatusReceived, StreamCreated
from fms.rtmp.messages import Media
from tests.e2e.harness import (
    ServerProcess,
    finish,
    frames_by_codec,
    probe_command,
    require_client,
    start,
)
from tests.e2e.test_obs_sequence import SocketClient
from tests.support.flv import read_tags

pytestmark = pytest.mark.e2e

SLOW_PLUGIN = """
from twisted.internet import reactor
from twisted.internet.task import deferLater

from fms.apps.api import Plugin


class OneSecond(Plugin):
    def publish(self, client, name, query, kind):
        return deferLater(reactor, 1.0, lambda: None)
"""


def test_a_one_second_publish_decision_delays_publish_start_and_leaks_nothing(
    tmp_path: Path,
) -> None:
    source = tmp_path / "clip.flv"
    made = start([
        require_client("ffmpeg"), "-v", "error", "-f", "lavfi",
        "-i", "testsrc2=size=160x120:rate=25", "-t", "2", "-c:v", "libx264",
        "-preset", "ultrafast", "-g", "25", "-f", "flv", str(source),
    ])  # fmt: skip
    assert finish(made)[0] == 0
    tags = [t for t in read_tags(source) if t.type_id in (9, 18)]
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "onesecond.py").write_text(SLOW_PLUGIN)
    config = tmp_path / "fms.toml"
    config.write_text("[[apps.live.plugins]]\nuse = 'onesecond'\n")
    server = ServerProcess(config=config)
    try:
        url = f"{server.url}/live/slow"
        player = start(probe_command(url))
        server.wait_for_line(r"play live/slow for .*waiting for publisher", timeout=15)
        encoder = SocketClient(server.port)
        conn = encoder.conn
        conn.connect("live", f"{server.url}/live")
        conn.create_stream()
        created = encoder.until(lambda e: isinstance(e, StreamCreated))
        assert isinstance(created, StreamCreated)
        sid = created.stream_id
        conn.publish(sid, "slow")
        asked = time.monotonic()
        # An impatient encoder: all its video goes out before the answer.
        for tag in tags:
            if tag.type_id == 9:
                conn.send_media(sid, Media(9, tag.timestamp, sid, tag.data))
        encoder.flush()
        encoder.until(
            lambda e: isinstance(e, StatusReceived) and e.code == "NetStream.Publish.Start"
        )
        assert time.monotonic() - asked >= 1.0
        for tag in tags:  # the same clip again, now that publishing was accepted
            if tag.type_id == 18:
                conn.send_data(sid, ("@setDataFrame", *decode_values(tag.data)))
            else:
                conn.send_media(sid, Media(9, tag.timestamp, sid, tag.data))
        conn.delete_stream(sid)
        encoder.flush()
        server.wait_for_line(r"publish stopped live/slow")
        status, out, err = finish(player)
        assert status == 0, err.decode(errors="replace")
        assert frames_by_codec(out) == {"h264": 50}  # one clip, not two
    finally:
        assert server.stop() == 0
