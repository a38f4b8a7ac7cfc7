"""The contract between pyFMS and application plugins (zope.interface).

An *application* is what a client names in ``connect`` (``rtmp://host/APP/stream``). Each
application runs a chain of plugins, configured in order (``[[apps.NAME.plugins]]``). For every
hook that decides something, the server asks each plugin in turn and holds the client (no
``Connect.Success``, ``Publish.Start`` or ``Play.Start``, no relayed frame) until the chain
decided. A plugin's answer is one of the records of :mod:`fms.apps.api` (``Accept``, ``Reject``,
``Redirect``, ``Rename``) or ``None`` for "no objection". The first ``Reject``/``Redirect``
ends the chain; a ``Rename`` changes the stream name for the plugins after it.

Every hook may return its answer directly, as a :class:`~twisted.internet.defer.Deferred`, or
as a coroutine (``async def``). A hook that raises, whose Deferred fails, or that does not answer
within the application's ``decision_timeout`` counts as a ``Reject``: plugins fail closed, and
only the client concerned is affected.

Decisions are not notifications: a chain that accepts a ``publish`` does not mean the stream
goes on air (the server may still refuse it, e.g. as a duplicate of a stream already published).
What really happened is told afterwards, exactly once each, on the worker where it happened, by
the notification hooks ``published``, ``unpublished``, ``play_started`` and ``play_stopped``;
their answers are ignored (a failure is logged). ``unpublish`` and ``stop`` are the older
notifications of the ends, kept as they were.

Most plugins subclass :class:`fms.apps.api.Plugin`, which implements every hook with "no
objection" (and every notification with nothing), and override the ones they need.
"""

from __future__ import annotations

from typing import Any

from zope.interface import Attribute, Interface


class IStreamView(Interface):
    """A read-only view of one live stream of an application."""

    app = Attribute("Application name (str).")
    name = Attribute("Stream name (str), without any '?query'.")
    publisher = Attribute(
        "The publishing client's IClientView, or None while nobody publishes it (players may "
        "wait for a stream before it is published). For a stream relayed from another worker "
        "(``fms run --workers``): the view of the relay link, whose ``peer`` names the original "
        "publisher."
    )
    subscriber_count = Attribute(
        "Number of players (int), on every worker with ``--workers`` (the other workers' share "
        "is at most about a second old)."
    )
    metadata = Attribute(
        "The onMetaData object the publisher sent (dict, a copy), or None before it sent one."
    )
    figures = Attribute(
        "The stream's figures now (dict, JSON-able, computed afresh at each read), from what "
        "the publisher sends (codec configuration records, FLV headers, onMetaData), never by "
        "decoding media: 'uptime' (seconds of this publish), 'bytes_in', 'messages_in', "
        "'bytes_out', 'players', 'published', 'bitrate_kbps' ({'total', 'video', 'audio'}, "
        "kbit/s over the last 5 seconds), 'video' (None, or 'codec' such as 'h264', 'hevc', "
        "'av1', 'vp9', 'fourcc', 'profile', 'level', 'width', 'height', 'fps', "
        "'keyframe_interval' in seconds, 'tracks': one dict per Enhanced RTMP track), "
        "'audio' (None, or 'codec' such as 'aac', 'opus', 'mp3', 'sample_rate' in Hz, "
        "'channels', 'tracks'), 'metadata'. A figure not known yet is None. On a worker "
        "that relays a stream published on another worker (``--workers``), the figures are "
        "those of the relayed copy."
    )
    bitrate_kbps = Attribute(
        "Bitrate in (audio and video) over the last 5 seconds, kbit/s (float); 0.0 without "
        "a publisher."
    )
    video_codec = Attribute("'h264', 'hevc', 'av1', 'vp9'... (str), or None without video.")
    width = Attribute("Displayed video width in pixels (int), or None while unknown.")
    height = Attribute("Displayed video height in pixels (int), or None while unknown.")
    fps = Attribute(
        "Video frames per second measured on the timestamps of the last 5 seconds (float), "
        "or None while unknown."
    )
    recorded = Attribute(
        "True for a recording played from a file (``[apps.NAME.vod]``): it has no publisher, "
        "its ``metadata`` is the file's onMetaData and its ``figures`` say 'recorded' and "
        "'duration' (seconds); False for a live stream."
    )


class IClientView(Interface):
    """A read-only view of one connected client, and the means to talk to it."""

    id = Attribute("A number unique among this process's clients (int).")
    peer = Attribute("'host:port' of the client (str).")
    host = Attribute("The client's IP address (str).")
    app = Attribute("Application name (str), as the client named it in connect.")
    application = Attribute(
        "The IAppView of the client's application (its clients, streams, broadcast)."
    )
    tc_url = Attribute("The tcUrl of connect (str).")
    params = Attribute("The connect command object (dict, a copy).")
    query = Attribute("Query parameters from the tcUrl or app (dict of str).")
    agent = Attribute(
        "The flashVer the client announced (str); an HTTP viewer's User-Agent header."
    )
    protocol = Attribute(
        "How the client is served (str): 'rtmp' (RTMP and RTMPS), 'http-flv' (an HTTP-FLV"
        " viewer of GET /APP/STREAM.flv) or 'websocket-flv' (the same over a WebSocket,"
        " ws://HOST:PORT/APP/STREAM.flv). HTTP and WebSocket viewers are asked 'connect' then"
        " 'play', with the URL's query as both ``query`` arguments; they have no RTMP calls, so"
        " ``call`` fails and ``send`` does nothing."
    )
    publishing = Attribute("Names of the streams this client publishes (tuple of str).")
    playing = Attribute("Names of the streams this client plays (tuple of str).")

    def call(method: str, *args: Any) -> Any:
        """Call ``method`` on the client (server-to-client RPC).

        Returns a Deferred that fires with the client's ``_result`` values (a tuple), or fails
        with :class:`fms.errors.ApplicationError` on ``_error`` and with
        :class:`ConnectionError` when the client disconnects first.
        """

    def send(method: str, *args: Any) -> None:
        """Call ``method`` on the client without waiting for an answer."""

    def disconnect(reason: str = "") -> None:
        """Close this client's connection (logged with ``reason``)."""


class IAppView(Interface):
    """A view of one application: its clients and streams, a broadcast, and seats (a limit
    shared by every worker)."""

    name = Attribute("Application name (str).")
    clients = Attribute("The connected clients (tuple of IClientView).")
    streams = Attribute("The live streams (tuple of IStreamView).")

    def stream(name: str) -> Any:
        """The IStreamView of stream ``name`` (without '?query'), or None when the server
        knows no such stream. A stream that players wait for but nobody publishes yet has a
        view, whose ``publisher`` is None."""

    def broadcast(method: str, *args: Any, everywhere: bool = True) -> int:
        """Call ``method`` (no answer expected) on every client of the application, on every
        worker with ``fms run --workers`` (``everywhere=False``: this worker's clients only);
        return how many clients of this worker it called. ``args`` must be what AMF0 carries
        (None, bool, int, float, str, list, dict with str keys...); anything else raises
        ``AMFEncodeError`` before any client is called. The other workers' clients get the
        call within milliseconds, in the order this worker broadcast them."""

    def take_seat(key: str, limit: int, client: IClientView) -> bool:
        """Take one of ``limit`` seats named ``key`` (a str: a stream name, say) for
        ``client``: True when it holds one now, False when all ``limit`` are taken. Atomic on
        every worker with ``fms run --workers``: the seats of all workers count, and two
        workers never give away the same seat. A client holds at most one seat per key (taking
        it again answers True). Taken in ``play``, the seat is held until that play ends (or
        given back at once when the play is refused after all: by a later plugin or the
        server); taken in any other hook, until the client leaves. A worker that dies gives
        its seats back with it. ``limit`` is between 0 and 1,048,576."""

    def release_seat(key: str, client: IClientView) -> None:
        """Give ``client``'s seat of ``key`` back now (nothing if it holds none)."""

    def push(stream: Any, url: str, name: str | None = None) -> Any:
        """Relay ``stream`` (an IStreamView of this application, published now) to another
        server: ``url`` is ``rtmp://host[:port]/app`` or ``rtmps://...``, ``name`` the stream
        name to publish there (default: the same name; ``?query`` allowed). The push starts
        with the metadata, sequence headers and GOP, reconnects with backoff (1 s doubling to
        30 s) while the publish lasts, and stops when it ends. Returns a handle with
        ``state`` (``connecting``, ``live``, ``retrying``, ``stopped``), ``figures()`` and
        ``stop()``. Raises ``PushError`` (a ``ValueError``) for a bad URL or a stream nobody
        publishes. With ``--workers``, call it on the publisher's worker (in ``published``)."""

    def pull(name: str, url: str, upstream: str | None = None) -> Any:
        """Fetch stream ``name`` of this application (``room1/cam``: of ``APP/room1``) from
        another server and publish it here: ``url`` is ``rtmp[s]://host[:port]/app`` (playing
        ``upstream``, default ``name``) or ``http[s]://.../x.flv``. One pull per stream: a
        pull under way is returned as it is. It reconnects with backoff (1 s doubling to 30 s)
        until its handle's ``stop()``. Returns a handle with ``state`` (``connecting``,
        ``live``, ``retrying``, ``stopped``), ``figures()`` and ``stop()``. Raises
        ``PullError`` (a ``ValueError``) for a bad URL or name."""


class IApplication(Interface):
    """An application plugin. Hooks that decide return a decision (see the module docstring)."""

    def app_start(app: IAppView) -> Any:
        """The application starts (before its first client). May return a Deferred."""

    def app_stop(app: IAppView) -> Any:
        """The application stops (server shutdown). May return a Deferred."""

    def connect(client: IClientView) -> Any:
        """Decide a ``connect``: Accept (or None), Reject(reason) or Redirect(url)."""

    def disconnect(client: IClientView) -> Any:
        """A client that was accepted has gone."""

    def publish(client: IClientView, name: str, query: dict[str, str], kind: str) -> Any:
        """Decide ``publish(name?query, kind)``; kind is 'live', 'record' or 'append'.

        Accept (or None), Reject(reason) (``NetStream.Publish.Denied`` unless another code is
        given), or Rename(new_name) to publish under another name. Accepting is no promise: the
        server may still refuse (a name already published); ``published`` tells what went on
        air.
        """

    def unpublish(client: IClientView, stream: IStreamView) -> Any:
        """A publish ended (the older notification; ``unpublished`` is called as well).
        ``client`` is the publisher; ``stream``'s ``publisher`` is already None when the
        hook runs asynchronously."""

    def play(client: IClientView, name: str, query: dict[str, str]) -> Any:
        """Decide ``play(name?query)``: Accept (or None), Reject(reason)
        (``NetStream.Play.Failed`` unless another code is given), or Rename(other) to play
        another stream. ``play_started`` tells when the play really started."""

    def stop(client: IClientView, name: str) -> Any:
        """A play ended (the older notification, with the stream name only; ``play_stopped``
        is called as well)."""

    def media(stream: IStreamView, message: Any) -> None:
        """A message of a stream this application publishes, after it was relayed: a
        :class:`fms.apps.api.MediaFrame` (kind, timestamp, payload or values, codec, keyframe
        and sequence-header flags); for recorders. Must not block: no Deferred."""

    def call(client: IClientView, method: str, args: tuple[Any, ...]) -> Any:
        """A client called ``method`` (``NetConnection.call``). The returned value (or what a
        Deferred fires with) becomes the ``_result``; an exception the ``_error``. Raise
        :class:`fms.apps.api.NotHandled` to let the next plugin answer."""


class INotifications(Interface):
    """Notifications after the fact, which a plugin may implement or not (a plugin that
    implements only :class:`IApplication`, as plugins written before these existed do, is
    simply not told). :class:`fms.apps.api.Plugin` implements them as no-ops."""

    def published(stream: IStreamView) -> Any:
        """A publish went on air: the server accepted it (after the chain did) and its
        players now get its media. Called once per publish, on the publisher's worker only;
        never for a publish refused after the chain accepted it (a duplicate name). The
        answer is ignored; may return a Deferred."""

    def unpublished(stream: IStreamView) -> Any:
        """A publish that was ``published`` ended (stopped, deleted, or its publisher left).
        Called once per publish; the name is released right after the call, so a hook that
        looks later (after a Deferred) finds ``stream.publisher`` None. The answer is ignored;
        may return a Deferred."""

    def play_started(client: IClientView, stream: IStreamView) -> Any:
        """``client`` started playing ``stream`` (``NetStream.Play.Start`` was sent; the stream
        may not be published yet). Called once per play, on the player's worker. The answer
        is ignored; may return a Deferred."""

    def play_stopped(client: IClientView, stream: IStreamView) -> Any:
        """A play that was ``play_started`` ended: the client stopped, closed or deleted the
        stream, played another name on the same stream id, left, or was dropped as too slow.
        Called once per play. The answer is ignored; may return a Deferred."""


class IPlugin(IApplication, INotifications):
    """Everything a plugin may implement: what :class:`fms.apps.api.Plugin` provides."""
