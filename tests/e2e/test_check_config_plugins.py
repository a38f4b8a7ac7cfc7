"""``fms check-config`` checks a plugin's options against its annotations, runs its
``check_config()``, and warns about methods that look like misspelled hooks; ``fms run``
refuses to start on the same errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

VIEWER_LIMIT = """
from __future__ import annotations

from pathlib import Path

from fms.apps.api import Plugin, Reject


class ViewerLimit(Plugin):
    def __init__(self, *, max_players: int, banner: Path | None = None) -> None:
        self.max_players = max_players
        self.banner = banner

    def check_config(self) -> None:
        if self.banner is not None and not self.banner.is_file():
            raise FileNotFoundError(f"no banner file {self.banner}")

    def plya(self, client, name, query):
        return None
"""


def fms(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fms", *args], capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def site(tmp_path: Path) -> Path:
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "viewerlimit.py").write_text(VIEWER_LIMIT)
    return tmp_path


def test_a_string_for_an_integer_option_fails_check_config_with_file_key_and_reason(
    site: Path,
) -> None:
    config = site / "fms.toml"
    config.write_text('[[apps.live.plugins]]\nuse = "viewerlimit"\nmax_players = "two"\n')
    result = fms("check-config", str(config))
    assert result.returncode == 1, result.stdout
    assert result.stderr.splitlines()[-1] == (
        f"error: {config}: apps.live.plugins[0].max_players: expected integer, got string 'two'"
    )
    assert "configuration is valid" not in result.stdout
    started = fms("run", "--port", "0", "--config", str(config))  # the same error stops a start
    assert started.returncode == 1
    assert "max_players: expected integer, got string 'two'" in started.stderr


def test_a_missing_file_found_by_check_config_fails_relative_to_the_config_folder(
    site: Path,
) -> None:
    config = site / "fms.toml"
    config.write_text(
        '[[apps.live.plugins]]\nuse = "viewerlimit"\nmax_players = 2\nbanner = "banner.txt"\n'
    )
    result = subprocess.run(  # from another folder: the path still starts from the config's
        [sys.executable, "-m", "fms", "check-config", str(config)],
        capture_output=True, text=True, timeout=60, cwd="/",
    )  # fmt: skip
    assert result.returncode == 1
    assert f"no banner file {site / 'banner.txt'}" in result.stderr
    (site / "banner.txt").write_text("welcome\n")
    result = fms("check-config", str(config))
    assert result.returncode == 0, result.stderr
    assert "configuration is valid (1 plugins loaded and verified)" in result.stdout
    assert "warning: " in result.stderr and "did you mean play()?" in result.stderr
