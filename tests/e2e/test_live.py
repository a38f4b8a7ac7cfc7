"""Live streaming end to end: real encoders publish, real players decode, on 127.0.0.1.

Each test checks what the player decoded (codecs and frame counts), not just exit codes.
Generated media: 25 fps H.264 with a keyframe every second, 44.1 kHz AAC (about 43 frames/s).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.e2e.harness import (
    ServerProcess,
    ffmpeg_publish_command,
    finish,
    frames_by_codec,
    probe_command,
    require_client,
    start,
)

pytestmark = pytest.mark.e2e

FPS = 25


def test_ffmpeg_player_waiting_before_publish_decodes_every_frame(server: ServerProcess) -> None:
    url = f"{server.url}/live/cam"
    player = start(probe_command(url))
    server.wait_for_line(r"play live/cam for .*waiting for publisher", timeout=15)
    publisher = start(ffmpeg_publish_command(url, 4))
    status, _, err = finish(publisher)
    assert status == 0, err.decode(errors="replace")
    status, out, err = finish(player, timeout=30)
    assert status == 0, err.decode(errors="replace")
    frames = frames_by_codec(out)
    assert set(frames) == {"h264", "aac"}
    assert frames["h264"] == 4 * FPS  # every frame, from the first keyframe to the last
    assert frames["aac"] >= 4 * 44100 // 1024 - 2
    server.wait_for_line(r"publish stopped live/cam")


def test_late_joiner_starts_on_a_keyframe_from_the_gop_cache(server: ServerProcess) -> None:
    url = f"{server.url}/live/late"
    publisher = start(ffmpeg_publish_command(url, 7, gop=2 * FPS))
    server.wait_for_line(r"publish started live/late")
    probe = [
        require_client("ffprobe"), "-v", "error", "-select_streams", "v",
        "-show_entries", "frame=pict_type,key_frame", "-of", "csv=p=0", url,
    ]  # fmt: skip
    # An early player that reads 60 frames (2.4 s of real-time media) and leaves: when it is
    # done, the stream is in the middle of its second GOP (keyframes every 2 s).
    early = [*probe[:-1], "-read_intervals", "%+#60", url]
    status, out, err = finish(start(early), timeout=30)
    assert status == 0 and len([x for x in out.splitlines() if x]) == 60, err.decode()
    player = start(probe)
    status, out, err = finish(player, timeout=30)
    assert status == 0, err.decode(errors="replace")
    lines = [line for line in out.decode().splitlines() if line]
    assert lines, err.decode(errors="replace")
    assert lines[0].split(",")[:2] == ["1", "I"]  # the first decoded picture is a keyframe
    # It joined late, at a cached keyframe (every 2 s), and got every frame from there on.
    assert len(lines) < 7 * FPS
    assert (7 * FPS - len(lines)) % (2 * FPS) == 0
    assert b"non-existing PPS" not in err and b"no frame" not in err
    finish(publisher)


def test_rtmpdump_plays_and_verifies_the_server_digest(
    server: ServerProcess, tmp_path: Path
) -> None:
    url = f"{server.url}/live/dump"
    output = tmp_path / "dump.flv"
    # -w/-x make librtmp send an FP9 C1 and verify our S1 digest and S2 signature.
    dump = start([
        require_client("rtmpdump"), "-r", url, "--live", "-o", str(output),
        "-w", "00" * 32, "-x", "1000", "-V",
    ])  # fmt: skip
    server.wait_for_line(r"play live/dump for .*waiting for publisher", timeout=15)
    assert server.wait_for_line(r"handshake with .* done \(digest: True\)")
    publisher = start(ffmpeg_publish_command(url, 3))
    finish(publisher)
    _, _, err = finish(dump, timeout=30)
    log = err.decode(errors="replace")
    assert "Couldn't verify the server digest" not in log
    assert "not genuine" not in log
    assert "Genuine Adobe Flash Media Server" in log or "Server digest" in log or "HMAC" in log
    _status, out, err = finish(start(probe_command(str(output))))
    frames = frames_by_codec(out)
    assert frames.get("h264") == 3 * FPS, err.decode(errors="replace")
    assert frames.get("aac", 0) > 100


def test_second_publisher_is_refused_while_the_first_keeps_flowing(
    server: ServerProcess,
) -> None:
    url = f"{server.url}/live/dup"
    player = start(probe_command(url))
    server.wait_for_line(r"play live/dup for .*waiting for publisher", timeout=15)
    first = start(ffmpeg_publish_command(url, 5))
    server.wait_for_line(r"publish started live/dup")
    second = start(ffmpeg_publish_command(url, 2))
    status, _, err = finish(second)
    assert status != 0
    assert b"BadName" in err or b"already" in err
    server.wait_for_line(r"refusing publish live/dup .*already published")
    assert finish(first)[0] == 0
    status, out, _ = finish(player)
    assert frames_by_codec(out)["h264"] == 5 * FPS


def test_obs_style_stream_key_query_is_stripped_from_the_name(server: ServerProcess) -> None:
    player = start(probe_command(f"{server.url}/live/key"))
    server.wait_for_line(r"play live/key for .*waiting for publisher", timeout=15)
    publisher = start(ffmpeg_publish_command(f"{server.url}/live/key?secret=abc", 2))
    server.wait_for_line(r"publish started live/key from")
    assert finish(publisher)[0] == 0
    _status, out, _ = finish(player)
    assert frames_by_codec(out)["h264"] == 2 * FPS


def test_gstreamer_publishes_and_ffmpeg_plays(server: ServerProcess) -> None:
    url = f"{server.url}/live/gst"
    player = start(probe_command(url))
    server.wait_for_line(r"play live/gst for .*waiting for publisher", timeout=15)
    frames = 75
    publisher = start([
        require_client("gst-launch-1.0"), "-q",
        "videotestsrc", f"num-buffers={frames}", "is-live=true", "!",
        f"video/x-raw,width=320,height=240,framerate={FPS}/1", "!",
        "x264enc", "tune=zerolatency", "speed-preset=ultrafast", f"key-int-max={FPS}", "!",
        "h264parse", "!", "flvmux", "streamable=true", "name=mux", "!",
        "rtmp2sink", f"location={url}",
        "audiotestsrc", "num-buffers=130", "is-live=true", "!", "audioconvert", "!",
        "avenc_aac", "!", "aacparse", "!", "mux.",
    ])  # fmt: skip
    status, _, err = finish(publisher)
    assert status == 0, err.decode(errors="replace")
    server.wait_for_line(r"publish stopped live/gst")
    status, out, err = finish(player)
    got = frames_by_codec(out)
    assert set(got) == {"h264", "aac"}, err.decode(errors="replace")
    assert got["h264"] == frames


def test_gstreamer_plays_what_ffmpeg_publishes(server: ServerProcess, tmp_path: Path) -> None:
    url = f"{server.url}/live/gplay"
    pictures, sound = tmp_path / "pictures.yuv", tmp_path / "sound.pcm"
    # Decoded frames go to files: 320x240 I420 is 115,200 bytes a picture, S16 mono 2 bytes a
    # sample, so the sizes count exactly what GStreamer decoded.
    player = start([
        require_client("gst-launch-1.0"), "-q", "rtmp2src", f"location={url}", "!",
        "flvdemux", "name=d",
        "d.video", "!", "queue", "!", "h264parse", "!", "avdec_h264", "!", "videoconvert", "!",
        "video/x-raw,format=I420", "!", "filesink", f"location={pictures}",
        "d.audio", "!", "queue", "!", "aacparse", "!", "avdec_aac", "!", "audioconvert", "!",
        "audio/x-raw,format=S16LE,channels=1", "!", "filesink", f"location={sound}",
    ])  # fmt: skip
    server.wait_for_line(r"play live/gplay for .*waiting for publisher", timeout=15)
    publisher = start(ffmpeg_publish_command(url, 3))
    assert finish(publisher)[0] == 0
    status, _, err = finish(player, timeout=30)
    assert status == 0, err.decode(errors="replace")
    assert pictures.stat().st_size == 3 * FPS * 320 * 240 * 3 // 2
    assert sound.stat().st_size >= 2 * (3 * 44100 - 2048)


def test_players_end_promptly_when_the_publisher_disconnects(server: ServerProcess) -> None:
    url = f"{server.url}/live/gone"
    publisher = start(ffmpeg_publish_command(url, 60))
    server.wait_for_line(r"publish started live/gone")
    players = [start(probe_command(url)) for _ in range(2)]
    server.wait_for_lines(r"play live/gone for 127\.0\.0\.1:\d+$", 2)
    publisher.kill()  # no FCUnpublish, no deleteStream: the TCP connection just drops
    publisher.wait()
    killed = time.monotonic()
    for player in players:
        status, out, err = finish(player, timeout=15)
        assert status == 0, err.decode(errors="replace")
        assert frames_by_codec(out)["h264"] > 0
    assert time.monotonic() - killed < 5.0
    server.wait_for_line(r"publish stopped live/gone")


def test_two_apps_stream_at_once_and_each_player_gets_its_own(server: ServerProcess) -> None:
    urls = {"small": f"{server.url}/one/cam", "large": f"{server.url}/two/cam"}
    size = {"small": "160x120", "large": "320x240"}
    probes = {}
    for key, url in urls.items():
        probes[key] = start([
            require_client("ffprobe"), "-v", "error", "-count_frames", "-select_streams", "v",
            "-show_entries", "stream=width,height,nb_read_frames", "-of", "csv=p=0", url,
        ])  # fmt: skip
    server.wait_for_line(r"play one/cam for .*waiting for publisher", timeout=15)
    server.wait_for_line(r"play two/cam for .*waiting for publisher", timeout=15)
    publishers = []
    for key, url in urls.items():
        command = ffmpeg_publish_command(url, 2)
        command[command.index("testsrc2=size=320x240:rate=25")] = (
            f"testsrc2=size={size[key]}:rate=25"
        )
        publishers.append(start(command))
    for publisher in publishers:
        assert finish(publisher)[0] == 0
    for key, probe in probes.items():
        _status, out, err = finish(probe)
        width, height, frames = out.decode().strip().split(",")
        assert f"{width}x{height}" == size[key], err.decode(errors="replace")
        assert int(frames) == 2 * FPS


def test_twenty_players_of_one_stream_all_decode(server: ServerProcess) -> None:
    url = f"{server.url}/live/crowd"
    players = [start(probe_command(url)) for _ in range(20)]
    server.wait_for_lines(r"play live/crowd for .*waiting for publisher", 20, timeout=60)
    publisher = start(ffmpeg_publish_command(url, 4))
    assert finish(publisher)[0] == 0
    decoded = []
    for player in players:
        status, out, err = finish(player, timeout=60)
        assert status == 0, err.decode(errors="replace")
        decoded.append(frames_by_codec(out))
    # Each waited before the publisher, as the one player of the first test, so each decodes
    # every frame, and all of them the same: frames are skipped only for a player 4 MiB or 3 s
    # of media behind ([streams] soft_bytes, soft_seconds), and the whole stream is about
    # 400 kB and 4 s long.
    for frames in decoded:
        assert frames["h264"] == 4 * FPS, decoded
        assert frames["aac"] >= 4 * 44100 // 1024 - 2, decoded
    assert all(frames == decoded[0] for frames in decoded), decoded


def test_eight_megabit_stream_with_64k_chunks_arrives_intact(tmp_path: Path) -> None:
    ffmpeg = require_client("ffmpeg")
    source = tmp_path / "source.flv"
    made = start([
        ffmpeg, "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=25",
        "-t", "3", "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-b:v", "8M",
        "-minrate", "8M", "-maxrate", "8M", "-bufsize", "2M", "-x264-params", "nal-hrd=cbr",
        "-f", "flv", str(source),
    ])  # fmt: skip
    assert finish(made)[0] == 0
    config = tmp_path / "fms.toml"
    config.write_text("[streams]\nchunk_size = 65536\n")
    server = ServerProcess("--log-level", "debug", config=config)
    try:
        url = f"{server.url}/live/big"
        player = start([ffmpeg, "-v", "error", "-i", url, "-map", "0:v", "-c", "copy",
                        "-f", "framemd5", "-"])  # fmt: skip
        server.wait_for_line(r"play live/big for .*waiting for publisher", timeout=15)
        publisher = start([ffmpeg, "-v", "error", "-re", "-i", str(source), "-c", "copy",
                           "-f", "flv", url])  # fmt: skip
        assert finish(publisher)[0] == 0
        server.wait_for_line(r"sends with chunk size 65536")  # FFmpeg mirrors our chunk size
        status, received, err = finish(player, timeout=30)
        assert status == 0, err.decode(errors="replace")
    finally:
        assert server.stop() == 0
    expected = finish(start([ffmpeg, "-v", "error", "-i", str(source), "-map", "0:v", "-c",
                             "copy", "-f", "framemd5", "-"]))[1]  # fmt: skip

    def hashes(text: bytes) -> list[tuple[str, str]]:
        rows = [line.split(",") for line in text.decode().splitlines() if not line.startswith("#")]
        return [(row[4].strip(), row[5].strip()) for row in rows]  # size and md5 of each packet

    got, want = hashes(received), hashes(expected)
    assert len(want) == 3 * FPS
    assert sum(int(size) for size, _ in want) > 2_000_000  # about 8 Mbit/s for 3 s
    assert got == want
