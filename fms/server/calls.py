"""Calls that encoders make and expect answered the way Flash Media Server did, whatever the
application: FMLE's ``releaseStream``/``FCPublish``/``FCUnpublish``, ``FCSubscribe`` (Akamai
style players), bandwidth checks and ``getStreamLength`` on a live stream."""

from __future__ import annotations

from fms.rtmp.connection import ServerConnection
from fms.rtmp.messages import Command
from fms.rtmp.status import StatusCode, info

NULL_RESULT_CALLS = frozenset(
    {
        "releaseStream",
        "FCPublish",
        "FCUnpublish",
        "FCSubscribe",
        "FCUnsubscribe",
        "_checkbw",
        "checkBandwidth",
    }
)
"""FMLE-era calls that encoders expect a null ``_result`` for (see INTEROP.md)."""

_NOTIFIED = {
    "FCPublish": StatusCode.PUBLISH_START,
    "FCUnpublish": StatusCode.UNPUBLISH_SUCCESS,
    "FCSubscribe": StatusCode.PLAY_START,
}
"""Calls also answered with an ``onFCPublish``-style call carrying a status."""


def answer_encoder_call(conn: ServerConnection, command: Command) -> bool:
    """Answer ``command`` if it is one of the calls above (True), else leave it (False) for
    the application."""
    name = command.name
    stream_name = command.arguments[0] if command.arguments else None
    if name in NULL_RESULT_CALLS:
        if command.transaction_id:
            conn.send_result(command.transaction_id, None)
        code = _NOTIFIED.get(name)
        if code is not None and isinstance(stream_name, str):
            conn.call(f"on{name}", info(code, stream_name), expect_result=False)
        return True
    if name == "getStreamLength":
        conn.send_result(command.transaction_id, 0.0)
        return True
    return False
