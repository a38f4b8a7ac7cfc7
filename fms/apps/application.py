"""Applications: a plugin chain per application name, run asynchronously, failing closed.

The Twisted adapter asks an :class:`Application` to decide ``connect``, ``publish`` and
``play`` and to answer client calls; it waits for the returned Deferred before it answers the
client. Each plugin of the chain is asked in order; a hook may answer directly, with a Deferred
or with a coroutine. A plugin that raises, fails or times out (``decision_timeout``) is logged
with its traceback and counts as a refusal, for that one client only.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from typing import Any

from twisted.internet.defer import Deferred, DeferredList, TimeoutError, maybeDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure
from zope.interface import implementer

from fms.apps.api import Accept, NotHandled, Plugin, Redirect, Reject, Rename
from fms.apps.interfaces import IAppView, IClientView, IStreamView
from fms.config import AppConfig
from fms.live.registry import StreamRegistry
from fms.live.stream import LiveStream
from fms.log import Logger

log = Logger(namespace="fms.apps.application")


class MethodNotFound(Exception):
    """No plugin of the chain answers this client call."""


def _call_hook(plugin: Any, hook: str, *args: Any) -> Deferred[Any]:
    """Call a hook, turning a plain value, a Deferred or a coroutine into a Deferred."""

    def invoke() -> Any:
        result = getattr(plugin, hook)(*args)
        if inspect.iscoroutine(result):
            return Deferred.fromCoroutine(result)
        return result

    return maybeDeferred(invoke)


def _plugin_name(plugin: Any) -> str:
    return type(plugin).__name__


@implementer(IStreamView)
class StreamView:
    """The read-only view of a :class:`~fms.live.stream.LiveStream` that plugins get."""

    def __init__(self, stream: LiveStream) -> None:
        self._stream = stream

    @property
    def app(self) -> str:
        return self._stream.app

    @property
    def name(self) -> str:
        return self._stream.name

    @property
    def publisher(self) -> IClientView | None:
        view: IClientView | None = getattr(self._stream.publisher, "client_view", None)
        return view

    @property
    def subscriber_count(self) -> int:
        """Players on every worker (``fms run --workers``; the other workers' count is at
        most about a second old)."""
        return len(self._stream.players) + self._stream.remote_players

    @property
    def metadata(self) -> dict[str, Any] | None:
        data = self._stream.metadata
        if data is None:
            return None
        for value in data.values[1:]:
            if isinstance(value, dict):
                return dict(value)
        return None

    def __repr__(self) -> str:
        return f"<StreamView {self.app}/{self.name}>"


@implementer(IAppView)
class Application:
    """One configured application and its plugin chain."""

    def __init__(
        self,
        name: str,
        config: AppConfig,
        plugins: Iterable[Any],
        registry: StreamRegistry,
        clock: IReactorTime,
    ) -> None:
        self.name = name
        self.config = config
        self.plugins = list(plugins)
        self.registry = registry
        self.clock = clock
        self._clients: dict[int, IClientView] = {}
        self._media_hooks = [
            p for p in self.plugins if getattr(type(p), "media", None) is not Plugin.media
        ]
        self._started = False
        self._media_failed: set[tuple[int, str, str]] = set()
        self._stopping: Deferred[None] | None = None
        self._notifying: set[Deferred[None]] = set()

    # ------------------------------------------------------------------------- IAppView

    @property
    def clients(self) -> tuple[IClientView, ...]:
        return tuple(self._clients.values())

    @property
    def streams(self) -> tuple[IStreamView, ...]:
        return tuple(StreamView(s) for s in self.registry if self._owns(s.app))

    def stream(self, name: str) -> IStreamView | None:
        for stream in self.registry:
            if stream.name == name and self._owns(stream.app):
                return StreamView(stream)
        return None

    def broadcast(self, method: str, *args: Any) -> int:
        count = 0
        for client in self.clients:
            client.send(method, *args)
            count += 1
        return count

    def _owns(self, app: str) -> bool:
        return app == self.name or app.startswith(self.name + "/")

    # ------------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        if not self._started:
            self._started = True
            self.notify("app_start", self)

    def stop(self) -> Deferred[None]:
        """Tell the plugins the application stops (``app_stop``), after every notification
        still running (an asynchronous ``unpublish`` closing a recording) has finished. Only
        the first call does anything; each plugin is bounded by ``decision_timeout``."""
        return Deferred.fromCoroutine(self._stop_once())

    async def _stop_once(self) -> None:
        if self._stopping is None:
            self._stopping = Deferred.fromCoroutine(self._stop())
        await self._stopping  # never fails: _notify_each logs every plugin failure

    async def _stop(self) -> None:
        while self._notifying:
            await DeferredList(list(self._notifying))
        await self._notify_each("app_stop", self)

    def add_client(self, client: IClientView) -> None:
        self._clients[client.id] = client

    def remove_client(self, client: IClientView) -> None:
        if self._clients.pop(client.id, None) is not None:
            self.notify("disconnect", client)

    # ------------------------------------------------------------------------ decisions

    def _ask(self, plugin: Any, hook: str, *args: Any) -> Deferred[Any]:
        d = _call_hook(plugin, hook, *args)
        d.addTimeout(self.config.decision_timeout, self.clock)
        return d

    async def _decide(
        self, hook: str, subject: str, make_args: Callable[[str], tuple[Any, ...]], name: str
    ) -> tuple[Any, str]:
        """Run the chain; return (final decision, final stream name)."""
        for plugin in self.plugins:
            try:
                decision = await self._ask(plugin, hook, *make_args(name))
            except TimeoutError:
                log.warn(
                    "{plugin} did not decide {hook} for {subject} within {timeout}s: refused",
                    plugin=_plugin_name(plugin), hook=hook, subject=subject,
                    timeout=self.config.decision_timeout,
                )  # fmt: skip
                return Reject("the application did not decide in time"), name
            except Exception:
                log.failure(
                    "{plugin} failed in {hook} for {subject}: refused",
                    plugin=_plugin_name(plugin), hook=hook, subject=subject,
                )  # fmt: skip
                return Reject("refused by the application"), name
            if isinstance(decision, (Reject, Redirect)):
                return decision, name
            if isinstance(decision, Rename):
                name = decision.name
            elif decision is not None and not isinstance(decision, Accept):
                log.error(
                    "{plugin} answered {hook} with {decision!r}, not a decision: refused",
                    plugin=_plugin_name(plugin), hook=hook, decision=decision,
                )  # fmt: skip
                return Reject("refused by the application"), name
        return Accept(), name

    def decide_connect(self, client: IClientView) -> Deferred[tuple[Any, str]]:
        return Deferred.fromCoroutine(
            self._decide("connect", client.peer, lambda _: (client,), client.app)
        )

    def decide_publish(
        self, client: IClientView, name: str, query: dict[str, str], kind: str
    ) -> Deferred[tuple[Any, str]]:
        subject = f"{client.peer} publishing {client.app}/{name}"
        return Deferred.fromCoroutine(
            self._decide("publish", subject, lambda n: (client, n, dict(query), kind), name)
        )

    def decide_play(
        self, client: IClientView, name: str, query: dict[str, str]
    ) -> Deferred[tuple[Any, str]]:
        subject = f"{client.peer} playing {client.app}/{name}"
        return Deferred.fromCoroutine(
            self._decide("play", subject, lambda n: (client, n, dict(query)), name)
        )

    def call(self, client: IClientView, method: str, args: tuple[Any, ...]) -> Deferred[Any]:
        """A client's call: the first plugin that handles ``method`` answers it."""

        async def run() -> Any:
            for plugin in self.plugins:
                try:
                    return await self._ask(plugin, "call", client, method, args)
                except NotHandled:
                    continue
            raise MethodNotFound(method)

        return Deferred.fromCoroutine(run())

    # -------------------------------------------------------------------- notifications

    def notify(self, hook: str, *args: Any) -> None:
        """Tell every plugin (disconnect, unpublish, stop...); failures are logged only."""
        d = Deferred.fromCoroutine(self._notify_each(hook, *args))
        if not d.called:
            self._notifying.add(d)
            d.addBoth(lambda _: self._notifying.discard(d))

    async def _notify_each(self, hook: str, *args: Any) -> None:
        for plugin in self.plugins:
            try:
                await self._ask(plugin, hook, *args)
            except Exception:
                log.failure("{plugin} failed in {hook}", plugin=_plugin_name(plugin), hook=hook)

    def media(self, stream: LiveStream, message: Any) -> None:
        """Hand a relayed message to the plugins that want media (recorders).

        A plugin that raises is logged once, with its traceback, and gets no more media of
        that publish (it fails closed for what it guarded: a recording, say); the stream, its
        players and the other plugins go on."""
        if not self._media_hooks:
            return
        view = StreamView(stream)
        for index, plugin in enumerate(self._media_hooks):
            key = (index, stream.app, stream.name)
            if key in self._media_failed:
                continue
            try:
                plugin.media(view, message)
            except Exception:
                self._media_failed.add(key)
                log.failure(
                    "{plugin} failed in media for {app}/{name}: it gets no more of this publish",
                    plugin=_plugin_name(plugin), app=stream.app, name=stream.name,
                )  # fmt: skip

    def publish_ended(self, stream: LiveStream) -> None:
        """A publish of ``stream`` ended: plugins that failed on its media get the next one."""
        for index in range(len(self._media_hooks)):
            self._media_failed.discard((index, stream.app, stream.name))

    @property
    def wants_media(self) -> bool:
        return bool(self._media_hooks)


def failure_reason(failure: Failure) -> str:
    """A one-line reason for a failed call, for ``_error`` descriptions."""
    return f"{type(failure.value).__name__}: {failure.getErrorMessage()}"
