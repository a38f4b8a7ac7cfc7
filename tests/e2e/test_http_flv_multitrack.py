"""HTTP-FLV carries every track of an Enhanced RTMP multitrack stream (issue 17 item 4).

FFmpeg 9 publishes the two-video-track stream of ``test_enhanced_rtmp`` (320x240 and
160x120 H.264, AAC) over RTMP; FFmpeg 9 reads ``http://.../live/mt.flv`` once the publish is
on (a late viewer) and decodes until the publisher stops: both video tracks (described at
their sizes) and the audio track, every video track from the same keyframe (equal frame
counts, more than one GOP), no decoding error line.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.e2e.harness import ServerProcess, finish, start
from tests.e2e.test_enhanced_rtmp import (  # noqa: F401  (ffmpeg9 is a fixture)
    BAD,
    CASES,
    GOP,
    decoded,
    described,
    ffmpeg9,
    play_command,
    publish_command,
)

pytestmark = pytest.mark.e2e

HTTP_LISTENING = re.compile(r"listening on (http://\S+)/")


def test_http_flv_carries_every_track_of_a_multitrack_stream(
    tmp_path: Path,
    ffmpeg9: str,  # noqa: F811  (the fixture)
) -> None:
    config = tmp_path / "fms.toml"
    config.write_text("[http]\nenabled = true\nport = 0\n")
    server = ServerProcess("--config", str(config))
    publisher = viewer = None
    try:
        match = HTTP_LISTENING.search(server.wait_for_line(HTTP_LISTENING, timeout=20))
        assert match is not None
        publisher = start(publish_command(ffmpeg9, f"{server.url}/live/mt", CASES["two-h264"]))
        server.wait_for_line(r"publish started live/mt", timeout=30)
        viewer = start(play_command(ffmpeg9, f"{match.group(1)}/live/mt.flv"))
        assert finish(publisher, timeout=60)[0] == 0
        status, out, err = finish(viewer, timeout=60)
        log = err.decode(errors="replace")
        assert status == 0, log
        assert not any(bad in err for bad in BAD), log
        streams = decoded(out, err)
        assert sorted(codec for codec, _ in streams.values()) == ["aac", "h264", "h264"]
        video = [count for codec, count in streams.values() if codec == "h264"]
        assert len(set(video)) == 1 and video[0] > GOP, streams
        sizes = sorted(re.findall(r"\b(\d{2,5}x\d{2,5})\b", " ".join(described(err))))
        assert sizes == ["160x120", "320x240"]
    finally:
        for proc in (publisher, viewer):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
        server.stop()
