"""Finding plugins: entry points, files in plugin folders, dotted paths."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from fms.apps.loader import build, build_all, resolve
from fms.config import PluginSpec, load_config
from fms.errors import ConfigError

PLUGIN_FILE = """
from fms.apps.api import Plugin, Reject


class OnlyCam(Plugin):
    def __init__(self, *, allowed: str = "cam") -> None:
        self.allowed = allowed

    def publish(self, client, name, query, kind):
        return None if name == self.allowed else Reject("only " + self.allowed)
"""


def test_a_file_in_the_plugin_folder_beside_the_config_is_found(tmp_path: Path) -> None:
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "onlycam.py").write_text(PLUGIN_FILE)
    config_file = tmp_path / "fms.toml"
    config_file.write_text("[[apps.live.plugins]]\nuse = 'onlycam'\nallowed = 'x'\n")
    chains = build_all(load_config(config_file))
    (plugin,) = chains["live"]
    assert type(plugin).__name__ == "OnlyCam" and plugin.allowed == "x"


def test_a_module_with_two_plugin_classes_needs_the_class_named(tmp_path: Path) -> None:
    (tmp_path / "two.py").write_text(PLUGIN_FILE + "\n\nclass Other(OnlyCam):\n    pass\n")
    with pytest.raises(ConfigError, match="name the class"):
        resolve("two", [tmp_path])
    assert resolve("two:Other", [tmp_path]).__name__ == "Other"


def test_a_dotted_path_names_a_class_in_an_importable_module() -> None:
    assert resolve("fms.apps.api:Plugin").__name__ == "Plugin"


def test_build_passes_options_as_keyword_arguments(tmp_path: Path) -> None:
    (tmp_path / "onlycam2.py").write_text(PLUGIN_FILE)
    plugin = build(PluginSpec("onlycam2", {"allowed": "y"}), [tmp_path])
    assert plugin.allowed == "y"


def test_check_config_loads_and_verifies_the_plugins(tmp_path: Path) -> None:
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "broken.py").write_text(
        "from zope.interface import implementer\nfrom fms.apps.interfaces import IApplication\n"
        "@implementer(IApplication)\nclass Broken:\n    pass\n"
    )
    config_file = tmp_path / "fms.toml"
    config_file.write_text("[[apps.live.plugins]]\nuse = 'broken'\n")
    result = subprocess.run(
        [sys.executable, "-m", "fms", "check-config", str(config_file)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1
    assert "apps.live.plugins[0]: plugin 'broken': the class lacks the hooks app_start," in (
        result.stderr
    )  # the missing hooks are named, in the docs' words
    assert "derive it from fms.apps.api.Plugin" in result.stderr
