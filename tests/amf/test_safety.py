"""What a peer's bytes must never do: choose a module to import or a class to build.

The canary is ``xml.dom.minidom``, an importable module a fresh interpreter has not imported:
pyamf as shipped imports it when it decodes a typed object named ``xml.dom.minidom.Node`` (the
control test shows the canary works), our decoder does not.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pyamf
import pytest

from fms.amf import TypedObject, decode_values

CANARY_MODULE = "xml.dom.minidom"
CANARY_CLASS = "xml.dom.minidom.Node"
AMF0_TYPED = b"\x10\x00\x14" + CANARY_CLASS.encode() + b"\x00\x00\x09"
AMF3_TYPED = b"\x11\x0a\x03\x29" + CANARY_CLASS.encode()  # sealed traits, no members


def run_fresh(code: str) -> str:
    """Run ``code`` in a fresh interpreter and return what it printed."""
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    return completed.stdout.strip()


@pytest.mark.parametrize("payload", [AMF0_TYPED, AMF3_TYPED], ids=["amf0", "amf3"])
def test_typed_object_decodes_to_data_without_importing_its_module(payload: bytes) -> None:
    printed = run_fresh(
        "import sys\n"
        "from fms.amf import TypedObject, decode_values\n"
        f"before = {CANARY_MODULE!r} in sys.modules\n"
        f"[value] = decode_values({payload!r})\n"
        "assert type(value) is TypedObject, type(value)\n"
        f"print(before, value.class_name, {CANARY_MODULE!r} in sys.modules)\n"
    )
    assert printed == f"False {CANARY_CLASS} False"


def test_control_pyamf_as_shipped_imports_the_module_a_class_name_names() -> None:
    """Shows the canary above would catch a decoder that loads classes."""
    printed = run_fresh(
        "import sys, pyamf\n"
        f"before = {CANARY_MODULE!r} in sys.modules\n"
        "try:\n"
        f"    list(pyamf.decode({AMF0_TYPED!r}, encoding=pyamf.AMF0))\n"
        "except Exception:\n"
        "    pass\n"
        f"print(before, {CANARY_MODULE!r} in sys.modules)\n"
    )
    assert printed == "False True"


@pytest.fixture
def pyamf_class_loading_spy(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Records every alias pyamf is asked to load, through a loader or ``load_class``."""
    asked: list[str] = []

    def loader(alias: str) -> None:
        asked.append(alias)

    def load_class(alias: str) -> None:
        asked.append(alias)
        raise pyamf.UnknownClassAlias(alias)

    monkeypatch.setattr(pyamf, "load_class", load_class)
    pyamf.register_class_loader(loader)
    try:
        yield asked
    finally:
        pyamf.unregister_class_loader(loader)


@pytest.mark.parametrize("payload", [AMF0_TYPED, AMF3_TYPED], ids=["amf0", "amf3"])
def test_decoding_never_calls_pyamf_class_loaders(
    payload: bytes, pyamf_class_loading_spy: list[str]
) -> None:
    [value] = decode_values(payload)
    assert value == TypedObject(CANARY_CLASS)
    assert pyamf_class_loading_spy == []


@pytest.fixture(scope="module")
def modules_after_import() -> set[str]:
    printed = run_fresh("import sys, fms.amf\nprint(' '.join(sorted(sys.modules)))")
    return {name.partition(".")[0] for name in printed.split()}


def test_import_leaves_twisted_and_zope_out(modules_after_import: set[str]) -> None:
    assert {"twisted", "zope"} & modules_after_import == set()


def test_import_does_not_load_pyamf_or_its_import_hook(modules_after_import: set[str]) -> None:
    assert "pyamf" not in modules_after_import
