"""What plugin authors import: decisions, a base class, and the errors they may raise.

A plugin's hook answers with one of these records (or ``None``, meaning no objection)::

    from fms.apps.api import Plugin, Reject

    class OnlyCam(Plugin):
        def publish(self, client, name, query, kind):
            if name != "cam":
                return Reject("only 'cam' may be published here")
            return None
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from zope.interface import implementer

from fms.apps.interfaces import (
    IApplication,
    IAppView,
    IClientView,
    INotifications,
    IPlugin,
    IStreamView,
)
from fms.apps.pulls import PullError
from fms.apps.pushes import PushError
from fms.errors import ApplicationError
from fms.rtmp.status import StatusCode


@dataclass(frozen=True, slots=True)
class Accept:
    """Let the client go ahead (the same as returning None)."""


ACCEPT = Accept()


@dataclass(frozen=True, slots=True)
class Reject:
    """Refuse; ``reason`` goes to the client as the status description and to the log.

    ``code`` overrides the status code the client gets (e.g. ``"NetStream.Publish.BadName"``;
    a :class:`~fms.rtmp.status.StatusCode` value, as a string). Without one, or with a code
    RTMP clients would not know, a refused connect gets ``NetConnection.Connect.Rejected``, a
    publish ``NetStream.Publish.Denied`` and a play ``NetStream.Play.Failed``.
    """

    reason: str = ""
    code: str | None = None


@dataclass(frozen=True, slots=True)
class Redirect:
    """Send the client elsewhere: for ``connect``, the ``_error`` carries ``ex.code`` 302 and
    ``ex.redirect`` = ``url``, as Flash Media Server signals it."""

    url: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Rename:
    """Accept under another stream name (publish), or play another stream (play)."""

    name: str


Decision = Accept | Reject | Redirect | Rename | None


@dataclass(frozen=True, slots=True)
class MediaFrame:
    """One message of a published stream, as plugins that want media (recorders) get it.

    ``kind`` is ``"audio"``, ``"video"`` or ``"data"``; ``timestamp`` in ms (RTMP's 32-bit
    clock); ``payload`` the FLV tag body of an audio or video message (empty for data);
    ``values`` the decoded values of a data message, its name first (empty otherwise);
    ``codec`` a FourCC (``"avc1"``, ``"hvc1"``, ``"av01"``, ``"mp4a"``, ``"Opus"``...);
    ``keyframe`` true for a video keyframe and every audio frame; ``sequence_header`` for
    decoder configuration. The header was read once by the server: plugins need no parser.
    """

    kind: str
    timestamp: int
    payload: bytes = b""
    values: tuple[Any, ...] = ()
    codec: str = ""
    keyframe: bool = False
    sequence_header: bool = False

    @property
    def tag_type(self) -> int:
        """The FLV tag type: 8 audio, 9 video, 18 script data."""
        return {"audio": 8, "video": 9}.get(self.kind, 18)

    @property
    def name(self) -> str | None:
        """A data message's name (``onMetaData``, ``onTextData``...), else None."""
        return self.values[0] if self.values and isinstance(self.values[0], str) else None


class NotHandled(Exception):
    """Raised by :meth:`Plugin.call` for methods a plugin does not answer: the next plugin of
    the chain is asked, and a call nobody answers gets ``NetConnection.Call.Failed``."""


class CallError(ApplicationError):
    """Raise from :meth:`Plugin.call` to answer with an ``_error`` carrying ``description``."""


@implementer(IPlugin)
class Plugin:
    """A plugin with every hook implemented as "no objection"; override what you need.

    Options from the configuration arrive as keyword arguments of the constructor, so a plugin
    that takes options defines ``__init__(self, *, secret: str, ...)``.
    """

    def app_start(self, app: IAppView) -> Any:
        return None

    def app_stop(self, app: IAppView) -> Any:
        return None

    def connect(self, client: IClientView) -> Any:
        return None

    def disconnect(self, client: IClientView) -> Any:
        return None

    def publish(self, client: IClientView, name: str, query: dict[str, str], kind: str) -> Any:
        return None

    def unpublish(self, client: IClientView, stream: IStreamView) -> Any:
        return None

    def play(self, client: IClientView, name: str, query: dict[str, str]) -> Any:
        return None

    def stop(self, client: IClientView, name: str) -> Any:
        return None

    def published(self, stream: IStreamView) -> Any:
        return None

    def unpublished(self, stream: IStreamView) -> Any:
        return None

    def play_started(self, client: IClientView, stream: IStreamView) -> Any:
        return None

    def play_stopped(self, client: IClientView, stream: IStreamView) -> Any:
        return None

    def media(self, stream: IStreamView, message: Any) -> None:
        return None

    def call(self, client: IClientView, method: str, args: tuple[Any, ...]) -> Any:
        raise NotHandled(method)


__all__ = [
    "ACCEPT",
    "Accept",
    "CallError",
    "Decision",
    "IAppView",
    "IApplication",
    "IClientView",
    "INotifications",
    "IPlugin",
    "IStreamView",
    "MediaFrame",
    "NotHandled",
    "Plugin",
    "PullError",
    "PushError",
    "Redirect",
    "Reject",
    "Rename",
    "StatusCode",
]
