"""Enhanced RTMP v2 end to end: FFmpeg 9 publishes multitrack and enhanced-codec streams; FFmpeg
9 players that were there from the start and players that join about 3 s late decode every
track from their first frame, and the late joiner's demuxer describes every stream as the first
player's does (what it learnt from the replayed sequence headers: an Opus or AAC decoder without
its header guesses stereo or the FLV header's rate). AC-3, E-AC-3, MP3 and FLAC frames describe
themselves, so for them the check is that they decode, not that their header arrived.

FFmpeg 9 comes from the imageio-ffmpeg wheel (Debian's 5.1 predates Enhanced RTMP); under CI a
missing wheel fails the test. Generated media: 25 fps video with a keyframe every second on
every track (no scene cuts, no B-frames, so the tracks' keyframes share their timestamps), for
``SECONDS`` seconds in real time. A player decodes everything it gets (``-f framecrc``: one line
per decoded frame, stream index first) and its log says which stream is which codec.
"""

from __future__ import annotations

import re
import subprocess
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from fms.live.tracks import CONFIG, FRAMES, METADATA, split
from fms.rtmp.capabilities import CapsExMask, FourCcInfoMask
from fms.rtmp.events import Connected, MediaArrived
from fms.rtmp.messages import Media
from tests.e2e.harness import ServerProcess, finish, start
from tests.e2e.test_workers import Workers
from tests.hostile.support import Client
from tests.support.ci import IN_CI

pytestmark = pytest.mark.e2e

FPS = 25
GOP = FPS
SECONDS = 8
LATE_FRAMES = 3 * FPS
"""The late joiner starts once a reader has taken this many frames of the main track."""


@pytest.fixture
def ffmpeg9() -> str:
    """The static FFmpeg of the imageio-ffmpeg wheel."""
    try:
        import imageio_ffmpeg
    except ImportError:
        message = "imageio-ffmpeg is not installed (pip install -e '.[test]')"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return str(imageio_ffmpeg.get_ffmpeg_exe())


@dataclass(frozen=True)
class Track:
    """One published track: its kind, FFmpeg encoder (and options) and the decoder name an
    FFmpeg player reports for it."""

    kind: str
    encoder: list[str]
    decoded_as: str


def h264(size: str) -> tuple[str, Track]:
    return f"testsrc2=size={size}:rate={FPS}", Track(
        "v", ["libx264", "-preset", "ultrafast", "-tune", "zerolatency"], "h264"
    )


def hevc(size: str) -> tuple[str, Track]:
    params = f"keyint={GOP}:min-keyint={GOP}:scenecut=0:bframes=0:open-gop=0:log-level=error"
    return f"testsrc=size={size}:rate={FPS}", Track(
        "v", ["libx265", "-preset", "ultrafast", "-x265-params", params], "hevc"
    )


def av1(size: str) -> tuple[str, Track]:
    params = "pred-struct=1:scd=0"  # low delay, no scene-change keyframes
    return f"testsrc=size={size}:rate={FPS}", Track(
        "v", ["libsvtav1", "-preset", "10", "-svtav1-params", params], "av1"
    )


def vp9(size: str) -> tuple[str, Track]:
    options = ["-deadline", "realtime", "-cpu-used", "8", "-lag-in-frames", "0"]
    return f"testsrc=size={size}:rate={FPS}", Track("v", ["libvpx-vp9", *options], "vp9")


def audio(encoder: str, decoded_as: str, frequency: int = 440) -> tuple[str, Track]:
    return f"sine=frequency={frequency}:sample_rate=48000", Track("a", [encoder], decoded_as)


def aac() -> tuple[str, Track]:
    return audio("aac", "aac")


def publish_command(ffmpeg: str, url: str, tracks: list[tuple[str, Track]]) -> list[str]:
    """FFmpeg 9 publishing ``tracks`` (one lavfi input each, mapped in order) for ``SECONDS``
    in real time; video tracks after the first and audio tracks after the first are sent as
    Enhanced RTMP multitrack."""
    command = [ffmpeg, "-hide_banner", "-loglevel", "error", "-re"]
    for source, _track in tracks:
        command += ["-f", "lavfi", "-i", source]
    counts: Counter[str] = Counter()
    for index, (_source, track) in enumerate(tracks):
        command += ["-map", f"{index}:{track.kind}"]
        n = counts[track.kind]
        counts[track.kind] += 1
        command += [f"-c:{track.kind}:{n}", track.encoder[0]]
        options = track.encoder[1:]
        for name, value in zip(options[::2], options[1::2], strict=True):
            command += [f"{name}:{track.kind}:{n}", value]
    command += ["-g", str(GOP), "-keyint_min", str(GOP), "-sc_threshold", "0", "-bf", "0"]
    command += ["-pix_fmt", "yuv420p", "-t", str(SECONDS), "-f", "flv", url]
    return command


def play_command(ffmpeg: str, url: str) -> list[str]:
    """An FFmpeg 9 player decoding every stream of ``url`` until the publisher stops."""
    return [ffmpeg, "-hide_banner", "-nostats", "-loglevel", "info", "-i", url, "-map", "0", "-f",
            "framecrc", "-"]  # fmt: skip


def clock_command(ffmpeg: str, url: str) -> list[str]:
    """A reader that leaves after ``LATE_FRAMES`` frames of the first video stream: the
    publisher (real time) is then about 3 s into its stream."""
    return [ffmpeg, "-hide_banner", "-loglevel", "error", "-i", url, "-map", "0:v:0",
            "-frames:v", str(LATE_FRAMES), "-f", "null", "-"]  # fmt: skip


STREAM = re.compile(r"Stream #0:(\d+).*?: (Video|Audio): (\w+)(.*)")


def described(err: bytes) -> list[str]:
    """How the player's demuxer described each input stream (codec, profile, size or sample
    rate and channels...): what it learnt from the sequence headers."""
    inputs = err.decode(errors="replace").split("Output #0", 1)[0]
    found = [f"{m.group(2)}: {m.group(3)}{m.group(4)}" for m in STREAM.finditer(inputs)]
    return [re.sub(r", start [\d.]+", "", line) for line in found]  # when it joined


def decoded(out: bytes, err: bytes) -> dict[int, tuple[str, int]]:
    """``{stream index: (codec, decoded frames)}`` from a player's framecrc and log."""
    inputs = err.decode(errors="replace").split("Output #0", 1)[0]
    codecs = {int(m.group(1)): m.group(3) for m in STREAM.finditer(inputs)}
    frames: Counter[int] = Counter()
    for line in out.decode().splitlines():
        if line and not line.startswith("#"):
            frames[int(line.split(",", 1)[0])] += 1
    return {index: (codec, frames[index]) for index, codec in codecs.items()}


BAD = (b"Could not find codec parameters", b"non-existing PPS", b"Could not find ref",
       b"error while decoding", b"Invalid data", b"no frame!")  # fmt: skip


CASES = {
    "two-h264": [h264("320x240"), h264("160x120"), aac()],
    "h264-hevc": [h264("320x240"), hevc("160x120"), aac()],
    "three-video": [h264("320x240"), hevc("160x120"), h264("128x96"), aac()],
    "two-audio": [h264("320x240"), aac(), audio("libopus", "opus", 880)],
    "hevc-opus": [hevc("320x240"), audio("libopus", "opus")],
    "av1-aac": [av1("320x240"), aac()],
    "vp9-opus": [vp9("320x240"), audio("libopus", "opus")],
    "h264-flac": [h264("320x240"), audio("flac", "flac")],
    "h264-ac3": [h264("320x240"), audio("ac3", "ac3")],
    "h264-eac3": [h264("320x240"), audio("eac3", "eac3")],
    "h264-mp3": [h264("320x240"), audio("libmp3lame", "mp3")],
}


def check_players(
    tracks: list[tuple[str, Track]],
    early: subprocess.Popen[bytes],
    late: subprocess.Popen[bytes],
) -> None:
    """Both players decoded every track from a keyframe, the early one every frame, the late
    one whole GOPs less, and the late one's streams are described as the early one's."""
    expected = [t.decoded_as for _s, t in tracks]
    video_tracks = sum(1 for _s, t in tracks if t.kind == "v")
    descriptions = []
    for name, player in (("from the start", early), ("late", late)):
        status, out, err = finish(player, timeout=60)
        descriptions.append(described(err))
        assert status == 0, f"{name}: " + err.decode(errors="replace")
        for bad in BAD:
            assert bad not in err, f"{name}: " + err.decode(errors="replace")
        streams = decoded(out, err)
        assert sorted(c for c, _n in streams.values()) == sorted(expected), (name, streams)
        assert all(n > 0 for _c, n in streams.values()), (name, streams)
        video = [n for c, n in streams.values() if c in ("h264", "hevc", "av1", "vp9")]
        assert len(video) == video_tracks
        # Every video track decodes from a keyframe they share: the same count on each, and
        # what is missing (the late joiner's) is whole GOPs.
        assert len(set(video)) == 1, (name, streams)
        if name == "from the start":
            assert video[0] == SECONDS * FPS, streams
        else:
            assert video[0] <= SECONDS * FPS - 2 * GOP, streams  # joined 2 s late or more
            assert (SECONDS * FPS - video[0]) % GOP == 0, streams
    # The late joiner learnt every track's parameters as the first player did (audio decoders
    # guess at stereo or at the FLV header's rate without their sequence header).
    assert descriptions[1] == descriptions[0]


@pytest.mark.parametrize("case", sorted(CASES))
def test_enhanced_stream_plays_from_the_start_and_for_a_late_joiner(
    server: ServerProcess, ffmpeg9: str, case: str
) -> None:
    tracks = CASES[case]
    url = f"{server.url}/live/{case}"
    early = start(play_command(ffmpeg9, url))
    server.wait_for_line(rf"play live/{case} for .*waiting for publisher", timeout=15)
    publisher = start(publish_command(ffmpeg9, url, tracks))
    server.wait_for_line(rf"publish started live/{case}", timeout=30)
    status, _, err = finish(start(clock_command(ffmpeg9, url)), timeout=60)
    assert status == 0, err.decode(errors="replace")
    late = start(play_command(ffmpeg9, url))
    status, _, err = finish(publisher, timeout=60)
    assert status == 0, err.decode(errors="replace")
    check_players(tracks, early, late)
    server.wait_for_line(rf"publish stopped live/{case}")


def test_multitrack_relayed_to_another_worker_plays_for_a_late_joiner(
    tmp_path: Path, ffmpeg9: str
) -> None:
    """Published on worker 0, played on worker 1: the relay carries every track's header
    (``LiveStream.replay``) and the other worker's late joiner gets them all."""
    tracks = CASES["h264-hevc"]
    workers = Workers(tmp_path)
    try:
        url = f"{workers.url(1)}/live/mt"
        early = start(play_command(ffmpeg9, url))
        workers.line(1, "play live/mt for .*waiting for publisher")
        publisher = start(publish_command(ffmpeg9, f"{workers.url(0)}/live/mt", tracks))
        workers.line(1, "publish started live/mt from .* via worker 0", timeout=30)
        status, _, err = finish(start(clock_command(ffmpeg9, url)), timeout=60)
        assert status == 0, err.decode(errors="replace")
        late = start(play_command(ffmpeg9, url))
        status, _, err = finish(publisher, timeout=60)
        assert status == 0, err.decode(errors="replace")
        check_players(tracks, early, late)
    finally:
        assert workers.server.stop() == 0, workers.server.log()


@pytest.mark.parametrize("encoding", [0, 3])
def test_a_raw_client_announcing_enhanced_rtmp_learns_what_the_server_forwards(
    server: ServerProcess, encoding: int
) -> None:
    """As OBS 30 connects (AMF0) and in AMF3: the connect ``_result`` carries the FourCC maps
    with CanForward alone and capsEx Reconnect|Multitrack|ModEx; a client announcing nothing
    gets none of it."""
    client = Client(server.port)
    try:
        client.conn.connect(
            "live",
            "rtmp://127.0.0.1/live",
            extra={
                "fourCcList": ["av01", "vp09", "hvc1", "avc1", "Opus", "mp4a"],
                "videoFourCcInfoMap": {"hvc1": 7.0, "av01": 7.0},
                "capsEx": float(CapsExMask.RECONNECT | CapsExMask.MULTITRACK),
            },
            object_encoding=encoding,
        )
        event = client.until(lambda e: isinstance(e, Connected))
        assert isinstance(event, Connected)
        props = event.properties
        forward = float(FourCcInfoMask.CAN_FORWARD)
        assert props["videoFourCcInfoMap"]["hvc1"] == forward
        assert props["videoFourCcInfoMap"]["*"] == forward
        assert set(props["audioFourCcInfoMap"].values()) == {forward}
        assert "Opus" in props["audioFourCcInfoMap"] and "av01" in props["fourCcList"]
        caps = CapsExMask.RECONNECT | CapsExMask.MULTITRACK | CapsExMask.MOD_EX
        assert props["capsEx"] == float(caps)
    finally:
        client.close()
    plain = Client(server.port)
    try:
        plain.conn.connect("live", "rtmp://127.0.0.1/live", object_encoding=encoding)
        event = plain.until(lambda e: isinstance(e, Connected))
        assert isinstance(event, Connected)
        assert set(event.properties) == {"fmsVer", "capabilities", "mode"}
    finally:
        plain.close()


def test_a_late_joiner_gets_the_hdr_metadata_packet_before_any_frame(
    server: ServerProcess, ffmpeg9: str
) -> None:
    """FFmpeg 9 publishes 10-bit HDR HEVC and sends a video Metadata packet (``colorInfo``)
    once, at the start. A raw client that plays 2 s or more later receives the same packet
    (byte for byte) after the sequence header and before the first frame. (FFmpeg's own
    player shows nothing of it, hence a raw client.)"""
    url = f"{server.url}/live/hdr"
    hdr = (
        "log-level=error:hdr10=1:max-cll=1000,400:"
        "master-display=G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,1)"
    )
    early = Client(server.port)
    late: Client | None = None
    try:
        early.connect()
        early.conn.play(early.create_stream(), "hdr")
        early.flush()
        server.wait_for_line(r"play live/hdr for .*waiting for publisher", timeout=15)
        publisher = start([
            ffmpeg9, "-hide_banner", "-loglevel", "error", "-re",
            "-f", "lavfi", "-i", f"testsrc=size=320x240:rate={FPS}", "-t", str(SECONDS),
            "-c:v", "libx265", "-preset", "ultrafast", "-x265-params", hdr, "-g", str(GOP),
            "-pix_fmt", "yuv420p10le", "-color_primaries", "bt2020", "-color_trc", "smpte2084",
            "-colorspace", "bt2020nc", "-f", "flv", url,
        ])  # fmt: skip

        def frames(client: Client, count: int) -> list[Media]:
            """The video messages the client got until ``count`` coded frames arrived."""

            def enough(_event: object) -> bool:
                got = [e.message for e in client.events if isinstance(e, MediaArrived)]
                coded = [m for m in got if m.is_video and split(9, m.payload).role is FRAMES]
                return len(coded) >= count

            client.until(enough, timeout=60)
            return [
                e.message for e in client.events
                if isinstance(e, MediaArrived) and e.message.is_video
            ]  # fmt: skip

        sent = frames(early, 2 * GOP + 1)  # the publisher is 2 s or more into its stream
        late = Client(server.port).connect()
        late.conn.play(late.create_stream(), "hdr")
        got = frames(late, 1)
        assert finish(publisher, timeout=60)[0] == 0
    finally:
        early.close()
        if late is not None:
            late.close()
    published_metadata = [m.payload for m in sent if split(9, m.payload).role is METADATA]
    assert len(published_metadata) == 1 and b"colorInfo" in published_metadata[0]
    roles = [split(9, m.payload).role for m in got]
    first_frame = roles.index(FRAMES)
    assert roles[:first_frame] == [CONFIG, METADATA]
    assert got[1].payload == published_metadata[0]
    assert got[first_frame].timestamp >= 2 * 1000  # it did join late
