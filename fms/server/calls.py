"""Calls that encoders make and expect answered the way Flash Media Server did, whatever the
application: FMLE's ``releaseStream``/``FCPublish``/``FCUnpublish``, ``FCSubscribe`` (Akamai
style players), bandwidth checks and ``getStreamLength`` on a live stream."""

from __future__ import annotations

from collections.abc import Callable

from twisted.python.failure import Failure

from fms.apps.application import MethodNotFound
from fms.apps.verdict import status_for
from fms.errors import ApplicationError
from fms.log import Logger
from fms.rtmp.connection import ServerConnection
from fms.rtmp.messages import Command
from fms.rtmp.status import StatusCode, info

log = Logger(namespace="fms.server.protocol")

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


def answer_encoder_call(
    conn: ServerConnection,
    command: Command,
    stream_length: Callable[[str], float] = lambda name: 0.0,
) -> bool:
    """Answer ``command`` if it is one of the calls above (True), else leave it (False) for
    the application. ``stream_length`` gives a recording's duration in seconds (0: live)."""
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
        length = stream_length(stream_name) if isinstance(stream_name, str) else 0.0
        conn.send_result(command.transaction_id, length)
        return True
    return False


def call_failed(
    conn: ServerConnection, peer: str, transaction_id: float, method: str, failure: Failure
) -> None:
    """Answer a client's call that the application failed: ``_error`` with the plugin's code
    and description, or a generic one (the traceback logged once) for a bug."""
    error = failure.value
    if isinstance(error, MethodNotFound):
        code, description = StatusCode.CALL_FAILED, f"unknown method {method!r}"
    elif isinstance(error, ApplicationError):
        code = status_for(error.code, StatusCode.CALL_FAILED)
        description = error.description
    else:
        log.failure("call {method} from {peer} failed", failure, method=method, peer=peer)
        code, description = StatusCode.CALL_FAILED, f"{method} failed"
    if transaction_id:
        conn.send_error(transaction_id, code, description)
