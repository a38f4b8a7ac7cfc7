"""Validation of application and stream names that clients send.

Names end up in logs, in plugin decisions and in recording file names, so a name with control
characters, path separators or ``..`` segments is refused with a clear reason rather than
cleaned up silently.
"""

from __future__ import annotations

import unicodedata


def name_problem(name: str, max_bytes: int, *, allow_slash: bool = False) -> str | None:
    """Why ``name`` is not acceptable, or None when it is."""
    if not name:
        return "the name is empty"
    size = len(name.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        return f"the name is {size} bytes long (at most {max_bytes})"
    for char in name:
        if unicodedata.category(char) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"):
            return f"the name contains the control character U+{ord(char):04X}"
    if "\\" in name:
        return "the name contains a backslash"
    if "/" in name:
        if not allow_slash:
            return "the name contains a slash"
        if name.startswith("/") or name.endswith("/") or "//" in name:
            return "the name has an empty path segment"
    if any(part in (".", "..") for part in name.split("/")):
        return "the name contains a '.' or '..' segment"
    return None
