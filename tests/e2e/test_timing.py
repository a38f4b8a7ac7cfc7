"""Timing of what players receive: FFmpeg publishes 25 fps H.264 and 44.1 kHz AAC to the real
server, and ffprobe, playing over RTMP, lists every packet it received in order (``-show_entries
packet=...``). For a player waiting from the start and for a late joiner:

- both streams are present and each stream's dts never goes back;
- every step between two packets of a stream is one frame (40 ms of video, 1024 samples of
  audio: 23 or 24 ms once rounded to FLV's milliseconds), so nothing was dropped or re-timed;
- audio and video stay interleaved: at every packet, the newest video dts and the newest audio
  dts so far are less than ``INTERLEAVE`` apart;
- the late joiner starts on a keyframe, from the server's GOP cache.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass

import pytest

from fms.rtmp.client import ClientEvent, MediaArrived
from tests.e2e.harness import (
    ServerProcess,
    ffmpeg_publish_command,
    finish,
    require_client,
    start,
)
from tests.hostile.support import Client

pytestmark = pytest.mark.e2e

FPS = 25
VIDEO_STEP_MS = 1000 // FPS
AUDIO_STEPS_MS = {23, 24}
"""An AAC frame is 1024 samples at 44.1 kHz (23.2 ms); FLV timestamps are whole milliseconds."""

INTERLEAVE = 200
"""Milliseconds the newest video and audio dts may be apart at any point of what a player
receives. FFmpeg's muxer writes packets in dts order across streams, so what the publisher
sends is never more than one video frame (40 ms) apart (measured: 39 ms); the server must keep
that order and those times, for the cached GOP too. 200 ms is five frames of room and still
catches a server that shifts one stream against the other by a fraction of a second (one that
adds 300 ms to audio timestamps fails both tests), or sends a 2 s GOP's video before its
audio."""


@dataclass(frozen=True, slots=True)
class Packet:
    kind: str
    """``video`` or ``audio``."""
    dts: int
    """Milliseconds (ffprobe's RTMP time base is 1/1000)."""
    keyframe: bool


def packets_command(url: str) -> list[str]:
    """ffprobe playing ``url`` to its end, listing every packet it receives, in order."""
    return [
        require_client("ffprobe"), "-v", "error",
        "-show_entries", "packet=codec_type,dts,flags", "-of", "json", url,
    ]  # fmt: skip


def received(stdout: bytes) -> list[Packet]:
    rows = json.loads(stdout or b"{}").get("packets", [])
    return [Packet(row["codec_type"], int(row["dts"]), row["flags"][0] == "K") for row in rows]


def check_timing(packets: list[Packet]) -> int:
    """Assert the properties of the module docstring; return the largest distance (ms)
    between the newest video and audio dts seen at any packet."""
    video = [p for p in packets if p.kind == "video"]
    audio = [p for p in packets if p.kind == "audio"]
    assert video and audio, f"both streams must be present: {len(video)} video, {len(audio)} audio"
    assert {p.kind for p in packets} == {"video", "audio"}
    assert video[0].keyframe, f"the first video packet is not a keyframe: {video[0]}"
    for stream in (video, audio):
        steps = [b.dts - a.dts for a, b in itertools.pairwise(stream)]
        assert all(step >= 0 for step in steps), f"{stream[0].kind} dts went back: {steps}"
    video_steps = {b.dts - a.dts for a, b in itertools.pairwise(video)}
    audio_steps = {b.dts - a.dts for a, b in itertools.pairwise(audio)}
    assert video_steps == {VIDEO_STEP_MS}, f"video dts steps: {sorted(video_steps)}"
    assert audio_steps <= AUDIO_STEPS_MS, f"audio dts steps: {sorted(audio_steps)}"
    newest: dict[str, int] = {}
    worst = 0
    for index, packet in enumerate(packets):
        newest[packet.kind] = packet.dts
        if len(newest) == 2:
            apart = abs(newest["video"] - newest["audio"])
            assert apart < INTERLEAVE, (
                f"at packet {index} the newest video and audio are {apart} ms apart: "
                f"{packets[max(index - 5, 0) : index + 1]}"
            )
            worst = max(worst, apart)
    return worst


def test_a_player_from_the_start_receives_monotonic_interleaved_timestamps(
    server: ServerProcess,
) -> None:
    url = f"{server.url}/live/timing"
    player = start(packets_command(url))
    server.wait_for_line(r"play live/timing for .*waiting for publisher", timeout=15)
    publisher = start(ffmpeg_publish_command(url, 4))
    status, _, err = finish(publisher)
    assert status == 0, err.decode(errors="replace")
    status, out, err = finish(player, timeout=30)
    assert status == 0, err.decode(errors="replace")
    packets = received(out)
    assert sum(1 for p in packets if p.kind == "video") == 4 * FPS  # every frame
    worst = check_timing(packets)
    assert packets[0].dts <= INTERLEAVE  # from the start of the stream
    print(f"player from the start: {len(packets)} packets, video and audio {worst} ms apart")


def test_a_late_joiner_starts_on_a_keyframe_with_monotonic_interleaved_timestamps(
    server: ServerProcess,
) -> None:
    url = f"{server.url}/live/late"
    seconds, gop = 8, 2 * FPS  # a keyframe every 2 s
    publisher = start(ffmpeg_publish_command(url, seconds, gop=gop))
    try:
        server.wait_for_line(r"publish started live/late")
        # A watcher of our own shows when the stream is 3 s in: then the late joiner starts.
        watcher = Client(server.port).connect()
        watcher.play("late")

        def three_seconds_in(event: ClientEvent) -> bool:
            return isinstance(event, MediaArrived) and event.message.timestamp >= 3000

        watcher.until(three_seconds_in, timeout=30)
        watcher.close()
        player = start(packets_command(url))
        status, out, err = finish(player, timeout=30)
        assert status == 0, err.decode(errors="replace")
    finally:
        finish(publisher)
    packets = received(out)
    worst = check_timing(packets)
    first = next(p for p in packets if p.kind == "video")
    # It joined late, at a cached keyframe (the first GOP was over), and got every frame from
    # there to the end.
    assert first.dts >= gop * VIDEO_STEP_MS, first
    video = [p for p in packets if p.kind == "video"]
    assert len(video) < seconds * FPS
    assert (seconds * FPS - len(video)) % gop == 0
    print(
        f"late joiner: first keyframe at {first.dts} ms, {len(packets)} packets, "
        f"video and audio {worst} ms apart"
    )
