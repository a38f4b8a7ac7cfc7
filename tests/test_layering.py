"""The direction of imports: rooms by layer, imports point down only, no circles.

The sans-IO layers (``fms.rtmp``, ``fms.amf``, ``fms.live``) load no Twisted and no zope; the
import graph of every module of ``fms`` and the shipped plugins is read from the source (every
``import`` statement, including those under ``TYPE_CHECKING`` and inside functions) and checked
against the table of what each room may know.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SANS_IO = ["fms.rtmp", "fms.amf", "fms.rtmp.connection", "fms.rtmp.client", "fms.live",
           "fms.live.stream", "fms.live.registry", "fms.live.media", "fms.live.names",
           "fms.hls", "fms.vod"]  # fmt: skip

BASE = {"errors", "counters"}
UTIL = BASE | {"config", "log", "jsonlog", "__init__"}
ALLOWED: dict[str, set[str]] = {
    # room -> the rooms (first name below fms) its modules may import
    "errors": set(),
    "counters": set(),
    "__init__": set(),
    "amf": BASE,
    "rtmp": BASE | {"amf"},
    "live": BASE | {"rtmp", "amf"},
    "config": BASE,
    "log": BASE | {"jsonlog"},
    "jsonlog": set(),
    # sans-IO muxing for HLS (fMP4/CMAF, MPEG-TS, segments, playlists)
    "hls": BASE | {"live", "rtmp", "amf"},
    # sans-IO recorded streams: FLV files written, indexed, repaired and read back
    "vod": BASE | {"live", "rtmp", "amf"},
    "apps": UTIL | {"live", "rtmp", "amf"},
    "server": UTIL | {"apps", "live", "vod", "rtmp", "amf"},
    "http": UTIL | {"server", "apps", "live", "hls", "vod", "rtmp", "amf"},
    "cluster": UTIL | {"http", "server", "apps", "live", "hls", "vod", "rtmp", "amf"},
    "cli": UTIL | {"http", "server", "cluster", "apps"},
    "__main__": {"cli"},
    # the test kit for plugin authors: stand-in views of the plugin API, and `fms run`
    "testing": UTIL | {"apps"},
    # deprecated re-exports of the plugin API
    "plugin": {"apps"},
    "interfaces": {"apps"},
    # shipped plugins see the plugin API and plain codecs, never wire records or the edges
    "plugins": UTIL | {"apps", "amf", "vod"},
}
"""What each room may import. ``live``, ``rtmp`` and ``amf`` know no edge; ``apps`` never
imports ``server`` or ``cluster``; ``server`` never imports ``cluster`` (the cluster extends
the server through the observer and subclass hooks the server defines)."""


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[0] == "plugins":
        parts = ["fms", *parts]
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _sources() -> dict[str, Path]:
    files = [*sorted((ROOT / "fms").rglob("*.py")), *sorted((ROOT / "plugins").glob("*.py"))]
    return {_module_name(path): path for path in files}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The ``fms`` modules that ``name`` imports (resolved to modules, not attributes)."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name and target != "fms":
                found.add(target)
            elif target == "fms" and isinstance(node, ast.ImportFrom) and node.module == "fms":
                found.add("fms")
    return found


def _room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


GRAPH = {name: _imports(name, path, set(_sources())) for name, path in _sources().items()}


@pytest.mark.parametrize("module", SANS_IO)
def test_sans_io_module_loads_no_twisted_or_zope(module: str) -> None:
    code = (
        f"import sys, {module}\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('twisted', 'zope'))\n"
        "print(','.join(loaded))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == ""


def test_every_room_is_in_the_table() -> None:
    """A new folder or top-level module of fms gets a line in ALLOWED before it gets code."""
    assert {_room(m) for m in GRAPH} <= set(ALLOWED)


def test_imports_point_down_only() -> None:
    upward = sorted(
        f"{module} imports {target}"
        for module, targets in GRAPH.items()
        for target in targets
        if _room(target) != _room(module) and _room(target) not in ALLOWED[_room(module)]
    )
    assert upward == []


def test_no_import_circle() -> None:
    """No module reaches itself through imports (Tarjan's strongly connected components)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []
    counter = [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in GRAPH.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for node in sorted(GRAPH):
        if node not in index:
            visit(node)
    assert circles == []


def test_the_graph_is_read() -> None:
    """The checks above see real edges (a parser that found nothing would pass them)."""
    assert "fms.live.stream" in GRAPH["fms.live.registry"]
    assert "fms.rtmp.chunks" in GRAPH["fms.live.stream"]


def test_no_module_is_over_700_lines() -> None:
    long = {m: n for m, p in _sources().items() if (n := len(p.read_text().splitlines())) > 700}
    assert long == {}


def test_no_symbolic_link_in_the_tree() -> None:
    result = subprocess.run(
        ["git", "ls-files", "-s"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    links = [
        line.split("\t")[1] for line in result.stdout.splitlines() if line.startswith("120000")
    ]
    assert links == []


def test_packages_list_matches_the_folders() -> None:
    """pyproject.toml lists packages explicitly (plugins/ installs as fms.plugins): every folder
    of fms/ with an __init__.py is in the list, so a new room is never left out of a wheel."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = {
        ".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "fms").rglob("__init__.py")
    }
    assert set(config["packages"]) == folders | {"fms.plugins"}
    assert config["package-dir"] == {"fms.plugins": "plugins"}


def test_shipped_plugins_have_one_import_name() -> None:
    """Nothing imports the shipped plugins as ``plugins.x``: only ``fms.plugins.x``."""
    offenders = []
    folders = [ROOT / "fms", ROOT / "tests", ROOT / "plugins", ROOT / "benchmarks"]
    for path in [p for folder in folders for p in folder.rglob("*.py")]:
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            offenders += [f"{path}: {n}" for n in names if n.split(".")[0] == "plugins"]
    assert offenders == []
