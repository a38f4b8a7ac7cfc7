"""Ask the operator's web service before a client connects, publishes or plays.

The way nginx-rtmp's ``on_connect``/``on_publish``/``on_play`` do it: before answering the
client, the server POSTs an ``application/x-www-form-urlencoded`` form to a URL and acts on the
status code of the answer::

    [[apps.live.plugins]]
    use = "httpcallback"
    on_connect = "http://127.0.0.1:8080/auth"      # each URL is optional
    on_publish = "http://127.0.0.1:8080/auth"
    on_play = "http://127.0.0.1:8080/auth"
    on_publish_done = "http://127.0.0.1:8080/done" # notifications: the answer is ignored
    timeout = 5                                    # seconds for the whole exchange

The form has ``call`` (``connect``, ``publish``, ``play``, ``publish_done``, ``play_done``),
``app``, ``name`` (not for connect), ``addr`` (the client's IP address), ``clientid``,
``flashver``, ``tcurl``, ``swfurl`` and ``pageurl`` (when the client sent them), ``type`` (for
publish: ``live``, ``record`` or ``append``), then the query parameters of the stream name
(``cam?key=abc`` sends ``key=abc``; for connect, those of the tcUrl). Unlike nginx-rtmp, a query
parameter named like one of the fields above is left out, so a client cannot pose as another
address or stream.

The answer decides:

- 2xx: accepted.
- 3xx: for publish and play, the last path segment of ``Location`` (or all of it when it has no
  ``/``; without ``?query`` or ``#fragment``) becomes the stream name: the client publishes under
  that name, or plays that other stream. For connect, the client is redirected to ``Location``
  (``_error`` with ``ex.code`` 302 and ``ex.redirect``).
- anything else (4xx, 5xx, a refused connection, no answer within ``timeout``): refused, and the
  reason tells the client the status code (and the body, if it is one short line of text); a
  404 on play is ``NetStream.Play.StreamNotFound``. The URL itself is never told to the client,
  and it is logged without credentials or query.

Redirects are not followed, the body is read and discarded (at most :data:`MAX_BODY` bytes), and
each exchange, from connecting to the last byte, is bounded by ``timeout``. Keep ``timeout`` below
the application's ``decision_timeout`` (10 s by default), which bounds every plugin (a warning
at start says when it is not).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

from twisted.internet import error as netError
from twisted.internet.defer import CancelledError, Deferred, DeferredList, TimeoutError, succeed
from twisted.internet.interfaces import IConsumer, IReactorTime
from twisted.internet.protocol import Factory as ClientFactoryBase
from twisted.internet.protocol import Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.client import Agent, HTTPConnectionPool, ResponseFailed, ResponseNeverReceived
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgent, IBodyProducer, IResponse
from zope.interface import implementer

from fms import __version__
from fms.apps.api import ACCEPT, Decision, Plugin, Redirect, Reject, Rename, StatusCode
from fms.apps.interfaces import IAppView, IClientView, IStreamView

log = Logger(namespace="fms.plugins.httpcallback")

MAX_BODY = 64 * 1024
"""Bytes of a response body read (and discarded) at most; past this the connection is closed."""

MAX_REASON_BODY = 120
"""A body of at most this many characters of printable text is quoted in a refusal's reason."""

USER_AGENT = f"pyFMS/{__version__}".encode("ascii")

RESERVED_FIELDS = frozenset(
    {"call", "app", "name", "addr", "clientid", "flashver", "tcurl", "swfurl", "pageurl", "type"}
)
"""Form fields the server fills in; query parameters with these names are left out."""


@dataclass(frozen=True, slots=True)
class CallbackAnswer:
    """What the callback URL answered: status code, reason phrase, ``Location`` and the first
    bytes of the body (at most :data:`MAX_REASON_BODY` + 1 of them)."""

    code: int
    phrase: str
    location: str | None
    body: bytes


@implementer(IBodyProducer)
class FormBody:
    """A request body that is all in memory (a urlencoded form): written in one go."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.length = len(data)

    def startProducing(self, consumer: IConsumer) -> Deferred[None]:
        consumer.write(self.data)
        return succeed(None)

    def pauseProducing(self) -> None:
        pass

    def resumeProducing(self) -> None:
        pass

    def stopProducing(self) -> None:
        pass


class CappedBody(Protocol):
    """Reads a response body and keeps only its first ``keep`` bytes; stops the transfer (the
    connection is closed) once more than ``limit`` bytes came. ``done`` fires with the kept
    bytes however the body ends: the status code has already been received and is what counts.
    """

    def __init__(self, limit: int, keep: int) -> None:
        self.limit = limit
        self.keep = keep
        self.received = 0
        self.head = b""
        self.done: Deferred[bytes] = Deferred(self._cancel)

    def dataReceived(self, data: bytes) -> None:
        if self.done.called:
            return
        self.received += len(data)
        if len(self.head) < self.keep:
            self.head += data[: self.keep - len(self.head)]
        if self.received > self.limit:
            self.done.callback(self.head)
            self._stop()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if not self.done.called:
            self.done.callback(self.head)

    def _stop(self) -> None:
        if self.transport is not None:
            self.transport.stopProducing()  # type: ignore[attr-defined]

    def _cancel(self, _: Deferred[bytes]) -> None:
        self._stop()


async def read_capped(response: IResponse, limit: int = MAX_BODY) -> bytes:
    """The first bytes of ``response``'s body (enough to quote a short one), reading and
    discarding the rest up to ``limit`` bytes."""
    reader = CappedBody(limit, MAX_REASON_BODY + 1)
    response.deliverBody(reader)
    return await reader.done


def default_agent(reactor: IReactorTime, timeout: float) -> IAgent:
    """An Agent that follows no redirects, keeps no connection open between requests, gives
    up connecting after ``timeout`` seconds, and whose connections do not log
    "Starting factory"/"Stopping factory" at info level for every request."""
    pool = HTTPConnectionPool(reactor, persistent=False)
    factory = getattr(pool, "_factory", None)  # a private attribute: skipped if it goes away
    if isinstance(factory, type) and issubclass(factory, ClientFactoryBase):
        quiet = type("QuietHTTP11ClientFactory", (factory,), {"noisy": False})
        pool._factory = quiet  # type: ignore[assignment]
    return Agent(reactor, connectTimeout=timeout, pool=pool)


def _check_url(option: str, value: object) -> bytes | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"{option} must be a string (an http:// or https:// URL)")
    parts = urlsplit(value)
    try:
        parts.port  # noqa: B018 (validates the port)
    except ValueError:
        raise ValueError(f"{option}: {value!r} has an invalid port") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{option}: {value!r} is not an http:// or https:// URL")
    try:
        return value.encode("ascii")
    except UnicodeEncodeError:
        raise ValueError(f"{option}: {value!r}: write non-ASCII characters %-encoded") from None


def _for_log(url: bytes) -> str:
    """``url`` without credentials or query (either may hold a secret), for the log."""
    parts = urlsplit(url.decode("ascii"))
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port is not None else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def stream_name_from_location(location: str) -> str:
    """The stream name a ``Location`` designates: its last path segment, or all of it when it
    has no ``/``, without any ``?query`` or ``#fragment``. Empty when there is none."""
    path = location.split("#", 1)[0].split("?", 1)[0]
    return path.rsplit("/", 1)[-1]


def _printable(body: bytes) -> str | None:
    """``body`` as one short line of text, or None when it is not one."""
    if len(body) > MAX_REASON_BODY:
        return None
    try:
        text = body.decode("utf-8").strip()
    except UnicodeDecodeError:
        return None
    if not text or not text.isprintable():
        return None
    return text


def _describe_error(error: BaseException, timeout: float) -> str:
    """A short reason for a failed exchange (without the URL: it goes to the client)."""
    if isinstance(error, (TimeoutError, CancelledError, netError.TimeoutError)):
        return f"no answer within {timeout:g}s"
    if isinstance(error, netError.ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, netError.DNSLookupError):
        return "host not found"
    if isinstance(error, (ResponseNeverReceived, ResponseFailed)):
        return "no valid HTTP response"
    return type(error).__name__


class HTTPCallback(Plugin):
    """Decides connect, publish and play by the status code a URL answers (see the module
    docstring); optionally notifies when a publish or a play ends.

    Options: ``on_connect``, ``on_publish``, ``on_play`` (decisions), ``on_publish_done``,
    ``on_play_done`` (notifications), each an ``http://`` or ``https://`` URL and each optional
    (at least one is required); ``timeout`` in seconds (5 by default). For tests, ``reactor``
    (an IReactorTime, also used by the default Agent) and ``agent`` (an IAgent) may be given.
    """

    def __init__(
        self,
        *,
        on_connect: str | None = None,
        on_publish: str | None = None,
        on_play: str | None = None,
        on_publish_done: str | None = None,
        on_play_done: str | None = None,
        timeout: float = 5.0,
        reactor: IReactorTime | None = None,
        agent: IAgent | None = None,
    ) -> None:
        urls = {
            "on_connect": on_connect,
            "on_publish": on_publish,
            "on_play": on_play,
            "on_publish_done": on_publish_done,
            "on_play_done": on_play_done,
        }
        self.urls = {option: _check_url(option, value) for option, value in urls.items()}
        if not any(self.urls.values()):
            raise ValueError(f"name at least one URL: {', '.join(urls)}")
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
            raise ValueError(f"timeout must be a positive number of seconds, not {timeout!r}")
        self.timeout = float(timeout)
        if reactor is None:
            from twisted.internet import reactor as default_reactor

            reactor = default_reactor
        self.clock: IReactorTime = reactor
        if agent is None:
            if any(url.startswith(b"https:") for url in self.urls.values() if url):
                if importlib.util.find_spec("OpenSSL") is None:
                    raise ValueError("https:// URLs need pyOpenSSL: pip install 'twisted[tls]'")
            agent = default_agent(reactor, self.timeout)
        elif not IAgent.providedBy(agent):
            raise TypeError(f"agent must provide IAgent, not {agent!r}")
        self.agent: IAgent = agent
        self._pending: set[Deferred[None]] = set()

    # ------------------------------------------------------------------------ the exchange

    def post(self, url: bytes, fields: Mapping[str, str]) -> Deferred[CallbackAnswer]:
        """POST ``fields`` to ``url``; fires with the answer, or fails (refused connection,
        invalid response, :class:`~twisted.internet.defer.TimeoutError` after ``timeout``)."""
        d = Deferred.fromCoroutine(self._exchange(url, urlencode(fields).encode("ascii")))
        return d.addTimeout(self.timeout, self.clock)

    async def _exchange(self, url: bytes, body: bytes) -> CallbackAnswer:
        headers = Headers(
            {
                b"Content-Type": [b"application/x-www-form-urlencoded"],
                b"User-Agent": [USER_AGENT],
            }
        )
        response: IResponse = await self.agent.request(b"POST", url, headers, FormBody(body))
        location = (response.headers.getRawHeaders(b"location") or [None])[0]
        raw = response.phrase
        phrase = (raw.decode("latin-1") if isinstance(raw, bytes) else str(raw))[:60]
        head = await read_capped(response)
        return CallbackAnswer(
            code=int(response.code),
            phrase=phrase if phrase.isprintable() else "",
            location=None if location is None else location.decode("utf-8", "replace"),
            body=head,
        )

    def fields(
        self,
        call: str,
        client: IClientView,
        name: str | None,
        query: Mapping[str, str],
        kind: str | None = None,
    ) -> dict[str, str]:
        """The form sent for ``call``: the server's fields, then the query parameters whose
        names are not among them."""
        form = {
            "call": call,
            "addr": str(client.host),
            "clientid": str(client.id),
            "app": str(client.app),
            "flashver": str(client.agent or ""),
            "tcurl": str(client.tc_url or ""),
        }
        params = client.params if isinstance(client.params, Mapping) else {}
        for key, field in (("swfUrl", "swfurl"), ("pageUrl", "pageurl")):
            if isinstance(params.get(key), str):
                form[field] = params[key]
        if name is not None:
            form["name"] = name
        if kind is not None:
            form["type"] = kind
        for key, value in query.items():
            if key in RESERVED_FIELDS:
                log.debug(
                    "{call} callback: query parameter {key!r} left out (the server sets it)",
                    call=call,
                    key=key,
                )
                continue
            form[str(key)] = str(value)
        return form

    def ask(self, call: str, url: bytes, form: Mapping[str, str]) -> Deferred[Decision]:
        """POST ``form`` and turn the answer into a decision; never fails."""
        return Deferred.fromCoroutine(self._ask(call, url, form))

    async def _ask(self, call: str, url: bytes, form: Mapping[str, str]) -> Decision:
        try:
            answer = await self.post(url, form)
        except Exception as error:
            return self._failed(error, call, url)
        return self.decide(call, answer)

    def decide(self, call: str, answer: CallbackAnswer) -> Decision:
        """The decision an answer stands for (see the module docstring)."""
        status = f"{answer.code} {answer.phrase}".strip()
        log.debug("{call} callback answered {status}", call=call, status=status)
        if 200 <= answer.code < 300:
            return ACCEPT
        if 300 <= answer.code < 400:
            location = (answer.location or "").strip()
            if call == "connect" and location:
                return Redirect(location, f"redirected by the HTTP callback ({answer.code})")
            name = stream_name_from_location(location)
            if name:
                return Rename(name)
            return Reject(f"{call} refused: the HTTP callback answered {status} without a Location")
        reason = f"{call} refused by the HTTP callback: {status}"
        text = _printable(answer.body)
        if text is not None:
            reason += f": {text}"
        if call == "play" and answer.code == 404:
            return Reject(reason, StatusCode.PLAY_STREAM_NOT_FOUND)
        return Reject(reason)

    def _failed(self, error: Exception, call: str, url: bytes) -> Decision:
        what = _describe_error(error, self.timeout)
        log.warn(
            "{call} callback {url} failed: {what} ({error})",
            call=call,
            url=_for_log(url),
            what=what,
            error=str(error) or type(error).__name__,
        )
        return Reject(f"{call} refused: the HTTP callback failed: {what}")

    def notify(self, call: str, url: bytes, form: Mapping[str, str]) -> None:
        """POST ``form`` without waiting; the answer is only logged when it is not 2xx."""
        d = Deferred.fromCoroutine(self._notify(call, url, form))
        if not d.called:
            self._pending.add(d)
            d.addBoth(lambda _: self._pending.discard(d))

    async def _notify(self, call: str, url: bytes, form: Mapping[str, str]) -> None:
        try:
            answer = await self.post(url, form)
        except Exception as error:
            what = _describe_error(error, self.timeout)
        else:
            if 200 <= answer.code < 300:
                return
            what = f"answered {answer.code} {answer.phrase}".strip()
        log.warn("{call} callback {url}: {what}", call=call, url=_for_log(url), what=what)

    # ---------------------------------------------------------------------------- hooks

    def app_start(self, app: IAppView) -> None:
        # Not part of IAppView: the Application's settings, when it has them.
        limit = getattr(getattr(app, "config", None), "decision_timeout", None)
        if isinstance(limit, (int, float)) and self.timeout >= limit:
            log.warn(
                "{app}: httpcallback timeout ({timeout:g}s) is not below the application's "
                "decision_timeout ({limit:g}s): a slow callback is cut off by the latter",
                app=app.name,
                timeout=self.timeout,
                limit=limit,
            )

    def app_stop(self, app: IAppView) -> Deferred[None] | None:
        """Wait for the notifications still under way (each ends within ``timeout``)."""
        if not self._pending:
            return None
        return DeferredList(list(self._pending)).addCallback(lambda _: None)

    def connect(self, client: IClientView) -> Deferred[Decision] | None:
        url = self.urls["on_connect"]
        if url is None:
            return None
        query = client.query if isinstance(client.query, Mapping) else {}
        return self.ask("connect", url, self.fields("connect", client, None, query))

    def publish(
        self, client: IClientView, name: str, query: dict[str, str], kind: str
    ) -> Deferred[Decision] | None:
        url = self.urls["on_publish"]
        if url is None:
            return None
        return self.ask("publish", url, self.fields("publish", client, name, query, kind))

    def play(
        self, client: IClientView, name: str, query: dict[str, str]
    ) -> Deferred[Decision] | None:
        url = self.urls["on_play"]
        if url is None:
            return None
        return self.ask("play", url, self.fields("play", client, name, query))

    def unpublish(self, client: IClientView, stream: IStreamView) -> None:
        url = self.urls["on_publish_done"]
        if url is not None:
            self.notify("publish_done", url, self.fields("publish_done", client, stream.name, {}))

    def stop(self, client: IClientView, name: str) -> None:
        url = self.urls["on_play_done"]
        if url is not None:
            self.notify("play_done", url, self.fields("play_done", client, name, {}))
