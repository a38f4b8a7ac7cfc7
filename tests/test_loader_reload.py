"""Plugin files are loaded again only when their text changed (what SIGHUP relies on)."""

from __future__ import annotations

from pathlib import Path

from fms.apps.loader import changed_files, resolve

SOURCE = "from fms.apps.api import Plugin\n\n\nclass Edited(Plugin):\n    VERSION = {!r}\n"


def test_an_unchanged_file_keeps_its_module_and_an_edited_one_is_loaded_again(
    tmp_path: Path,
) -> None:
    path = tmp_path / "edited.py"
    path.write_text(SOURCE.format(1))
    changed_files()
    first = resolve("edited", [tmp_path])
    assert resolve("edited", [tmp_path]) is first  # same text: same class, module state kept
    assert changed_files() == []
    path.write_text(SOURCE.format(2))
    second = resolve("edited", [tmp_path])
    assert second is not first and second.VERSION == 2  # type: ignore[attr-defined]
    assert first.VERSION == 1  # type: ignore[attr-defined]  # instances built before keep it
    assert changed_files() == [path]
    assert changed_files() == []
