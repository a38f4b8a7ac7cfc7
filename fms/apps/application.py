"""Applications: a plugin chain per application name, run asynchronously, failing closed.

The Twisted adapter asks an :class:`Application` to decide ``connect``, ``publish`` and
``play`` and to answer client calls; it waits for the returned Deferred before it answers the
client. Each plugin of the chain is asked in order; a hook may answer directly, with a Deferred
or with a coroutine. A plugin that raises, fails or times out (``decision_timeout``) is logged
with its traceback and counts as a refusal, for that one client only.
"""

from __future__ import annotations

import inspect
import weakref
from collections.abc import Callable, Iterable
from typing import Any

from twisted.internet.defer import Deferred, DeferredList, TimeoutError, maybeDeferred
from twisted.internet.interfaces import IReactorTime
from zope.interface import implementer

from fms.amf import encode_values
from fms.apps.api import Accept, MediaFrame, NotHandled, Plugin, Redirect, Reject, Rename
from fms.apps.interfaces import IAppView, IClientView, IStreamView
from fms.apps.pulls import Puller, PullError, PullHandle, plugin_request
from fms.apps.pushes import AppPushes, Pusher, PushError, PushHandle, PushRequest
from fms.apps.shared import Elsewhere, LocalSeats, Seating, SeatTable
from fms.apps.verdict import REFUSED_BY_DEFAULT, Action, Verdict, name_verdict, status_for
from fms.apps.views import StreamView
from fms.config import AppConfig
from fms.counters import COUNTERS
from fms.live.media import MediaInfo, describe
from fms.live.registry import StreamRegistry
from fms.live.stream import LiveStream
from fms.log import Logger
from fms.rtmp.messages import Data, Media

log = Logger(namespace="fms.apps.application")


TIMED_OUT = "the application did not decide in time"
FAILED = "an error in the application"
NOT_A_DECISION = "the application answered with something that is not a decision"
NO_REASON = "no reason given"
"""Why a request was refused when the chain could not say: these go to the client (as the
status description) and to the log line "... refused by the application: WHY", so none of
them repeats that line's own words."""


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


def _acts_in(plugin: Any, hook: str) -> bool:
    method = getattr(plugin, hook, None)
    return method is not None and getattr(method, "__func__", method) is not getattr(Plugin, hook)


def _plugin_name(plugin: Any) -> str:
    return type(plugin).__name__


def media_frame(message: Media | Data, info: MediaInfo | None = None) -> MediaFrame:
    """The plugin-facing record of a published message (``info``: what the stream read of its
    header when it was published; read here when not given)."""
    if isinstance(message, Data):
        return MediaFrame("data", message.timestamp, b"", tuple(message.values))
    if info is None:
        info = describe(message.type_id, message.payload)
    return MediaFrame(
        info.kind, message.timestamp, message.payload, (), info.codec,
        info.keyframe, info.sequence_header,
    )  # fmt: skip


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
        *,
        seats: SeatTable | None = None,
        elsewhere: Elsewhere | None = None,
        pusher: Pusher | None = None,
        puller: Puller | None = None,
    ) -> None:
        """``seats``: the seat table shared by every process serving the port (a fresh
        :class:`~fms.apps.shared.LocalSeats` when not given); ``elsewhere``: the other
        processes, for broadcasts (None: there are none)."""
        self.name = name
        self.config = config
        self.plugins = list(plugins)
        self.registry = registry
        self.clock = clock
        self._clients: dict[int, IClientView] = {}
        self._media_hooks = self._overriding("media")
        self._started = False
        self._media_failed: set[tuple[int, str, str]] = set()
        self._stopping: Deferred[None] | None = None
        self._notifying: set[Deferred[None]] = set()
        self.seating = Seating(name, seats if seats is not None else LocalSeats())
        self._departed: weakref.WeakSet[IClientView] = weakref.WeakSet()
        """Clients that have left (as long as a hook still holds their view): a hook that
        finishes late gets no seat for them."""
        self.elsewhere = elsewhere
        self.pushes = AppPushes(config.push, pusher, max_hops=config.streams.max_push_hops)
        """Pushes of this application's streams (``[[apps.NAME.push]]`` and ``push``)."""
        self.puller = puller
        """Pulls streams from other servers (``[[apps.NAME.pull]]`` and ``pull``)."""

    def _overriding(self, hook: str) -> list[Any]:
        """The plugins that do something in ``hook`` (they have it, and it is not
        :class:`Plugin`'s no-op): a notification nobody listens to costs nothing per client."""
        return [p for p in self.plugins if _acts_in(p, hook)]

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

    def broadcast(self, method: str, *args: Any, everywhere: bool = True) -> int:
        values = encode_values(args)  # AMFEncodeError before anyone is called
        count = 0
        for client in self.clients:
            client.send(method, *args)
            count += 1
        if everywhere and self.elsewhere is not None:
            self.elsewhere.broadcast(self.name, method, values)
        return count

    def take_seat(self, key: str, limit: int, client: IClientView) -> bool:
        if client in self._departed:
            return False  # a hook that finished after its client left: nothing would free it
        return self.seating.take(key, limit, client.id)

    def release_seat(self, key: str, client: IClientView) -> None:
        self.seating.release(key, client.id)

    def push(self, stream: IStreamView, url: str, name: str | None = None) -> PushHandle:
        live = getattr(stream, "_stream", None)
        if not isinstance(live, LiveStream) or not self._owns(live.app):
            raise PushError(f"{stream!r} is not a stream of {self.name}")
        return self.pushes.push(live, PushRequest(url, live.name if name is None else name))

    def pull(self, name: str, url: str, upstream: str | None = None) -> PullHandle:
        app, _, stream = name.rpartition("/")
        app = f"{self.name}/{app}" if app else self.name
        if self.puller is None:
            raise PullError("this server cannot pull streams")
        return self.puller.pull(plugin_request(app, stream, url, upstream))

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
        self.pushes.stop_all()
        while self._notifying:
            await DeferredList(list(self._notifying))
        await self._notify_each("app_stop", self)

    def add_client(self, client: IClientView) -> None:
        self._clients[client.id] = client

    def remove_client(self, client: IClientView) -> None:
        self._departed.add(client)
        self.seating.client_left(client.id)
        if self._clients.pop(client.id, None) is not None:
            self.notify("disconnect", client)

    # ------------------------------------------------------------------------ decisions

    def _ask(self, plugin: Any, hook: str, *args: Any) -> Deferred[Any]:
        d = _call_hook(plugin, hook, *args)
        d.addTimeout(self.config.decision_timeout, self.clock)
        return d

    async def _chain(
        self,
        hook: str,
        subject: str,
        make_args: Callable[[str], tuple[Any, ...]],
        name: str,
        max_name: int | None,
    ) -> tuple[Any, str]:
        """Run the chain; return (the deciding answer, the final stream name). A ``Rename`` to
        a name that is not acceptable refuses (``max_name`` None: names are not checked)."""
        for plugin in self.plugins:
            try:
                decision = await self._ask(plugin, hook, *make_args(name))
            except TimeoutError:
                log.warn(
                    "{plugin} did not decide {hook} for {subject} within {timeout}s: refused",
                    plugin=_plugin_name(plugin), hook=hook, subject=subject,
                    timeout=self.config.decision_timeout,
                )  # fmt: skip
                return Reject(TIMED_OUT), name
            except Exception:
                log.failure(
                    "{plugin} failed in {hook} for {subject}: refused",
                    plugin=_plugin_name(plugin), hook=hook, subject=subject,
                )  # fmt: skip
                return Reject(FAILED), name
            if isinstance(decision, (Reject, Redirect)):
                return decision, name
            if isinstance(decision, Rename):
                name = decision.name
                if max_name is not None and name_verdict(hook, name, max_name) is not None:  # type: ignore[arg-type]
                    return decision, name
            elif decision is not None and not isinstance(decision, Accept):
                log.error(
                    "{plugin} answered {hook} with {decision!r}, not a decision: refused",
                    plugin=_plugin_name(plugin), hook=hook, decision=decision,
                )  # fmt: skip
                return Reject(NOT_A_DECISION), name
        return Accept(), name

    async def _decide(
        self,
        action: Action,
        client: IClientView,
        make_args: Callable[[str], tuple[Any, ...]],
        name: str,
        max_name: int | None,
    ) -> Verdict:
        """Check the requested name, run the chain, check the final name; one Verdict."""
        if max_name is not None:
            bad = name_verdict(action, name, max_name)
            if bad is not None:
                self._log_refusal(action, client, name, bad)
                return bad
        subject = (
            client.peer if action == "connect" else
            f"{client.peer} {action}ing {client.app}/{name}"
        )  # fmt: skip
        started = self.clock.seconds()
        decision, final = await self._chain(action, subject, make_args, name, max_name)
        COUNTERS.observe("plugin_decision_seconds", self.clock.seconds() - started, action=action)
        if isinstance(decision, (Redirect, Reject)):
            COUNTERS.add("plugin_refusals", action=action)
        if isinstance(decision, Redirect):
            verdict = Verdict(
                False, final, REFUSED_BY_DEFAULT[action],
                decision.reason or "redirected", redirect=decision.url,
            )  # fmt: skip
        elif isinstance(decision, Reject):
            verdict = Verdict(
                False, final, status_for(decision.code, REFUSED_BY_DEFAULT[action]),
                decision.reason or NO_REASON,
            )  # fmt: skip
        elif max_name is not None and final != name:
            verdict = name_verdict(action, final, max_name) or Verdict(True, final)
        else:
            verdict = Verdict(True, final)
        if not verdict.accepted:
            self._log_refusal(action, client, name if verdict.by_application else final, verdict)
        return verdict

    def _log_refusal(self, action: Action, client: IClientView, name: str, v: Verdict) -> None:
        if v.redirect is not None:
            log.info("redirecting {peer} to {url}", peer=client.peer, url=v.redirect)
        elif action == "connect":
            log.info(
                "connect from {peer} to {app!r} refused by the application: {reason}",
                peer=client.peer, app=client.app, reason=v.description,
            )  # fmt: skip
        elif v.by_application:
            log.info(
                "{action} {app}/{stream} {by} {peer} refused by the application: {reason}",
                action=action, app=client.app, stream=name, peer=client.peer,
                reason=v.description, by="from" if action == "publish" else "for",
            )  # fmt: skip
        else:
            log.info(
                "refusing {action} {app}/{stream!r} {by} {peer}: {problem}",
                action=action, app=client.app, stream=name, peer=client.peer,
                problem=v.description, by="from" if action == "publish" else "for",
            )  # fmt: skip

    def decide_connect(self, client: IClientView) -> Deferred[Verdict]:
        """The chain's verdict on ``client``'s connect (``name`` is the app)."""
        return Deferred.fromCoroutine(
            self._decide("connect", client, lambda _: (client,), client.app, None)
        )

    def decide_publish(
        self, client: IClientView, name: str, query: dict[str, str], kind: str, max_name: int
    ) -> Deferred[Verdict]:
        """The verdict on publishing ``name`` (names over ``max_name`` bytes are refused)."""
        return Deferred.fromCoroutine(
            self._decide(
                "publish", client, lambda n: (client, n, dict(query), kind), name, max_name
            )
        )

    def decide_play(
        self, client: IClientView, name: str, query: dict[str, str], max_name: int
    ) -> Deferred[Verdict]:
        """The verdict on playing ``name``. Seats the chain takes for ``client`` meanwhile
        belong to this play (:class:`~fms.apps.shared.Seating`)."""

        async def run() -> Verdict:
            decision = self.seating.deciding(client.id)
            accepted, final = False, name
            try:
                verdict = await self._decide(
                    "play", client, lambda n: (client, n, dict(query)), name, max_name
                )
                accepted, final = verdict.accepted, verdict.name
                return verdict
            finally:
                self.seating.decided(decision, accepted and client not in self._departed, final)

        return Deferred.fromCoroutine(run())

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
        self._notify_in_turn((hook, args))

    def _notify_in_turn(self, *calls: tuple[str, tuple[Any, ...]]) -> None:
        """Make each (hook, args) call on every plugin, one hook after the other."""
        d = Deferred.fromCoroutine(self._notify_all(calls))
        if not d.called:
            self._notifying.add(d)
            d.addBoth(lambda _: self._notifying.discard(d))

    async def _notify_all(self, calls: tuple[tuple[str, tuple[Any, ...]], ...]) -> None:
        for hook, args in calls:
            await self._notify_each(hook, *args)

    async def _notify_each(self, hook: str, *args: Any) -> None:
        for plugin in self._overriding(hook):
            try:
                await self._ask(plugin, hook, *args)
            except Exception:
                log.failure("{plugin} failed in {hook}", plugin=_plugin_name(plugin), hook=hook)

    def published(self, stream: LiveStream) -> None:
        """``stream`` went on air here (the server claimed it for its publisher): the
        ``published`` notification. Not for relay links: their publish was told on its own
        worker."""
        try:
            self.pushes.published(stream)
        except Exception:  # a push that cannot start never keeps the plugins from hearing
            log.failure("cannot start the pushes of {app}/{stream}", app=stream.app,
                        stream=stream.name)  # fmt: skip
        self._notify_in_turn(("published", (StreamView(stream),)))

    def publish_ended(self, client: IClientView, stream: LiveStream) -> None:
        """A publish of ``stream`` by ``client`` ends (its stream is still claimed): the
        ``unpublished`` and older ``unpublish`` notifications, and plugins that failed on its
        media get the next publish."""
        try:
            self.pushes.ended(stream)
        except Exception:
            log.failure("cannot stop the pushes of {app}/{stream}", app=stream.app,
                        stream=stream.name)  # fmt: skip
        view = StreamView(stream)
        self._notify_in_turn(("unpublished", (view,)), ("unpublish", (client, view)))
        for index in range(len(self._media_hooks)):
            self._media_failed.discard((index, stream.app, stream.name))

    def play_started(self, client: IClientView, stream: LiveStream | IStreamView) -> None:
        """``client`` was told ``NetStream.Play.Start`` for ``stream`` (a live stream, or the
        view of a recording)."""
        view = StreamView(stream) if isinstance(stream, LiveStream) else stream
        self._notify_in_turn(("play_started", (client, view)))

    def play_stopped(self, client: IClientView, stream: LiveStream | IStreamView) -> None:
        """A play that started ended: its seats go back, then ``play_stopped`` and the older
        ``stop``."""
        self.seating.play_stopped(client.id, stream.name)
        view = StreamView(stream) if isinstance(stream, LiveStream) else stream
        self._notify_in_turn(("play_stopped", (client, view)), ("stop", (client, stream.name)))

    def media(self, stream: LiveStream, message: Media | Data, info: MediaInfo) -> None:
        """Hand a relayed message to the plugins that want media (recorders), as a
        :class:`~fms.apps.api.MediaFrame`.

        A plugin that raises is logged once, with its traceback, and gets no more media of
        that publish (it fails closed for what it guarded: a recording, say); the stream, its
        players and the other plugins go on."""
        if not self._media_hooks:
            return
        view = StreamView(stream)
        frame = media_frame(message, info)
        for index, plugin in enumerate(self._media_hooks):
            key = (index, stream.app, stream.name)
            if key in self._media_failed:
                continue
            try:
                plugin.media(view, frame)
            except Exception:
                self._media_failed.add(key)
                log.failure(
                    "{plugin} failed in media for {app}/{stream}: it gets no more of this publish",
                    plugin=_plugin_name(plugin), app=stream.app, stream=stream.name,
                )  # fmt: skip

    @property
    def wants_media(self) -> bool:
        return bool(self._media_hooks)
