"""A test kit for plugin authors: stand-in views, a hook runner, and a real server.

Hooks are plain methods, so most tests call them with stand-ins and check the answer::

    from fms.apps.api import Reject
    from fms.testing import FakeClient, run_hook

    def test_the_key_is_needed():
        plugin = MyKey(secret="s3cret")
        client = FakeClient(host="127.0.0.1")
        assert run_hook(plugin.publish, client, "cam", {"key": "s3cret"}, "live") is None
        assert isinstance(run_hook(plugin.publish, client, "cam", {}, "live"), Reject)

:class:`FakeClient`, :class:`FakeStream` and :class:`FakeApp` implement the interfaces of
:mod:`fms.apps.interfaces` (``verifyObject`` passes) and remember what a plugin did with them
(calls, messages sent, a disconnect). :func:`run_hook` answers whether the hook returns a
value, a Deferred or a coroutine, without a running reactor. :func:`running_server` runs the
real server (``fms run``) with your plugin, for a test with real clients.
"""

from __future__ import annotations

import inspect
import os
import queue
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from zope.interface import implementer

from fms.apps.interfaces import IAppView, IClientView, IStreamView
from fms.apps.shared import LocalSeats, Seating
from fms.apps.views import StreamFigures

__all__ = [
    "FakeApp",
    "FakeClient",
    "FakeStream",
    "HookWaits",
    "RunningServer",
    "run_hook",
    "running_server",
]


# ------------------------------------------------------------------------------ stand-ins


@implementer(IClientView)
class FakeClient:
    """A stand-in :class:`~fms.apps.interfaces.IClientView`: what a client connected to ``app``
    from ``host`` looks like to a plugin, and a record of what the plugin did to it.

    ``answers`` maps a method name to what :meth:`call` answers: a tuple of values, or an
    exception to fail with (a method not listed answers ``()``). ``calls`` and ``sent`` list
    the ``(method, args)`` of :meth:`call` and :meth:`send`; ``disconnected`` is the reason
    given to :meth:`disconnect` (None while connected).
    """

    _ids = iter(range(1, sys.maxsize))

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 50000,
        app: str = "live",
        query: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
        tc_url: str | None = None,
        agent: str = "FMLE/3.0 (compatible; FMSc/1.0)",
        publishing: Sequence[str] = (),
        playing: Sequence[str] = (),
        application: IAppView | None = None,
        answers: Mapping[str, tuple[Any, ...] | BaseException] | None = None,
        protocol: str = "rtmp",
    ) -> None:
        self.id = next(FakeClient._ids)
        self.host = host
        self.peer = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self.app = app
        self.query = dict(query or {})
        self.tc_url = tc_url if tc_url is not None else f"rtmp://{host}/{app}"
        self.params = dict(params) if params is not None else {"app": app, "tcUrl": self.tc_url}
        self.agent = agent
        self.protocol = protocol
        self.publishing = tuple(publishing)
        self.playing = tuple(playing)
        self.application = application
        self.answers = dict(answers or {})
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.sent: list[tuple[str, tuple[Any, ...]]] = []
        self.disconnected: str | None = None

    def call(self, method: str, *args: Any) -> Deferred[tuple[Any, ...]]:
        self.calls.append((method, args))
        answer = self.answers.get(method, ())
        if isinstance(answer, BaseException):
            return fail(answer)
        return succeed(answer)

    def send(self, method: str, *args: Any) -> None:
        self.sent.append((method, args))

    def disconnect(self, reason: str = "") -> None:
        self.disconnected = reason or "disconnected by the application"

    def __repr__(self) -> str:
        return f"<FakeClient {self.id} {self.peer} {self.app!r}>"


@implementer(IStreamView)
class FakeStream(StreamFigures):
    """A stand-in :class:`~fms.apps.interfaces.IStreamView`: stream ``name`` of ``app``,
    published by ``publisher`` (None: players wait for it), with ``subscriber_count``
    players and the ``metadata`` (onMetaData object) the publisher sent. ``figures`` are
    what :attr:`~fms.apps.interfaces.IStreamView.figures` returns (e.g.
    ``{"bitrate_kbps": {"total": 2500.0}, "video": {"codec": "h264", "width": 1280}}``);
    ``bitrate_kbps``, ``video_codec``, ``width``, ``height`` and ``fps`` read them;
    ``recorded``: a recording played from a file rather than a live stream."""

    def __init__(
        self,
        name: str = "cam",
        *,
        app: str = "live",
        publisher: IClientView | None = None,
        subscriber_count: int = 0,
        metadata: Mapping[str, Any] | None = None,
        figures: Mapping[str, Any] | None = None,
        recorded: bool = False,
    ) -> None:
        self.recorded = recorded
        self.app = app
        self.name = name
        self.publisher = publisher
        self.subscriber_count = subscriber_count
        self.metadata = dict(metadata) if metadata is not None else None
        self._figures = dict(figures or {})

    @property
    def figures(self) -> dict[str, Any]:
        return dict(self._figures)

    def __repr__(self) -> str:
        return f"<FakeStream {self.app}/{self.name}>"


class FakePush:
    """The handle :meth:`FakeApp.push` returns: ``state`` is "live" until :meth:`stop`."""

    def __init__(self, stream: IStreamView, url: str, name: str) -> None:
        self.stream = stream
        self.url = url
        self.name = name
        self.state = "live"

    def stop(self) -> None:
        self.state = "stopped"

    def figures(self) -> dict[str, Any]:
        return {"url": self.url, "name": self.name, "state": self.state}


@implementer(IAppView)
class FakeApp:
    """A stand-in :class:`~fms.apps.interfaces.IAppView`: application ``name`` with the
    clients and streams a test adds. ``broadcasts`` lists the ``(method, args)`` of
    :meth:`broadcast` (each client's ``sent`` has them too); :meth:`seated` counts the seats
    a plugin took."""

    def __init__(self, name: str = "live") -> None:
        self.name = name
        self._clients: list[IClientView] = []
        self._streams: dict[str, IStreamView] = {}
        self.broadcasts: list[tuple[str, tuple[Any, ...]]] = []
        self._seats = LocalSeats()
        self._seating = Seating(name, self._seats)
        self.pushes: list[FakePush] = []
        """What :meth:`push` was asked, in order."""
        self.pulls: list[FakePush] = []
        """What :meth:`pull` was asked, in order (``stream``: the stream to publish here)."""

    @property
    def clients(self) -> tuple[IClientView, ...]:
        return tuple(self._clients)

    @property
    def streams(self) -> tuple[IStreamView, ...]:
        return tuple(self._streams.values())

    def stream(self, name: str) -> IStreamView | None:
        return self._streams.get(name)

    def broadcast(self, method: str, *args: Any, everywhere: bool = True) -> int:
        self.broadcasts.append((method, args))
        for client in self._clients:
            client.send(method, *args)
        return len(self._clients)

    def take_seat(self, key: str, limit: int, client: IClientView) -> bool:
        return self._seating.take(key, limit, client.id)

    def release_seat(self, key: str, client: IClientView) -> None:
        self._seating.release(key, client.id)

    def push(self, stream: IStreamView, url: str, name: str | None = None) -> FakePush:
        """Records the push in :attr:`pushes` (nothing connects) and returns its handle."""
        handle = FakePush(stream, url, stream.name if name is None else name)
        self.pushes.append(handle)
        return handle

    def pull(self, name: str, url: str, upstream: str | None = None) -> FakePush:
        """Records the pull in :attr:`pulls` (nothing connects) and returns its handle."""
        handle = FakePush(FakeStream(name, app=self.name), url, upstream or name)
        self.pulls.append(handle)
        return handle

    def seated(self, key: str) -> int:
        """How many seats of ``key`` are taken (a seat lasts until ``release_seat`` or
        :meth:`leave`: the stand-in knows no plays)."""
        return self._seats.held(self.name, key)

    def connect(self, **fields: Any) -> FakeClient:
        """A :class:`FakeClient` of this application (``fields`` as FakeClient takes them),
        listed in ``clients``."""
        client = FakeClient(app=self.name, application=self, **fields)
        self._clients.append(client)
        return client

    def leave(self, client: IClientView) -> None:
        """``client`` is gone from ``clients``; its seats are given back."""
        self._clients = [c for c in self._clients if c is not client]
        self._seating.client_left(client.id)

    def publish(self, name: str, publisher: IClientView | None = None, **fields: Any) -> FakeStream:
        """A :class:`FakeStream` of this application, listed in ``streams`` (``fields`` as
        FakeStream takes them); ``publisher`` None makes it a stream players wait for."""
        stream = FakeStream(name, app=self.name, publisher=publisher, **fields)
        self._streams[name] = stream
        return stream

    def unpublish(self, name: str) -> None:
        """Stream ``name`` is no longer listed."""
        self._streams.pop(name, None)


# ----------------------------------------------------------------------------- run_hook


class HookWaits(AssertionError):
    """The hook's answer did not come without real time passing: it waits on the reactor,
    the network or a timer the test does not drive."""


def run_hook(
    hook: Callable[..., Any], *args: Any, clock: Clock | None = None, within: float = 0.0
) -> Any:
    """Call ``hook(*args)`` and return its answer, whether it returns a value, a Deferred or a
    coroutine (``async def``); an exception the hook raises, or its Deferred fails with, is
    raised here.

    There is no running reactor: a Deferred must fire, and a coroutine finish, by the time
    the hook and the ``clock`` are done. A hook that waits on a timer can be given a
    :class:`twisted.internet.task.Clock` (a plugin option, say); ``within`` seconds of it are
    then advanced, one scheduled call at a time, until the answer comes. An answer that does
    not come raises :class:`HookWaits`.
    """
    result = hook(*args)
    if inspect.iscoroutine(result):
        result = Deferred.fromCoroutine(result)
    if not isinstance(result, Deferred):
        return result
    outcome: list[Any] = []
    result.addBoth(outcome.append)
    if not outcome and clock is not None:
        deadline = clock.seconds() + within
        while not outcome:
            due = [c.getTime() for c in clock.getDelayedCalls() if c.getTime() <= deadline]
            if not due:
                break
            clock.advance(max(min(due) - clock.seconds(), 0.0))
    if not outcome:
        name = getattr(hook, "__qualname__", repr(hook))
        waited = f" after {within:g}s of the given clock" if clock is not None else ""
        result.cancel()
        result.addErrback(lambda _: None)
        raise HookWaits(
            f"{name} did not answer{waited}: it waits on something this test does not drive "
            "(the reactor, the network, real time). Give the plugin a task.Clock and pass it "
            "as run_hook(..., clock=clock, within=seconds), or test it with running_server()."
        )
    answer = outcome[0]
    if isinstance(answer, Failure):
        answer.raiseException()
    return answer


# ------------------------------------------------------------------------ a real server

LISTENING = re.compile(r"listening on (rtmp://\S+)")


def _toml(value: Any) -> str:
    """``value`` as a TOML value (str, bool, int, float, list, dict)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (str, os.PathLike)):
        text = str(value)
        escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'"{escaped}"'
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{_toml(str(k))} = {_toml(v)}" for k, v in value.items()) + " }"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    raise TypeError(f"{value!r} has no TOML form")


def server_config(
    plugins: Sequence[str | Mapping[str, Any]],
    *,
    app: str = "live",
    plugin_dirs: Sequence[str | os.PathLike[str]] = (),
    extra: str = "",
) -> str:
    """The ``fms.toml`` text of one application ``app`` whose chain is ``plugins``: each a
    ``use`` string, or a mapping with ``use`` and the plugin's options."""
    lines = ["[server]"]
    if plugin_dirs:
        dirs = [str(Path(d).resolve()) for d in plugin_dirs]
        lines.append(f"plugin_dirs = {_toml(dirs)}")
    for plugin in plugins:
        spec = {"use": plugin} if isinstance(plugin, str) else dict(plugin)
        lines.append(f"\n[[apps.{_toml(app)}.plugins]]")
        lines.extend(f"{_toml(str(key))} = {_toml(value)}" for key, value in spec.items())
    return "\n".join(lines) + "\n" + extra


class RunningServer:
    """A running ``fms run`` (see :func:`running_server`): where it listens and its log."""

    def __init__(self, process: subprocess.Popen[str], app: str) -> None:
        self.process = process
        self.lines: list[str] = []
        """The log lines so far (the server logs to stderr)."""
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.url = ""
        """``rtmp://127.0.0.1:PORT`` (set once the server listens)."""
        self.app = app

    @property
    def app_url(self) -> str:
        """``rtmp://127.0.0.1:PORT/APP``: append ``/stream`` for a client."""
        return f"{self.url}/{self.app}"

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line.rstrip("\n"))
            self._queue.put(line)
        self._queue.put(None)

    def wait_for_line(self, pattern: str | re.Pattern[str], timeout: float = 30.0) -> str:
        """The first log line matching ``pattern`` (lines already logged count), waiting up to
        ``timeout`` seconds for it; AssertionError with the log when none comes."""
        return self.wait_for_lines(pattern, 1, timeout)[0]

    def wait_for_lines(
        self, pattern: str | re.Pattern[str], count: int, timeout: float = 30.0
    ) -> list[str]:
        """The first ``count`` log lines matching ``pattern``, waiting up to ``timeout`` s."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            found = [line for line in list(self.lines) if regex.search(line)]
            if len(found) >= count:
                return found[:count]
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    f"{len(found)} of {count} log lines matched {regex.pattern!r} in "
                    f"{timeout:g}s; log:\n{self.log()}"
                )
            try:
                line = self._queue.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:  # its log closed: the server is exiting
                self._queue.put(None)
                status = self.process.wait(timeout=10)
                raise AssertionError(f"the server exited ({status}); log:\n{self.log()}")

    def log(self) -> str:
        return "\n".join(self.lines)

    def stop(self, timeout: float = 30.0) -> int:
        """Stop the server (SIGTERM, as a service manager would) and return its exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            log = self.log()
            raise AssertionError(f"the server did not stop in {timeout:g}s; log:\n{log}") from None
        finally:
            self._reader.join(timeout=5)


@contextmanager
def running_server(
    *plugins: str | Mapping[str, Any],
    app: str = "live",
    plugin_dirs: Sequence[str | os.PathLike[str]] = (),
    extra_config: str = "",
    args: Sequence[str] = (),
    timeout: float = 30.0,
) -> Iterator[RunningServer]:
    """Run the real server, ``fms run``, on 127.0.0.1 and a free port, with application
    ``app`` whose chain is ``plugins`` (each a ``use`` string, or a mapping with ``use`` and
    the plugin's options), plugin files looked up in ``plugin_dirs``; yield it once it
    listens (within ``timeout`` seconds). ``extra_config`` is TOML appended to the generated
    configuration, ``args`` more options of ``fms run`` (``"--workers", "2"``).

    On leaving, the server is stopped; a server that does not exit cleanly (status 0) fails
    the test with its log::

        with running_server("mykey", plugin_dirs=["plugins"]) as server:
            subprocess.run(["ffmpeg", ..., "-f", "flv", f"{server.app_url}/cam?key=s3cret"])
            server.wait_for_line("publish started live/cam")
    """
    with tempfile.TemporaryDirectory(prefix="fms-test-") as folder:
        config = Path(folder) / "fms.toml"
        config.write_text(
            server_config(plugins, app=app, plugin_dirs=plugin_dirs, extra=extra_config)
        )
        command = [sys.executable, "-m", "fms", "run", "--host", "127.0.0.1", "--port", "0"]
        command += ["--config", str(config), *args]
        process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=folder
        )
        server = RunningServer(process, app)
        try:
            line = server.wait_for_line(LISTENING, timeout)
            match = LISTENING.search(line)
            assert match is not None
            server.url = match.group(1)
            yield server
        finally:
            status = server.stop()
        if status != 0:
            raise AssertionError(f"the server exited with status {status}; log:\n{server.log()}")
