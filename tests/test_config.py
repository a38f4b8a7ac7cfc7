"""Configuration parsing: defaults, overrides and per-app settings."""

from __future__ import annotations

import pytest

from fms.config import Config, StreamsConfig, parse_config
from fms.errors import ConfigError


def test_an_empty_file_gives_the_defaults() -> None:
    config = parse_config("", "x.toml")
    assert config.server.port == 1935 and config.server.host == "0.0.0.0"
    assert config.streams.gop_cache is True


def test_integers_are_accepted_where_seconds_are_floats() -> None:
    config = parse_config("[limits]\nidle_timeout = 5\n")
    assert config.limits.idle_timeout == 5.0 and isinstance(config.limits.idle_timeout, float)


def test_app_streams_override_only_what_they_name() -> None:
    config = parse_config("[streams]\nsoft_seconds = 2.0\n[apps.fast.streams]\ngop_cache = false\n")
    fast = config.app("fast").streams
    assert fast.gop_cache is False and fast.soft_seconds == 2.0
    assert config.app("other").streams.gop_cache is True


def test_an_app_with_a_slash_falls_back_to_its_first_segment() -> None:
    config = parse_config("[apps.live.streams]\ngop_cache = false\n")
    assert config.app("live/room1").streams.gop_cache is False


def test_app_errors_name_the_app_and_key() -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config("[apps.x]\ncolour = 1\n[apps.y.streams]\ngop_cache = 'no'\n", "c.toml")
    assert raised.value.problems == [
        "c.toml: apps.x.colour: unknown key (known: decision_timeout, plugins, "
        "publish_or_play_timeout, pull, push, streams, vod)",
        "c.toml: apps.y.streams.gop_cache: expected bool, got string 'no'",
    ]


@pytest.mark.parametrize(
    "key", ["chunk_size", "flush", "flush_interval", "flush_share", "flush_busy_share",
            "max_stream_name"],
)  # fmt: skip
def test_an_app_may_not_override_a_key_that_applies_to_the_whole_server(key: str) -> None:
    value = dict(StreamsConfig.__dataclass_fields__)[key].default
    literal = f'"{value}"' if isinstance(value, str) else str(value)
    with pytest.raises(ConfigError) as raised:
        parse_config(f"[apps.x.streams]\n{key} = {literal}\n", "c.toml")
    [problem] = raised.value.problems
    assert problem.startswith(f"c.toml: apps.x.streams.{key}: ")
    assert problem.endswith(": set it in [streams] only")


def test_defaults_without_a_file() -> None:
    assert Config().app("live").streams == Config().streams


def test_plugins_are_an_ordered_chain_with_their_options() -> None:
    config = parse_config(
        "[[apps.live.plugins]]\nuse = 'streamkey'\nsecret = 's'\n"
        "[[apps.live.plugins]]\nuse = 'recorder'\n"
    )
    chain = config.app("live").plugins
    assert [(p.use, p.options) for p in chain] == [("streamkey", {"secret": "s"}), ("recorder", {})]


def test_default_app_policy_and_plugins() -> None:
    config = parse_config("[default_app]\npolicy = 'refuse'\n")
    assert config.app("anything").policy == "refuse"
    with pytest.raises(ConfigError, match="policy"):
        parse_config("[default_app]\npolicy = 'maybe'\n")


def test_a_plugin_entry_needs_use() -> None:
    with pytest.raises(ConfigError, match=r"apps.live.plugins\[0\].use: missing"):
        parse_config("[[apps.live.plugins]]\nsecret = 's'\n")


@pytest.mark.parametrize(
    "section", ["server", "limits", "streams", "tls", "http", "hls", "cluster"]
)
def test_the_shipped_config_sets_every_option_to_its_default_with_a_comment(section: str) -> None:
    import dataclasses
    import tomllib
    from pathlib import Path

    from fms.config import (
        HLSConfig,
        HTTPConfig,
        LimitsConfig,
        ServerConfig,
        StreamsConfig,
        TLSConfig,
    )
    from fms.config.cluster import ClusterConfig

    path = Path(__file__).resolve().parents[1] / "conf" / "fms.toml"
    text = path.read_text()
    table = tomllib.loads(text)[section]
    cls = {
        "server": ServerConfig,
        "limits": LimitsConfig,
        "streams": StreamsConfig,
        "tls": TLSConfig,
        "http": HTTPConfig,
        "hls": HLSConfig,
        "cluster": ClusterConfig,
    }[section]
    lines = text.splitlines()
    for spec in dataclasses.fields(cls):
        default = getattr(cls(), spec.name)
        assert spec.name in table, f"[{section}] {spec.name} is not in conf/fms.toml"
        value = table[spec.name]
        assert (tuple(value) if isinstance(value, list) else value) == default, spec.name
        at = next(i for i, line in enumerate(lines) if line.startswith(f"{spec.name} = "))
        above = lines[at - 1]
        assert above.startswith("#") or lines[at - 1].split(" = ")[0].isidentifier(), spec.name


def test_tls_needs_both_files() -> None:
    with pytest.raises(ConfigError, match="certificate and private_key go together"):
        parse_config("[tls]\ncertificate = 'c.pem'\n")


def test_http_read_token_needs_a_token() -> None:
    with pytest.raises(ConfigError, match=r"http\.read_token needs http\.token"):
        parse_config("[http]\nread_token = true\n")


def test_http_port_on_the_command_line_turns_the_listener_on() -> None:
    from fms.config import Config, with_overrides

    config = with_overrides(Config(), http_port=0)
    assert (config.http.enabled, config.http.port, config.http.host) == (True, 0, "127.0.0.1")
    assert not Config().http.enabled
