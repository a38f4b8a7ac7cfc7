"""What plugins see: views of clients and streams, over small typed handles.

A :class:`ClientView` never holds a protocol object: the edge that serves the client (RTMP
today) hands it a :class:`ClientLink`, the four things a view needs of a connection. A
:class:`StreamView` reads a :class:`~fms.live.stream.LiveStream`, whose publisher is the
publishing client's view itself (the edge claims a stream with it), so no attribute of an edge
is ever looked up by name.
"""

from __future__ import annotations

import itertools
from typing import Any, Protocol

from twisted.internet.defer import Deferred, fail
from zope.interface import implementer

from fms.apps.interfaces import IAppView, IClientView, IStreamView
from fms.errors import ApplicationError
from fms.live.stream import LiveStream
from fms.rtmp.status import StatusCode


class ClientLink(Protocol):
    """What a :class:`ClientView` needs of the connection it describes."""

    def streams(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(names it publishes, names it plays)."""
        ...

    def invoke(self, method: str, args: tuple[Any, ...], expect_result: bool) -> float | None:
        """Call ``method`` on the client; the transaction id (0 without an answer expected),
        or None when the client is not (or no longer) connected."""
        ...

    def close(self, reason: str) -> None:
        """Close the connection, logging ``reason``."""
        ...

    @property
    def application(self) -> IAppView | None:
        """The application the client connected to (None before its connect was read)."""
        ...


@implementer(IClientView)
class ClientView:
    """What plugins see of one client (read-only), and how they call it."""

    _ids = itertools.count(1)

    def __init__(
        self,
        link: ClientLink,
        *,
        peer: str,
        host: str,
        app: str,
        tc_url: str = "",
        params: dict[str, Any] | None = None,
        query: dict[str, str] | None = None,
        agent: str = "",
        protocol: str = "rtmp",
    ) -> None:
        self.id = next(ClientView._ids)
        self._link = link
        self.peer = peer
        self.host = host
        self.app = app
        self.tc_url = tc_url
        self.params = dict(params or {})
        self.query = dict(query or {})
        self.agent = agent
        self.protocol = protocol
        self._calls: dict[float, Deferred[tuple[Any, ...]]] = {}

    @property
    def application(self) -> IAppView | None:
        """The view of the client's application (``app`` is its name)."""
        return self._link.application

    @property
    def publishing(self) -> tuple[str, ...]:
        return self._link.streams()[0]

    @property
    def playing(self) -> tuple[str, ...]:
        return self._link.streams()[1]

    def call(self, method: str, *args: Any) -> Deferred[tuple[Any, ...]]:
        tid = self._link.invoke(method, args, True)
        if tid is None:
            return fail(ConnectionError(f"{self.peer} is not connected"))
        d: Deferred[tuple[Any, ...]] = Deferred()
        self._calls[tid] = d
        return d

    def send(self, method: str, *args: Any) -> None:
        self._link.invoke(method, args, False)

    def disconnect(self, reason: str = "") -> None:
        self._link.close(reason or "disconnected by the application")

    def resolve(self, transaction_id: float, values: tuple[Any, ...], ok: bool) -> None:
        """The client answered call ``transaction_id`` (``_result`` when ``ok``)."""
        d = self._calls.pop(transaction_id, None)
        if d is None:
            return
        if ok:
            d.callback(values[1:] if values and values[0] is None else values)
        else:
            info_obj = next((v for v in values if isinstance(v, dict)), {})
            d.errback(
                ApplicationError(
                    str(info_obj.get("description", "")),
                    str(info_obj.get("code", StatusCode.CALL_FAILED)),
                )
            )

    def fail_calls(self, error: Exception) -> None:
        """The client left: every call still waiting fails with ``error``."""
        calls, self._calls = self._calls, {}
        for d in calls.values():
            d.errback(error)

    def __repr__(self) -> str:
        return f"<ClientView {self.id} {self.peer} {self.app!r}>"


class StreamFigures:
    """The figures of :attr:`IStreamView.figures` that plugins use most, as properties; for
    a class with a ``figures`` dict (read once per property)."""

    @property
    def figures(self) -> dict[str, Any]:
        raise NotImplementedError

    @property
    def bitrate_kbps(self) -> float:
        """Bitrate in (audio and video) over the last 5 seconds, kbit/s."""
        rates = self.figures.get("bitrate_kbps") or {}
        return float(rates.get("total") or 0.0)

    def _video(self, key: str) -> Any:
        video = self.figures.get("video")
        return None if video is None else video.get(key)

    @property
    def video_codec(self) -> str | None:
        """ "h264", "hevc", "av1", "vp9"... or None without video."""
        return self._video("codec")  # type: ignore[no-any-return]

    @property
    def width(self) -> int | None:
        """Displayed width in pixels, or None while unknown."""
        return self._video("width")  # type: ignore[no-any-return]

    @property
    def height(self) -> int | None:
        """Displayed height in pixels, or None while unknown."""
        return self._video("height")  # type: ignore[no-any-return]

    @property
    def fps(self) -> float | None:
        """Frames per second over the last 5 seconds of timestamps, or None while unknown."""
        return self._video("fps")  # type: ignore[no-any-return]


@implementer(IStreamView)
class StreamView(StreamFigures):
    """The read-only view of a :class:`~fms.live.stream.LiveStream` that plugins get."""

    recorded = False

    def __init__(self, stream: LiveStream) -> None:
        self._stream = stream

    @property
    def app(self) -> str:
        return self._stream.app

    @property
    def name(self) -> str:
        return self._stream.name

    @property
    def publisher(self) -> IClientView | None:
        """The publishing client's view (for a stream relayed from another worker: the view
        of the relay link, named after the original publisher), or None."""
        publisher = self._stream.publisher
        return publisher if IClientView.providedBy(publisher) else None

    @property
    def subscriber_count(self) -> int:
        """Players on every worker (``fms run --workers``; the other workers' count is at
        most about a second old)."""
        return self._stream.subscriber_count

    @property
    def metadata(self) -> dict[str, Any] | None:
        data = self._stream.metadata
        if data is None:
            return None
        for value in data.values[1:]:
            if isinstance(value, dict):
                return dict(value)
        return None

    @property
    def figures(self) -> dict[str, Any]:
        """The stream's figures now: :meth:`fms.live.stream.LiveStream.figures`."""
        return self._stream.figures()

    def __repr__(self) -> str:
        return f"<StreamView {self.app}/{self.name}>"


@implementer(IStreamView)
class RecordingView(StreamFigures):
    """What plugins see of a recording played from a file: its name, its onMetaData, and
    figures that say it is recorded (with its duration in seconds)."""

    recorded = True
    publisher = None
    subscriber_count = 0

    def __init__(
        self, app: str, name: str, metadata: dict[str, Any] | None, duration: float
    ) -> None:
        self.app = app
        self.name = name
        self._metadata = dict(metadata) if metadata is not None else None
        self.duration = duration

    @property
    def metadata(self) -> dict[str, Any] | None:
        return dict(self._metadata) if self._metadata is not None else None

    @property
    def figures(self) -> dict[str, Any]:
        meta = self._metadata or {}
        width, height = meta.get("width"), meta.get("height")
        video = None
        if isinstance(width, (int, float)) and isinstance(height, (int, float)):
            video = {"codec": None, "width": int(width), "height": int(height), "fps": None}
        return {
            "recorded": True,
            "duration": self.duration,
            "published": False,
            "bitrate_kbps": {"total": 0.0, "video": 0.0, "audio": 0.0},
            "video": video,
            "audio": None,
            "metadata": self.metadata,
        }

    def __repr__(self) -> str:
        return f"<RecordingView {self.app}/{self.name}>"
