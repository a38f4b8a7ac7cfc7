"""Recording file names and disk budgets, without touching the disk.

Names: a client chooses the stream name, so it is made one safe path component
(:func:`path_component`) before it goes into the operator's template
(``"{stream}-{start:%Y%m%d-%H%M%S}.flv"``: ``stream`` the safe name, ``app`` the safe
application name, ``start`` the recording's start as a UTC ``datetime``). The template itself is
checked once (:func:`check_template`): whatever the stream name, the result is one component
of at most 255 bytes that does not start with a dot.

Budgets: the recordings of one application may use at most so many bytes;
:func:`oldest_over_budget` picks the files to delete (oldest first) to make room.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

DEFAULT_TEMPLATE = "{stream}-{start:%Y%m%dT%H%M%SZ}.flv"
"""The file name of a recording: the stream name and the UTC time it started."""
MAX_COMPONENT = 160
"""Longest encoded app or stream name in a file name (bytes), well under the usual 255."""
MAX_FILE_NAME = 255
"""Longest file name most filesystems take (bytes)."""
_UNSAFE = set('%/\\<>:"|?*')
_FIELDS = frozenset({"stream", "app", "start"})
_SUFFIX = 8
"""Bytes kept free in a file name for the ``-N`` of a name already taken."""


def path_component(name: str, limit: int = MAX_COMPONENT) -> str:
    """``name`` as one safe path component: ``/``, ``\\``, ``%``, control and separator
    characters, characters Windows forbids and a leading ``.`` are written ``%XX``; cut at
    ``limit`` bytes (:data:`MAX_COMPONENT`); never empty, ``.`` or ``..``, and distinct names
    give distinct components unless they are very long."""
    out: list[str] = []
    size = 0
    for index, char in enumerate(name):
        unsafe = (
            char in _UNSAFE
            or (unicodedata.category(char)[0] in "CZ" and char != " ")
            or (char == "." and index == 0)
        )
        piece = "".join(f"%{b:02X}" for b in char.encode("utf-8", "surrogatepass"))
        text = piece if unsafe else char
        width = len(text.encode("utf-8", "surrogatepass"))
        if size + width > limit:
            break
        out.append(text)
        size += width
    component = "".join(out)
    if component.endswith((" ", ".")):  # Windows drops them; keep names round-trippable
        component = component[:-1] + f"%{ord(component[-1]):02X}"
    return component or "%00"


def safe_file_name(name: str) -> bool:
    """Whether ``name`` is one harmless path component (no separator, NUL, leading dot)."""
    return (
        bool(name)
        and not name.startswith(".")
        and "/" not in name
        and "\\" not in name
        and "\0" not in name
        and len(name.encode("utf-8", "surrogatepass")) <= MAX_FILE_NAME
    )


def render(template: str, *, app: str, stream: str, start: float, attempt: int = 0) -> str:
    """The file name of a recording of ``app``/``stream`` started at ``start`` (seconds since
    the epoch); ``attempt`` > 0 adds ``-N`` before the extension, for a name already taken.
    ValueError if the result is not a safe file name (a template :func:`check_template`
    passed never gives one)."""
    when = datetime.fromtimestamp(start, UTC)
    fixed = len(template.format(stream="", app="", start=when).encode("utf-8", "surrogatepass"))
    names = sum(1 for _, f, _, _ in string.Formatter().parse(template) if f in ("stream", "app"))
    limit = min(MAX_COMPONENT, (MAX_FILE_NAME - fixed - _SUFFIX) // max(names, 1))
    if limit < _SUFFIX:
        raise ValueError(f"the template {template!r} leaves no room for the stream name")
    name = template.format(
        stream=path_component(stream, limit), app=path_component(app, limit), start=when
    )
    if attempt:
        stem, dot, ext = name.rpartition(".")
        name = f"{stem}-{attempt}.{ext}" if dot and stem else f"{name}-{attempt}"
    if not safe_file_name(name):
        raise ValueError(f"unsafe recording file name {name!r}")
    return name


def check_template(template: str) -> None:
    """ValueError unless ``template`` names one ``.flv`` file in the folder for any stream."""
    if not isinstance(template, str) or not template.endswith(".flv"):
        raise ValueError('name: expected a template ending in ".flv"')
    try:
        fields = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    except ValueError as exc:
        raise ValueError(f"name: {exc}") from None
    if "{stream}" not in template.replace("{stream!s}", "{stream}") or fields - _FIELDS:
        raise ValueError("name: expected {stream}, and only {app} and {start:...} beside it")
    longest = "\U0010ffff" * MAX_COMPONENT
    try:
        render(template, app=longest, stream=longest, start=4102444799.0, attempt=999)
        render(template, app="..", stream="..", start=0.0)
    except (ValueError, KeyError, IndexError) as exc:
        raise ValueError(f"name: {exc}") from None


def template_pattern(template: str, *, app: str, stream: str) -> re.Pattern[str]:
    """What the names of ``app``/``stream``'s recordings look like (any start time or
    attempt suffix): to find the newest one to append to."""
    out = []
    for literal, name, _spec, _conv in string.Formatter().parse(template):
        out.append(re.escape(literal))
        if name == "stream":
            out.append(re.escape(path_component(stream)))
        elif name == "app":
            out.append(re.escape(path_component(app)))
        elif name is not None:
            out.append(".+?")
    pattern = "".join(out)
    ext = re.escape(".flv")
    if pattern.endswith(ext):
        pattern = pattern[: -len(ext)] + r"(?:-\d+)?" + ext
    return re.compile(pattern, re.DOTALL)


@dataclass(frozen=True, slots=True)
class StoredFile:
    """A recording on disk: its name, size (bytes) and modification time (ns)."""

    name: str
    size: int
    mtime: int


def oldest_over_budget(
    files: Sequence[StoredFile], budget: int, *, keep: frozenset[str] = frozenset()
) -> list[StoredFile]:
    """The oldest files to delete so that the rest uses at most ``budget`` bytes, never those
    named in ``keep`` (recordings being written); as many as can help when that is not enough."""
    total = sum(f.size for f in files)
    chosen: list[StoredFile] = []
    for stored in sorted(files, key=lambda f: (f.mtime, f.name)):
        if total <= budget:
            break
        if stored.name in keep:
            continue
        chosen.append(stored)
        total -= stored.size
    return chosen
