"""The root of pyFMS's exceptions.

Two families, as in h11/h2: :class:`RemoteProtocolError` means the peer broke the protocol
(log it with the peer's address and close that one connection); :class:`LocalProtocolError`
means our own code misused an API (a bug on our side). :class:`ApplicationError` subclasses
carry the onStatus code a client should see when an application refuses something.

Pure standard library: the sans-IO layers import this module.
"""

from __future__ import annotations


class FMSError(Exception):
    """Base class of every exception pyFMS raises on purpose."""


class RemoteProtocolError(FMSError):
    """The peer sent something the protocol does not allow, or that breaks a limit.

    The connection that received it is closed; nobody else is affected.
    """


class LocalProtocolError(FMSError):
    """Our own code called a protocol API in a way it does not allow (a bug on our side)."""


class ConfigError(FMSError):
    """A configuration file is invalid. ``problems`` lists each error as ``file: key: reason``."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class ApplicationError(FMSError):
    """An application refused an action; ``code`` is the onStatus/_error code to send."""

    code: str = "NetConnection.Call.Failed"

    def __init__(self, description: str = "", code: str | None = None) -> None:
        super().__init__(description)
        self.description = description
        if code is not None:
            self.code = code
