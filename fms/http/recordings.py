"""Recordings over HTTP: ``GET /APP/NAME.flv`` of a name nobody publishes live downloads the
recording ``NAME.flv`` of the application's ``[apps.APP.vod] folder``, with byte ranges.

The URL is that of HTTP-FLV: a live stream has priority (as ``play`` with start -2000 over
RTMP), and the same plugins decide (the ``play`` hook with the URL's query; ``play_started``
and ``play_stopped`` get a stream view whose ``recorded`` is True). A browser or FFmpeg can
seek in the file with ``Range`` requests (``206 Partial Content``). The bytes are served by
:class:`twisted.web.static.File` (a producer: read as the socket takes them, so a viewer
that does not read costs a file position, not memory), which implements ranges, ``HEAD``,
``If-Modified-Since`` and ``416`` as RFC 9110 asks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from twisted.web.server import NOT_DONE_YET, Request
from twisted.web.static import File

from fms.apps.application import Application
from fms.apps.views import ClientView, RecordingView
from fms.config import Config
from fms.live.registry import StreamRegistry
from fms.log import Logger
from fms.server.vod import recording_path

log = Logger(namespace="fms.http.recordings")

CONTENT_TYPE = "video/x-flv"


def find_recording(config: Config, registry: StreamRegistry, app: str, name: str) -> Path | None:
    """The file ``GET /APP/NAME.flv`` downloads: None when ``NAME`` is live now, when the
    application plays no recordings, or when it has no such file."""
    stream = registry.get(app, name)
    if stream is not None and stream.published:
        return None
    folder = config.app(app).vod.folder
    if not folder:
        return None
    return recording_path(config.path(folder), name)


def serve_recording(
    request: Request,
    path: Path,
    app: str,
    name: str,
    application: Application,
    view: ClientView,
    peer: str,
) -> None:
    """Answer ``request`` with the file at ``path`` (ranges included); plugins hear
    ``play_started`` now and ``play_stopped`` when the response ends."""
    recording = RecordingView(app, name, None, 0.0)
    application.play_started(view, recording)
    request.notifyFinish().addBoth(lambda _: application.play_stopped(view, recording))
    log.info(
        "HTTP download of recording {app}/{stream} ({file}) for {peer}{range}",
        app=app, stream=name, file=path.name, peer=peer,
        range=f" ({request.getHeader(b'range')!r})" if request.getHeader(b"range") else "",
    )  # fmt: skip
    resource = File(str(path), defaultType=CONTENT_TYPE)
    resource.contentTypes = {**resource.contentTypes, ".flv": CONTENT_TYPE}
    request.setHeader(b"Cache-Control", b"public, max-age=60")
    body: Any = resource.render(request)
    if body is not NOT_DONE_YET:
        if body:
            request.write(body)
        request.finish()
