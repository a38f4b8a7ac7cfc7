"""One value per decision: what the plugin chain decided about a connect, publish or play.

The chain's answers (``Accept``, ``Reject``, ``Redirect``, ``Rename``) are turned into a
:class:`Verdict` here, once, with the status the client will see; an edge (RTMP today, HTTP
viewers later) only applies it to its own protocol: an RTMP ``_error``/``onStatus``, an HTTP
403 or 302. Stream names are checked here too, both the one the client asked for and any name a
plugin renamed it to, so no edge checks a name twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from fms.live.names import name_problem
from fms.rtmp.status import StatusCode

Action = Literal["connect", "publish", "play"]

REFUSED_BY_DEFAULT: dict[Action, StatusCode] = {
    "connect": StatusCode.CONNECT_REJECTED,
    "publish": StatusCode.PUBLISH_DENIED,
    "play": StatusCode.PLAY_FAILED,
}
"""The status of a refusal whose plugin named no (known) code."""

BAD_NAME: dict[Action, StatusCode] = {
    "connect": StatusCode.CONNECT_INVALID_APP,
    "publish": StatusCode.PUBLISH_BAD_NAME,
    "play": StatusCode.PLAY_FAILED,
}
"""The status of a request whose name is not acceptable."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of one decision.

    ``name`` is the final stream name (after every ``Rename``; the app name for ``connect``).
    A refusal carries the ``status`` and ``description`` to send, and ``redirect`` the URL of
    a ``Redirect`` (connect only). ``by_application`` tells a plugin's refusal from a refusal
    of the request itself (an invalid name), for the log.
    """

    accepted: bool
    name: str
    status: StatusCode | None = None
    description: str = ""
    redirect: str | None = None
    by_application: bool = True


def accepted(name: str) -> Verdict:
    return Verdict(True, name)


def status_for(code: str | None, default: StatusCode) -> StatusCode:
    """The :class:`StatusCode` a plugin named (``Reject(code=...)``, ``CallError``), or
    ``default`` when it named none or one that RTMP clients would not know."""
    if not code:
        return default
    try:
        return StatusCode(code)
    except ValueError:
        return default


def name_verdict(action: Action, name: str, max_length: int) -> Verdict | None:
    """A refusal when ``name`` is not an acceptable stream name (control characters, path
    tricks, over ``max_length`` bytes), else None."""
    problem = name_problem(name, max_length, allow_slash=True)
    if problem is None:
        return None
    return Verdict(False, name, BAD_NAME[action], problem, by_application=False)
