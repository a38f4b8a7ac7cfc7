"""Real decoders read what our fMP4 muxer writes: FFmpeg makes H.264+AAC into FLV, the tags go
through fms.live.flv.read_file and fms.hls.source (as a published stream's messages would),
our muxer writes init + fragments, and ffprobe/ffmpeg decode the file without a complaint and
with as many frames as were muxed."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from fms.hls.fmp4 import Fmp4Muxer, segment_header
from fms.hls.samples import Sample, TrackConfig
from fms.hls.source import read_message
from fms.live.flv import read_file
from tests.e2e.harness import require_client
from tests.support.ci import IN_CI

WIDTH, HEIGHT = 320, 240


def _flv(
    path: Path, video: list[str], audio: list[str], ffmpeg: str = "", rate: int = 44100
) -> Path:
    ffmpeg = ffmpeg or require_client("ffmpeg")
    subprocess.run(
        [ffmpeg, "-v", "error", "-y",
         "-f", "lavfi", "-i", f"testsrc=size={WIDTH}x{HEIGHT}:rate=25",
         "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate={rate}",
         "-t", "3", *video, *audio, "-f", "flv", str(path)],
        check=True, timeout=120,
    )  # fmt: skip
    return path


@pytest.fixture(scope="module")
def h264_aac_flv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 s of H.264 (B-frames, so composition offsets matter; a keyframe a second) + AAC."""
    out = tmp_path_factory.mktemp("fmp4") / "src.flv"
    video = ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-g", "25", "-bf", "2"]
    return _flv(out, video, ["-c:a", "aac", "-b:a", "64k"])


def ffmpeg9() -> str:
    """The static FFmpeg of the imageio-ffmpeg wheel: Debian's 5.1 writes no Enhanced RTMP."""
    try:
        import imageio_ffmpeg
    except ImportError:
        message = "imageio-ffmpeg is not installed (pip install -e '.[test]')"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return str(imageio_ffmpeg.get_ffmpeg_exe())


def samples_of(path: Path) -> tuple[list[TrackConfig], list[Sample]]:
    """The configurations (last of each kind) and samples of an FLV file's tags."""
    _, tags = read_file(path.read_bytes())
    configs: dict[str, TrackConfig] = {}
    samples: list[Sample] = []
    for tag in tags:
        if tag.tag_type not in (8, 9):
            continue
        for item in read_message(tag.tag_type, tag.timestamp, tag.payload):
            if isinstance(item, TrackConfig):
                configs[item.kind] = item
            else:
                samples.append(item)
    return list(configs.values()), samples


def mux_by_gop(configs: list[TrackConfig], samples: list[Sample]) -> bytes:
    """init + one segment (styp + fragment) per video GOP, each fragment's ends being the next
    fragment's first decode times (what the segmenter does)."""
    muxer = Fmp4Muxer(configs)
    groups: list[dict[tuple[str, int], list[Sample]]] = []
    for sample in samples:
        if not groups or (sample.kind == "video" and sample.keyframe):
            groups.append({("video", 0): [], ("audio", 0): []})
        groups[-1][(sample.kind, 0)].append(sample)
    out = [muxer.init]
    for i, group in enumerate(groups):
        ends = {}
        if i + 1 < len(groups):
            for key, run in groups[i + 1].items():
                if run:
                    ends[key] = run[0].dts
        out.append(segment_header() + muxer.fragment(group, ends))  # type: ignore[arg-type]
    return b"".join(out)


def probe(path: Path) -> list[dict[str, object]]:
    ffprobe = require_client("ffprobe")
    result = subprocess.run(
        [ffprobe, "-v", "error", "-count_frames", "-show_entries",
         "stream=codec_name,width,height,nb_read_frames,sample_rate", "-of", "json", str(path)],
        check=True, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    streams: list[dict[str, object]] = json.loads(result.stdout)["streams"]
    return streams


def decode_errors(path: Path) -> str:
    ffmpeg = require_client("ffmpeg")
    result = subprocess.run(
        [ffmpeg, "-v", "error", "-i", str(path), "-f", "null", "-"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    return result.stderr + ("" if result.returncode == 0 else f"exit {result.returncode}")


def test_h264_aac_fragments_decode_frame_for_frame(h264_aac_flv: Path, tmp_path: Path) -> None:
    configs, samples = samples_of(h264_aac_flv)
    assert sorted(c.codec for c in configs) == ["avc1", "mp4a"]
    assert any(s.cts for s in samples if s.kind == "video")  # B-frames: offsets are exercised
    out = tmp_path / "out.mp4"
    out.write_bytes(mux_by_gop(configs, samples))
    streams = {s["codec_name"]: s for s in probe(out)}
    assert set(streams) == {"h264", "aac"}
    video, audio = streams["h264"], streams["aac"]
    assert (video["width"], video["height"]) == (WIDTH, HEIGHT)
    assert int(str(video["nb_read_frames"])) == sum(1 for s in samples if s.kind == "video")
    assert int(str(audio["nb_read_frames"])) == sum(1 for s in samples if s.kind == "audio")
    assert audio["sample_rate"] == "44100"
    assert decode_errors(out) == ""


def check_decodes(
    configs: list[TrackConfig], samples: list[Sample], out: Path, names: tuple[str, str]
) -> None:
    out.write_bytes(mux_by_gop(configs, samples))
    streams = {s["codec_name"]: s for s in probe(out)}
    assert set(streams) == set(names)
    video, audio = streams[names[0]], streams[names[1]]
    assert (video["width"], video["height"]) == (WIDTH, HEIGHT)
    assert int(str(video["nb_read_frames"])) == sum(1 for s in samples if s.kind == "video")
    assert int(str(audio["nb_read_frames"])) == sum(1 for s in samples if s.kind == "audio")
    assert decode_errors(out) == ""


def test_hevc_aac_from_enhanced_rtmp_decode_frame_for_frame(tmp_path: Path) -> None:
    """HEVC as FFmpeg 9 writes it (Enhanced RTMP hvc1 tags, CodedFrames with composition
    times) goes into hvc1 + hvcC and decodes."""
    params = "keyint=25:min-keyint=25:scenecut=0:log-level=error"
    video = [
        "-c:v",
        "libx265",
        "-preset",
        "ultrafast",
        "-x265-params",
        params,
        "-pix_fmt",
        "yuv420p",
    ]
    flv = _flv(tmp_path / "hevc.flv", video, ["-c:a", "aac"], ffmpeg9())
    configs, samples = samples_of(flv)
    assert sorted(c.codec for c in configs) == ["hvc1", "mp4a"]
    check_decodes(configs, samples, tmp_path / "hevc.mp4", ("hevc", "aac"))


def test_av1_opus_from_enhanced_rtmp_decode_frame_for_frame(tmp_path: Path) -> None:
    """AV1 + Opus (Enhanced RTMP av01 and Opus tags) go into av01 + av1C and Opus + dOps."""
    video = ["-c:v", "libsvtav1", "-preset", "10", "-g", "25", "-pix_fmt", "yuv420p"]
    flv = _flv(tmp_path / "av1.flv", video, ["-c:a", "libopus"], ffmpeg9(), rate=48000)
    configs, samples = samples_of(flv)
    assert sorted(c.codec for c in configs) == ["Opus", "av01"]
    check_decodes(configs, samples, tmp_path / "av1.mp4", ("av1", "opus"))
