"""The command-line contract of ``fms``, exercised on the real process."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from fms import __version__
from tests.e2e.harness import ServerProcess

pytestmark = pytest.mark.e2e


def fms(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fms", *args], capture_output=True, text=True, timeout=30
    )


def test_version_prints_the_package_version() -> None:
    result = fms("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"fms {__version__}"


def test_first_log_line_states_the_listening_url_and_the_port_accepts() -> None:
    server = ServerProcess()
    try:
        assert server.url.startswith("rtmp://127.0.0.1:")
        assert server.port > 0
        assert "listening on rtmp://" in server.lines[0]
        with socket.create_connection(("127.0.0.1", server.port), timeout=5):
            pass
    finally:
        assert server.stop() == 0


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_stops_the_server_with_status_zero(sig: int) -> None:
    server = ServerProcess()
    assert server.stop(sig) == 0
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=2).close()


def test_config_file_sets_the_log_level(tmp_path: Path) -> None:
    config = tmp_path / "fms.toml"
    config.write_text('[server]\nlog_level = "warn"\n')
    server = ServerProcess(config=config)
    try:
        # The listening line is logged at info, but it is the contract: it always appears.
        assert server.url.startswith("rtmp://127.0.0.1:")
    finally:
        assert server.stop() == 0
    assert not any(" info [" in line for line in server.lines[1:])


def test_run_refuses_an_invalid_config_with_status_one(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[server]\nport = 'x'\n")
    result = fms("run", "--config", str(config))
    assert result.returncode == 1
    assert f"{config}: server.port: expected int" in result.stderr


def test_check_config_accepts_the_shipped_example() -> None:
    example = Path(__file__).resolve().parents[2] / "conf" / "fms.toml"
    result = fms("check-config", str(example))
    assert result.returncode == 0, result.stderr
    assert "valid" in result.stdout


def test_check_config_explains_every_error_by_file_key_and_reason(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(
        "[server]\nport = 70000\nlog_level = 'loud'\ncolour = 1\n[limits]\nidle_timeout = 'x'\n"
        "[nonsense]\n"
    )
    result = fms("check-config", str(config))
    assert result.returncode == 1
    errors = result.stderr.strip().splitlines()
    assert f"error: {config}: server.port: 70000 is above the maximum 65535" in errors
    assert any(f"{config}: server.log_level: 'loud' is not one of" in e for e in errors)
    assert any(f"{config}: server.colour: unknown key" in e for e in errors)
    assert any(f"{config}: limits.idle_timeout: expected float" in e for e in errors)
    assert any(f"{config}: nonsense: unknown section" in e for e in errors)
    assert len(errors) == 5


def test_check_config_reports_a_missing_file(tmp_path: Path) -> None:
    result = fms("check-config", str(tmp_path / "absent.toml"))
    assert result.returncode == 1
    assert "cannot read" in result.stderr


def test_the_commented_examples_of_the_shipped_config_are_valid(tmp_path: Path) -> None:
    example = Path(__file__).resolve().parents[2] / "conf" / "fms.toml"
    lines = []
    for line in example.read_text().splitlines():
        if re.match(r"# (\[|[a-z_]+ = )", line):
            line = line[2:].split("  #")[0]
        lines.append(line.replace('"recordings"', repr(str(tmp_path / "rec"))))
    config = tmp_path / "full.toml"
    config.write_text("\n".join(lines) + "\n")
    result = fms("check-config", str(config))
    assert result.returncode == 0, result.stderr
    assert "(6 plugins loaded and verified)" in result.stdout
