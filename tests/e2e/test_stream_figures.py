"""A stream's figures, end to end: a real server, a real publisher, and the bitrate-cap plugin of
docs/plugins.md reading ``stream.figures`` in ``play``.

The test first encodes a source file and measures it with ffprobe (codec, profile, level, size,
frame rate, keyframe interval, audio rate and channels, and the bitrate from ``-show_packets``);
then a publisher sends that same file with ``-re -c copy`` (the same bytes). Once the publisher
has sent 8 seconds, players come: the plugin logs the figures it read and refuses the player
whose plan allows less than the stream's bitrate, accepting the one whose plan allows more.
Debian's FFmpeg publishes H.264+AAC; the FFmpeg 9 of the imageio-ffmpeg wheel publishes
HEVC+Opus over Enhanced RTMP, and two HEVC tracks over Enhanced RTMP multitrack. The sources
are encoded at constant bitrates (VBV): the figures measure the last 5 seconds, ffprobe the
whole file.
"""

from __future__ import annotations

import json
import re
import subprocess
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.harness import ServerProcess, finish, require_client, run_client
from tests.e2e.test_plugin_doc import block
from tests.test_stats_encoders import ffmpeg9

pytestmark = pytest.mark.e2e

SECONDS = 16
"""Length of the source: the players come after 8 s, so the 5-second window is full."""
FIGURES = re.compile(r"play cam on plan (\w+): (\{.*\})$")


@dataclass
class Source:
    """What ffprobe says of the file the publisher sends."""

    video: dict[str, Any]
    audio: dict[str, Any]
    kbps: float
    """Audio and video packet bytes over the file's duration, kbit/s."""
    keyframe_interval: float


def probe(path: Path) -> dict[str, Any]:
    """ffprobe's streams and packets of ``path``."""
    command = [require_client("ffprobe"), "-v", "error", "-show_streams", "-show_packets"]
    found = run_client([*command, "-of", "json", str(path)], timeout=120)
    assert found.returncode == 0, found.stderr.decode(errors="replace")
    return dict(json.loads(found.stdout))


def measure(path: Path) -> Source:
    found = probe(path)
    (video,) = [s for s in found["streams"] if s["codec_type"] == "video"]
    (audio,) = [s for s in found["streams"] if s["codec_type"] == "audio"]
    packets = found["packets"]
    start = min(float(p["pts_time"]) for p in packets)
    end = max(float(p["pts_time"]) + float(p.get("duration_time", 0)) for p in packets)
    size = sum(int(p["size"]) for p in packets)
    keys = sorted(
        float(p["pts_time"])
        for p in packets
        if p["stream_index"] == video["index"] and "K" in p["flags"]
    )
    return Source(video, audio, size * 8 / 1000 / (end - start), keys[-1] - keys[-2])


def send(
    ffmpeg: str, source: Path, url: str, extra: list[str] | None = None
) -> subprocess.Popen[bytes]:
    """Publish ``source`` in real time, unchanged; progress lines on stdout."""
    command = [ffmpeg, "-hide_banner", "-loglevel", "error", "-nostats", "-progress", "pipe:1"]
    command += ["-re", "-i", str(source), *(extra or []), "-c", "copy", "-f", "flv", url]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_until_sent(publisher: subprocess.Popen[bytes], seconds: float) -> None:
    """Block until the publisher reports ``seconds`` of media sent (its progress lines)."""
    assert publisher.stdout is not None
    for line in publisher.stdout:
        match = re.match(rb"out_time_us=(\d+)", line)
        if match and int(match.group(1)) >= seconds * 1_000_000:
            return
    raise AssertionError(
        "the publisher ended before sending enough: "
        + (publisher.stderr.read() if publisher.stderr else b"").decode(errors="replace")
    )


def site(tmp_path: Path, source: Source) -> Path:
    """The documented plugin and a configuration whose plans sit 20 % below and 20 % above
    the source's bitrate: only a bitrate figure off by more than that misjudges a plan."""
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "bitratecap.py").write_text(block("plugins/bitratecap.py"))
    config = block("fms-bitratecap.toml").replace(
        "plans = { basic = 1500.0, pro = 8000.0 }",
        f"plans = {{ basic = {source.kbps * 0.8:.1f}, pro = {source.kbps * 1.2:.1f} }}",
    )
    assert "basic = 1500.0" not in config
    config += '\n[http]\nenabled = true\nhost = "127.0.0.1"\nport = 0\n'
    (tmp_path / "fms.toml").write_text(config)
    return tmp_path / "fms.toml"


def api_figures(server: ServerProcess) -> dict[str, Any]:
    """The stream ``live/cam`` as the HTTP API shows it, and as /metrics counts it."""
    line = server.wait_for_line(r"listening on http://", timeout=30)
    match = re.search(r"listening on (http://[^\s/]+)", line)
    assert match is not None, line
    base = match.group(1)
    with urllib.request.urlopen(f"{base}/api/v1/streams/live/cam", timeout=30) as answer:
        stream = dict(json.load(answer))
    with urllib.request.urlopen(f"{base}/metrics", timeout=30) as answer:
        text = answer.read().decode()
    samples = {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.labels.get("app") == "live" and sample.labels.get("stream") == "cam"
    }
    # the metrics, read after the API, count the same stream: as many players, and at least
    # the bytes the API had counted
    assert samples["fms_stream_players"] == stream["players"]
    assert samples["fms_stream_bytes_in_total"] >= stream["bytes_in"] > 0
    return stream


def figures_logged(server: ServerProcess, plan: str) -> dict[str, Any]:
    line = server.wait_for_line(rf"play cam on plan {plan}: ", timeout=30)
    match = FIGURES.search(line)
    assert match is not None, line
    return dict(json.loads(match.group(2)))


def check_figures(figures: dict[str, Any], source: Source, fourcc: str) -> None:
    video, audio = figures["video"], figures["audio"]
    assert video["codec"] == source.video["codec_name"]
    assert video["fourcc"] == fourcc
    assert (video["width"], video["height"]) == (source.video["width"], source.video["height"])
    assert video["source"] == "config"
    assert video["profile"] == source.video["profile"]
    assert video["fps"] == pytest.approx(float(Fraction(source.video["r_frame_rate"])), rel=1e-3)
    assert video["keyframe_interval"] == pytest.approx(source.keyframe_interval, abs=0.002)
    assert audio["codec"] == source.audio["codec_name"]
    assert audio["sample_rate"] == int(source.audio["sample_rate"])
    assert audio["channels"] == source.audio["channels"]
    assert figures["bitrate_kbps"]["total"] == pytest.approx(source.kbps, rel=0.10)
    assert figures["uptime"] >= 7.0
    assert figures["published"] is True


def refused_and_accepted(
    server: ServerProcess, player: Callable[[str], list[str]], url: str
) -> bytes:
    """Play on plan basic (refused) then pro (accepted); the accepted player's output."""
    basic = run_client(player(f"{url}?plan=basic"), timeout=60)
    assert basic.returncode != 0
    server.wait_for_line(
        r"play live/cam for \S+ refused by the application: \d+ kbit/s is above plan basic's",
        timeout=30,
    )
    pro = run_client(player(f"{url}?plan=pro"), timeout=60)
    assert pro.returncode == 0, pro.stderr.decode(errors="replace")
    return pro.stdout + pro.stderr


def test_h264_aac_figures_match_the_source_and_the_plugin_caps_the_bitrate(
    tmp_path: Path,
) -> None:
    ffmpeg = require_client("ffmpeg")
    source_file = tmp_path / "source.flv"
    encode = [ffmpeg, "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25"]
    encode += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100", "-t", str(SECONDS)]
    encode += ["-c:v", "libx264", "-preset", "veryfast", "-g", "50", "-sc_threshold", "0"]
    encode += ["-b:v", "800k", "-maxrate", "800k", "-bufsize", "400k"]
    encode += ["-x264-params", "nal-hrd=cbr", "-pix_fmt", "yuv420p"]
    encode += ["-c:a", "aac", "-b:a", "128k", "-ar", "44100", "-ac", "2", str(source_file)]
    assert run_client(encode, timeout=300).returncode == 0
    source = measure(source_file)
    server = ServerProcess(config=site(tmp_path, source))
    try:
        url = f"{server.url}/live/cam"
        publisher = send(ffmpeg, source_file, url)
        server.wait_for_line(r"publish started live/cam", timeout=30)
        wait_until_sent(publisher, 8)
        player = [require_client("ffprobe"), "-v", "error", "-show_entries"]
        player += ["stream=codec_name,width,height", "-of", "json"]
        played = refused_and_accepted(server, lambda u: [*player, u], url)
        decoded = json.loads(played[: played.rindex(b"}") + 1])["streams"]
        streams = {s["codec_name"]: s for s in decoded}
        assert (streams["h264"]["width"], streams["h264"]["height"]) == (640, 360)
        for plan in ("basic", "pro"):
            check_figures(figures_logged(server, plan), source, "avc1")
        assert figures_logged(server, "basic")["video"]["level"] == (
            f"{source.video['level'] // 10}.{source.video['level'] % 10}"
        )
        assert finish(publisher, timeout=60)[0] == 0
    finally:
        assert server.stop() == 0


def test_hevc_opus_over_enhanced_rtmp_figures_match_the_source(tmp_path: Path) -> None:
    modern = ffmpeg9()
    source_file = tmp_path / "source.mkv"  # Debian's ffprobe reads HEVC/Opus in Matroska
    encode = [modern, "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=854x480:rate=25"]
    encode += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", str(SECONDS)]
    encode += ["-c:v", "libx265", "-preset", "ultrafast", "-b:v", "600k"]
    encode += ["-x265-params", "log-level=error:keyint=50:min-keyint=50:scenecut=0"
               ":vbv-maxrate=600:vbv-bufsize=300:strict-cbr=1"]  # fmt: skip
    encode += ["-c:a", "libopus", "-b:a", "96k", "-ac", "2", str(source_file)]
    assert run_client(encode, timeout=300).returncode == 0
    source = measure(source_file)
    server = ServerProcess(config=site(tmp_path, source))
    try:
        url = f"{server.url}/live/cam"
        publisher = send(modern, source_file, url)
        server.wait_for_line(r"publish started live/cam", timeout=30)
        wait_until_sent(publisher, 8)
        played = refused_and_accepted(
            server,
            lambda u: (
                [
                    modern,
                    "-hide_banner",
                    "-rw_timeout",
                    "20000000",
                    "-i",
                    u,
                    "-frames:v",
                    "10",
                    "-f",
                    "null",
                    "-",
                ]
            ),
            url,
        )
        for plan in ("basic", "pro"):
            check_figures(figures_logged(server, plan), source, "hvc1")
        # the HTTP API reports the same figures as the plugin's view (issue 14)
        check_figures(api_figures(server), source, "hvc1")
        assert re.search(rb"Video: hevc.*854x480", played)
        assert finish(publisher, timeout=60)[0] == 0
    finally:
        assert server.stop() == 0


def test_every_track_of_a_multitrack_publish_has_figures_matching_the_source(
    tmp_path: Path,
) -> None:
    """FFmpeg 9 publishes two HEVC tracks (854x480 and 426x240) over Enhanced RTMP
    multitrack: each track's codec, size, frame rate and bitrate are those of its source
    stream (the bitrate within 10 % of its packets' bytes), and the stream's video figures
    are track 0's."""
    modern = ffmpeg9()
    source_file = tmp_path / "source.mkv"
    encode = [modern, "-v", "error", "-y"]
    for size in ("854x480", "426x240"):
        encode += ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate=25"]
    encode += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", str(SECONDS)]
    encode += ["-map", "0:v", "-map", "1:v", "-map", "2:a", "-c:v", "libx265"]
    encode += ["-preset", "ultrafast", "-b:v:0", "600k", "-b:v:1", "200k"]
    encode += ["-maxrate:v:0", "600k", "-bufsize:v:0", "300k"]
    encode += ["-maxrate:v:1", "200k", "-bufsize:v:1", "100k"]  # constant rates: see above
    encode += ["-x265-params", "log-level=error:keyint=50:min-keyint=50:scenecut=0:strict-cbr=1"]
    encode += ["-c:a", "libopus", "-b:a", "64k", "-ac", "2", str(source_file)]
    assert run_client(encode, timeout=300).returncode == 0
    source = measure_tracks(source_file)
    server = ServerProcess(config=site(tmp_path, Source({}, {}, 1.0, 0.0)))
    try:
        url = f"{server.url}/live/cam"
        publisher = send(modern, source_file, url, ["-map", "0"])
        server.wait_for_line(r"publish started live/cam", timeout=30)
        wait_until_sent(publisher, 8)
        player = [require_client("ffprobe"), "-v", "error", f"{url}?plan=basic"]
        assert run_client(player, timeout=60).returncode != 0  # 1 kbit/s is below any stream
        video = figures_logged(server, "basic")["video"]
        assert len(video["tracks"]) == len(source) == 2
        for track, (stream, kbps) in zip(video["tracks"], source, strict=True):
            assert track["track_id"] == stream["index"]
            assert track["codec"] == stream["codec_name"] == "hevc"
            assert (track["width"], track["height"]) == (stream["width"], stream["height"])
            assert track["fps"] == pytest.approx(float(Fraction(stream["r_frame_rate"])))
            assert track["bitrate_kbps"] == pytest.approx(kbps, rel=0.10)
        assert video["width"] == video["tracks"][0]["width"] == 854
        assert finish(publisher, timeout=60)[0] == 0
    finally:
        assert server.stop() == 0


def measure_tracks(path: Path) -> list[tuple[dict[str, Any], float]]:
    """Each video stream of ``path`` with its bitrate (its packets' bytes over the file's
    duration, kbit/s), as ffprobe reads them."""
    found = probe(path)
    packets = found["packets"]
    start = min(float(p["pts_time"]) for p in packets)
    end = max(float(p["pts_time"]) + float(p.get("duration_time", 0)) for p in packets)
    out = []
    for stream in found["streams"]:
        if stream["codec_type"] == "video":
            size = sum(int(p["size"]) for p in packets if p["stream_index"] == stream["index"])
            out.append((stream, size * 8 / 1000 / (end - start)))
    return out
