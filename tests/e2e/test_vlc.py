"""VLC as a real player of the server's streams: live over RTMP (from before the publisher,
and joining a running stream), live over HTTP-FLV, and a recording over RTMP (VOD).

VLC 3 (Debian's ``vlc-bin`` and ``vlc-plugin-base``) reads ``rtmp://`` through its ``avio``
access (libavformat's RTMP client) and ``http://`` through its own HTTP access. It runs
headless (``tests/e2e/harness.py`` :func:`vlc_playing`, as ``nobody`` when the tests run as
root) and remuxes what it receives, unchanged, into a Matroska file. What is checked is that
file: ffprobe finds H.264 at the source's size and AAC, and the decoded pictures are, one by
one, those of the source FLV file FFmpeg published or the server played (MD5 of every decoded
frame), so a lost, repeated, reordered or damaged frame fails the test; the AAC packets are
the source's (MD5 of each), and ffprobe decodes every one. VLC is never told when to stop: it
exits by itself when the stream ends (``Play.UnpublishNotify`` when the publisher leaves,
``Play.Stop`` at the end of a recording, the end of the chunked HTTP response), so each test
also proves that VLC understood the end.

VLC's muxer interleaves by time and drops, when its input ends, the audio frames later than the
last video frame still waiting for a partner: so the audio is checked to run at least to the
last video frame, not to the source's last audio frame.
"""

from __future__ import annotations

import json
import re
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from fms.live import flv
from tests.e2e.harness import (
    ServerProcess,
    finish,
    require_client,
    run_client,
    vlc_playing,
)
from tests.e2e.test_http_api import wait_until
from tests.e2e.test_http_flv import make_source, publish

pytestmark = pytest.mark.e2e

SECONDS = 8
FPS = 25  # make_source's frame rate (a keyframe each second)
WIDTH, HEIGHT = 320, 240  # make_source's picture size
LONG_GOP_S = 4  # the late joiner's source: a keyframe every 4 s
JOIN_MS = 1000  # how far that stream is when VLC joins it
HTTP_LISTENING = re.compile(r"listening on (http://\S+)/")


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with one recording, ``clip.flv``: SECONDS of H.264 + AAC by FFmpeg."""
    folder = tmp_path_factory.mktemp("recordings")
    make_source(folder / "clip.flv", SECONDS)
    return folder


@pytest.fixture
def server(library: Path, tmp_path: Path):  # type: ignore[no-untyped-def]
    """A server with RTMP, the HTTP listener (HTTP-FLV) and ``vod`` playing ``library``."""
    config = tmp_path / "fms.toml"
    config.write_text(
        f"[http]\nenabled = true\nport = 0\n\n[apps.vod.vod]\nfolder = {str(library)!r}\n"
    )
    proc = ServerProcess(config=config)
    try:
        yield proc
    finally:
        status = proc.stop()
    assert status == 0, f"server exited with {status}; log:\n{proc.log()}"


def http_base(server: ServerProcess) -> str:
    match = HTTP_LISTENING.search(server.wait_for_line(HTTP_LISTENING, timeout=20))
    assert match is not None
    return match.group(1)


def messages_in(base: str) -> int:
    """How many messages the publisher of ``live/cam`` has sent (the HTTP API's figure)."""
    try:
        with urllib.request.urlopen(f"{base}/api/v1/streams/live/cam", timeout=20) as response:
            return int(json.load(response)["messages_in"])
    except urllib.error.HTTPError as exc:
        if exc.code == 404:  # not published yet
            return 0
        raise


def md5s(path: Path, track: str, *, decode: bool) -> list[str]:
    """The MD5 of every frame of ``track`` (``v`` or ``a``) of a media file, in order: of the
    decoded pictures or sound with ``decode``, else of the packets as they are stored."""
    command = [require_client("ffmpeg"), "-v", "error", "-i", str(path), "-map", f"0:{track}"]
    if not decode:
        command += ["-c", "copy"]
    result = run_client([*command, "-f", "framemd5", "-"], timeout=120)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    lines = result.stdout.decode().splitlines()
    return [line.rsplit(",", 1)[1].strip() for line in lines if line and line[0] != "#"]


def streams(path: Path) -> dict[str, dict[str, object]]:
    """ffprobe's view of a file's tracks, by codec type, with the frames it decoded."""
    command = [require_client("ffprobe"), "-v", "error", "-count_frames", "-show_entries"]
    command += ["stream=codec_type,codec_name,width,height,nb_read_frames", "-of", "json"]
    result = run_client([*command, str(path)], timeout=120)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    found = json.loads(result.stdout)["streams"]
    return {s["codec_type"]: s for s in found}


def frames(source: Path, tag_type: int) -> list[flv.Tag]:
    """The video (9) or audio (8) frames of an FLV file: not its sequence headers nor the
    end-of-sequence tag (both AVC and AAC say ``1`` in the payload's second byte)."""
    _, tags = flv.read_file(source.read_bytes())
    return [t for t in tags if t.tag_type == tag_type and t.payload[1] == 1]


def assert_vlc_got_the_source(got: Path, source: Path, joined_at: int | None = None) -> None:
    """``got`` (what VLC wrote) holds H.264 at the source's size whose decoded pictures are
    those of ``source`` to its end, from its first (``joined_at`` None: a player there before
    the publisher) or from its video frame ``joined_at`` (a late joiner, who gets the GOP cache
    from that keyframe on); and AAC whose packets are the source's, all of them or from the
    first at or after that keyframe, at least to the last video frame (VLC's muxer drops the
    later ones at the end), every one decoded."""
    tracks = streams(got)
    assert tracks["video"]["codec_name"] == "h264"
    assert (tracks["video"]["width"], tracks["video"]["height"]) == (WIDTH, HEIGHT)
    assert tracks["audio"]["codec_name"] == "aac"
    expected_video = md5s(source, "v", decode=True)
    assert len(expected_video) == SECONDS * FPS  # the source is what the test made
    first = joined_at or 0
    assert md5s(got, "v", decode=True) == expected_video[first:]
    video, audio = frames(source, flv.TAG_VIDEO), frames(source, flv.TAG_AUDIO)
    since = 0  # the player was there first: all of the audio
    if joined_at is not None:  # the GOP cache: the audio from the keyframe on
        since = next(i for i, t in enumerate(audio) if t.timestamp >= video[first].timestamp)
    until = max(i for i, t in enumerate(audio) if t.timestamp <= video[-1].timestamp)
    got_audio = md5s(got, "a", decode=False)
    assert got_audio == md5s(source, "a", decode=False)[since : since + len(got_audio)]
    assert since + len(got_audio) > until
    assert tracks["audio"]["nb_read_frames"] == str(len(got_audio))


def vlc_failure(proc: subprocess.Popen[bytes], status: int, stderr: bytes) -> str:
    return f"VLC {proc.args!r} exited with {status}; stderr:\n{stderr.decode(errors='replace')}"


def test_vlc_plays_a_live_rtmp_stream_from_its_first_frame_until_the_publisher_leaves(
    server: ServerProcess, library: Path, tmp_path: Path
) -> None:
    """VLC waits on ``live/cam`` before FFmpeg publishes the clip in real time: it gets every
    frame, and it stops by itself when the publisher leaves (``Play.UnpublishNotify``)."""
    out = tmp_path / "vlc.mkv"
    with vlc_playing(f"{server.url}/live/cam", out) as vlc:
        server.wait_for_line(r"play live/cam for \S+ \(waiting for publisher\)", timeout=60)
        status, _, stderr = finish(publish(library / "clip.flv", f"{server.url}/live/cam"), 120)
        assert status == 0, stderr.decode(errors="replace")
        status, _, stderr = finish(vlc, timeout=60)
    assert status == 0, vlc_failure(vlc, status, stderr)
    assert_vlc_got_the_source(out, library / "clip.flv")


def test_vlc_plays_a_live_stream_over_http_flv_until_the_publisher_leaves(
    server: ServerProcess, library: Path, tmp_path: Path
) -> None:
    """VLC reads ``/live/cam.flv`` (its own HTTP access) before FFmpeg publishes over RTMP: it
    gets every frame, and the end of the chunked response ends its playback."""
    out = tmp_path / "vlc.mkv"
    with vlc_playing(f"{http_base(server)}/live/cam.flv", out) as vlc:
        server.wait_for_line(r"HTTP-FLV play live/cam for \S+ \(waiting for publisher\)", 60)
        status, _, stderr = finish(publish(library / "clip.flv", f"{server.url}/live/cam"), 120)
        assert status == 0, stderr.decode(errors="replace")
        status, _, stderr = finish(vlc, timeout=60)
    assert status == 0, vlc_failure(vlc, status, stderr)
    assert_vlc_got_the_source(out, library / "clip.flv")


def test_vlc_plays_a_recording_over_rtmp_to_its_end_and_stops_by_itself(
    server: ServerProcess, library: Path, tmp_path: Path
) -> None:
    """VLC plays ``vod/clip``: every video frame of the file arrives, and the playback ends by
    itself at the end of the file (``Play.Complete``, ``Play.Stop``, StreamEOF) while the
    server keeps the connection open, so VLC's exit is its own reading of the end."""
    out = tmp_path / "vlc.mkv"
    with vlc_playing(f"{server.url}/vod/clip", out) as vlc:
        status, _, stderr = finish(vlc, timeout=120)
    assert status == 0, vlc_failure(vlc, status, stderr)
    server.wait_for_line(r"play recording vod/clip \(clip\.flv\) for \S+ from 0 ms")
    assert_vlc_got_the_source(out, library / "clip.flv")


def long_gop_source(path: Path) -> Path:
    """SECONDS of H.264 + AAC like ``make_source``'s, but with a keyframe only every
    LONG_GOP_S seconds (no scene-cut keyframes either)."""
    command = [require_client("ffmpeg"), "-hide_banner", "-loglevel", "error", "-y"]
    command += ["-f", "lavfi", "-i", f"testsrc2=size={WIDTH}x{HEIGHT}:rate={FPS}"]
    command += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100", "-t", str(SECONDS)]
    command += ["-c:v", "libx264", "-preset", "ultrafast", "-g", str(LONG_GOP_S * FPS)]
    command += ["-sc_threshold", "0", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "64k"]
    result = run_client([*command, str(path)], timeout=120)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    return path


def reached_ms(tags: list[flv.Tag], messages: int) -> int:
    """How far (ms) a publisher sending ``tags`` in order is after ``messages`` messages (its
    own onMetaData for the file's)."""
    return tags[min(messages, len(tags)) - 1].timestamp


def test_vlc_joining_a_running_rtmp_stream_starts_on_the_cached_keyframe_and_plays_to_the_end(
    server: ServerProcess, tmp_path: Path
) -> None:
    """VLC joins ``live/cam`` after FFmpeg has sent JOIN_MS of a stream with a keyframe every
    LONG_GOP_S seconds: its first picture is the keyframe at or before the point the stream
    had reached when VLC's play arrived (the server's GOP cache, sent at once, not the next
    keyframe), and from there it gets every frame, in order, until the publisher leaves."""
    source = long_gop_source(tmp_path / "long-gop.flv")
    _, tags = flv.read_file(source.read_bytes())
    video = frames(source, flv.TAG_VIDEO)
    keyframes = [i for i, t in enumerate(video) if t.payload[0] >> 4 == 1]
    assert [video[i].timestamp // 1000 for i in keyframes] == list(range(0, SECONDS, LONG_GOP_S))

    def keyframe_before(ms: int) -> int:
        return max(i for i in keyframes if video[i].timestamp <= ms)

    base = http_base(server)
    out = tmp_path / "vlc.mkv"
    publisher = publish(source, f"{server.url}/live/cam")
    try:

        def joinable() -> int:
            count = messages_in(base)
            return count if count and reached_ms(tags, count) >= JOIN_MS else 0

        before = wait_until(f"{JOIN_MS} ms of the stream at the server", joinable, 60)
        with vlc_playing(f"{server.url}/live/cam", out) as vlc:
            server.wait_for_line(r"play live/cam for \S+$", timeout=60)
            after = messages_in(base)
            status, _, stderr = finish(vlc, timeout=60)
        assert status == 0, vlc_failure(vlc, status, stderr)
    finally:
        status, _, stderr = finish(publisher, 120)
    assert status == 0, stderr.decode(errors="replace")
    first = md5s(source, "v", decode=True).index(md5s(out, "v", decode=True)[0])
    assert first in keyframes
    # The play came between `before` and `after` messages into the stream.
    assert keyframe_before(reached_ms(tags, before)) <= first
    assert first <= keyframe_before(reached_ms(tags, after))
    assert_vlc_got_the_source(out, source, first)
