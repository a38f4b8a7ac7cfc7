"""RTMPS: FFmpeg publishes and plays over TLS with a self-signed certificate made in the test."""

from __future__ import annotations

import datetime
import re
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.e2e.harness import (
    ServerProcess,
    ffmpeg_publish_command,
    finish,
    frames_by_codec,
    probe_command,
    start,
)

pytestmark = pytest.mark.e2e


def self_signed(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
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


def test_ffmpeg_publishes_and_plays_over_rtmps(tmp_path: Path) -> None:
    self_signed(tmp_path)
    config = tmp_path / "fms.toml"
    config.write_text('[tls]\nport = 0\ncertificate = "cert.pem"\nprivate_key = "key.pem"\n')
    server = ServerProcess(config=config)
    try:
        line = server.wait_for_line(r"listening on rtmps://")
        match = re.search(r"listening on (rtmps://\S+)", line)
        assert match is not None
        url = f"{match.group(1)}/live/secure"
        player = start(probe_command(url))
        server.wait_for_line(r"play live/secure for .*waiting for publisher", timeout=15)
        publisher = start(ffmpeg_publish_command(url, 2))
        status, _, err = finish(publisher)
        assert status == 0, err.decode(errors="replace")
        status, out, err = finish(player)
        assert status == 0, err.decode(errors="replace")
        assert frames_by_codec(out)["h264"] == 50
    finally:
        assert server.stop() == 0


def test_plain_rtmp_players_see_streams_published_over_rtmps(tmp_path: Path) -> None:
    self_signed(tmp_path)
    config = tmp_path / "fms.toml"
    config.write_text('[tls]\nport = 0\ncertificate = "cert.pem"\nprivate_key = "key.pem"\n')
    server = ServerProcess(config=config)
    try:
        line = server.wait_for_line(r"listening on rtmps://")
        secure = re.search(r"listening on (rtmps://\S+)", line)
        assert secure is not None
        player = start(probe_command(f"{server.url}/live/mixed"))
        server.wait_for_line(r"play live/mixed for .*waiting for publisher", timeout=15)
        assert finish(start(ffmpeg_publish_command(f"{secure.group(1)}/live/mixed", 2)))[0] == 0
        _status, out, _ = finish(player)
        assert frames_by_codec(out)["h264"] == 50
    finally:
        assert server.stop() == 0


def test_an_unusable_certificate_stops_the_server_at_start(tmp_path: Path) -> None:
    (tmp_path / "cert.pem").write_text("not a certificate\n")
    (tmp_path / "key.pem").write_text("not a key\n")
    config = tmp_path / "fms.toml"
    config.write_text('[tls]\nport = 0\ncertificate = "cert.pem"\nprivate_key = "key.pem"\n')
    result = subprocess.run(
        [sys.executable, "-m", "fms", "run", "--port", "0", "--config", str(config)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1
    assert "error: tls:" in result.stderr


def test_rtmps_with_two_workers_shares_streams_with_plain_rtmp(tmp_path: Path) -> None:
    """The RTMPS port is shared by the workers too (each wraps its own SO_REUSEPORT socket in
    TLS); a stream published over RTMPS plays over plain RTMP from either worker."""
    self_signed(tmp_path)
    config = tmp_path / "fms.toml"
    config.write_text('[tls]\nport = 0\ncertificate = "cert.pem"\nprivate_key = "key.pem"\n')
    server = ServerProcess("--workers", "2", config=config)
    try:
        line = server.wait_for_line(r"listening on rtmps://\S+ \(2 workers\)")
        match = re.search(r"listening on (rtmps://\S+)", line)
        assert match is not None
        server.wait_for_lines(r"worker \d accepting on rtmps://", 2)
        players = [start(probe_command(f"{server.url}/live/both")) for _ in range(4)]
        server.wait_for_lines(r"play live/both for .*waiting for publisher", 4, timeout=15)
        publisher = start(ffmpeg_publish_command(f"{match.group(1)}/live/both", 2))
        status, _, err = finish(publisher)
        assert status == 0, err.decode(errors="replace")
        for player in players:
            status, out, err = finish(player)
            assert status == 0, err.decode(errors="replace")
            assert frames_by_codec(out)["h264"] == 50
    finally:
        assert server.stop() == 0
