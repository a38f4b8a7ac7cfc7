"""The adobeauth plugin in a real server, with the clients that implement the login: FFmpeg
(Debian's 5.1 and the static FFmpeg of the imageio-ffmpeg wheel), GStreamer's rtmp2sink, and
our own client for the exchange across two workers.

FFmpeg picks the scheme from the server's first refusal: application ``live`` offers
``authmod=adobe``, ``ll`` offers ``authmod=llnw`` (and reads its users from a file), ``private``
makes players log in too. Generated media: 25 fps H.264 with a keyframe every second, 44.1 kHz
AAC; players (ffprobe, without credentials unless the app is ``private``) count decoded frames.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from fms.rtmp.client import Connected, ConnectRejected
from tests.e2e.harness import (
    ServerProcess,
    ffmpeg_publish_command,
    finish,
    frames_by_codec,
    probe_command,
    require_client,
    start,
)
from tests.e2e.test_obs_sequence import SocketClient
from tests.e2e.test_workers import Workers
from tests.support.ci import IN_CI

pytestmark = pytest.mark.e2e

FPS = 25
CONFIG = """
[[apps.live.plugins]]
use = "adobeauth"
users = {{ alice = "s3cret", bob = "hunter2" }}

[[apps.ll.plugins]]
use = "adobeauth"
users_file = "{users_file}"
authmods = ["llnw"]

[[apps.private.plugins]]
use = "adobeauth"
users = {{ alice = "s3cret" }}
scope = "all"
"""
AUTHMOD_OF_APP = {"live": "adobe", "ll": "llnw"}


@pytest.fixture
def auth_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A server running adobeauth on three applications; it must stop cleanly afterwards."""
    users = tmp_path / "users"
    users.write_text("# for app ll\nalice:s3cret\n", encoding="utf-8")
    users.chmod(0o600)
    config = tmp_path / "fms.toml"
    config.write_text(CONFIG.format(users_file=users), encoding="utf-8")
    proc = ServerProcess(config=config)
    try:
        yield proc
    finally:
        status = proc.stop()
    assert status == 0, f"server exited with {status}; log:\n{proc.log()}"


@pytest.fixture(params=["debian", "imageio"])
def ffmpeg(request: pytest.FixtureRequest) -> str:
    """The FFmpeg that publishes: Debian's, or the one of the imageio-ffmpeg wheel."""
    if request.param == "debian":
        return require_client("ffmpeg")
    try:
        import imageio_ffmpeg
    except ImportError:
        message = "imageio-ffmpeg is not installed (pip install -e '.[test]')"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return str(imageio_ffmpeg.get_ffmpeg_exe())


def publish_command(ffmpeg: str, url: str, seconds: float) -> list[str]:
    return [ffmpeg, *ffmpeg_publish_command(url, seconds)[1:]]


def with_login(server: ServerProcess, user: str, password: str) -> str:
    return server.url.replace("rtmp://", f"rtmp://{user}:{password}@")


@pytest.mark.parametrize("app", ["live", "ll"])
def test_a_publisher_with_the_right_password_reaches_a_player(
    auth_server: ServerProcess, ffmpeg: str, app: str
) -> None:
    authmod = AUTHMOD_OF_APP[app]
    player = start(probe_command(f"{auth_server.url}/{app}/cam"))
    auth_server.wait_for_line(rf"play {app}/cam for .*waiting for publisher", timeout=15)
    url = f"{with_login(auth_server, 'alice', 's3cret')}/{app}/cam"
    status, _, err = finish(start(publish_command(ffmpeg, url, 3)))
    assert status == 0, err.decode(errors="replace")
    # FFmpeg followed the scheme the first refusal named, and the third connect logged in.
    auth_server.wait_for_line(
        rf"refused by the application: .*code=403 need auth; authmod={authmod}"
    )
    auth_server.wait_for_line(
        rf"refused by the application: .*authmod={authmod} \] : \?reason=needauth"
    )
    auth_server.wait_for_line(rf"'alice' logged in from \S+ to '{app}' \(authmod={authmod}\)")
    status, out, err = finish(player, timeout=20)
    assert status == 0, err.decode(errors="replace")
    frames = frames_by_codec(out)
    assert frames["h264"] == 3 * FPS
    assert frames["aac"] >= 3 * 44100 // 1024 - 2


@pytest.mark.parametrize("app", ["live", "ll"])
def test_a_wrong_password_is_refused_and_ffmpeg_says_so(
    auth_server: ServerProcess, ffmpeg: str, app: str
) -> None:
    authmod = AUTHMOD_OF_APP[app]
    url = f"{with_login(auth_server, 'alice', 'wrong')}/{app}/cam"
    status, _, err = finish(start(publish_command(ffmpeg, url, 2)), timeout=20)
    assert status != 0
    assert b"Incorrect username/password" in err, err.decode(errors="replace")
    refusal = f"Server error: [ AccessManager.Reject ] : [ authmod={authmod} ] : ?reason=authfailed"
    assert refusal.encode() in err, err.decode(errors="replace")
    auth_server.wait_for_line(rf"login of 'alice' from \S+ to '{app}' refused: a wrong password")
    assert "publish started" not in auth_server.log()


def test_an_unknown_user_gets_the_answer_of_a_wrong_password(auth_server: ServerProcess) -> None:
    answers = []
    for user, password in (("mallory", "s3cret"), ("bob", "s3cret")):
        url = f"{with_login(auth_server, user, password)}/live/cam"
        status, _, err = finish(start(ffmpeg_publish_command(url, 2)), timeout=20)
        assert status != 0
        answers.append(re.findall(rb"\] (Incorrect .*|Server error: .*)", err))
    assert answers[0] == answers[1] and len(answers[0]) == 2, answers
    auth_server.wait_for_line(r"login of 'mallory' from \S+ to 'live' refused: an unknown user")
    auth_server.wait_for_line(r"login of 'bob' from \S+ to 'live' refused: a wrong password")


def test_a_publisher_without_credentials_is_told_to_log_in(auth_server: ServerProcess) -> None:
    status, _, err = finish(
        start(ffmpeg_publish_command(f"{auth_server.url}/live/cam", 2)), timeout=20
    )
    assert status != 0
    assert b"No credentials set" in err, err.decode(errors="replace")
    assert b"[ code=403 need auth; authmod=adobe ]" in err
    assert "publish started" not in auth_server.log()


def test_with_scope_all_only_a_player_that_logs_in_plays(auth_server: ServerProcess) -> None:
    status, _, err = finish(start(probe_command(f"{auth_server.url}/private/cam")), timeout=20)
    assert status != 0
    assert b"No credentials set" in err, err.decode(errors="replace")
    player = start(probe_command(f"{with_login(auth_server, 'alice', 's3cret')}/private/cam"))
    auth_server.wait_for_line(r"play private/cam for .*waiting for publisher", timeout=15)
    url = f"{with_login(auth_server, 'alice', 's3cret')}/private/cam"
    status, _, err = finish(start(ffmpeg_publish_command(url, 2)))
    assert status == 0, err.decode(errors="replace")
    assert len(auth_server.wait_for_lines(r"'alice' logged in from \S+ to 'private'", 2)) == 2
    status, out, err = finish(player, timeout=20)
    assert status == 0, err.decode(errors="replace")
    assert frames_by_codec(out)["h264"] == 2 * FPS


def test_gstreamer_rtmp2sink_logs_in_and_publishes(auth_server: ServerProcess) -> None:
    player = start(probe_command(f"{auth_server.url}/live/gst"))
    auth_server.wait_for_line(r"play live/gst for .*waiting for publisher", timeout=15)
    location = f"{with_login(auth_server, 'alice', 's3cret')}/live/gst"
    pipeline = [
        require_client("gst-launch-1.0"), "-q",
        "videotestsrc", "num-buffers=50", "is-live=true", "!", "video/x-raw,framerate=25/1", "!",
        "x264enc", "tune=zerolatency", "key-int-max=25", "!", "h264parse", "!",
        "flvmux", "streamable=true", "!", "rtmp2sink", f"location={location}",
    ]  # fmt: skip
    status, _, err = finish(start(pipeline), timeout=30)
    assert status == 0, err.decode(errors="replace")
    auth_server.wait_for_line(r"'alice' logged in from \S+ to 'live' \(authmod=adobe\)")
    status, out, err = finish(player, timeout=20)
    assert status == 0, err.decode(errors="replace")
    assert frames_by_codec(out)["h264"] == 50


# ------------------------------------------------------------------------------- workers


def connect(port: int, query: str) -> Connected | ConnectRejected:
    """One connect of an encoder to ``live`` + ``query`` on ``port``; the server's answer."""
    client = SocketClient(port)
    try:
        client.conn.connect("live" + query, f"rtmp://127.0.0.1:{port}/live{query}")
        event = client.until(lambda e: isinstance(e, (Connected, ConnectRejected)))
    finally:
        client.sock.close()
    assert isinstance(event, (Connected, ConnectRejected))
    return event


def test_a_challenge_from_one_worker_is_answered_on_the_other_once(tmp_path: Path) -> None:
    """Worker 0 issues the challenge, worker 1 checks the answer (no shared memory, no
    configured secret), and worker 1 refuses the same answer a second time."""
    workers = Workers(
        tmp_path, '[[apps.live.plugins]]\nuse = "adobeauth"\nusers = { alice = "s3cret" }\n'
    )
    try:
        refused = connect(workers.ports[0], "?authmod=adobe&user=alice")
        assert isinstance(refused, ConnectRejected)
        assert refused.code == "NetConnection.Connect.Rejected"
        assert refused.info["level"] == "error"
        text = refused.description.split(" : ?", 1)[1]
        challenge = dict(pair.split("=", 1) for pair in text.split("&"))
        assert challenge["reason"] == "needauth"

        def md5_b64(value: str) -> str:
            return base64.b64encode(hashlib.md5(value.encode()).digest()).decode()

        inner = md5_b64("alice" + challenge["salt"] + "s3cret")
        response = md5_b64(inner + challenge["opaque"] + "c0ffee00")
        answer = (
            f"?authmod=adobe&user=alice&challenge=c0ffee00&response={response}"
            f"&opaque={challenge['opaque']}"
        )
        assert isinstance(connect(workers.ports[1], answer), Connected)
        workers.line(1, r"'alice' logged in from \S+ to 'live' \(authmod=adobe\)")
        again = connect(workers.ports[1], answer)
        assert isinstance(again, ConnectRejected)
        assert "?reason=needauth" in again.description
        workers.line(1, "answered a used challenge for 'alice': challenged again")
    finally:
        status = workers.server.stop()
    assert status == 0, workers.auth_server.log()
