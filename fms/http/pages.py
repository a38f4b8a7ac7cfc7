"""The static files of the HTTP listener: the player page and the script it runs.

``GET /play/{app}/{name}`` serves ``player.html``, one page for every stream: it reads the
stream from its own address and plays ``/{app}/{name}.flv`` (HTTP-FLV, :mod:`fms.http.flv`)
with mpegts.js, or at ``/play/{app}/{name}#hls`` ``/{app}/{name}/index.m3u8`` (HLS,
:mod:`fms.http.hls`) with hls.js. ``GET /static/{file}`` serves the files of
``fms/http/static/``: mpegts.js and hls.js are vendored there from their npm packages at
pinned versions (see ``static/README``), so a server
needs neither npm nor a CDN at run time. Files are read once, through ``importlib.resources``
so an installed package serves the same bytes as a checkout.
"""

from __future__ import annotations

import importlib.resources

PLAYER_PAGE = "player.html"

STATIC_TYPES: dict[str, str] = {
    "mpegts.js": "text/javascript; charset=utf-8",
    "mpegts.js.LICENSE": "text/plain; charset=utf-8",
    "mpegts.js.THIRD-PARTY-LICENSES.txt": "text/plain; charset=utf-8",
    "hls.min.js": "text/javascript; charset=utf-8",
    "hls.js.LICENSE": "text/plain; charset=utf-8",
}
"""The files ``/static/`` serves and their Content-Type; any other name is a 404 (no listing,
no path walking)."""

STATIC_MAX_AGE = 3600
"""Seconds a browser may keep a static file without asking again (they change only with a
new version of the server)."""


def _read(*parts: str) -> bytes | None:
    try:
        resource = importlib.resources.files("fms.http")
        for part in parts:
            resource = resource.joinpath(part)
        return resource.read_bytes()
    except (FileNotFoundError, OSError):
        return None


class Pages:
    """The player page and the static files, read at first use and kept."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, ...], bytes | None] = {}

    def _get(self, *parts: str) -> bytes | None:
        if parts not in self._cache:
            self._cache[parts] = _read(*parts)
        return self._cache[parts]

    def player(self) -> bytes | None:
        """The player page's bytes; None when the package has no page."""
        return self._get(PLAYER_PAGE)

    def static(self, name: str) -> tuple[bytes, str] | None:
        """(bytes, Content-Type) of the static file ``name``; None for an unknown name or a
        file the package lacks."""
        content_type = STATIC_TYPES.get(name)
        if content_type is None:
            return None
        body = self._get("static", name)
        return None if body is None else (body, content_type)
