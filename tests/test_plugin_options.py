"""A plugin's options are checked against its ``__init__`` annotations when it is built (by
``fms check-config`` and at start), in the words of the configuration file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from fms.apps.loader import build, build_all
from fms.apps.options import edit_distance, misspelled_hooks
from fms.config import PluginSpec, parse_config
from fms.errors import ConfigError

VIEWER_LIMIT = """
from __future__ import annotations

from pathlib import Path
from typing import Literal

from fms.apps.api import Plugin, Reject


class ViewerLimit(Plugin):
    def __init__(
        self,
        *,
        max_players: int,
        message: str = "full",
        ratio: float = 1.0,
        strict: bool = False,
        names: list[str] | None = None,
        weights: dict[str, int] | None = None,
        banner: Path | None = None,
        mode: Literal["soft", "hard"] = "soft",
    ) -> None:
        self.max_players = max_players
        self.ratio = ratio
        self.names = names
        self.weights = weights
        self.banner = banner

    def play(self, client, name, query):
        return None if self.max_players > 0 else Reject("full")
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "viewerlimit.py").write_text(VIEWER_LIMIT)
    return tmp_path


def built(folder: Path, options: str) -> Any:
    """The plugin built from a configuration file in ``folder`` with ``options`` (TOML)."""
    source = str(folder / "fms.toml")
    config = parse_config(f"[[apps.live.plugins]]\nuse = 'viewerlimit'\n{options}\n", source)
    (plugin,) = build_all(config, warn=lambda text: None)["live"]
    return plugin


def problems(folder: Path, options: str) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        built(folder, options)
    return raised.value.problems


def test_an_option_of_the_wrong_type_is_refused_with_file_key_and_reason(folder: Path) -> None:
    assert problems(folder, 'max_players = "two"') == [
        f"{folder / 'fms.toml'}: apps.live.plugins[0].max_players: expected integer, "
        "got string 'two'"
    ]


def test_an_integer_is_accepted_where_a_number_is_annotated_and_given_as_float(
    folder: Path,
) -> None:
    plugin = built(folder, "max_players = 2\nratio = 3")
    assert plugin.ratio == 3.0 and isinstance(plugin.ratio, float)


def test_a_boolean_is_not_an_integer(folder: Path) -> None:
    (problem,) = problems(folder, "max_players = true")
    assert problem.endswith("max_players: expected integer, got boolean True")


def test_every_item_of_a_list_and_every_value_of_a_table_is_checked(folder: Path) -> None:
    found = problems(folder, 'max_players = 1\nnames = ["a", 2]\nweights = { a = 1, b = "x" }')
    assert [p.split(": ", 1)[1] for p in found] == [
        "apps.live.plugins[0].names: expected array of string, got array ['a', 2]",
        "apps.live.plugins[0].weights: expected table of integer, got table {'a': 1, 'b': 'x'}",
    ]
    plugin = built(folder, 'max_players = 1\nnames = ["a"]\nweights = { a = 1 }')
    assert plugin.names == ["a"] and plugin.weights == {"a": 1}


def test_a_literal_option_names_its_choices(folder: Path) -> None:
    (problem,) = problems(folder, 'max_players = 1\nmode = "medium"')
    assert problem.endswith("mode: expected one of 'soft', 'hard', got string 'medium'")


def test_a_misspelled_option_lists_the_accepted_ones(folder: Path) -> None:
    (problem,) = problems(folder, "max_players = 1\nmax_player = 2")
    assert problem.endswith(
        "apps.live.plugins[0].max_player: unknown option of plugin 'viewerlimit' (its options: "
        "max_players, message, ratio, strict, names, weights, banner, mode)"
    )


def test_a_missing_required_option_is_named(folder: Path) -> None:
    (problem,) = problems(folder, "")
    assert "apps.live.plugins[0].max_players: missing: plugin 'viewerlimit' needs it" in problem


def test_a_relative_path_option_starts_from_the_configuration_files_folder(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir("/")
    plugin = built(folder, 'max_players = 1\nbanner = "banners/top.txt"')
    assert plugin.banner == folder.resolve() / "banners" / "top.txt"
    absolute = built(folder, 'max_players = 1\nbanner = "/etc/banner"')
    assert absolute.banner == Path("/etc/banner")


CHECKED = """
from __future__ import annotations

from pathlib import Path

from fms.apps.api import Plugin


class KeyFile(Plugin):
    def __init__(self, *, keys_file: Path) -> None:
        self.keys_file = keys_file

    def check_config(self) -> None:
        self.keys_file.read_text()
"""


def test_a_failing_check_config_is_a_configuration_error(tmp_path: Path) -> None:
    (tmp_path / "keyfile.py").write_text(CHECKED)
    spec = PluginSpec("keyfile", {"keys_file": "keys.json"}, "fms.toml: apps.live.plugins[0]")
    with pytest.raises(ConfigError) as raised:
        build(spec, [tmp_path], base=tmp_path)
    (problem,) = raised.value.problems
    assert problem.startswith("fms.toml: apps.live.plugins[0]: plugin 'keyfile': ")
    assert "FileNotFoundError" in problem and str(tmp_path / "keys.json") in problem
    (tmp_path / "keys.json").write_text("{}")
    assert build(spec, [tmp_path], base=tmp_path).keys_file == tmp_path / "keys.json"


def test_a_method_that_looks_like_a_misspelled_hook_is_warned_about(tmp_path: Path) -> None:
    (tmp_path / "typo.py").write_text(
        "from fms.apps.api import Plugin\n\n\nclass Typo(Plugin):\n"
        "    def plya(self, client, name, query):\n        return None\n\n"
        "    def helper(self):\n        return None\n"
    )
    warnings: list[str] = []
    build(
        PluginSpec("typo", {}, "fms.toml: apps.live.plugins[0]"), [tmp_path], warn=warnings.append
    )
    assert warnings == [
        "fms.toml: apps.live.plugins[0]: plugin 'typo': method plya() is not a hook and will "
        "never be called: did you mean play()? (start helper methods with an underscore)"
    ]


@pytest.mark.parametrize(
    ("name", "hook"),
    [("plya", "play"), ("pubish", "publish"), ("conect", "connect"), ("app_stat", "app_start")],
)
def test_names_one_or_two_edits_from_a_hook_are_suspect(name: str, hook: str) -> None:
    cls = type("P", (), {name: lambda self: None})
    assert misspelled_hooks(cls, ["play", "publish", "connect", "app_start"], None) == [
        (name, hook)
    ]


@pytest.mark.parametrize("name", ["players", "publisher_of", "send_all", "reload"])
def test_helper_names_far_from_every_hook_are_not_suspect(name: str) -> None:
    cls = type("P", (), {name: lambda self: None})
    assert misspelled_hooks(cls, ["play", "publish", "connect", "app_start", "stop"], None) == []


def test_swapping_two_neighbouring_letters_is_one_edit() -> None:
    assert edit_distance("plya", "play") == 1
    assert edit_distance("play", "play") == 0
    assert edit_distance("stop", "shop") == 1
    assert edit_distance("", "call") == 4


def test_a_hook_with_the_wrong_arguments_is_named_in_the_docs_words(tmp_path: Path) -> None:
    (tmp_path / "short.py").write_text(
        "from fms.apps.api import Plugin\n\n\nclass Short(Plugin):\n"
        "    def play(self, client, name):\n        return None\n"
    )
    with pytest.raises(ConfigError) as raised:
        build(PluginSpec("short", {}, "fms.toml: apps.live.plugins[0]"), [tmp_path])
    assert raised.value.problems == [
        "fms.toml: apps.live.plugins[0]: plugin 'short': the play hook is called as "
        "play(client, name, query) but is defined as play(client, name)"
    ]


def test_a_file_without_a_plugin_class_says_so_in_the_docs_words(tmp_path: Path) -> None:
    (tmp_path / "empty.py").write_text("X = 1\n")
    with pytest.raises(ConfigError) as raised:
        build(PluginSpec("empty", {}, "fms.toml: apps.live.plugins[0]"), [tmp_path])
    (problem,) = raised.value.problems
    assert problem == (
        f"fms.toml: apps.live.plugins[0]: plugin 'empty': {tmp_path / 'empty.py'} defines no "
        "plugin class (a class derived from fms.apps.api.Plugin)"
    )


def test_the_shipped_recorders_relative_directory_starts_from_the_configuration_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    config = parse_config(
        "[[apps.live.plugins]]\nuse = 'recorder'\ndirectory = 'recordings'\n",
        str(tmp_path / "fms.toml"),
    )
    (recorder,) = build_all(config)["live"]
    assert recorder.directory == tmp_path.resolve() / "recordings"
    assert recorder.directory.is_dir() and not (elsewhere / "recordings").exists()
