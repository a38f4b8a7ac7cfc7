"""HTTP-FLV end to end: a real server process, Debian's FFmpeg publishing over RTMP, and real
HTTP clients (FFmpeg, ffprobe, curl) reading ``http://127.0.0.1:PORT/live/cam.flv``.

What is checked is what the clients got: the packets FFmpeg demuxes from the HTTP response are
bit for bit those of the published file (``-f framemd5`` over ``-c copy``: every packet's size
and MD5, and the codec extradata); ffprobe decodes every frame; a late joiner's first packet is
a keyframe and every packet it got decodes; the FLV header's flags are those of the tracks the
stream carries and ffprobe finds only those; a viewer that came before the publisher gets the
stream from its start, and every client exits cleanly when the publisher stops (the chunked
response ends with its terminating chunk); plugins' refusals are 403, an unknown stream 404, a
bad name 400; CORS preflight is answered; FFmpeg 9 reads the HEVC+AAC that FFmpeg 9 publishes
over Enhanced RTMP; a viewer that never reads is closed by the fan-out's bounds while another
viewer gets every frame.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from fms.live import flv
from tests.e2e.harness import (
    ServerProcess,
    finish,
    frames_by_codec,
    probe_command,
    require_client,
    run_client,
    start,
)
from tests.support.ci import IN_CI

pytestmark = pytest.mark.e2e

HTTP_LISTENING = re.compile(r"listening on (http://\S+)/")
FPS = 25
WAITING = r"HTTP-FLV play live/cam for \S+ \(waiting for publisher\)"


def flv_server(
    tmp_path: Path, extra: str = "", flv_wait: float = 30.0
) -> tuple[ServerProcess, str]:
    """A server with the HTTP listener on a free port; (server, ``http://HOST:PORT``)."""
    config = tmp_path / "fms.toml"
    config.write_text(f"[http]\nenabled = true\nport = 0\nflv_wait = {flv_wait}\n{extra}")
    server = ServerProcess("--config", str(config))
    match = HTTP_LISTENING.search(server.wait_for_line(HTTP_LISTENING, timeout=20))
    assert match is not None
    return server, match.group(1)


def make_source(
    path: Path,
    seconds: float,
    *,
    audio: bool = True,
    video: bool = True,
    size: str = "320x240",
    noise: bool = False,
) -> Path:
    """An FLV file of generated H.264 (keyframe every second, 25 fps) and/or AAC; ``noise``:
    random pictures (about 12 Mbit/s at 480x270)."""
    command = [require_client("ffmpeg"), "-hide_banner", "-loglevel", "error", "-y"]
    if video:
        picture = f"testsrc2=size={size}:rate={FPS}"
        if noise:
            picture = f"nullsrc=s={size}:r={FPS},geq=lum='random(1)*255':cb=128:cr=128"
        command += ["-f", "lavfi", "-i", picture]
    if audio:
        command += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"]
    command += ["-t", str(seconds)]
    if video:
        command += ["-c:v", "libx264", "-preset", "ultrafast", "-g", str(FPS)]
        command += ["-pix_fmt", "yuv420p"]
    if audio:
        command += ["-c:a", "aac", "-b:a", "64k"]
    result = run_client([*command, str(path)], timeout=120)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    return path


def publish(source: Path, rtmp_url: str) -> subprocess.Popen[bytes]:
    """FFmpeg sending ``source`` as it is (``-c copy``) in real time to ``rtmp_url``."""
    return start(
        [
            require_client("ffmpeg"),
            "-hide_banner",
            "-loglevel",
            "error",
            "-re",
            "-i",
            str(source),
            "-c",
            "copy",
            "-f",
            "flv",
            rtmp_url,
        ]
    )


def framemd5_command(url: str, out: Path) -> list[str]:
    """FFmpeg demuxing ``url`` and hashing every packet as it is (no decoding)."""
    command = [require_client("ffmpeg"), "-v", "error", "-i", url, "-map", "0", "-c", "copy"]
    return [*command, "-f", "framemd5", "-y", str(out)]


def packets(framemd5: Path) -> list[str]:
    """The framemd5 lines that describe the media: streams, extradata and every packet (the
    ``#software`` line names the writer's version, nothing of the stream)."""
    return [
        line
        for line in framemd5.read_text().splitlines()
        if line.strip() and not line.startswith("#software")
    ]


def frame_counts(framecrc: Path) -> dict[int, int]:
    """Decoded frames per stream index of a ``-f framecrc`` file."""
    counts: dict[int, int] = {}
    for line in framecrc.read_text().splitlines():
        if line and not line.startswith("#"):
            index = int(line.split(",", 1)[0])
            counts[index] = counts.get(index, 0) + 1
    return counts


def curl(url: str, out: Path, *extra: str) -> subprocess.Popen[bytes]:
    """curl saving the response body to ``out`` (and its headers to ``out.headers``)."""
    command = [require_client("curl"), "-s", "-N", "-o", str(out), "-D", f"{out}.headers"]
    return start([*command, *extra, url])


def stream_types(path_or_url: str) -> list[str]:
    result = run_client(
        [
            require_client("ffprobe"),
            "-v",
            "error",
            "-show_entries",
            "stream=codec_type",
            "-of",
            "csv=p=0",
            path_or_url,
        ]
    )
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    return result.stdout.decode().split()


def status_of(
    url: str, method: str = "GET", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def test_h264_aac_reaches_http_viewers_bit_exact_from_before_the_publish_to_its_end(
    tmp_path: Path,
) -> None:
    """Three viewers wait before the publisher: FFmpeg's packets equal the published file's
    (extradata, sizes, MD5s, timestamps), ffprobe decodes as many frames as the file has, curl
    gets a chunked ``video/x-flv`` whose header flags say audio and video, and all three end
    with status 0 when the publisher stops."""
    source = make_source(tmp_path / "src.flv", 4)
    expected = tmp_path / "src.md5"
    assert run_client(framemd5_command(str(source), expected)).returncode == 0
    server, http = flv_server(tmp_path)
    try:
        url = f"{http}/live/cam.flv"
        got = tmp_path / "got.md5"
        viewers = [start(framemd5_command(url, got)), start(probe_command(url))]
        viewers.append(curl(url, tmp_path / "body.flv"))
        server.wait_for_lines(WAITING, 3, timeout=30)
        publisher = publish(source, f"{server.url}/live/cam")
        assert finish(publisher)[0] == 0
        results = [finish(viewer, timeout=60) for viewer in viewers]
        for code, _, err in results:
            assert code == 0, err.decode(errors="replace")
        assert packets(got) == packets(expected)
        assert frames_by_codec(results[1][1]) == frames_by_codec(
            run_client(probe_command(str(source))).stdout
        )
        headers = (tmp_path / "body.flv.headers").read_text().lower()
        assert "content-type: video/x-flv" in headers
        assert "transfer-encoding: chunked" in headers
        flags, tags = flv.read_file((tmp_path / "body.flv").read_bytes())
        assert flags == flv.FLAG_AUDIO | flv.FLAG_VIDEO
        assert tags[0].tag_type == flv.TAG_SCRIPT and tags[0].timestamp == 0
        assert tags[1].timestamp == 0  # the publish's first media message is at 0
        server.wait_for_line(r"HTTP-FLV play live/cam for \S+ ended: the publisher left")
    finally:
        server.stop()


def test_a_late_joiner_starts_at_a_keyframe_and_decodes_everything_it_gets(
    tmp_path: Path,
) -> None:
    source = make_source(tmp_path / "src.flv", 8)
    server, http = flv_server(tmp_path)
    try:
        url = f"{http}/live/cam.flv"
        early = tmp_path / "early.flv"
        first = curl(url, early)
        server.wait_for_line(WAITING, timeout=30)
        publisher = publish(source, f"{server.url}/live/cam")
        deadline = time.monotonic() + 60
        while True:  # join once the early viewer has the keyframe at 3 s: the server has it
            video = (
                [t for t in flv.read_file(early.read_bytes())[1] if t.tag_type == 9]
                if (early.exists() and early.stat().st_size >= 13)
                else []
            )
            keyframes = [t for t in video if t.payload[0] >> 4 == 1 and t.payload[1] == 1]
            if keyframes and keyframes[-1].timestamp >= 3000:
                break
            assert time.monotonic() < deadline, "the early viewer got no 3 s of video"
            assert publisher.poll() is None, "the publisher ended before the late joiner came"
            time.sleep(0.1)
        late = tmp_path / "late.flv"
        joiner = curl(url, late)
        assert finish(publisher)[0] == 0
        assert finish(joiner)[0] == 0 and finish(first)[0] == 0
        result = run_client(
            [
                require_client("ffprobe"),
                "-v",
                "error",
                "-select_streams",
                "v",
                "-count_frames",
                "-count_packets",
                "-show_entries",
                "stream=nb_read_frames,nb_read_packets",
                "-show_entries",
                "packet=flags,pts",
                "-of",
                "json",
                str(late),
            ]
        )
        assert result.returncode == 0, result.stderr.decode(errors="replace")
        probe = json.loads(result.stdout)
        stream = probe["streams"][0]
        assert int(stream["nb_read_packets"]) > FPS  # it got more than one GOP
        assert int(stream["nb_read_frames"]) == int(stream["nb_read_packets"])  # all decode
        assert probe["packets"][0]["flags"].startswith("K")
        assert int(probe["packets"][0]["pts"]) >= 3000  # on the stream's time line (shared bytes)
        errors = run_client(
            [require_client("ffmpeg"), "-v", "error", "-i", str(late), "-f", "null", "-"]
        )
        assert errors.returncode == 0 and errors.stderr == b"", errors.stderr.decode()
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("audio", "video", "flags", "types"),
    [(True, False, flv.FLAG_AUDIO, ["audio"]), (False, True, flv.FLAG_VIDEO, ["video"])],
)
def test_a_single_track_stream_has_only_its_flag_and_its_stream(
    tmp_path: Path, audio: bool, video: bool, flags: int, types: list[str]
) -> None:
    """Audio-only and video-only: the header flags only the track there is (an MSE player
    waits forever for a flagged track), and ffprobe finds only that stream. The viewer speaks
    HTTP/1.0: the body is delimited by the end of the connection."""
    source = make_source(tmp_path / "src.flv", 3, audio=audio, video=video)
    server, http = flv_server(tmp_path)
    try:
        body = tmp_path / "body.flv"
        viewer = curl(f"{http}/live/cam.flv", body, "--http1.0")
        server.wait_for_line(WAITING, timeout=30)
        assert finish(publish(source, f"{server.url}/live/cam"))[0] == 0
        assert finish(viewer)[0] == 0
        headers = (tmp_path / "body.flv.headers").read_text().lower()
        assert headers.startswith("http/1.0 200") and "transfer-encoding" not in headers
        read_flags, tags = flv.read_file(body.read_bytes())
        assert read_flags == flags
        assert {t.tag_type for t in tags} == {flv.TAG_SCRIPT, 8 if audio else 9}
        assert stream_types(str(body)) == types
    finally:
        server.stop()


def test_plugins_decide_http_viewers_and_bad_requests_get_their_status(tmp_path: Path) -> None:
    """streamkey protecting play: no key and a wrong key are 403 with the reason; the right
    ``?key=`` passes the plugins (and, nobody publishing with flv_wait 0, is a 404); a name the
    names rules refuse is 400; an allowed origin's preflight is answered."""
    extra = (
        'cors_origins = ["http://page.example"]\n'
        '[apps.live]\n[[apps.live.plugins]]\nuse = "streamkey"\nprotect_play = true\n'
        'keys = { cam = "s3cret" }\n'
    )
    server, http = flv_server(tmp_path, extra, flv_wait=0)
    try:
        status, headers, body = status_of(f"{http}/live/cam.flv")
        assert (status, body) == (403, b'{"error": "stream key required"}')
        status, _, body = status_of(f"{http}/live/cam.flv?key=wrong")
        assert (status, body) == (403, b'{"error": "invalid stream key"}')
        status, _, body = status_of(f"{http}/live/cam.flv?key=s3cret")
        assert status == 404 and b"nobody publishes live/cam" in body
        status, _, body = status_of(f"{http}/live/..%2F.flv?key=s3cret")
        assert status == 400, body
        status, headers, _ = status_of(
            f"{http}/live/cam.flv", "OPTIONS",
            {"Origin": "http://page.example", "Access-Control-Request-Method": "GET"},
        )  # fmt: skip
        assert status == 204
        assert headers["Access-Control-Allow-Origin"] == "http://page.example"
        assert "GET" in headers["Access-Control-Allow-Methods"]
        status, headers, _ = status_of(
            f"{http}/live/cam.flv?key=s3cret", headers={"Origin": "http://page.example"}
        )
        assert headers["Access-Control-Allow-Origin"] == "http://page.example"
        server.wait_for_line(r"play live/cam for \S+ refused by the application: invalid")
    finally:
        server.stop()


def metric(http: str, name: str) -> float:
    """The value of an unlabelled sample of /metrics."""
    with urllib.request.urlopen(f"{http}/metrics", timeout=30) as response:
        text = response.read().decode()
    match = re.search(rf"^{name}(?:_total)? (\S+)$", text, re.MULTILINE)
    assert match is not None, f"{name} is not in /metrics"
    return float(match.group(1))


def test_a_viewer_that_never_reads_is_closed_at_the_stall_bound_and_another_gets_every_frame(
    tmp_path: Path,
) -> None:
    """A client sends its request and never reads. The stream (about 12 MB) is much larger than
    what the kernel buffers for a loopback connection nobody reads (about 3 MB). The fan-out
    hands the viewer at most ``player_buffer`` beyond what its socket took, so it stops making
    progress and is closed after ``stall_timeout`` (like a slow RTMP player), having been handed
    far less than the stream (the server's count of bytes delivered, less the other viewer's
    body); meanwhile curl, reading the same stream, gets a file in which ffprobe decodes every
    frame of the published one."""
    source = make_source(tmp_path / "src.flv", 8, audio=False, size="480x270", noise=True)
    server, http = flv_server(tmp_path, "[streams]\nplayer_buffer = 65536\nstall_timeout = 2.0\n")
    port = int(http.rsplit(":", 1)[1])
    hostile = socket.socket()
    try:
        hostile.connect(("127.0.0.1", port))
        hostile.sendall(b"GET /live/cam.flv HTTP/1.1\r\nHost: x\r\n\r\n")
        server.wait_for_line(WAITING, timeout=30)
        body = tmp_path / "good.flv"
        good = curl(f"{http}/live/cam.flv", body)
        server.wait_for_lines(WAITING, 2, timeout=30)
        assert finish(publish(source, f"{server.url}/live/cam"))[0] == 0
        code, _, err = finish(good)
        assert code == 0, err.decode(errors="replace")
        assert frames_by_codec(run_client(probe_command(str(body))).stdout) == frames_by_codec(
            run_client(probe_command(str(source))).stdout
        )
        closed = server.wait_for_line(r"closing HTTP-FLV viewer \S+ of live/cam: ", timeout=30)
        assert "no write progress for 2s" in closed
        assert metric(http, "fms_slow_player_closes") == 1
        good_bytes = body.stat().st_size - 13  # the sink writes the FLV file header itself
        handed_to_hostile = metric(http, "fms_player_bytes_delivered") - good_bytes
        assert 0 < handed_to_hostile < source.stat().st_size // 2
    finally:
        hostile.close()
        server.stop()


CHUNKED_END = re.compile(r"^\[in#0/flv @ 0x[0-9a-f]+\] Error during demuxing: Input/output error$")
"""What FFmpeg 9 says, exiting with 0, at the terminating chunk of any chunked FLV response
(also from a hand-written server sending a file's bytes in chunks; Debian's 5.1 says nothing):
the only line its readers may print."""


@pytest.fixture
def ffmpeg9() -> str:
    """The static FFmpeg of the imageio-ffmpeg wheel (FFmpeg 9: Enhanced RTMP)."""
    try:
        import imageio_ffmpeg
    except ImportError:
        message = "imageio-ffmpeg is not installed (pip install -e '.[test]')"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return str(imageio_ffmpeg.get_ffmpeg_exe())


def test_ffmpeg9_reads_the_hevc_and_aac_that_ffmpeg9_publishes_over_enhanced_rtmp(
    tmp_path: Path, ffmpeg9: str
) -> None:
    """FFmpeg 9 publishes HEVC (an Enhanced RTMP FourCC packet) and AAC; FFmpeg 9 reading
    HTTP-FLV finds both codecs and decodes the same number of frames as it finds in the file
    it published, with packets bit-identical to the file's."""
    source = tmp_path / "src.flv"
    params = f"keyint={FPS}:min-keyint={FPS}:scenecut=0:bframes=0:log-level=error"
    made = run_client(
        [
            ffmpeg9,
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            f"testsrc=size=320x240:rate={FPS}",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000",
            "-t",
            "3",
            "-c:v",
            "libx265",
            "-preset",
            "ultrafast",
            "-x265-params",
            params,
            "-c:a",
            "aac",
            "-b:a",
            "64k",
            str(source),
        ],
        timeout=120,
    )
    assert made.returncode == 0, made.stderr.decode(errors="replace")
    server, http = flv_server(tmp_path)
    try:
        url = f"{http}/live/cam.flv"
        got, decoded = tmp_path / "got.md5", tmp_path / "got.crc"
        readers = [
            start([ffmpeg9, *framemd5_command(url, got)[1:]]),
            start([ffmpeg9, "-v", "error", "-i", url, "-map", "0", "-f", "framecrc", str(decoded)]),
        ]
        server.wait_for_lines(WAITING, 2, timeout=30)
        publisher = start(
            [
                ffmpeg9,
                "-hide_banner",
                "-loglevel",
                "error",
                "-re",
                "-i",
                str(source),
                "-c",
                "copy",
                "-f",
                "flv",
                f"{server.url}/live/cam",
            ]
        )
        assert finish(publisher)[0] == 0
        for reader in readers:
            code, _, err = finish(reader)
            assert code == 0, err.decode(errors="replace")
            assert not [line for line in err.decode().splitlines() if not CHUNKED_END.search(line)]
        expected, reference = tmp_path / "src.md5", tmp_path / "src.crc"
        assert run_client([ffmpeg9, *framemd5_command(str(source), expected)[1:]]).returncode == 0
        assert packets(got) == packets(expected)
        assert {"#codec_id 0: hevc", "#codec_id 1: aac"} <= set(packets(got))
        made = run_client(
            [
                ffmpeg9,
                "-v",
                "error",
                "-i",
                str(source),
                "-map",
                "0",
                "-f",
                "framecrc",
                str(reference),
            ]
        )
        assert made.returncode == 0
        assert frame_counts(decoded) == frame_counts(reference)
        assert frame_counts(decoded)[0] == 3 * FPS
    finally:
        server.stop()
