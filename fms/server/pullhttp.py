"""An HTTP-FLV source of a pull (``http[s]://host/live/cam.flv``): one try of a
:class:`~fms.server.pull.Pull`.

A ``GET`` with :class:`twisted.web.client.Agent`; a 200 answer's body is read as it arrives by
:class:`~fms.live.flvparse.FLVTagParser` (at most one partial tag held, each tag type bounded by
the RTMP message limits of ``[limits]``) and every audio, video and script tag is handed to the
pull as the message an RTMP publisher would have sent. Any other status, a body that is not
FLV or announces a tag over its limit, and the end of the body end the try (one log line, by
the pull, which retries).
"""

from __future__ import annotations

from typing import Any, Protocol

from twisted.internet.protocol import Protocol as TwistedProtocol
from twisted.python.failure import Failure
from twisted.web.client import Agent, BrowserLikePolicyForHTTPS, ResponseDone
from twisted.web.http_headers import Headers

from fms.errors import RemoteProtocolError
from fms.live.flv import TAG_SCRIPT, FLVFormatError
from fms.live.flvparse import FLVTagParser, default_max_sizes
from fms.rtmp.chunks import RawMessage
from fms.rtmp.errors import MessageError
from fms.rtmp.messages import Data, Media, decode_message
from fms.server.outgoing import CONNECT_TIMEOUT


class SourceOwner(Protocol):
    """What an HTTP-FLV source reports to (:class:`fms.server.pull.Pull`)."""

    def received(self, message: Media | Data) -> None:
        """One message read from the body."""
        ...

    def failed(self, source: Any, reason: str) -> None:
        """The try failed or the body ended (``reason`` for the log and the figures)."""
        ...


class HTTPSource:
    """One HTTP-FLV request of a pull (``pull``, reported to) for ``url``; ``limits``: the
    ``[limits]`` section, whose message limits bound the tags; ``trust``: a PEM file trusted
    for ``https`` instead of the system's authorities ("" for those)."""

    def __init__(
        self, pull: SourceOwner, url: str, clock: Any, limits: Any, trust: str = ""
    ) -> None:
        self.pull = pull
        self.bytes_received = 0
        self.closed = False
        self.transport: Any = None
        self.parser = FLVTagParser(
            default_max_sizes(
                limits.max_audio_message, limits.max_video_message, limits.max_command_message
            )
        )
        policy: Any = BrowserLikePolicyForHTTPS()
        if trust:
            from twisted.internet import ssl

            with open(trust, "rb") as pem:
                policy = BrowserLikePolicyForHTTPS(ssl.Certificate.loadPEM(pem.read()))
        agent = Agent(clock, contextFactory=policy, connectTimeout=CONNECT_TIMEOUT)
        headers = Headers({b"User-Agent": [b"pyFMS pull"]})
        self._request = agent.request(b"GET", url.encode(), headers)
        self._request.addCallbacks(self._answered, self._not_answered)

    def _answered(self, response: Any) -> None:
        if self.closed:
            response.deliverBody(_Dropped())
            return
        if response.code != 200:
            response.deliverBody(_Dropped())
            phrase = response.phrase.decode("latin-1", "replace")
            self.pull.failed(self, f"HTTP {response.code} {phrase}".strip())
            return
        response.deliverBody(_Body(self))

    def _not_answered(self, failure: Failure) -> None:
        if not self.closed:
            self.pull.failed(self, f"cannot connect: {failure.getErrorMessage()}")

    def received(self, data: bytes) -> None:
        self.bytes_received += len(data)
        try:
            tags = self.parser.feed(data)
        except FLVFormatError as exc:
            self.pull.failed(self, f"bad FLV from the source: {exc}")
            return
        for tag in tags:
            if self.closed:
                return
            if tag.tag_type == TAG_SCRIPT:
                raw = RawMessage(TAG_SCRIPT, 1, tag.timestamp, tag.payload)
                try:
                    message = decode_message(raw)
                except (MessageError, RemoteProtocolError, ValueError):
                    continue  # a script tag we cannot read is left out, as a relay would
                if isinstance(message, Data):
                    self.pull.received(message)
            else:
                self.pull.received(Media(tag.tag_type, tag.timestamp, 1, tag.payload))

    def ended(self, reason: Failure) -> None:
        if self.closed:
            return
        if reason.check(ResponseDone):
            why = "upstream ended the stream (end of the HTTP body)"
        else:
            why = f"connection lost: {reason.getErrorMessage()}"
        self.pull.failed(self, why)

    def close(self) -> None:
        """End the request (the pull is not told)."""
        if self.closed:
            return
        self.closed = True
        if self.transport is not None:
            self.transport.stopProducing()
        elif not self._request.called:
            self._request.cancel()


class _Body(TwistedProtocol):
    def __init__(self, source: HTTPSource) -> None:
        self.source = source

    def connectionMade(self) -> None:
        self.source.transport = self.transport

    def dataReceived(self, data: bytes) -> None:
        self.source.received(data)

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.source.transport = None
        self.source.ended(reason if reason is not None else Failure(ResponseDone()))


class _Dropped(TwistedProtocol):
    """The body of an answer not wanted: the connection is closed at once."""

    def connectionMade(self) -> None:
        self.transport.stopProducing()  # type: ignore[union-attr]
