"""Recordings end to end: FFmpeg publishes to the real server with the recorder plugin, then
ffprobe/FFmpeg decode the files and fms.vod's reader checks their index against their tags.

- H.264+AAC (Debian FFmpeg): the duration matches what was published, and the ``keyframes``
  index of ``onMetaData`` lists exactly the video keyframe tags, at their byte offsets.
- HEVC+Opus, AV1+Opus and a two-track multitrack stream (FFmpeg 9 from imageio-ffmpeg): FFmpeg 9
  decodes every frame of the recording, with the codecs published.
- SIGKILL in mid-recording: the file decodes up to its last complete tag; after a restart the
  application's first client triggers the repair, and the file has a duration and an index.
- ``max_seconds``: several files, each decodable from its first frame, all frames accounted for.
- ``budget_bytes``: the oldest files are deleted and the folder stays within the budget.
- A write error (files limited by RLIMIT_FSIZE, as a full disk): one log line, the recording
  stops, and a player of the live stream gets every frame.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from fms.vod.metadata import keyframes_of, read_metadata
from fms.vod.reader import FileTag, iter_tags
from tests.e2e.harness import (
    ServerProcess,
    ffmpeg_publish_command,
    finish,
    frames_by_codec,
    probe_command,
    require_client,
    run_client,
    start,
)
from tests.e2e.test_enhanced_rtmp import (
    BAD,
    FPS,
    audio,
    av1,
    decoded,
    ffmpeg9,
    h264,
    hevc,
    publish_command,
)
from tests.hostile.support import Client

__all__ = ["ffmpeg9"]  # a fixture

pytestmark = pytest.mark.e2e

AVC_KEYFRAME = 0x17
"""First byte of a legacy AVC keyframe tag (frame type 1, codec 7)."""


def config_file(tmp_path: Path, **options: Any) -> tuple[Path, Path]:
    """A configuration recording every stream of ``live``; (config, recordings folder)."""
    recordings = tmp_path / "recordings"
    lines = [
        "[[apps.live.plugins]]",
        'use = "recorder"',
        f"directory = {json.dumps(str(recordings))}",
    ]
    lines += [f"{key} = {json.dumps(value)}" for key, value in options.items()]
    config = tmp_path / "fms.toml"
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return config, recordings / "live"


def tags_of(path: Path) -> list[FileTag]:
    data = path.read_bytes()
    return list(iter_tags(lambda at, size: data[at : at + size]))


def metadata_of(path: Path) -> dict[str, Any]:
    found = read_metadata(tags_of(path)[0].body)
    assert found is not None
    return found


def probe(path: Path) -> dict[str, Any]:
    """ffprobe's view of a file: format duration, and per codec the frames it decoded."""
    result = run_client([
        require_client("ffprobe"), "-v", "error", "-count_frames",
        "-show_entries", "format=duration:stream=codec_type,codec_name,nb_read_frames",
        "-of", "json", str(path),
    ])  # fmt: skip
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    report = json.loads(result.stdout)
    return {
        "duration": float(report["format"].get("duration", 0) or 0),
        "frames": {s["codec_name"]: int(s["nb_read_frames"]) for s in report["streams"]},
    }


def assert_index_points_at_keyframes(path: Path) -> list[tuple[int, int]]:
    """The ``keyframes`` index of ``path`` is exactly its video keyframe tags (time, offset),
    read from the bytes at each position; returns it."""
    data = path.read_bytes()
    index = keyframes_of(metadata_of(path))
    for ms, offset in index:
        assert data[offset] == 9, (ms, offset)  # a video tag starts there
        timestamp = int.from_bytes(data[offset + 4 : offset + 7], "big") | data[offset + 7] << 24
        assert timestamp == ms
        assert data[offset + 11] == AVC_KEYFRAME and data[offset + 12] == 1  # a coded keyframe
    keyframes = [
        (t.timestamp, t.offset)
        for t in tags_of(path)
        if t.tag_type == 9 and t.body[0] == AVC_KEYFRAME and t.body[1] == 1
    ]
    assert index == keyframes
    return index


def video_frames(path: Path) -> int:
    """Coded video frames (not sequence headers) in the complete tags of ``path``."""
    return sum(1 for t in tags_of(path) if t.tag_type == 9 and t.body[1:2] == b"\x01")


def publish(server: ServerProcess, name: str, seconds: int, **kwargs: Any) -> None:
    status, _, err = finish(
        start(ffmpeg_publish_command(f"{server.url}/live/{name}", seconds, **kwargs)), 90
    )
    assert status == 0, err.decode(errors="replace")


def test_an_h264_aac_recording_has_its_duration_and_an_index_of_its_keyframe_tags(
    tmp_path: Path,
) -> None:
    seconds = 20  # the length the recording issue names
    config, folder = config_file(tmp_path, name="{stream}-{start:%Y%m%d-%H%M%S}.flv")
    server = ServerProcess("--log-level", "info", config=config)
    try:
        publish(server, "cam", seconds, fps=FPS, gop=FPS)
        server.wait_for_line(r"recording finished \S+cam-\d{8}-\d{6}\.flv", timeout=20)
    finally:
        assert server.stop() == 0, server.log()
    (path,) = folder.glob("cam-*.flv")
    found = probe(path)
    assert found["frames"]["h264"] == seconds * FPS
    assert found["duration"] == pytest.approx(seconds, abs=0.1)
    meta = metadata_of(path)
    assert meta["indexed"] is True and meta["filesize"] == path.stat().st_size
    assert (meta["videocodecid"], meta["audiocodecid"], meta["width"], meta["height"]) == (
        7, 10, 320, 240,
    )  # fmt: skip
    index = assert_index_points_at_keyframes(path)
    first = index[0][0]
    assert first < 100 and [ms for ms, _ in index] == [first + 1000 * s for s in range(seconds)]


@pytest.mark.parametrize(
    ("case", "tracks"),
    [
        ("hevc-opus", [hevc("320x240"), audio("libopus", "opus")]),
        ("av1-opus", [av1("320x240"), audio("libopus", "opus")]),
        ("h264-hevc-multitrack", [h264("320x240"), hevc("160x120"), audio("aac", "aac")]),
    ],
)
def test_an_enhanced_rtmp_recording_decodes_with_ffmpeg9(
    tmp_path: Path, ffmpeg9: str, case: str, tracks: list[Any]
) -> None:
    seconds = 4
    config, folder = config_file(tmp_path)
    server = ServerProcess("--log-level", "info", config=config)
    try:
        command = publish_command(ffmpeg9, f"{server.url}/live/{case}", tracks)
        command[command.index("-t") + 1] = str(seconds)
        status, _, err = finish(start(command), 90)
        assert status == 0, err.decode(errors="replace")
        server.wait_for_line(rf"recording finished \S+{case}-", timeout=20)
    finally:
        assert server.stop() == 0, server.log()
    (path,) = folder.glob(f"{case}-*.flv")
    result = run_client([ffmpeg9, "-hide_banner", "-nostats", "-i", str(path), "-map", "0",
                         "-f", "framecrc", "-"], timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    for bad in BAD:
        assert bad not in result.stderr, result.stderr.decode(errors="replace")
    streams = decoded(result.stdout, result.stderr)
    codecs = sorted(codec for codec, _ in streams.values())
    assert codecs == sorted(t.decoded_as for _s, t in tracks)
    for codec, frames in streams.values():
        if codec in ("h264", "hevc", "av1"):
            assert frames == seconds * FPS, streams
        else:  # Opus: 20 ms frames; AAC: 1024 samples at 48 kHz
            per_second = 50 if codec == "opus" else 48000 / 1024
            assert frames >= seconds * per_second - 3, streams
    duration = re.search(rb"Duration: (\d+):(\d+):([\d.]+)", result.stderr)
    assert duration is not None
    assert float(duration.group(3)) == pytest.approx(seconds, abs=0.1)
    meta = metadata_of(path)
    fourcc = {"hevc-opus": b"hvc1", "av1-opus": b"av01", "h264-hevc-multitrack": b"avc1"}[case]
    assert meta["videocodecid"] == (
        int.from_bytes(fourcc, "big") if case != "h264-hevc-multitrack" else 7
    )
    assert len(keyframes_of(meta)) == seconds


def wait_for_size(path_glob: tuple[Path, str], size: int, timeout: float = 30.0) -> Path:
    """The file matching ``path_glob`` once it has at least ``size`` bytes on disk."""
    folder, pattern = path_glob
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in folder.glob(pattern):
            if path.stat().st_size >= size:
                return path
        time.sleep(0.1)
    raise AssertionError(f"no {pattern} of {size} bytes in {folder} within {timeout} s")


def test_a_recording_killed_mid_write_plays_and_is_repaired_after_a_restart(
    tmp_path: Path,
) -> None:
    config, folder = config_file(tmp_path)
    server = ServerProcess("--log-level", "info", config=config)
    publisher = start(ffmpeg_publish_command(f"{server.url}/live/cam", 20, fps=FPS, gop=FPS))
    try:
        path = wait_for_size((folder, "cam-*.flv"), 600_000)  # a few flushes of the buffer
        server.stop(signal.SIGKILL)
    finally:
        publisher.kill()
        finish(publisher)
        server.stop(signal.SIGKILL)
    size = path.stat().st_size
    complete = tags_of(path)
    assert complete[-1].end <= size
    crashed = metadata_of(path)
    assert crashed["indexed"] is False and crashed["duration"] == 0
    frames = video_frames(path)
    found = probe(path)  # FFmpeg plays what is there
    assert frames <= found["frames"]["h264"] <= frames + 1
    assert frames > 2 * FPS

    server = ServerProcess("--log-level", "info", config=config)
    try:
        Client(server.port).connect("live")  # the application starts: its recordings are checked
        server.wait_for_line(r"recording repaired \S+cam-", timeout=30)
    finally:
        assert server.stop() == 0, server.log()
    repaired = metadata_of(path)
    assert repaired["indexed"] is True
    assert path.stat().st_size == complete[-1].end == repaired["filesize"]
    last_video = max(t.timestamp for t in complete if t.tag_type == 9)
    assert last_video / 1000 <= repaired["duration"] <= last_video / 1000 + 0.1
    assert probe(path)["duration"] == pytest.approx(repaired["duration"], abs=0.05)
    index = assert_index_points_at_keyframes(path)
    first = index[0][0]
    assert first < 100 and [ms for ms, _ in index] == [first + 1000 * s for s in range(len(index))]
    assert len(index) == (last_video - first) // 1000 + 1


def test_max_seconds_rotates_into_files_that_each_decode_from_their_first_frame(
    tmp_path: Path,
) -> None:
    seconds, period = 7, 2
    config, folder = config_file(tmp_path, max_seconds=period)
    server = ServerProcess("--log-level", "info", config=config)
    try:
        publish(server, "cam", seconds, fps=FPS, gop=FPS)
        server.wait_for_lines(r"recording finished \S+cam-", 4, timeout=20)
    finally:
        assert server.stop() == 0, server.log()
    paths = sorted(folder.glob("cam-*.flv"), key=lambda p: os.stat(p).st_mtime_ns)
    assert len(paths) == 4  # 0-2, 2-4, 4-6, 6-7 s
    total = 0
    for number, path in enumerate(paths):
        found = probe(path)
        assert set(found["frames"]) == {"h264", "aac"}
        assert found["frames"]["h264"] == video_frames(path)  # every frame decodes
        length = period if number < 3 else seconds - 3 * period
        assert found["frames"]["h264"] == length * FPS
        assert found["duration"] == pytest.approx(length, abs=0.1)
        tags = tags_of(path)
        assert {t.body[:2] for t in tags[1:3]} == {b"\x17\x00", b"\xaf\x00"}  # both headers
        first = next(t for t in tags if t.tag_type == 9 and t.body[1] == 1)
        assert first.body[0] == AVC_KEYFRAME
        total += found["frames"]["h264"]
    assert total == seconds * FPS


def test_a_disk_budget_deletes_the_oldest_recordings(tmp_path: Path) -> None:
    budget = 250_000
    config, folder = config_file(tmp_path, max_seconds=1, index_bytes=1024, budget_bytes=budget)
    server = ServerProcess("--log-level", "info", config=config)
    try:
        publish(server, "cam", 6, fps=FPS, gop=FPS)
        finished = server.wait_for_lines(r"recording finished \S+cam-", 6, timeout=20)
        deleted = [line for line in server.lines if "deleted: the budget" in line]
    finally:
        assert server.stop() == 0, server.log()
    kept = sorted(folder.glob("cam-*.flv"), key=lambda p: os.stat(p).st_mtime_ns)
    written = sum(int(re.search(r"(\d+) bytes", line).group(1)) for line in finished)  # type: ignore[union-attr]
    assert written > 2 * budget  # the budget had something to do
    assert sum(p.stat().st_size for p in kept) <= budget
    order = [re.search(r"finished (\S+\.flv)", line).group(1) for line in finished]  # type: ignore[union-attr]
    gone = [re.search(r"recording (\S+\.flv) deleted", line).group(1) for line in deleted]  # type: ignore[union-attr]
    assert gone and gone == order[: len(gone)]  # the oldest went first
    assert [str(p) for p in kept] == order[len(gone) :]
    for path in kept:
        assert probe(path)["frames"]["h264"] == video_frames(path) > 0


def test_a_write_error_stops_the_recording_with_one_line_and_live_playback_goes_on(
    tmp_path: Path,
) -> None:
    """The server may write files of at most 300 kB (RLIMIT_FSIZE: writes past it fail, as on
    a full disk); 6 s of stream is about 600 kB: the recording stops, the player gets it all."""
    import resource

    limit = 300_000

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    seconds = 6
    config, folder = config_file(tmp_path)
    server = ServerProcess("--log-level", "info", config=config, preexec_fn=small_files)
    try:
        url = f"{server.url}/live/cam"
        player = start(probe_command(url))
        server.wait_for_line(r"play live/cam for .*waiting for publisher", timeout=15)
        publish(server, "cam", seconds, fps=FPS, gop=FPS)
        status, out, err = finish(player, timeout=60)
        assert status == 0, err.decode(errors="replace")
        server.wait_for_line(r"publish stopped live/cam")
    finally:
        assert server.stop() == 0, server.log()
    assert frames_by_codec(out)["h264"] == seconds * FPS
    errors = [line for line in server.lines if " error " in line or "Traceback" in line]
    assert len(errors) == 1 and "recording live/cam to" in errors[0], server.log()
    assert "stopped: File too large" in errors[0]
    (path,) = folder.glob("cam-*.flv")
    assert path.stat().st_size <= limit
    assert probe(path)["frames"]["h264"] >= video_frames(path) > FPS  # playable as far as it goes
