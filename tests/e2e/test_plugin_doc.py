"""docs/plugins.md's example, run as written: the stream-key plugin, its configuration, and the
unit test the page suggests."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.harness import (
    ServerProcess,
    ffmpeg_publish_command,
    finish,
    frames_by_codec,
    probe_command,
    start,
)

pytestmark = pytest.mark.e2e

DOC = Path(__file__).resolve().parents[2] / "docs" / "plugins.md"


def block(title: str) -> str:
    """The fenced code block of docs/plugins.md with ``title="..."``."""
    match = re.search(rf'```\w+ title="{re.escape(title)}"\n(.*?)```', DOC.read_text(), re.S)
    assert match is not None, f"docs/plugins.md has no block titled {title!r}"
    return match.group(1)


@pytest.fixture
def site(tmp_path: Path) -> Path:
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "mykey.py").write_text(block("plugins/mykey.py"))
    (tmp_path / "fms.toml").write_text(block("fms.toml"))
    return tmp_path


def test_the_documented_config_checks(site: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "fms", "check-config", str(site / "fms.toml")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "1 plugins loaded and verified" in result.stdout


def test_the_documented_unit_test_passes(site: Path) -> None:
    test_file = site / "plugins" / "test_mykey.py"
    test_file.write_text(block("plugins/test_mykey.py"))
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test_file)],
        capture_output=True, text=True, timeout=120, cwd=site / "plugins",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout


def test_the_documented_plugin_refuses_without_the_key_and_streams_with_it(site: Path) -> None:
    server = ServerProcess(config=site / "fms.toml")
    try:
        url = f"{server.url}/live/cam"
        refused = start(ffmpeg_publish_command(url, 2))
        status, _, err = finish(refused)
        assert status != 0
        server.wait_for_line(r"publish live/cam from .* refused by the application: wrong or")
        player = start(probe_command(url))
        server.wait_for_line(r"play live/cam for .*waiting for publisher", timeout=15)
        publisher = start(ffmpeg_publish_command(f"{url}?key=s3cret", 2))
        assert finish(publisher)[0] == 0
        status, out, err = finish(player)
        assert status == 0, err.decode(errors="replace")
        assert frames_by_codec(out)["h264"] == 50
    finally:
        assert server.stop() == 0
