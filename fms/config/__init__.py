"""Configuration: a TOML file read into frozen dataclasses.

Every option has a default, so ``fms run`` works with no file at all. A file only overrides what
it names. Loading checks every key against the schema below and collects *all* problems before
failing, each as ``FILE: KEY: reason``, so that ``fms check-config`` explains everything at once.

Units are in the option names' docstrings: times in seconds (float), sizes in bytes (int).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from fms.config.cluster import ClusterConfig as ClusterConfig
from fms.config.cluster import cluster_problems
from fms.config.fields import option as _opt
from fms.config.fields import retry_problems, tables
from fms.config.media import HLSConfig as HLSConfig
from fms.config.media import VodConfig as VodConfig
from fms.config.pull import PullConfig as PullConfig
from fms.config.pull import load_pulls
from fms.config.push import PUSH_FIELDS as PUSH_FIELDS
from fms.config.push import PUSH_SCHEMES as PUSH_SCHEMES
from fms.config.push import PushConfig as PushConfig
from fms.config.push import push_template_problem, push_url_problem
from fms.config.push import render_push_name as render_push_name
from fms.errors import ConfigError

LOG_LEVELS = ("debug", "info", "warn", "error", "critical")
LOG_FORMATS = ("text", "json")
FLUSH_MODES = ("adaptive", "fixed")


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Where the RTMP listener binds and how loudly the server logs."""

    host: str = _opt("0.0.0.0", doc="interface to listen on ('::' for IPv6)")
    port: int = _opt(1935, minimum=0, maximum=65535, doc="TCP port; 0 picks a free one")
    log_level: str = _opt("info", choices=LOG_LEVELS, doc="lowest level written to the log")
    log_format: str = _opt(
        "text",
        choices=LOG_FORMATS,
        doc="'text' lines, or 'json': one JSON object per line for log shippers (at start only)",
    )
    plugin_dirs: tuple[str, ...] = _opt(
        ("plugins",), doc="folders (relative to the config file) searched for plugin files"
    )
    listen_backlog: int = _opt(
        1024, minimum=1, maximum=65535, doc="connections the kernel queues before accept"
    )
    shutdown_timeout: float = _opt(
        5.0,
        minimum=0.1,
        doc="seconds SIGTERM/SIGINT wait for clients to be told and recordings"
        " closed before the process exits anyway",
    )
    reconnect_grace: float = _opt(
        10.0,
        minimum=0.0,
        doc="seconds clients that announced Enhanced RTMP Reconnect get to move after SIGTERM"
        " asked them to, before shutdown_timeout starts; 0: they are not asked",
    )
    reconnect_url: str = _opt(
        "",
        doc="tcUrl clients are asked to reconnect to ({app}: their app); empty: the same URL",
    )
    reconnect_on_reload: bool = _opt(
        False, doc="SIGHUP also asks clients that announced Reconnect to reconnect"
    )
    workers: int = _opt(
        1, minimum=0, maximum=256, doc="processes sharing the port; 0: one per CPU core"
    )
    worker_ports: tuple[int, ...] = _opt(
        (), doc="an extra port per worker (worker i also listens on the i-th), to reach one"
    )
    proxy_protocol: bool = _opt(
        False, doc="connections from trusted_proxies start with a PROXY header (v1 or v2)"
    )
    trusted_proxies: tuple[str, ...] = _opt(
        ("127.0.0.1", "::1"),
        doc="addresses or networks (CIDR) allowed to send a PROXY header; others may not",
    )


@dataclass(frozen=True, slots=True)
class TLSConfig:
    """The RTMPS listener: on when a certificate is given."""

    host: str = _opt("", doc="interface for RTMPS; empty: the same as [server] host")
    port: int = _opt(443, minimum=0, maximum=65535, doc="TCP port of the RTMPS listener")
    certificate: str = _opt("", doc="PEM file: the certificate, then any intermediates")
    private_key: str = _opt("", doc="PEM file: the certificate's private key")

    @property
    def enabled(self) -> bool:
        return bool(self.certificate)


@dataclass(frozen=True, slots=True)
class HTTPConfig:
    """The HTTP listener: the JSON API (``/api/v1``), Prometheus metrics (``/metrics``) and the
    dashboard page (``/``). Off by default: see ``conf/fms.toml`` for why."""

    enabled: bool = _opt(False, doc="serve the API, metrics and dashboard over HTTP")
    host: str = _opt("127.0.0.1", doc="interface of the HTTP listener (loopback by default)")
    port: int = _opt(8080, minimum=0, maximum=65535, doc="TCP port; 0 picks a free one")
    token: str = _opt("", doc="bearer token for actions (DELETE); empty: actions refused")
    read_token: bool = _opt(False, doc="reads (GET of the API and /metrics) need the token too")
    cors_origins: tuple[str, ...] = _opt(
        (), doc="origins whose pages may call the API from a browser (CORS); '*' for any"
    )
    request_timeout: float = _opt(
        10.0,
        minimum=0.1,
        doc="seconds from accept (or the end of the previous response) to a request's last"
        " byte; bytes arriving do not extend it",
    )
    max_header_bytes: int = _opt(
        16384, minimum=1024, maximum=1 << 20, doc="bytes of a request line and headers"
    )
    max_body_bytes: int = _opt(
        65536, minimum=0, maximum=1 << 24, doc="bytes of a request body (413 beyond)"
    )
    max_connections: int = _opt(
        64, minimum=1, doc="HTTP connections at once; more are closed at accept"
    )
    flv_wait: float = _opt(
        10.0,
        minimum=0.0,
        doc="seconds an HTTP-FLV viewer of a stream nobody publishes waits for a publisher"
        " (then 404); 0: 404 at once",
    )


@dataclass(frozen=True, slots=True)
class LimitsConfig:
    """Per-connection protocol limits, deadlines and admission caps; a peer that breaks one
    loses its own connection only."""

    handshake_timeout: float = _opt(10.0, minimum=0.1, doc="seconds from accept to handshake done")
    connect_timeout: float = _opt(10.0, minimum=0.1, doc="seconds from handshake to 'connect'")
    publish_or_play_timeout: float = _opt(
        30.0,
        minimum=0.0,
        doc="seconds a connected client may go without publishing or playing; 0: no deadline",
    )
    idle_timeout: float = _opt(
        30.0, minimum=0.1, doc="seconds without a received byte before a connection is closed"
    )
    publisher_timeout: float = _opt(
        10.0, minimum=0.1, doc="seconds a publishing connection may send no media"
    )
    ping_interval: float = _opt(
        10.0, minimum=0.0, doc="seconds of silence after which a client is pinged; 0: never"
    )
    ping_timeout: float = _opt(
        5.0, minimum=0.1, doc="seconds a client that answers pings has to answer the next one"
    )
    min_chunk_size: int = _opt(
        128, minimum=1, maximum=65536, doc="smallest Set Chunk Size accepted (bytes)"
    )
    max_chunk_size: int = _opt(
        0x7FFFFFFF, minimum=1, maximum=0x7FFFFFFF, doc="largest Set Chunk Size accepted (bytes)"
    )
    max_command_message: int = _opt(
        64 * 1024, minimum=1024, doc="largest command/data/control message (bytes)"
    )
    max_audio_message: int = _opt(1024 * 1024, minimum=1024, doc="largest audio message (bytes)")
    max_video_message: int = _opt(
        8 * 1024 * 1024, minimum=1024, doc="largest video or aggregate message (bytes)"
    )
    max_partial_chunk_streams: int = _opt(
        64, minimum=1, doc="chunk streams that may hold a partial message at once"
    )
    max_buffered_bytes: int = _opt(
        16 * 1024 * 1024, minimum=1024, doc="bytes of incomplete messages held per connection"
    )
    amf_max_depth: int = _opt(32, minimum=1, maximum=100, doc="nesting depth of AMF values")
    amf_max_entries: int = _opt(1024, minimum=1, doc="entries per AMF object or array in commands")
    max_streams_per_connection: int = _opt(
        16, minimum=1, maximum=65535, doc="message streams (createStream) per connection"
    )
    max_app_name: int = _opt(128, minimum=1, maximum=4096, doc="longest app name (bytes)")
    max_tc_url: int = _opt(512, minimum=16, maximum=8192, doc="longest tcUrl (bytes)")
    max_connections: int = _opt(
        0,
        minimum=0,
        doc="open connections in this process; 0: the open-file limit the process can raise"
        " itself to, less 64",
    )
    max_connecting_per_ip: int = _opt(
        50,
        minimum=1,
        doc="connections per IP address whose 'connect' is not accepted connecting_grace"
        " seconds after they were accepted",
    )
    connecting_grace: float = _opt(
        2.0,
        minimum=0.0,
        doc="seconds a new connection may take to finish its handshake, and then to reach"
        " 'connect', before it counts toward max_connecting_per_ip",
    )
    ipv6_prefix_length: int = _opt(
        64, minimum=1, maximum=128, doc="IPv6 addresses in one such prefix count as one address"
    )


@dataclass(frozen=True, slots=True)
class StreamsConfig:
    """Live streams: fan-out pacing, player bounds and the GOP cache."""

    chunk_size: int = _opt(
        4096, minimum=128, maximum=65536, doc="outgoing chunk size for every connection (bytes)"
    )
    flush: str = _opt(
        "adaptive",
        choices=FLUSH_MODES,
        doc="'adaptive': flushes as often as their cost allows (flush_share), at most"
        " flush_interval apart; 'fixed': a flush every flush_interval",
    )
    flush_interval: float = _opt(
        0.1,
        minimum=0.0,
        maximum=1.0,
        doc="seconds between fan-out flushes (adaptive: the longest); 0 flushes at once",
    )
    flush_share: float = _opt(
        0.7,
        minimum=0.01,
        maximum=1.0,
        doc="adaptive flush: part of the process's time fan-out may take before flushes space"
        " out (0.7: the interval is 1/0.7 of the last flush's duration)",
    )
    flush_busy_share: float = _opt(
        0.9,
        minimum=0.01,
        maximum=1.0,
        doc="adaptive flush: part of the process's time fan-out may take when one flush costs"
        " more than flush_interval (the next starts its duration / flush_busy_share after it)",
    )
    max_stream_name: int = _opt(256, minimum=1, doc="longest stream name accepted (bytes)")
    max_push_hops: int = _opt(
        4, minimum=1, doc="a publish that came through this many pushes is pushed no further"
    )
    soft_bytes: int = _opt(
        4 * 1024 * 1024, minimum=1024, doc="bytes a player may fall behind before skipping"
    )
    soft_seconds: float = _opt(
        3.0, minimum=0.1, doc="media seconds a player may fall behind before skipping"
    )
    hard_bytes: int = _opt(
        16 * 1024 * 1024, minimum=1024, doc="bytes behind at which a player is disconnected"
    )
    stall_timeout: float = _opt(
        10.0, minimum=0.1, doc="seconds without write progress before a player is closed"
    )
    stall_grace: float = _opt(
        0.5,
        minimum=0.0,
        doc="seconds a player may take nothing before its lag is judged (soft and hard bounds)",
    )
    log_max_bytes: int = _opt(
        64 * 1024 * 1024,
        minimum=1024,
        doc="most bytes a stream's shared log keeps (a player further behind skips)",
    )
    player_buffer: int = _opt(
        256 * 1024,
        minimum=4096,
        doc="bytes a player may hold unsent in user space (its backlog stays in the shared log)",
    )
    gop_cache: bool = _opt(True, doc="send late joiners the messages since the newest keyframe")
    gop_max_bytes: int = _opt(
        16 * 1024 * 1024, minimum=0, doc="largest GOP kept for late joiners (bytes)"
    )
    gop_max_frames: int = _opt(2048, minimum=0, doc="most messages kept for late joiners")


@dataclass(frozen=True, slots=True)
class PluginSpec:
    """One ``[[apps.NAME.plugins]]`` entry: what to load (``use``) and its options, which are
    passed to the plugin's constructor as keyword arguments."""

    use: str
    options: dict[str, Any] = field(default_factory=dict)
    where: str = ""
    """``FILE: apps.NAME.plugins[i]``, for error messages."""


APP_POLICIES = ("open", "refuse")


@dataclass(frozen=True, slots=True)
class AppConfig:
    """Settings of one application (``[apps.NAME]``, or ``[default_app]`` for every app not
    named): its plugin chain, how long a plugin may take to decide, and a ``streams`` table
    that overrides the global ``[streams]`` options it names."""

    streams: StreamsConfig = field(default_factory=StreamsConfig)
    plugins: tuple[PluginSpec, ...] = ()
    decision_timeout: float = 10.0
    publish_or_play_timeout: float | None = None
    """Overrides ``[limits] publish_or_play_timeout`` for this app (0: no deadline, for
    RPC-only apps such as a chat room); None: the global value."""
    policy: str = "open"
    """Only for ``[default_app]``: "open" accepts any app name, "refuse" refuses names not
    listed under ``[apps]``."""
    name: str | None = None
    """The section's app name (None for the default app)."""
    vod: VodConfig = field(default_factory=VodConfig)
    """Playback of recordings (``[apps.NAME.vod]``)."""
    push: tuple[PushConfig, ...] = ()
    """Targets every matching publish of the app is relayed to (``[[apps.NAME.push]]``)."""
    pull: tuple[PullConfig, ...] = ()
    """Sources of the app's streams nobody publishes here (``[[apps.NAME.pull]]``)."""


@dataclass(frozen=True, slots=True)
class Config:
    """The whole configuration. ``source`` names the file it came from (None: defaults)."""

    server: ServerConfig = field(default_factory=ServerConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    streams: StreamsConfig = field(default_factory=StreamsConfig)
    tls: TLSConfig = field(default_factory=TLSConfig)
    http: HTTPConfig = field(default_factory=HTTPConfig)
    hls: HLSConfig = field(default_factory=HLSConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    apps: dict[str, AppConfig] = field(default_factory=dict)
    default_app: AppConfig | None = None
    source: str | None = None

    def app(self, name: str) -> AppConfig:
        """The settings for application ``name``: its own section, else that of its first path
        segment (``live/room1`` falls back to ``live``), else ``[default_app]``."""
        found = self.apps.get(name) or self.apps.get(name.split("/", 1)[0])
        if found is not None:
            return found
        if self.default_app is not None:
            return self.default_app
        return AppConfig(self.streams)

    def publish_or_play_timeout(self, app: str) -> float:
        """Seconds a client of ``app`` may stay connected without publishing or playing (0:
        no deadline): the app's own setting, else ``[limits] publish_or_play_timeout``."""
        own = self.app(app).publish_or_play_timeout
        return self.limits.publish_or_play_timeout if own is None else own

    def path(self, name: str) -> Path:
        """``name`` relative to the configuration file's folder (absolute names unchanged)."""
        base = Path(self.source).resolve().parent if self.source else Path.cwd()
        return base / name

    @property
    def plugin_dirs(self) -> tuple[Path, ...]:
        """Where plugins named by file are looked for: ``[server] plugin_dirs``, relative to
        the configuration file's folder."""
        base = Path(self.source).resolve().parent if self.source else Path.cwd()
        return tuple(base / d for d in self.server.plugin_dirs)


_SECTIONS: dict[str, type[Any]] = {
    "apps": AppConfig,  # a table of tables, read by _load_apps
    "default_app": AppConfig,  # read by _load_app
    "server": ServerConfig,
    "limits": LimitsConfig,
    "streams": StreamsConfig,
    "tls": TLSConfig,
    "http": HTTPConfig,
    "hls": HLSConfig,
    "cluster": ClusterConfig,
}

T = TypeVar("T")


def _type_name(value: object) -> str:
    return {bool: "boolean", int: "integer", float: "number", str: "string"}.get(
        type(value), type(value).__name__
    )


def _check_value(expected: Any, value: object) -> tuple[bool, object]:
    """Whether ``value`` fits the annotated type; ints are accepted where floats are."""
    if typing.get_origin(expected) in (typing.Union, types.UnionType):
        for member in typing.get_args(expected):
            ok, converted = _check_value(member, value)
            if ok:
                return True, converted
        return False, value
    if expected is type(None):
        return value is None, value
    if typing.get_origin(expected) is tuple:
        (item, _) = typing.get_args(expected)
        if isinstance(value, list) and all(_check_value(item, v)[0] for v in value):
            return True, tuple(value)
        return False, value
    if expected is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return True, float(value)
        return False, value
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if expected is bool:
        return isinstance(value, bool), value
    if expected is str:
        return isinstance(value, str), value
    return False, value


def _load_section(cls: type[T], table: object, where: str, problems: list[str]) -> T:
    """Build ``cls`` from a TOML table, appending one problem per bad key."""
    return cls(**_validated(cls, table, where, problems))


def _validated(cls: type[Any], table: object, where: str, problems: list[str]) -> dict[str, Any]:
    """The keys of a TOML table that fit ``cls``'s fields; one problem per bad key."""
    if not isinstance(table, Mapping):
        problems.append(f"{where}: expected a table, got {_type_name(table)}")
        return {}
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls)}
    values: dict[str, object] = {}
    for key, value in table.items():
        name = f"{where}.{key}"
        spec = known.get(key)
        if spec is None:
            problems.append(f"{name}: unknown key (known: {', '.join(sorted(known))})")
            continue
        expected = hints[key]
        ok, converted = _check_value(expected, value)
        if not ok:
            want = getattr(expected, "__name__", str(expected))
            problems.append(f"{name}: expected {want}, got {_type_name(value)} {value!r}")
            continue
        meta = spec.metadata
        if meta.get("choices") and converted not in meta["choices"]:
            problems.append(f"{name}: {converted!r} is not one of {', '.join(meta['choices'])}")
            continue
        if isinstance(converted, (int, float)):
            if meta.get("min") is not None and converted < meta["min"]:
                problems.append(f"{name}: {converted!r} is below the minimum {meta['min']}")
                continue
            if meta.get("max") is not None and converted > meta["max"]:
                problems.append(f"{name}: {converted!r} is above the maximum {meta['max']}")
                continue
        values[key] = converted
    return values


def parse_config(text: str, source: str = "<string>") -> Config:
    """Parse TOML text into a :class:`Config`; raise :class:`ConfigError` listing every problem."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{source}: not valid TOML: {exc}"]) from None
    problems: list[str] = []
    sections: dict[str, Any] = {}
    apps_table = data.pop("apps", {})
    default_table = data.pop("default_app", None)
    for key, table in data.items():
        cls = _SECTIONS.get(key)
        if cls is None:
            problems.append(
                f"{source}: {key}: unknown section (known: {', '.join(sorted(_SECTIONS))})"
            )
            continue
        sections[key] = _load_section(cls, table, f"{source}: {key}", problems)
    streams = sections.get("streams", StreamsConfig())
    sections["apps"] = _load_apps(apps_table, streams, source, problems)
    if default_table is not None:
        sections["default_app"] = _load_app(
            None, default_table, streams, f"{source}: default_app", problems
        )
    tls = sections.get("tls")
    if tls is not None and bool(tls.certificate) != bool(tls.private_key):
        problems.append(f"{source}: tls: certificate and private_key go together")
    http = sections.get("http")
    if http is not None and http.read_token and not http.token:
        problems.append(f"{source}: http.read_token needs http.token (reads would all be 403)")
    if (cluster := sections.get("cluster")) is not None:
        problems += cluster_problems(cluster, f"{source}: cluster")
    server = sections.get("server")
    if server is not None:
        bad = [p for p in server.worker_ports if not 1 <= p <= 65535]
        if bad:
            problems.append(f"{source}: server.worker_ports: {bad} outside 1..65535")
        for proxy in server.trusted_proxies:
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError:
                problems.append(f"{source}: server.trusted_proxies: {proxy!r} is no address")
    if problems:
        raise ConfigError(problems)
    return Config(source=source, **sections)


def _load_apps(
    table: object, streams: StreamsConfig, source: str, problems: list[str]
) -> dict[str, AppConfig]:
    if not isinstance(table, Mapping):
        problems.append(f"{source}: apps: expected a table, got {_type_name(table)}")
        return {}
    return {
        name: _load_app(name, app_table, streams, f"{source}: apps.{name}", problems)
        for name, app_table in table.items()
    }


_APP_KEYS = (
    "decision_timeout", "plugins", "policy", "publish_or_play_timeout", "pull", "push", "streams",
    "vod",
)  # fmt: skip


PROCESS_WIDE_STREAMS = {
    "chunk_size": "every connection uses one chunk size",
    "flush": "one flush loop serves every application",
    "flush_interval": "one flush loop serves every application",
    "flush_share": "one flush loop serves every application",
    "flush_busy_share": "one flush loop serves every application",
    "max_stream_name": "every name is checked against one limit",
}
"""``[streams]`` keys that an ``[apps.NAME.streams]`` table may not override, and why: an
override would be accepted and never applied."""


def _load_app(
    name: str | None, table: object, streams: StreamsConfig, where: str, problems: list[str]
) -> AppConfig:
    if not isinstance(table, Mapping):
        problems.append(f"{where}: expected a table, got {_type_name(table)}")
        return AppConfig(streams)
    app_streams = streams
    plugins: list[PluginSpec] = []
    timeout = 10.0
    policy = "open"
    publish_or_play: float | None = None
    vod = VodConfig()
    pushes: list[PushConfig] = []
    pulls: list[PullConfig] = []
    for key, value in table.items():
        if key == "streams":
            overrides = _validated(StreamsConfig, value, f"{where}.streams", problems)
            for key in [key for key in overrides if key in PROCESS_WIDE_STREAMS]:
                problems.append(
                    f"{where}.streams.{key}: {PROCESS_WIDE_STREAMS[key]}: set it in [streams] only"
                )
                del overrides[key]
            app_streams = dataclasses.replace(streams, **overrides)
        elif key == "plugins":
            plugins = _load_plugin_specs(value, f"{where}.plugins", problems)
        elif key == "push":
            pushes = _load_pushes(value, f"{where}.push", problems)
        elif key == "pull":
            pulls = load_pulls(value, f"{where}.pull", problems, _validated)
        elif key == "decision_timeout":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                problems.append(f"{where}.decision_timeout: expected a positive number of seconds")
            else:
                timeout = float(value)
        elif key == "publish_or_play_timeout":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                problems.append(
                    f"{where}.publish_or_play_timeout: expected seconds (0: no deadline)"
                )
            else:
                publish_or_play = float(value)
        elif key == "vod":
            vod = VodConfig(**_validated(VodConfig, value, f"{where}.vod", problems))
        elif key == "policy" and name is None:
            if value not in APP_POLICIES:
                problems.append(f"{where}.policy: {value!r} is not one of open, refuse")
            else:
                policy = value
        else:
            known = ", ".join(k for k in _APP_KEYS if name is None or k != "policy")
            problems.append(f"{where}.{key}: unknown key (known: {known})")
    return AppConfig(
        app_streams,
        tuple(plugins),
        decision_timeout=timeout,
        publish_or_play_timeout=publish_or_play,
        policy=policy,
        name=name,
        vod=vod,
        push=tuple(pushes),
        pull=tuple(pulls),
    )


def _load_pushes(value: object, where: str, problems: list[str]) -> list[PushConfig]:
    pushes = []
    for here, entry in tables(value, where, problems, "push"):
        before = len(problems)
        options = dict(_validated(PushConfig, entry, here, problems))
        url = options.get("url")
        if not isinstance(url, str):
            problems.append(f"{here}.url: missing: the target, rtmp://host[:port]/app")
        elif (why := push_url_problem(url)) is not None:
            problems.append(f"{here}.url: {why}")
        if (why := push_template_problem(options.get("name", "{name}"))) is not None:
            problems.append(f"{here}.name: {why}")
        retry_problems(here, options, problems)
        if len(problems) == before:
            pushes.append(PushConfig(**options))
    return pushes


def _load_plugin_specs(value: object, where: str, problems: list[str]) -> list[PluginSpec]:
    if not isinstance(value, list):
        problems.append(f"{where}: expected an array of tables ([[...plugins]])")
        return []
    specs = []
    for index, entry in enumerate(value):
        here = f"{where}[{index}]"
        if isinstance(entry, str):
            entry = {"use": entry}
        if not isinstance(entry, Mapping):
            problems.append(f"{here}: expected a table with 'use' and the plugin's options")
            continue
        use = entry.get("use")
        if not isinstance(use, str) or not use:
            problems.append(f"{here}.use: missing: name the plugin to load")
            continue
        options = {k: v for k, v in entry.items() if k != "use"}
        specs.append(PluginSpec(use, options, here))
    return specs


def load_config(path: str | Path) -> Config:
    """Read and validate a configuration file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{p}: cannot read: {exc.strerror or exc}"]) from None
    except UnicodeDecodeError:
        raise ConfigError([f"{p}: not UTF-8 text"]) from None
    return parse_config(text, str(p))


def with_overrides(
    config: Config,
    *,
    host: str | None = None,
    port: int | None = None,
    log_level: str | None = None,
    workers: int | None = None,
    http_port: int | None = None,
) -> Config:
    """Return ``config`` with the ``[server]`` options given on the command line replaced;
    ``http_port`` turns the HTTP listener on, on that port."""
    server = config.server
    server = dataclasses.replace(
        server,
        host=server.host if host is None else host,
        port=server.port if port is None else port,
        log_level=server.log_level if log_level is None else log_level,
        workers=server.workers if workers is None else workers,
    )
    http = config.http
    if http_port is not None:
        http = dataclasses.replace(http, enabled=True, port=http_port)
    return dataclasses.replace(config, server=server, http=http)
