"""The stream figures agree with ffprobe on what real encoders produced.

Each case encodes a few seconds of generated media with a real encoder (Debian's FFmpeg:
libx264, AAC, libmp3lame; the FFmpeg 9 of the imageio-ffmpeg wheel: libx265, SVT-AV1,
libvpx-vp9, Opus, FLAC, AC-3, E-AC-3) into Matroska, which Debian's ffprobe reads, then copies
the same bitstream into FLV (Enhanced RTMP for FFmpeg 9's codecs) with the same FFmpeg. Every
FLV tag is fed to :class:`~fms.live.stats.StreamStats` as if it arrived at its timestamp, and
the figures are compared with what ffprobe says of the Matroska file: codec, profile, level,
width and height (odd sizes and cropping windows included), frame rate, keyframe interval,
sample rate and channels. Nothing here is a committed binary: the fixtures are made at test
time by the real encoders.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from fms.live.media import describe
from fms.live.stats import StreamStats
from fms.rtmp.messages import Media
from tests.e2e.harness import require_client
from tests.support.ci import IN_CI
from tests.support.flv import read_tags

SECONDS = 3


def ffmpeg9() -> str:
    """The FFmpeg 9 of the imageio-ffmpeg wheel (Enhanced RTMP FLV, libx265, SVT-AV1...)."""
    try:
        import imageio_ffmpeg
    except ImportError:
        if IN_CI:
            pytest.fail("imageio-ffmpeg is not installed (pip install -e '.[test]')")
        pytest.skip("imageio-ffmpeg is not installed")
    return str(imageio_ffmpeg.get_ffmpeg_exe())


@dataclass(frozen=True)
class Case:
    """One encode: which FFmpeg, the video (size, rate, GOP, encoder options) and audio."""

    name: str
    modern: bool
    size: str | None = None
    rate: int = 25
    video: tuple[str, ...] = ()
    audio: tuple[str, ...] = ()
    sample_rate: int = 48000
    channels: int = 2
    extra_video: tuple[str, ...] = field(default=())
    """Size of a second video track (multitrack), or empty."""


CASES = [
    Case(
        "h264-high-640x360-aac-44k-stereo",
        False,
        "640x360",
        25,
        ("-c:v", "libx264", "-preset", "ultrafast", "-profile:v", "high", "-g", "25"),
        ("-c:a", "aac"),
        44100,
        2,
    ),
    Case(
        "h264-main-854x480-aac-48k-mono",
        False,
        "854x480",
        30,
        ("-c:v", "libx264", "-preset", "ultrafast", "-profile:v", "main", "-g", "45"),
        ("-c:a", "aac"),
        48000,
        1,
    ),
    Case(
        "h264-baseline-1920x1080-cropped",
        False,
        "1920x1080",
        25,
        ("-c:v", "libx264", "-preset", "ultrafast", "-profile:v", "baseline", "-g", "50"),
        ("-c:a", "aac"),
        22050,
        2,
    ),
    Case(
        "h264-444-426x240",
        False,
        "426x240",
        24,
        ("-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv444p", "-g", "24"),
    ),
    Case(
        "h264-422-interlaced-1280x720",
        False,
        "1280x720",
        25,
        (
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv422p",
            "-g",
            "25",
            "-flags",
            "+ildct+ilme",
        ),
    ),
    Case("mp3-22k-mono", False, None, audio=("-c:a", "libmp3lame"), sample_rate=22050, channels=1),
    Case(
        "hevc-main-854x480-opus-stereo",
        True,
        "854x480",
        25,
        (
            "-c:v",
            "libx265",
            "-preset",
            "ultrafast",
            "-x265-params",
            "log-level=error:keyint=25:min-keyint=25:scenecut=0",
        ),
        ("-c:a", "libopus"),
        48000,
        2,
    ),
    Case(
        "hevc-main10-1920x1080-flac",
        True,
        "1920x1080",
        25,
        (
            "-c:v",
            "libx265",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p10le",
            "-x265-params",
            "log-level=error:keyint=50:min-keyint=50:scenecut=0",
        ),
        ("-c:a", "flac"),
        44100,
        2,
    ),
    Case(
        "av1-642x362-ac3-5.1",
        True,
        "642x362",
        24,
        ("-c:v", "libsvtav1", "-preset", "12", "-g", "24", "-svtav1-params", "verbosity=0"),
        ("-c:a", "ac3"),
        48000,
        6,
    ),
    Case(
        "av1-1280x720-eac3",
        True,
        "1280x720",
        30,
        ("-c:v", "libsvtav1", "-preset", "12", "-g", "30", "-svtav1-params", "verbosity=0"),
        ("-c:a", "eac3"),
        44100,
        2,
    ),
    Case(
        "vp9-640x360-opus-mono",
        True,
        "640x360",
        25,
        ("-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-g", "25"),
        ("-c:a", "libopus"),
        48000,
        1,
    ),
    Case(
        "vp9-profile1-854x480",
        True,
        "854x480",
        25,
        (
            "-c:v",
            "libvpx-vp9",
            "-deadline",
            "realtime",
            "-cpu-used",
            "8",
            "-g",
            "25",
            "-pix_fmt",
            "yuv444p",
        ),
    ),
    Case(
        "hevc-multitrack-854x480-426x240",
        True,
        "854x480",
        25,
        (
            "-c:v",
            "libx265",
            "-preset",
            "ultrafast",
            "-x265-params",
            "log-level=error:keyint=25:min-keyint=25:scenecut=0",
        ),
        extra_video=("426x240",),
    ),
]


@dataclass
class Encoded:
    """The FLV tags of one encode and ffprobe's streams and packets of the same bitstream."""

    tags: list[Any]
    streams: list[dict[str, Any]]
    packets: list[dict[str, Any]]


def _encode(case: Case, directory: Path) -> Encoded:
    binary = ffmpeg9() if case.modern else require_client("ffmpeg")
    source = directory / f"{case.name}.mkv"
    flv = directory / f"{case.name}.flv"
    command = [binary, "-v", "error", "-y"]
    maps: list[str] = []
    inputs = 0
    for size in ((case.size,) if case.size else ()) + case.extra_video:
        command += ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate={case.rate}"]
        maps += ["-map", f"{inputs}:v"]
        inputs += 1
    if case.audio:
        command += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate={case.sample_rate}"]
        maps += ["-map", f"{inputs}:a"]
        command += ["-ac", str(case.channels)]
    command += [*maps, "-t", str(SECONDS), *list(case.video), *list(case.audio), str(source)]
    subprocess.run(command, check=True, capture_output=True, timeout=300)
    copy = [binary, "-v", "error", "-y", "-i", str(source), "-map", "0", "-c", "copy"]
    subprocess.run([*copy, "-f", "flv", str(flv)], check=True, capture_output=True, timeout=60)
    probe = subprocess.run(
        [
            require_client("ffprobe"),
            "-v",
            "error",
            "-show_streams",
            "-show_packets",
            "-of",
            "json",
            str(source),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    found = json.loads(probe.stdout)
    return Encoded(read_tags(flv), found["streams"], found["packets"])


def _figures(encoded: Encoded) -> dict[str, Any]:
    """Feed every tag as arriving at its own timestamp; the figures at the last one."""
    stats = StreamStats()
    last = 0
    for tag in encoded.tags:
        if tag.type_id in (8, 9):
            message = Media(tag.type_id, tag.timestamp, 1, tag.data)
            stats.observe(message, describe(tag.type_id, tag.data), tag.timestamp / 1000.0)
            last = tag.timestamp
    return stats.snapshot(last / 1000.0)


def _level_number(codec: str, level: str) -> int:
    """ffprobe's number for a level name: H.264 and VP9 x10, HEVC x30, AV1 seq_level_idx."""
    major, minor = (int(part) for part in level.split("."))
    if codec == "hevc":
        return major * 30 + minor * 3
    if codec == "av1":
        return (major - 2) * 4 + minor
    return major * 10 + minor


def _keyframe_interval(packets: list[dict[str, Any]], index: int) -> float | None:
    """Seconds between the last two keyframes of stream ``index``, as ffprobe reads them."""
    keys = [
        float(p["pts_time"])
        for p in packets
        if p["stream_index"] == index and "K" in p.get("flags", "")
    ]
    return keys[-1] - keys[-2] if len(keys) >= 2 else None


@pytest.fixture(scope="module")
def encodes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Encoded]:
    directory = tmp_path_factory.mktemp("encodes")
    return {case.name: _encode(case, directory) for case in CASES}


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_video_figures_match_ffprobe(case: Case, encodes: dict[str, Encoded]) -> None:
    """Codec, profile, level, size, frame rate and keyframe interval of every video track
    are what ffprobe reads of the same bitstream."""
    encoded = encodes[case.name]
    figures = _figures(encoded)
    probed = [s for s in encoded.streams if s["codec_type"] == "video"]
    if not probed:
        assert figures["video"] is None
        return
    video = figures["video"]
    assert video is not None
    assert len(video["tracks"]) == len(probed)
    for track, stream in zip(video["tracks"], probed, strict=True):
        assert track["codec"] == stream["codec_name"]
        assert track["width"] == stream["width"]
        assert track["height"] == stream["height"]
        assert track["source"] in ("config", "frame")
        assert track["profile"] == stream["profile"]
        if track["codec"] != "vp9":  # FFmpeg 5.1 reports no VP9 level (-99)
            assert _level_number(track["codec"], track["level"]) == stream["level"]
        rate = float(Fraction(stream["r_frame_rate"]))
        span_ms = (rate * SECONDS - 1) * 1000.0 / rate
        assert track["fps"] == pytest.approx(rate, rel=1.5 / span_ms)  # ms timestamps
        expected_gop = _keyframe_interval(encoded.packets, stream["index"])
        if expected_gop is None:
            assert track["keyframe_interval"] is None
        else:
            assert track["keyframe_interval"] == pytest.approx(expected_gop, abs=0.0015)
    assert {k: v for k, v in video.items() if k != "tracks"} == {
        k: v for k, v in video["tracks"][0].items() if k != "track_id"
    }


@pytest.mark.parametrize(
    "case", [c for c in CASES if c.audio], ids=[c.name for c in CASES if c.audio]
)
def test_audio_figures_match_ffprobe(case: Case, encodes: dict[str, Encoded]) -> None:
    """Codec, sample rate and channels are what ffprobe reads of the same bitstream."""
    encoded = encodes[case.name]
    audio = _figures(encoded)["audio"]
    (stream,) = [s for s in encoded.streams if s["codec_type"] == "audio"]
    assert audio is not None
    assert audio["codec"] == stream["codec_name"]
    assert audio["sample_rate"] == int(stream["sample_rate"])
    assert audio["channels"] == stream["channels"]
    assert audio["source"] in ("config", "frame")
    if audio["codec"] == "aac":
        assert audio["profile"] == stream["profile"]
