"""The onStatus vocabulary of Flash Media Server: codes, levels and info objects.

Clients act on the ``level`` (FFmpeg aborts on any "error") and on the ``code`` (players end on
``NetStream.Play.Stop``/``UnpublishNotify``/``StreamNotFound``/``Failed``), so both are fixed per
code here and builders never let a caller pair a code with the wrong level. Descriptions are our
own words; clients show them, none parses them.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class Level(StrEnum):
    """The ``level`` field of an info object."""

    STATUS = "status"
    WARNING = "warning"
    ERROR = "error"


class StatusCode(StrEnum):
    """onStatus / _result / _error codes, spelled as Flash Media Server spells them."""

    CONNECT_SUCCESS = "NetConnection.Connect.Success"
    CONNECT_REJECTED = "NetConnection.Connect.Rejected"
    CONNECT_CLOSED = "NetConnection.Connect.Closed"
    CONNECT_FAILED = "NetConnection.Connect.Failed"
    CONNECT_INVALID_APP = "NetConnection.Connect.InvalidApp"
    CONNECT_APP_SHUTDOWN = "NetConnection.Connect.AppShutdown"
    CONNECT_RECONNECT_REQUEST = "NetConnection.Connect.ReconnectRequest"
    CALL_FAILED = "NetConnection.Call.Failed"
    PUBLISH_START = "NetStream.Publish.Start"
    PUBLISH_BAD_NAME = "NetStream.Publish.BadName"
    PUBLISH_DENIED = "NetStream.Publish.Denied"
    PUBLISH_IDLE = "NetStream.Publish.Idle"
    UNPUBLISH_SUCCESS = "NetStream.Unpublish.Success"
    RECORD_START = "NetStream.Record.Start"
    RECORD_STOP = "NetStream.Record.Stop"
    RECORD_NO_ACCESS = "NetStream.Record.NoAccess"
    RECORD_FAILED = "NetStream.Record.Failed"
    PLAY_START = "NetStream.Play.Start"
    PLAY_RESET = "NetStream.Play.Reset"
    PLAY_STOP = "NetStream.Play.Stop"
    PLAY_FAILED = "NetStream.Play.Failed"
    PLAY_STREAM_NOT_FOUND = "NetStream.Play.StreamNotFound"
    PLAY_PUBLISH_NOTIFY = "NetStream.Play.PublishNotify"
    PLAY_UNPUBLISH_NOTIFY = "NetStream.Play.UnpublishNotify"
    PLAY_INSUFFICIENT_BW = "NetStream.Play.InsufficientBW"
    PLAY_COMPLETE = "NetStream.Play.Complete"
    PAUSE_NOTIFY = "NetStream.Pause.Notify"
    UNPAUSE_NOTIFY = "NetStream.Unpause.Notify"
    SEEK_NOTIFY = "NetStream.Seek.Notify"
    SEEK_FAILED = "NetStream.Seek.Failed"
    DATA_START = "NetStream.Data.Start"
    FAILED = "NetStream.Failed"


_LEVELS: dict[StatusCode, Level] = {
    StatusCode.CONNECT_SUCCESS: Level.STATUS,
    StatusCode.CONNECT_CLOSED: Level.STATUS,
    StatusCode.CONNECT_RECONNECT_REQUEST: Level.STATUS,
    StatusCode.PUBLISH_START: Level.STATUS,
    StatusCode.PUBLISH_IDLE: Level.STATUS,
    StatusCode.UNPUBLISH_SUCCESS: Level.STATUS,
    StatusCode.RECORD_START: Level.STATUS,
    StatusCode.RECORD_STOP: Level.STATUS,
    StatusCode.PLAY_START: Level.STATUS,
    StatusCode.PLAY_RESET: Level.STATUS,
    StatusCode.PLAY_STOP: Level.STATUS,
    StatusCode.PLAY_PUBLISH_NOTIFY: Level.STATUS,
    StatusCode.PLAY_UNPUBLISH_NOTIFY: Level.STATUS,
    StatusCode.PLAY_COMPLETE: Level.STATUS,
    StatusCode.PAUSE_NOTIFY: Level.STATUS,
    StatusCode.UNPAUSE_NOTIFY: Level.STATUS,
    StatusCode.SEEK_NOTIFY: Level.STATUS,
    StatusCode.DATA_START: Level.STATUS,
    StatusCode.PLAY_INSUFFICIENT_BW: Level.WARNING,
}
"""Codes whose level is not "error"; every other code is an error."""

_DESCRIPTIONS: dict[StatusCode, str] = {
    StatusCode.CONNECT_SUCCESS: "Connection succeeded.",
    StatusCode.CONNECT_REJECTED: "Connection refused by the application.",
    StatusCode.CONNECT_CLOSED: "Connection closed.",
    StatusCode.CONNECT_FAILED: "Connection failed.",
    StatusCode.CONNECT_INVALID_APP: "No such application.",
    StatusCode.CONNECT_APP_SHUTDOWN: "The application is shutting down.",
    StatusCode.CONNECT_RECONNECT_REQUEST: "The server asks the client to reconnect.",
    StatusCode.CALL_FAILED: "Call failed.",
    StatusCode.PUBLISH_START: "is now published.",
    StatusCode.PUBLISH_BAD_NAME: "is already being published or is not a valid name.",
    StatusCode.PUBLISH_DENIED: "may not be published.",
    StatusCode.PUBLISH_IDLE: "is idle.",
    StatusCode.UNPUBLISH_SUCCESS: "is now unpublished.",
    StatusCode.RECORD_START: "recording started.",
    StatusCode.RECORD_STOP: "recording stopped.",
    StatusCode.RECORD_NO_ACCESS: "may not be recorded.",
    StatusCode.RECORD_FAILED: "recording failed.",
    StatusCode.PLAY_START: "playing started.",
    StatusCode.PLAY_RESET: "playing and resetting.",
    StatusCode.PLAY_STOP: "playing stopped.",
    StatusCode.PLAY_FAILED: "cannot be played.",
    StatusCode.PLAY_STREAM_NOT_FOUND: "not found.",
    StatusCode.PLAY_PUBLISH_NOTIFY: "is now published.",
    StatusCode.PLAY_UNPUBLISH_NOTIFY: "is now unpublished.",
    StatusCode.PLAY_INSUFFICIENT_BW: "is falling behind.",
    StatusCode.PLAY_COMPLETE: "playing completed.",
    StatusCode.PAUSE_NOTIFY: "paused.",
    StatusCode.UNPAUSE_NOTIFY: "resumed.",
    StatusCode.SEEK_NOTIFY: "seeking.",
    StatusCode.SEEK_FAILED: "cannot seek in a live stream.",
    StatusCode.DATA_START: "data started.",
    StatusCode.FAILED: "failed.",
}


def level_of(code: StatusCode) -> Level:
    """The level clients expect for ``code``."""
    return _LEVELS.get(code, Level.ERROR)


def info(
    code: StatusCode, description: str | None = None, *, subject: str | None = None, **extra: Any
) -> dict[str, Any]:
    """An info object ``{level, code, description, ...}`` for onStatus, _result or _error.

    ``subject`` (usually the stream name) is put in front of the default NetStream description,
    so ``info(StatusCode.PUBLISH_START, subject="cam")`` reads "cam is now published.".
    """
    if description is None:
        description = _DESCRIPTIONS.get(code, "")
        if subject is not None and code.startswith("NetStream."):
            description = f"{subject} {description}"
    result: dict[str, Any] = {"level": str(level_of(code)), "code": str(code)}
    result["description"] = description
    result.update(extra)
    return result
