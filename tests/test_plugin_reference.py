"""docs/plugins.md's reference agrees with the plugin API: every attribute and method of the
views, every hook and every field of the records is in the page, and the generated section is
what ``scripts/plugin_reference.py`` makes of the code today."""

from __future__ import annotations

import dataclasses
import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest
from zope.interface.interface import InterfaceClass

from fms.apps import api
from fms.apps.interfaces import IAppView, IClientView, IPlugin, IStreamView

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "plugins.md"


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "plugin_reference", ROOT / "scripts" / "plugin_reference.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def table_section(title: str) -> str:
    """The text under ``### `title` `` (up to the next heading) of the page's reference."""
    text = DOC.read_text()
    match = re.search(
        rf"^### `{re.escape(title)}`\n(.*?)(?=^#|<!-- reference:end)", text, re.M | re.S
    )
    assert match is not None, f"docs/plugins.md has no reference section for {title}"
    return match.group(1)


def test_the_reference_section_is_what_the_code_generates_today() -> None:
    reference = generator()
    text = DOC.read_text()
    assert reference.current(text) == reference.render(), (
        "docs/plugins.md is stale: run .venv/bin/python scripts/plugin_reference.py --write"
    )


@pytest.mark.parametrize(
    ("interface", "var"), [(IClientView, "client"), (IStreamView, "stream"), (IAppView, "app")]
)
def test_every_member_of_a_view_has_a_row(interface: InterfaceClass, var: str) -> None:
    rows = re.findall(rf"^\| `{var}\.(\w+)", table_section(interface.__name__), re.M)
    assert sorted(rows) == sorted(interface.names())


def test_every_hook_has_a_row() -> None:
    text = DOC.read_text()
    hooks = text[text.index("### Hooks (`IPlugin`)") : text.index("### `IClientView`")]
    assert sorted(re.findall(r"^\| `(\w+)\(", hooks, re.M)) == sorted(IPlugin.names(all=True))


@pytest.mark.parametrize("record", [api.Reject, api.Redirect, api.Rename, api.MediaFrame])
def test_every_field_of_a_record_has_a_row(record: type) -> None:
    rows = re.findall(r"^\| `(\w+)`", table_section(record.__name__), re.M)
    fields = [f.name for f in dataclasses.fields(record)]
    assert [r for r in rows if r in fields] == fields


def test_the_stream_of_a_name_not_published_yet_is_explained() -> None:
    row = next(r for r in table_section("IAppView").splitlines() if r.startswith("| `app.stream("))
    assert "publisher` is None" in row and "or None when" in row
