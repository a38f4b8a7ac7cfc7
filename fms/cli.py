"""The ``fms`` command: ``fms run``, ``fms check-config FILE`` and ``fms --version``.

The contract here is stable (tests, scripts and operators rely on it): ``fms run`` with no
configuration listens on ``0.0.0.0:1935``; its first log line is ``listening on rtmp://H:P`` with
the port actually bound; SIGINT and SIGTERM stop it gracefully (clients are told, recordings
closed, at most ``[server] shutdown_timeout`` seconds, after up to ``reconnect_grace`` seconds
for clients asked to reconnect: :mod:`fms.server.reconnect`) with exit status 0; SIGHUP reloads the
configuration file and the plugin files of ``plugin_dirs`` that changed (a broken one is
reported and the running configuration kept); installed plugins need a restart.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from fms import __version__
from fms.config import LOG_LEVELS, Config, load_config, with_overrides
from fms.errors import ConfigError

if TYPE_CHECKING:
    from fms.cluster.spec import WorkerSpec


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fms", description="pyFMS: a live-streaming RTMP server with Python plugins"
    )
    parser.add_argument("--version", action="version", version=f"fms {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    run = commands.add_parser("run", help="start the server")
    run.add_argument("--host", help="interface to listen on (default 0.0.0.0)")
    run.add_argument("--port", type=int, help="TCP port (default 1935; 0 picks a free one)")
    run.add_argument("--config", metavar="FILE", help="TOML configuration file")
    run.add_argument("--log-level", choices=LOG_LEVELS, help="lowest level logged (default info)")
    run.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="processes sharing the port (default 1; 0: one per CPU core)",
    )
    run.add_argument(
        "--http-port",
        type=int,
        metavar="PORT",
        help="serve the HTTP API, metrics and dashboard on PORT ([http]; 0 picks a free one)",
    )
    run.add_argument("--worker", help=argparse.SUPPRESS)  # set by the supervisor: a WorkerSpec
    check = commands.add_parser("check-config", help="validate a configuration file")
    check.add_argument("file", help="TOML configuration file")
    return parser


def _report(error: ConfigError) -> None:
    for problem in error.problems:
        print(f"error: {problem}", file=sys.stderr)


def check_config(path: str) -> int:
    """Validate ``path`` and load and verify every plugin it names; print every problem and
    return 1, or confirm and return 0."""
    from fms.apps.loader import build_all

    def warn(text: str) -> None:
        print(f"warning: {text}", file=sys.stderr)

    try:
        chains = build_all(load_config(path), warn)
    except ConfigError as exc:
        _report(exc)
        return 1
    count = sum(len(chain) for chain in chains.values())
    print(f"{path}: configuration is valid ({count} plugins loaded and verified)")
    return 0


def reload_config(factory: Any, source: str, overrides: dict[str, Any], log: Any) -> Config | None:
    """Read ``source`` again and hand it to ``factory``; on any problem log every one of them
    and keep the running configuration. Returns the new configuration, or None."""
    from fms.apps.loader import changed_files
    from fms.log import set_log_level

    changed_files()  # what an earlier, failed reload loaded is not this reload's news
    try:
        config = with_overrides(load_config(source), **overrides)
        factory.reload(config)
    except ConfigError as exc:
        log.error(
            "configuration {path} not reloaded ({count} problems); keeping the running one",
            path=source, count=len(exc.problems),
        )  # fmt: skip
        for problem in exc.problems:
            log.error("  {problem}", problem=problem)
        return None
    set_log_level(config.server.log_level)
    if config.server.reconnect_on_reload:
        from fms.server.reconnect import ON_RELOAD, request_all

        asked, unable = request_all(factory.connections, config.server.reconnect_url, ON_RELOAD)
        log.info(
            "SIGHUP: asked {asked} clients to reconnect ({unable} cannot be asked)",
            asked=len(asked), unable=len(unable),
        )  # fmt: skip
    changed = ", ".join(str(path) for path in changed_files())
    log.info(
        "configuration reloaded from {path}; {code}", path=source,
        code=f"new plugin code from {changed} for new clients (connected clients keep theirs)"
        if changed else "no plugin file in plugin_dirs changed (installed plugins need a restart)",
    )  # fmt: skip
    return config


def run(
    config: Config, overrides: dict[str, Any] | None = None, worker: WorkerSpec | None = None
) -> int:
    """Start the service tree on the global reactor and run until a signal stops it.

    ``overrides`` are the command-line options that replace the file's values, reapplied when
    SIGHUP reloads the file. ``worker`` makes this process one worker of ``fms run --workers``
    (see :mod:`fms.cluster.supervisor`).
    """
    from twisted.internet import reactor
    from twisted.internet.defer import gatherResults

    from fms.cluster.worker import ParentWatch, make_worker_service
    from fms.log import Logger, start_logging
    from fms.server.service import (
        FILE_DESCRIPTOR_MARGIN,
        make_service,
        raise_open_file_limit,
        stop_on_signals,
    )

    # Lines wait for the listening line, which comes first (a worker's: for its supervisor's).
    start_logging(
        config.server.log_level,
        tag=f"w{worker.index}" if worker else "",
        hold=True,
        format=config.server.log_format,
    )
    log = Logger(namespace="fms.cli")
    status = {"code": 0}
    try:
        if worker is None:
            root, listener = make_service(reactor, config)
        else:
            root, listener = make_worker_service(reactor, config, worker)
    except ConfigError as exc:  # a plugin or the TLS files are unusable
        _report(exc)
        return 1
    if config.cluster.enabled:
        from fms.cluster.node import attach_directory

        attach_directory(reactor, config, listener.factory, root, str(os.getpid()))  # type: ignore[arg-type]
    if worker is None and config.http.enabled:
        from fms.http.web import make_http_service

        make_http_service(reactor, config.http, listener.factory).setServiceParent(root)
    watch = None
    if worker is not None:
        # Ctrl-C reaches the whole process group: the supervisor alone answers it (with
        # SIGTERM to each worker), so a worker does not stop before it is told.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        watch = ParentWatch(reactor)
        reactor.callWhenRunning(watch.start)

    def reload() -> None:
        if config.source is None:
            log.warn("SIGHUP: started without --config, nothing to reload")
            return
        reload_config(listener.factory, config.source, overrides or {}, log)

    def on_sighup(signum: int, frame: object) -> None:
        reactor.callFromThread(reload)  # type: ignore[attr-defined]

    signal.signal(signal.SIGHUP, on_sighup)

    def listen_failed(failure: Any) -> None:
        log.critical("cannot listen: {reason}", reason=failure.getErrorMessage())
        status["code"] = 1
        reactor.stop()

    def listening(_: object) -> None:
        cap = getattr(listener.factory, "max_connections", config.limits.max_connections)
        limit = raise_open_file_limit(cap + FILE_DESCRIPTOR_MARGIN)
        log.info(
            "fms {version} ready; open-file limit {limit}; max_connections {cap}{why}",
            version=__version__, limit=limit, cap=cap,
            why=" (from the open-file limit)" if config.limits.max_connections == 0 else "",
        )  # fmt: skip
        if watch is not None:
            watch.ready()

    waits = [listener.listening]
    for service in root:
        if service is not listener and hasattr(service, "listening"):
            waits.append(service.listening)
    everything = gatherResults(waits, consumeErrors=True)
    everything.addCallbacks(listening, lambda f: listen_failed(f.value.subFailure))
    reactor.callWhenRunning(stop_on_signals, reactor, (signal.SIGINT, signal.SIGTERM))
    reactor.callWhenRunning(root.startService)
    reactor.addSystemEventTrigger("before", "shutdown", root.stopService)
    reactor.run()
    if status["code"] == 0:
        log.info("stopped")
    return status["code"]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``fms`` console script and ``python -m fms``."""
    args = _parser().parse_args(argv)
    if args.command == "check-config":
        return check_config(args.file)
    try:
        config = load_config(args.config) if args.config else Config()
    except ConfigError as exc:
        _report(exc)
        return 1
    overrides = {
        "host": args.host,
        "port": args.port,
        "log_level": args.log_level,
        "workers": args.workers,
        "http_port": args.http_port,
    }
    config = with_overrides(config, **overrides)
    if args.worker:
        from fms.cluster.spec import WorkerSpec

        return run(config, overrides, WorkerSpec.from_json(args.worker))
    from fms.cluster.spec import worker_count
    from fms.cluster.supervisor import run_supervisor

    if worker_count(config) > 1:
        return run_supervisor(config, _worker_argv(args))
    return run(config, overrides)


def _worker_argv(args: argparse.Namespace) -> list[str]:
    """The ``fms run`` command line of a worker: the operator's options (the supervisor adds
    ``--worker``, which carries the port actually reserved)."""
    argv = ["-m", "fms", "run"]
    if args.config:
        argv += ["--config", os.path.abspath(args.config)]
    if args.host:
        argv += ["--host", args.host]
    if args.log_level:
        argv += ["--log-level", args.log_level]
    if args.http_port is not None:
        argv += ["--http-port", str(args.http_port)]
    return argv
