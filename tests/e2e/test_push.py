"""Push (restream) between real server processes: Debian's FFmpeg publishes H.264+AAC to
server A, whose ``[[apps.live.push]]`` relays it to server B, where ffprobe decodes it; B
killed and restarted on its port is pushed to again, and so is the next publish; a target that
stops reading slows no player of A and holds a bounded amount of A's memory; a plugin starts
and stops a push; RTMPS to a self-signed target; Debian's nginx-rtmp as a target; one push per
publish with two workers."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

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
from tests.e2e.test_http_api import HTTP_LISTENING, call, metrics, wait_until
from tests.support.ci import IN_CI

pytestmark = pytest.mark.e2e

WIDTH, HEIGHT, FPS = 320, 240, 25


def _server(tmp_path: Path, name: str, text: str, *args: str) -> tuple[ServerProcess, str]:
    """A server configured by ``text`` with the HTTP API on a free port: (process, API base)."""
    config = tmp_path / f"{name}.toml"
    config.write_text(f"[http]\nenabled = true\nport = 0\n{text}")
    server = ServerProcess("--config", str(config), *args)
    match = HTTP_LISTENING.search(server.wait_for_line(HTTP_LISTENING, timeout=20))
    assert match is not None
    return server, match.group(1)


def _pushes(base: str, name: str) -> list[dict[str, Any]]:
    status, body = call(base, "GET", f"/api/v1/streams/live/{name}")
    return list(body.get("pushes") or []) if status == 200 else []


def _probe_seconds(url: str, seconds: float = 3.0) -> tuple[dict[str, int], dict[str, Any]]:
    """ffprobe reading ``seconds`` of a live stream: (frames per codec, the video's fields)."""
    entries = "stream=codec_type,codec_name,width,height,nb_read_frames"
    command = [require_client("ffprobe"), "-v", "error", "-read_intervals", f"%+{seconds:g}"]
    command += ["-count_frames", "-show_entries", entries, "-of", "json", url]
    out = run_client(command, timeout=60)
    assert out.returncode == 0, out.stderr.decode(errors="replace")
    streams = json.loads(out.stdout or b"{}").get("streams", [])
    video = next((s for s in streams if s.get("codec_type") == "video"), {})
    return frames_by_codec(out.stdout), video


def test_a_pushed_stream_plays_on_the_target_again_after_it_restarts_and_after_a_republish(
    tmp_path: Path,
) -> None:
    target, _ = _server(tmp_path, "b", "")
    port = target.port
    origin, api = _server(
        tmp_path,
        "a",
        f'[[apps.live.push]]\nurl = "rtmp://127.0.0.1:{port}/live"\nname = "{{name}}-copy"\n'
        "retry_initial = 0.5\nretry_max = 1.0\n",
    )
    publisher = start(ffmpeg_publish_command(f"{origin.url}/live/cam", 120, fps=FPS))
    try:
        # Live and past its first flush: the state turns live when the target accepts the
        # publish, the first bytes follow at the next flush.
        first = wait_until("the push live", lambda: [p for p in _pushes(api, "cam")
                                                     if p["state"] == "live"
                                                     and p["bytes_sent"] > 0])  # fmt: skip
        assert first[0]["url"] == f"rtmp://127.0.0.1:{port}/live"
        assert first[0]["name"] == "cam-copy" and first[0]["origin"] == "config"
        frames, video = _probe_seconds(f"{target.url}/live/cam-copy")
        assert frames["h264"] >= 2 * FPS and frames["aac"] > 0
        assert (video["width"], video["height"]) == (WIDTH, HEIGHT)

        target.stop(signal.SIGKILL)
        retrying = wait_until(
            "the push retrying",
            lambda: [p for p in _pushes(api, "cam") if p["state"] in ("retrying", "connecting")
                     and p["last_error"]],
        )  # fmt: skip
        assert retrying[0]["lives"] == 1
        target = ServerProcess("--port", str(port))
        again = wait_until(
            "the push live again",
            lambda: [p for p in _pushes(api, "cam") if p["state"] == "live" and p["lives"] == 2],
        )
        frames, video = _probe_seconds(f"{target.url}/live/cam-copy")
        assert frames["h264"] >= 2 * FPS and frames["aac"] > 0
        assert (video["width"], video["height"]) == (WIDTH, HEIGHT)

        (push,) = _pushes(api, "cam")
        assert push["bytes_sent"] > again[0]["bytes_sent"] > first[0]["bytes_sent"] > 0
        assert push["messages_sent"] > 0 and push["skipped_messages"] == 0
        samples = metrics(api)
        labels = (("app", "live"), ("push", str(push["id"])), ("stream", "cam"),
                  ("url", push["url"]))  # fmt: skip
        assert samples[("fms_push_state", tuple(sorted((*labels, ("state", "live")))))] == 1
        assert samples[("fms_push_bytes_sent_total", labels)] > 0
        status, doc = call(api, "GET", "/api/v1/streams/live/cam")
        assert status == 200 and doc["players"] == 0  # the push is not counted as a player

        publisher.terminate()  # the publish ends: so does the push, and B's copy
        finish(publisher)
        target.wait_for_line(r"publish stopped live/cam-copy", timeout=30)
        wait_until(
            "the stream gone from A", lambda: call(api, "GET", "/api/v1/streams/live/cam")[0] == 404
        )
        publisher = start(ffmpeg_publish_command(f"{origin.url}/live/cam", 120, fps=FPS))
        wait_until("a new push live", lambda: [
            p for p in _pushes(api, "cam") if p["state"] == "live" and p["id"] != push["id"]
        ])  # fmt: skip
        frames, _ = _probe_seconds(f"{target.url}/live/cam-copy", 2.0)
        assert frames["h264"] >= FPS
    finally:
        publisher.kill()
        finish(publisher)
        origin.stop()
        target.stop()
    assert "push live/cam -> " in origin.log()


def test_a_push_to_a_target_that_stops_reading_slows_no_player_and_stays_bounded(
    tmp_path: Path,
) -> None:
    """The target accepts the publish, then reads nothing. A player of the same stream on A,
    there before the publisher, still decodes every frame the publisher sent; the push holds
    at most ``player_buffer`` bytes in A's memory and skips to keyframes (its counters). What
    the kernel takes for the socket (up to ``net.ipv4.tcp_wmem``'s maximum, about 2 MB here)
    is the kernel's bound, not ours: the clip is made larger than that."""
    stalled = subprocess.Popen(
        [sys.executable, "-m", "tests.support.stalled_target"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip
    assert stalled.stdout is not None
    port = int(stalled.stdout.readline().split()[1])
    buffer = 65536
    origin, api = _server(
        tmp_path,
        "a",
        # soft_seconds 1: the push skips within the clip once the kernel's buffers are full;
        # the player reads as fast as it comes, and the kernel's ~2 MB (5 s of this stream)
        # cover its pauses on a loaded machine before the server sees it behind at all
        f"[streams]\nplayer_buffer = {buffer}\nsoft_seconds = 1.0\n"
        f'[[apps.live.push]]\nurl = "rtmp://127.0.0.1:{port}/live"\n',
    )
    seconds = 12
    try:
        player = start(probe_command(f"{origin.url}/live/big"))
        origin.wait_for_line(r"play live/big for .*waiting for publisher", timeout=15)
        publish = ffmpeg_publish_command(f"{origin.url}/live/big", seconds, fps=FPS)
        publish[publish.index("testsrc2=size=320x240:rate=25")] = "testsrc2=size=640x480:rate=25"
        publish[-3:-3] = ["-b:v", "3M"]  # ~4.5 MB over the clip: beyond the kernel's buffers
        publisher = start(publish)
        assert stalled.stdout.readline().startswith("stalled")
        seen: list[dict[str, Any]] = []

        def sample() -> bool:
            seen.extend(_pushes(api, "big"))
            return publisher.poll() is not None

        wait_until("the publisher done", sample, timeout=seconds * 6)
        assert publisher.returncode == 0
        code, out, err = finish(player, timeout=60)
        assert code == 0, err.decode(errors="replace")
        assert frames_by_codec(out)["h264"] == seconds * FPS
        assert frames_by_codec(out)["aac"] > 0
        assert seen, "the push was never listed"
        last = seen[-1]
        assert max(p["buffered_bytes"] for p in seen) <= buffer
        assert last["skips"] + last["slow_closes"] >= 1
        assert last["skipped_messages"] > 0
    finally:
        if stalled.stdin is not None:
            stalled.stdin.close()
        stalled.kill()
        stalled.wait()
        origin.stop()


PUSHING_PLUGIN = """
from twisted.internet import reactor

from fms.apps.api import Plugin


class PushForAWhile(Plugin):
    def __init__(self, url: str, seconds: float) -> None:
        self.url = url
        self.seconds = seconds
        self.app = None

    def app_start(self, app):
        self.app = app

    def published(self, stream):
        if stream.name.startswith("plug"):
            handle = self.app.push(stream, self.url, stream.name + "-by-plugin")
            reactor.callLater(self.seconds, handle.stop)
"""


def test_a_plugin_starts_a_push_and_stops_it(tmp_path: Path) -> None:
    target, _ = _server(tmp_path, "b", "")
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "pushforawhile.py").write_text(PUSHING_PLUGIN)
    origin, api = _server(
        tmp_path,
        "a",
        "[[apps.live.plugins]]\nuse = 'pushforawhile'\n"
        f'url = "rtmp://127.0.0.1:{target.port}/live"\nseconds = 8.0\n',
    )
    publisher = start(ffmpeg_publish_command(f"{origin.url}/live/plug1", 60, fps=FPS))
    try:
        live = wait_until("the plugin's push live", lambda: [
            p for p in _pushes(api, "plug1") if p["state"] == "live"])  # fmt: skip
        assert live[0]["origin"] == "plugin" and live[0]["name"] == "plug1-by-plugin"
        frames, video = _probe_seconds(f"{target.url}/live/plug1-by-plugin", 2.0)
        assert frames["h264"] > 0 and (video["width"], video["height"]) == (WIDTH, HEIGHT)
        target.wait_for_line(r"publish stopped live/plug1-by-plugin", timeout=30)
        assert _pushes(api, "plug1") == []
        assert publisher.poll() is None  # A's publish goes on
        status, _ = call(api, "GET", "/api/v1/streams/live/plug1")
        assert status == 200
        origin.wait_for_line(re.escape("push live/plug1 -> ") + r".* stopped", timeout=10)
    finally:
        publisher.kill()
        finish(publisher)
        origin.stop()
        target.stop()


def _certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for ``localhost`` and 127.0.0.1 (subjectAltName: what TLS
    clients check), and its key."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_a_push_over_rtmps_to_a_self_signed_target_needs_its_certificate_trusted(
    tmp_path: Path,
) -> None:
    """Two pushes of one stream to the same RTMPS listener: the one that trusts the target's
    certificate (``tls_trust``) is live and decoded there; the other refuses the certificate,
    sends nothing and says why."""
    _certificate(tmp_path)
    target, _ = _server(
        tmp_path, "b", '[tls]\nport = 0\ncertificate = "cert.pem"\nprivate_key = "key.pem"\n'
    )
    line = target.wait_for_line(r"listening on rtmps://")
    secure = re.search(r"listening on rtmps://[^:\s]+:(\d+)", line)
    assert secure is not None
    url = f"rtmps://localhost:{secure.group(1)}/live"
    origin, api = _server(
        tmp_path,
        "a",
        f'[[apps.live.push]]\nurl = "{url}"\nname = "trusted"\ntls_trust = "cert.pem"\n'
        f'[[apps.live.push]]\nurl = "{url}"\nname = "untrusted"\nretry_initial = 0.5\n',
    )
    publisher = start(ffmpeg_publish_command(f"{origin.url}/live/tls", 60, fps=FPS))
    try:
        wait_until("the trusted push live", lambda: [
            p for p in _pushes(api, "tls") if p["name"] == "trusted" and p["state"] == "live"
        ])  # fmt: skip
        frames, video = _probe_seconds(f"{target.url}/live/trusted", 2.0)
        assert frames["h264"] > 0 and frames["aac"] > 0
        assert (video["width"], video["height"]) == (WIDTH, HEIGHT)
        (untrusted,) = wait_until("the untrusted push refused", lambda: [
            p for p in _pushes(api, "tls") if p["name"] == "untrusted" and p["last_error"]
        ])  # fmt: skip
        assert untrusted["lives"] == 0 and untrusted["bytes_sent"] == 0
        assert "certificate" in untrusted["last_error"].lower()
        assert "publish started live/untrusted" not in target.log()
    finally:
        publisher.kill()
        finish(publisher)
        origin.stop()
        target.stop()


NGINX_MODULE = Path("/usr/lib/nginx/modules/ngx_rtmp_module.so")
NGINX_CONF = """\
load_module {module};
daemon off;
master_process off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log info;
events {{
    worker_connections 64;
}}
rtmp {{
    server {{
        listen 127.0.0.1:{port};
        application live {{
            live on;
        }}
    }}
}}
"""


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_push_to_nginx_rtmp_plays_there(tmp_path: Path) -> None:
    """Debian's nginx-rtmp (one process, ``live on``) as the target: a player of nginx decodes
    the pushed H.264 and AAC at the source's size."""
    import shutil
    import socket
    import tempfile

    nginx = require_client("nginx")
    if not NGINX_MODULE.exists():
        message = f"{NGINX_MODULE} is missing (apt-get install libnginx-mod-rtmp)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    prefix = Path(tempfile.mkdtemp(prefix="fms-nginx-"))
    port = _free_port()
    (prefix / "logs").mkdir()
    conf = prefix / "nginx.conf"
    conf.write_text(NGINX_CONF.format(module=NGINX_MODULE, prefix=prefix, port=port))
    server = subprocess.Popen(
        [nginx, "-p", str(prefix), "-c", str(conf)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    origin: ServerProcess | None = None
    publisher: subprocess.Popen[bytes] | None = None
    try:

        def accepting() -> bool:
            assert server.poll() is None, (prefix / "error.log").read_text(errors="replace")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
            except OSError:
                return False
            return True

        wait_until("nginx listening", accepting, timeout=20)
        origin, api = _server(
            tmp_path, "a", f'[[apps.live.push]]\nurl = "rtmp://127.0.0.1:{port}/live"\n'
        )
        publisher = start(ffmpeg_publish_command(f"{origin.url}/live/ngx", 60, fps=FPS))
        wait_until("the push live", lambda: [
            p for p in _pushes(api, "ngx") if p["state"] == "live"])  # fmt: skip
        frames, video = _probe_seconds(f"rtmp://127.0.0.1:{port}/live/ngx")
        assert frames["h264"] >= 2 * FPS and frames["aac"] > 0
        assert (video["width"], video["height"]) == (WIDTH, HEIGHT)
    finally:
        if publisher is not None:
            publisher.kill()
            finish(publisher)
        if origin is not None:
            origin.stop()
        server.terminate()
        server.wait(timeout=10)
        shutil.rmtree(prefix, ignore_errors=True)


def test_with_two_workers_a_publish_is_pushed_once(tmp_path: Path) -> None:
    """``fms run --workers 2``: the push runs on the publisher's worker only (the other
    worker's mirror of the stream starts none), so the target sees one publish, and the API,
    whichever worker answers, lists that one push."""
    target, _ = _server(tmp_path, "b", "")
    origin, api = _server(
        tmp_path,
        "a",
        f'[[apps.live.push]]\nurl = "rtmp://127.0.0.1:{target.port}/live"\n',
        "--workers",
        "2",
    )
    publisher = start(ffmpeg_publish_command(f"{origin.url}/live/w", 60, fps=FPS))
    try:
        wait_until("the push live", lambda: [
            p for p in _pushes(api, "w") if p["state"] == "live"])  # fmt: skip
        frames, _ = _probe_seconds(f"{target.url}/live/w", 2.0)
        assert frames["h264"] > 0 and frames["aac"] > 0
        for _ in range(6):  # the kernel hands each request to either worker
            (push,) = _pushes(api, "w")
            assert push["state"] == "live"
        assert len(re.findall(r"publish started live/w ", target.log())) == 1
        assert "refusing publish" not in target.log()
    finally:
        publisher.kill()
        finish(publisher)
        origin.stop()
        target.stop()


def test_a_player_of_the_target_decodes_every_frame_the_publisher_sent(tmp_path: Path) -> None:
    """A player waits on B before the publish; A's publish of a clip that is one GOP long
    (so the push, however late it connects, starts from its first keyframe) reaches it whole:
    as many H.264 frames as FFmpeg encoded, and the end of the publish ends its play."""
    target, _ = _server(tmp_path, "b", "")
    origin, _ = _server(
        tmp_path, "a", f'[[apps.live.push]]\nurl = "rtmp://127.0.0.1:{target.port}/live"\n'
    )
    seconds = 6
    try:
        player = start(probe_command(f"{target.url}/live/whole"))
        target.wait_for_line(r"play live/whole for .*waiting for publisher", timeout=15)
        publish = ffmpeg_publish_command(
            f"{origin.url}/live/whole", seconds, fps=FPS, gop=seconds * FPS
        )
        code, _, err = finish(start(publish), timeout=60)
        assert code == 0, err.decode(errors="replace")
        code, out, err = finish(player, timeout=60)
        assert code == 0, err.decode(errors="replace")
        frames = frames_by_codec(out)
        assert frames["h264"] == seconds * FPS and frames["aac"] > 0
    finally:
        origin.stop()
        target.stop()


def test_a_push_to_itself_under_a_name_it_pushes_again_ends_at_max_push_hops(
    tmp_path: Path,
) -> None:
    """The loop docs/push.md warns of: live/* pushed to the server itself as {name}-copy, which
    its tables push again. With max_push_hops 2 it makes two copies and stops, with a warning;
    the last copy decodes."""
    port = _free_port()
    server, api = _server(
        tmp_path,
        "a",
        "[streams]\nmax_push_hops = 2\n"
        f'[[apps.live.push]]\nurl = "rtmp://127.0.0.1:{port}/live"\nname = "{{name}}-copy"\n'
        "retry_initial = 0.5\nretry_max = 1.0\n",
        "--port",
        str(port),
    )
    publisher = start(ffmpeg_publish_command(f"{server.url}/live/cam", 120, fps=FPS))
    try:
        server.wait_for_line(
            r"not pushing live/cam-copy-copy: it came through 2 pushes", timeout=30
        )
        wait_until("both copies pushed", lambda: [p for p in _pushes(api, "cam-copy")
                                                  if p["state"] == "live"])  # fmt: skip
        assert _pushes(api, "cam-copy-copy") == []
        frames, video = _probe_seconds(f"{server.url}/live/cam-copy-copy")
        assert frames["h264"] >= FPS and (video["width"], video["height"]) == (WIDTH, HEIGHT)
        status, _ = call(api, "GET", "/api/v1/streams/live/cam-copy-copy-copy")
        assert status == 404
    finally:
        publisher.kill()
        publisher.communicate()
        server.stop()
