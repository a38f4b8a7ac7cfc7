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

Most plugins subclass :class:`fms.apps.api.Plugin`, which implements every hook with "no
objection", and override the ones they need.
"""

from __future__ import annotations

from typing import Any

from zope.interface import Attribute, Interface


class IStreamView(Interface):
    """A read-only view of one live stream of an application."""

    app = Attribute("Application name (str).")
    name = Attribute("Stream name (str), without any '?query'.")
    publisher = Attribute("The publishing client's IClientView, or None.")
    subscriber_count = Attribute("Number of players (int).")
    metadata = Attribute("The onMetaData object the publisher sent (dict), or None.")


class IClientView(Interface):
    """A read-only view of one connected client, and the means to talk to it."""

    id = Attribute("A number unique among this process's clients (int).")
    peer = Attribute("'host:port' of the client (str).")
    host = Attribute("The client's IP address (str).")
    app = Attribute("Application name (str).")
    tc_url = Attribute("The tcUrl of connect (str).")
    params = Attribute("The connect command object (dict, a copy).")
    query = Attribute("Query parameters from the tcUrl or app (dict of str).")
    agent = Attribute("The flashVer the client announced (str).")
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
    """A view of one application: its clients and streams, and a broadcast."""

    name = Attribute("Application name (str).")
    clients = Attribute("The connected clients (tuple of IClientView).")
    streams = Attribute("The live streams (tuple of IStreamView).")

    def stream(name: str) -> Any:
        """The IStreamView of stream ``name``, or None."""

    def broadcast(method: str, *args: Any) -> int:
        """Call ``method`` (no answer expected) on every client; return how many."""


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
        given), or Rename(new_name) to publish under another name.
        """

    def unpublish(client: IClientView, stream: IStreamView) -> Any:
        """A publish ended (the stream's publisher is already gone)."""

    def play(client: IClientView, name: str, query: dict[str, str]) -> Any:
        """Decide ``play(name?query)``: Accept (or None), Reject(reason)
        (``NetStream.Play.Failed`` unless another code is given), or Rename(other) to play
        another stream."""

    def stop(client: IClientView, name: str) -> Any:
        """A play ended (the client stopped, closed the stream or left)."""

    def media(stream: IStreamView, message: Any) -> None:
        """A message of a stream this application publishes, after it was relayed: a
        :class:`fms.apps.api.MediaFrame` (kind, timestamp, payload or values, codec, keyframe
        and sequence-header flags); for recorders. Must not block: no Deferred."""

    def call(client: IClientView, method: str, args: tuple[Any, ...]) -> Any:
        """A client called ``method`` (``NetConnection.call``). The returned value (or what a
        Deferred fires with) becomes the ``_result``; an exception the ``_error``. Raise
        :class:`fms.apps.api.NotHandled` to let the next plugin answer."""
