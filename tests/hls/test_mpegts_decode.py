"""Real decoders read the MPEG-TS segments: FFmpeg encodes H.264 + AAC to FLV, the frames go
through the muxer in three keyframe-aligned segments, and Debian's FFmpeg (5.1) and the
FFmpeg 9 of the imageio-ffmpeg wheel decode each segment alone, the segments in a row, and the
segments as an HLS playlist over HTTP."""

from __future__ import annotations

import dataclasses
import itertools
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from fms.hls.mpegts import VIDEO_PID, TransportStreamMuxer
from fms.hls.samples import Sample, TrackConfig
from tests.e2e.harness import require_client
from tests.hls import ts_reader
from tests.hls.ts_media import cut_at_keyframes, encode_flv, read_media
from tests.support.ci import IN_CI

RATE = 25
GOP = 25
SEGMENTS = 3


@dataclass(frozen=True)
class Segment:
    path: Path
    video: int  # video samples muxed
    audio: int  # audio frames muxed
    samples: list[Sample]
    video_config: TrackConfig
    audio_config: TrackConfig


def ffmpeg9() -> str:
    try:
        import imageio_ffmpeg
    except ImportError:
        if IN_CI:
            pytest.fail("imageio-ffmpeg is not installed (pip install -e '.[test]')")
        pytest.skip("imageio-ffmpeg is not installed")
    return str(imageio_ffmpeg.get_ffmpeg_exe())


@pytest.fixture(scope="module")
def segments(tmp_path_factory: pytest.TempPathFactory) -> list[Segment]:
    """Three 1 s segments (25 frames of 320x240 each, a keyframe first) of a 3 s encode."""
    ffmpeg = require_client("ffmpeg")
    folder = tmp_path_factory.mktemp("ts")
    media = read_media(encode_flv(ffmpeg, folder / "in.flv", seconds=3, rate=RATE, gop=GOP))
    muxer = TransportStreamMuxer([media.video, media.audio])
    made = []
    for index, samples in enumerate(cut_at_keyframes(media.samples, SEGMENTS)):
        path = folder / f"seg{index}.ts"
        path.write_bytes(muxer.segment(samples))
        video = sum(s.kind == "video" for s in samples)
        made.append(Segment(path, video, len(samples) - video, samples, media.video, media.audio))
    assert [s.video for s in made] == [GOP] * SEGMENTS
    assert all(s.samples[0].keyframe for s in made)
    return made


def probe(target: str) -> dict[str, dict[str, object]]:
    """ffprobe's streams of ``target`` by codec type, frames counted by decoding them."""
    out = subprocess.run(
        [require_client("ffprobe"), "-v", "error", "-count_frames", "-show_entries",
         "stream=codec_type,codec_name,profile,width,height,sample_rate,channels,nb_read_frames",
         "-of", "json", target],
        capture_output=True, text=True, check=True, timeout=120,
    ).stdout  # fmt: skip
    return {s["codec_type"]: s for s in json.loads(out)["streams"]}


def video_pts(target: str) -> list[int]:
    """The presentation times (90 kHz) of the decoded video frames, in output order."""
    out = subprocess.run(
        [require_client("ffprobe"), "-v", "error", "-select_streams", "v", "-show_entries",
         "frame=pts", "-of", "csv=p=0", target],
        capture_output=True, text=True, check=True, timeout=120,
    ).stdout  # fmt: skip
    return [int(line.strip(",")) for line in out.split()]


def decode_errors(ffmpeg: str, target: str) -> str:
    """What ``ffmpeg -v error`` says while decoding every stream of ``target`` to nothing."""
    run = subprocess.run(
        [ffmpeg, "-nostdin", "-v", "error", "-i", target, "-map", "0", "-f", "null", "-"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    return run.stdout + run.stderr


def test_each_segment_decodes_alone_as_its_h264_and_aac_frames(segments: list[Segment]) -> None:
    """Codecs, picture size, the H.264 and AAC profiles, sample rate and channels as FFmpeg
    reads them from the source FLV (whose AAC configuration sits outside the frames, where
    the TS has only the ADTS headers), and every frame decoded."""
    source = probe(str(segments[0].path.parent / "in.flv"))
    for segment in segments:
        streams = probe(str(segment.path))
        video, audio = streams["video"], streams["audio"]
        assert (video["codec_name"], video["width"], video["height"]) == ("h264", 320, 240)
        assert video["profile"] == source["video"]["profile"]
        assert audio["codec_name"] == "aac"
        for key in ("profile", "sample_rate", "channels"):
            assert audio[key] == source["audio"][key], key
        assert int(str(video["nb_read_frames"])) == segment.video
        assert int(str(audio["nb_read_frames"])) == segment.audio


@pytest.mark.parametrize("which", ["debian", "ffmpeg9"])
def test_each_segment_decodes_without_a_word_from_ffmpeg(
    segments: list[Segment], which: str
) -> None:
    ffmpeg = require_client("ffmpeg") if which == "debian" else ffmpeg9()
    for segment in segments:
        assert decode_errors(ffmpeg, str(segment.path)) == ""


def test_the_segments_in_a_row_are_one_continuous_stream(
    segments: list[Segment], tmp_path: Path
) -> None:
    """Read one after the other (as a player does): no continuity counter error, every frame
    decoded, and the video frames 40 ms (3600 ticks) apart from the first to the last."""
    whole = tmp_path / "whole.ts"
    whole.write_bytes(b"".join(s.path.read_bytes() for s in segments))
    run = subprocess.run(
        [require_client("ffmpeg"), "-nostdin", "-v", "debug", "-i", str(whole), "-map", "0",
         "-f", "null", "-"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0
    assert "Continuity check failed" not in run.stderr
    streams = probe(str(whole))
    assert int(str(streams["video"]["nb_read_frames"])) == sum(s.video for s in segments)
    assert int(str(streams["audio"]["nb_read_frames"])) == sum(s.audio for s in segments)
    pts = sorted(video_pts(str(whole)))
    assert len(pts) == RATE * SEGMENTS
    assert {b - a for a, b in itertools.pairwise(pts)} == {90_000 // RATE}


def test_dropping_a_segment_is_seen_as_a_continuity_error(
    segments: list[Segment], tmp_path: Path
) -> None:
    """The check above can fail: the first and the last segment without the middle one."""
    gap = tmp_path / "gap.ts"
    gap.write_bytes(segments[0].path.read_bytes() + segments[2].path.read_bytes())
    run = subprocess.run(
        [require_client("ffmpeg"), "-nostdin", "-v", "debug", "-i", str(gap), "-f", "null", "-"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert "Continuity check failed" in run.stderr


@pytest.fixture
def http_folder(tmp_path: Path) -> Iterator[tuple[Path, str, subprocess.Popen[str]]]:
    """A folder served by Python's http.server in its own process on 127.0.0.1 and a free
    port (the port it prints once it listens)."""
    server = subprocess.Popen(
        [sys.executable, "-u", "-m", "http.server", "--bind", "127.0.0.1", "--directory",
         str(tmp_path), "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        line = server.stdout.readline()  # "Serving HTTP on 127.0.0.1 port N (...) ..."
        port = int(line.split(" port ")[1].split()[0])
        yield tmp_path, f"http://127.0.0.1:{port}", server
    finally:
        server.kill()
        server.wait(timeout=30)


@pytest.mark.parametrize("which", ["debian", "ffmpeg9"])
def test_the_segments_play_as_an_hls_playlist_over_http(
    segments: list[Segment], http_folder: tuple[Path, str, subprocess.Popen[str]], which: str
) -> None:
    """A hand-written RFC 8216 media playlist of the three segments: FFmpeg's HLS demuxer
    (Debian's 5.1 and FFmpeg 9) fetches each segment and decodes every frame, without a word
    at error level."""
    ffmpeg = require_client("ffmpeg") if which == "debian" else ffmpeg9()
    folder, base, server = http_folder
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-TARGETDURATION:1", "#EXT-X-MEDIA-SEQUENCE:0"]
    for segment in segments:
        (folder / segment.path.name).write_bytes(segment.path.read_bytes())
        lines += [f"#EXTINF:{segment.video / RATE:.3f},", segment.path.name]
    (folder / "index.m3u8").write_text("\n".join([*lines, "#EXT-X-ENDLIST", ""]))
    url = f"{base}/index.m3u8"
    assert decode_errors(ffmpeg, url) == ""
    streams = probe(url)
    assert int(str(streams["video"]["nb_read_frames"])) == sum(s.video for s in segments)
    assert int(str(streams["audio"]["nb_read_frames"])) == sum(s.audio for s in segments)
    server.kill()
    _, log = server.communicate(timeout=30)
    for segment in segments:
        assert f'GET /{segment.path.name} HTTP/1.1" 200' in log


def test_segments_across_the_33_bit_wrap_decode_as_one_continuous_stream(
    segments: list[Segment], tmp_path: Path
) -> None:
    """The same frames 26.5 hours later, so that the 90 kHz clock wraps 1.5 s into the stream
    (in the second segment): FFmpeg decodes every frame and its unwrapped video times stay
    40 ms apart."""
    shift = (1 << 33) // 90 - 1_000 - 1_500  # ms; the muxer adds 1 s (TIMESTAMP_OFFSET)
    muxer = TransportStreamMuxer([segments[0].video_config, segments[0].audio_config])
    moved = [[dataclasses.replace(s, dts=s.dts + shift) for s in seg.samples] for seg in segments]
    whole = tmp_path / "wrap.ts"
    whole.write_bytes(b"".join(muxer.segment(samples) for samples in moved))
    dts = [p.dts for p in ts_reader.pes_packets(whole.read_bytes(), {VIDEO_PID})]
    assert any(b is not None and a is not None and b < a for a, b in itertools.pairwise(dts))
    assert decode_errors(require_client("ffmpeg"), str(whole)) == ""
    streams = probe(str(whole))
    assert int(str(streams["video"]["nb_read_frames"])) == sum(s.video for s in segments)
    assert int(str(streams["audio"]["nb_read_frames"])) == sum(s.audio for s in segments)
    pts = sorted(video_pts(str(whole)))
    assert {b - a for a, b in itertools.pairwise(pts)} == {90_000 // RATE}


@pytest.mark.parametrize("kind", ["audio", "video"])
def test_a_stream_of_one_track_decodes_with_its_clock_on_that_track(
    segments: list[Segment], tmp_path: Path, kind: str
) -> None:
    """Audio-only (the PCR on the audio PID) and video-only streams: one stream in the file,
    every frame decoded, nothing said at error level."""
    config = segments[0].audio_config if kind == "audio" else segments[0].video_config
    muxer = TransportStreamMuxer([config])
    path = tmp_path / f"{kind}.ts"
    path.write_bytes(
        b"".join(muxer.segment([s for s in seg.samples if s.kind == kind]) for seg in segments)
    )
    assert decode_errors(require_client("ffmpeg"), str(path)) == ""
    streams = probe(str(path))
    assert list(streams) == [kind]
    sent = sum(s.audio if kind == "audio" else s.video for s in segments)
    assert int(str(streams[kind]["nb_read_frames"])) == sent
