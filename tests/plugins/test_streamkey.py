"""The streamkey plugin: static and signed stream keys, called hook by hook (no server)."""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Any

import pytest
from fms.plugins import streamkey
from fms.plugins.streamkey import StreamKey, sign
from zope.interface.verify import verifyObject

from fms.apps.api import Reject
from fms.apps.interfaces import IApplication
from fms.apps.loader import build, build_all
from fms.config import PluginSpec, parse_config
from fms.errors import ConfigError
from fms.testing import FakeClient, run_hook

NOW = 1_700_000_000
HMAC_SECRET = "hmac-secret-do-not-leak"


def clock() -> float:
    return NOW


def static(**options: Any) -> StreamKey:
    return StreamKey(keys={"cam": "secret1", "studio": "secret2"}, clock=clock, **options)


def signed(**options: Any) -> StreamKey:
    return StreamKey(hmac_secret=HMAC_SECRET, clock=clock, **options)


def publish(plugin: StreamKey, name: str, key: str | None, client: FakeClient | None = None) -> Any:
    query = {} if key is None else {"key": key}
    return run_hook(plugin.publish, client or FakeClient(), name, query, "live")


def play(plugin: StreamKey, name: str, key: str | None) -> Any:
    query = {} if key is None else {"key": key}
    return run_hook(plugin.play, FakeClient(), name, query)


# ------------------------------------------------------------------------------ static keys


def test_the_stream_s_own_key_is_accepted() -> None:
    assert publish(static(), "cam", "secret1") is None


def test_a_wrong_key_is_refused() -> None:
    assert publish(static(), "cam", "secret1x") == Reject("invalid stream key")


def test_a_missing_key_is_refused() -> None:
    assert publish(static(), "cam", None) == Reject("stream key required")


def test_an_empty_key_counts_as_missing() -> None:
    assert publish(static(), "cam", "") == Reject("stream key required")


def test_another_stream_s_key_is_refused() -> None:
    assert publish(static(), "cam", "secret2") == Reject("invalid stream key")


def test_a_stream_without_a_key_of_its_own_is_refused() -> None:
    assert publish(static(), "other", "secret1") == Reject("invalid stream key")


def test_the_wildcard_key_opens_any_stream() -> None:
    plugin = StreamKey(keys={"cam": "secret1", "*": "master"})
    assert publish(plugin, "anything", "master") is None
    assert publish(plugin, "cam", "master") is None


def test_the_stream_s_key_still_works_beside_a_wildcard() -> None:
    plugin = StreamKey(keys={"cam": "secret1", "*": "master"})
    assert publish(plugin, "cam", "secret1") is None


def test_a_key_in_the_connect_query_is_accepted() -> None:
    client = FakeClient(query={"key": "secret1"})
    assert publish(static(), "cam", None, client) is None


def test_the_stream_name_s_key_wins_over_the_connect_query_s() -> None:
    client = FakeClient(query={"key": "secret1"})
    assert publish(static(), "cam", "wrong", client) == Reject("invalid stream key")


def test_non_ascii_keys_are_compared_without_error() -> None:
    plugin = StreamKey(keys={"cam": "clé-secrète"})
    assert publish(plugin, "cam", "clé-secrète") is None
    assert publish(plugin, "cam", "clé") == Reject("invalid stream key")


# ------------------------------------------------------------------------------ signed keys


def test_sign_follows_the_documented_format() -> None:
    expiry = NOW + 60
    mac = hmac.new(HMAC_SECRET.encode(), f"live/cam:{expiry}".encode(), hashlib.sha256)
    assert sign(HMAC_SECRET, "live", "cam", expiry) == f"{expiry}-{mac.hexdigest()}"


def test_a_valid_signed_key_is_accepted() -> None:
    assert publish(signed(), "cam", sign(HMAC_SECRET, "live", "cam", NOW + 60)) is None


def test_a_signed_key_in_uppercase_hex_is_accepted() -> None:
    expiry, _, mac = sign(HMAC_SECRET, "live", "cam", NOW + 60).partition("-")
    assert publish(signed(), "cam", f"{expiry}-{mac.upper()}") is None


def test_a_signed_key_is_refused_from_its_expiry_on() -> None:
    assert publish(signed(), "cam", sign(HMAC_SECRET, "live", "cam", NOW)) == Reject(
        "stream key expired"
    )


def test_a_signed_key_is_accepted_until_the_second_before_its_expiry() -> None:
    assert publish(signed(), "cam", sign(HMAC_SECRET, "live", "cam", NOW + 1)) is None


def test_expiry_follows_the_injected_clock() -> None:
    now = [float(NOW)]
    plugin = StreamKey(hmac_secret=HMAC_SECRET, clock=lambda: now[0])
    key = sign(HMAC_SECRET, "live", "cam", NOW + 10)
    assert publish(plugin, "cam", key) is None
    now[0] += 10
    assert publish(plugin, "cam", key) == Reject("stream key expired")


def test_a_key_signed_with_another_secret_is_refused() -> None:
    assert publish(signed(), "cam", sign("other", "live", "cam", NOW + 60)) == Reject(
        "invalid stream key"
    )


def test_a_signed_key_for_another_stream_is_refused() -> None:
    assert publish(signed(), "cam", sign(HMAC_SECRET, "live", "cam2", NOW + 60)) == Reject(
        "invalid stream key"
    )


def test_a_signed_key_for_another_app_is_refused() -> None:
    key = sign(HMAC_SECRET, "other", "cam", NOW + 60)
    assert publish(signed(), "cam", key) == Reject("invalid stream key")


def test_a_signed_key_covers_an_app_with_a_slash() -> None:
    key = sign(HMAC_SECRET, "live/room1", "cam", NOW + 60)
    assert publish(signed(), "cam", key, FakeClient(app="live/room1")) is None


def test_an_extended_expiry_breaks_the_signature() -> None:
    _, _, mac = sign(HMAC_SECRET, "live", "cam", NOW - 10).partition("-")
    assert publish(signed(), "cam", f"{NOW + 3600}-{mac}") == Reject("invalid stream key")


def test_an_expired_key_with_a_wrong_signature_is_called_invalid() -> None:
    assert publish(signed(), "cam", f"{NOW - 10}-{'0' * 64}") == Reject("invalid stream key")


@pytest.mark.parametrize(
    "key",
    [
        "abc",
        "1700000060",
        "1700000060-",
        "-" + "0" * 64,
        "17000x0060-" + "0" * 64,
        "١٧٠٠٠٠٠٠٦٠-" + "0" * 64,  # Arabic-Indic digits: isdigit() but not ASCII
        "9" * 13 + "-" + "0" * 64,
        "+1700000060-" + "0" * 64,
    ],
)
def test_malformed_signed_keys_are_refused(key: str) -> None:
    assert publish(signed(), "cam", key) == Reject("invalid stream key")


def test_static_and_signed_keys_combine() -> None:
    plugin = StreamKey(keys={"cam": "secret1"}, hmac_secret=HMAC_SECRET, clock=clock)
    assert publish(plugin, "cam", "secret1") is None
    assert publish(plugin, "cam", sign(HMAC_SECRET, "live", "cam", NOW + 60)) is None
    assert publish(plugin, "cam", "secret2") == Reject("invalid stream key")


# ------------------------------------------------------------------------------------- play


def test_play_needs_no_key_by_default() -> None:
    assert play(static(), "cam", None) is None


def test_a_protected_play_without_a_key_is_refused() -> None:
    assert play(static(protect_play=True), "cam", None) == Reject("stream key required")


def test_a_protected_play_with_a_wrong_key_is_refused() -> None:
    assert play(static(protect_play=True), "cam", "nope") == Reject("invalid stream key")


def test_a_protected_play_with_the_key_is_accepted() -> None:
    assert play(static(protect_play=True), "cam", "secret1") is None


def test_a_protected_play_with_a_signed_key_is_accepted() -> None:
    key = sign(HMAC_SECRET, "live", "cam", NOW + 60)
    assert play(signed(protect_play=True), "cam", key) is None


# ---------------------------------------------------------------------------- no leaks


@pytest.mark.parametrize(
    ("name", "key"),
    [("cam", None), ("cam", "secret2"), ("cam", "secret1" + "x"), ("cam", f"{NOW}-{'0' * 64}")],
)
def test_refusal_reasons_name_no_secret(name: str, key: str | None) -> None:
    plugin = StreamKey(keys={"cam": "secret1", "studio": "secret2"}, hmac_secret=HMAC_SECRET)
    decision = publish(plugin, name, key)
    assert isinstance(decision, Reject)
    for secret in ("secret1", "secret2", HMAC_SECRET):
        assert secret not in decision.reason


def test_repr_names_no_secret() -> None:
    text = repr(StreamKey(keys={"cam": "secret1"}, hmac_secret=HMAC_SECRET))
    assert "cam" in text
    assert "secret1" not in text and HMAC_SECRET not in text


# -------------------------------------------------------------------------- configuration


def test_it_provides_iapplication() -> None:
    assert verifyObject(IApplication, static())


def test_it_loads_through_the_entry_point() -> None:
    plugin = build(PluginSpec("streamkey", {"keys": {"cam": "s"}, "protect_play": True}))
    assert isinstance(plugin, StreamKey)
    assert plugin.protect_play


def test_the_documented_configurations_load() -> None:
    doc = streamkey.__doc__ or ""
    blocks = re.findall(r"^( +\[\[apps\..*?)(?:\n\n|\Z)", doc, flags=re.M | re.S)
    assert len(blocks) == 2
    for block in blocks:
        chains = build_all(parse_config(block.replace("\n      ", "\n").strip()))
        assert isinstance(chains["live"][0], StreamKey)


def test_the_documented_python_snippet_mints_a_valid_key() -> None:
    doc = streamkey.__doc__ or ""
    lines = [line.strip()[4:] for line in doc.splitlines() if line.strip().startswith(">>> ")]
    namespace: dict[str, Any] = {}
    exec(lines[0].replace("int(time.time())", str(NOW)), namespace)
    key = eval(lines[1].replace("SECRET", HMAC_SECRET), namespace)
    assert publish(signed(), "cam", key) is None


def test_no_keys_and_no_secret_is_a_startup_error() -> None:
    with pytest.raises(ValueError, match="keys, hmac_secret or both"):
        StreamKey()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"keys": ["cam", "secret"]}, "keys: expected a table"),
        ({"keys": {"cam": ""}}, r"keys\.cam: the secret must be a non-empty string"),
        ({"keys": {"cam": 1234}}, r"keys\.cam: the secret must be a non-empty string"),
        ({"hmac_secret": ""}, "hmac_secret: must be a non-empty string"),
        ({"keys": {"cam": "s"}, "protect_play": "yes"}, "protect_play: must be true or false"),
    ],
)
def test_bad_options_are_startup_errors(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        StreamKey(**options)


def test_the_loader_reports_a_bad_option_as_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"streamkey.*keys, hmac_secret or both"):
        build(PluginSpec("streamkey", {}))
