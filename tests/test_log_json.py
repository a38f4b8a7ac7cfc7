"""``[server] log_format = "json"``: one JSON object per line, with the context a log shipper
indexes (peer, client, app, stream) as fields, and the text form unchanged. In memory: events
are fed to the line observer, the server runs on in-memory transports and a fake clock."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from twisted.logger import LogEvent, LogLevel, globalLogPublisher
from twisted.python.failure import Failure

from fms.config import parse_config
from fms.errors import ConfigError
from fms.log import LineObserver, Logger, PeerLabel, StdlibBridge
from tests.support.server_peer import Peer, factory_for

JAN_1 = 1767225600.0
"""2026-01-01T00:00:00Z as a Unix time (seconds)."""


def event(text: str, level: LogLevel = LogLevel.info, **extra: object) -> dict[str, object]:
    return {
        "log_format": text,
        "log_level": level,
        "log_namespace": "t",
        "log_time": JAN_1,
        **extra,
    }


def render(*events: dict[str, object], tag: str = "") -> list[str]:
    """The raw lines the JSON observer writes for ``events``."""
    out = io.StringIO()
    lines = LineObserver(out, tag, format="json")
    for e in events:
        lines(e)
    return out.getvalue().splitlines(keepends=True)


def test_every_event_is_one_line_holding_one_json_object() -> None:
    raw = render(event("one"), event("two {n}", n=2), event("three", LogLevel.warn))
    assert len(raw) == 3 and all(line.endswith("\n") for line in raw)
    assert [json.loads(line)["message"] for line in raw] == ["one", "two 2", "three"]


def test_a_line_has_time_level_system_and_message() -> None:
    [line] = render(event("hello {who}", LogLevel.warn, who="you", log_time=JAN_1 + 61.042))
    assert json.loads(line) == {
        "time": "2026-01-01T00:01:01.042Z",
        "level": "warn",
        "system": "t",
        "message": "hello you",
    }


def test_the_time_keeps_milliseconds_and_rounds_to_the_nearest() -> None:
    lines = render(event("a", log_time=JAN_1 + 0.9996), event("b", log_time=JAN_1 + 1.0004))
    assert [json.loads(line)["time"] for line in lines] == [
        "2026-01-01T00:00:01.000Z",
        "2026-01-01T00:00:01.000Z",
    ]


def test_non_ascii_and_newlines_in_a_message_are_escaped_and_kept() -> None:
    message = 'Grüße, 東京 "quoted"\nsecond line\r\tand a tab'
    [line] = render(event("{m}", m=message))
    assert line.isascii()
    assert line.count("\n") == 1 and "\r" not in line
    assert json.loads(line)["message"] == message


def test_a_workers_lines_name_it_and_a_single_process_has_no_worker_field() -> None:
    [worker] = render(event("x"), tag="w1")
    [single] = render(event("x"))
    assert json.loads(worker)["worker"] == "w1"
    assert "worker" not in json.loads(single)


def test_peer_client_app_and_stream_are_fields_where_the_line_names_them() -> None:
    peer = PeerLabel("192.0.2.7:50000", 42)
    named, plain = render(
        event("publish started {app}/{stream} from {peer}", app="live", stream="cam", peer=peer),
        event("listening"),
    )
    record = json.loads(named)
    assert record["message"] == "publish started live/cam from 192.0.2.7:50000"
    assert {k: record[k] for k in ("peer", "client", "app", "stream")} == {
        "peer": "192.0.2.7:50000",
        "client": 42,
        "app": "live",
        "stream": "cam",
    }
    assert set(json.loads(plain)) == {"time", "level", "system", "message"}


def test_a_key_that_is_not_a_name_is_not_a_field() -> None:
    """An ``app`` that is an object (or None before ``connect``) is not copied into the line:
    the fields are always strings (``client`` an int)."""
    [line] = render(event("x", app=None, stream=object(), client="7"))
    assert set(json.loads(line)) == {"time", "level", "system", "message"}


def test_the_text_form_of_a_line_with_a_peer_label_is_unchanged() -> None:
    out = io.StringIO()
    LineObserver(out)(event("play {app}/{stream} for {peer}", app="live", stream="cam",
                            peer=PeerLabel("192.0.2.7:50000", 42)))  # fmt: skip
    assert out.getvalue() == "2026-01-01T00:00:00Z info [t] play live/cam for 192.0.2.7:50000\n"


def test_a_failure_is_an_exception_field_and_the_message_stays_one_line() -> None:
    try:
        {}["missing"]
    except KeyError:
        failure = Failure()
    [line] = render(event("closing {peer}: internal error", LogLevel.critical, peer="p",
                          log_failure=failure))  # fmt: skip
    record = json.loads(line)
    assert record["message"] == "closing p: internal error"
    assert record["exception"].startswith("Traceback")
    assert "KeyError: 'missing'" in record["exception"]


# ------------------------------------------------------------------------ stdlib logging


@pytest.fixture
def plugin_log() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A plugin's stdlib logger whose records reach a JSON line observer through the bridge."""
    out = io.StringIO()
    bridge = StdlibBridge(LineObserver(out, format="json"))
    logger = logging.getLogger("fms_user_plugins.greeter")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    logger.addHandler(bridge)
    try:
        yield logger, out
    finally:
        logger.removeHandler(bridge)
        logger.propagate = True
        logger.setLevel(logging.NOTSET)


def test_a_plugins_stdlib_line_is_json_with_the_plugins_logger_name(
    plugin_log: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, out = plugin_log
    logger.warning("hello %s", "Zoë")
    record = json.loads(out.getvalue())
    assert (record["level"], record["system"], record["message"]) == (
        "warn",
        "fms_user_plugins.greeter",
        "hello Zoë",
    )


def test_a_plugin_may_add_fields_with_extra(
    plugin_log: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, out = plugin_log
    logger.info("recording", extra={"app": "live", "stream": "cam", "peer": "192.0.2.7:1"})
    record = json.loads(out.getvalue())
    assert (record["app"], record["stream"], record["peer"]) == ("live", "cam", "192.0.2.7:1")


def test_a_plugins_exception_is_a_field_not_part_of_the_message(
    plugin_log: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, out = plugin_log
    try:
        1 / 0  # noqa: B018
    except ZeroDivisionError:
        logger.exception("failed")
    [line] = out.getvalue().splitlines()
    record = json.loads(line)
    assert record["message"] == "failed"
    assert "ZeroDivisionError: division by zero" in record["exception"]


# ------------------------------------------------------------ the server's own lines


@pytest.fixture
def server_json() -> Iterator[list[dict[str, Any]]]:
    """Every event the server logs during the test, as the JSON form's objects."""
    out = io.StringIO()
    lines = LineObserver(out, format="json")
    records: list[dict[str, Any]] = []

    def observer(e: LogEvent) -> None:
        before = len(out.getvalue())
        lines(e)
        records.append(json.loads(out.getvalue()[before:]))

    globalLogPublisher.addObserver(observer)
    try:
        yield records
    finally:
        globalLogPublisher.removeObserver(observer)


def line(records: list[dict[str, Any]], start: str) -> dict[str, Any]:
    found = [r for r in records if r["message"].startswith(start)]
    assert len(found) == 1, [r["message"] for r in records]
    return found[0]


def test_connect_publish_and_play_lines_carry_peer_client_app_and_stream(
    server_json: list[dict[str, Any]],
) -> None:
    factory = factory_for(None)
    publisher = Peer(factory, port=5001).connect("live", create_stream=True).publish("cam")
    player = Peer(factory, port=5002).connect("live", create_stream=True).play("cam")
    connect = line(server_json, "connect from 192.0.2.1:5001")
    assert (connect["peer"], connect["client"], connect["app"]) == (
        "192.0.2.1:5001",
        publisher.proto.id,
        "live",
    )
    publish = line(server_json, "publish started")
    assert {k: publish[k] for k in ("peer", "client", "app", "stream")} == {
        "peer": "192.0.2.1:5001",
        "client": publisher.proto.id,
        "app": "live",
        "stream": "cam",
    }
    play = line(server_json, "play live/cam for")
    assert (play["peer"], play["client"], play["stream"]) == (
        "192.0.2.1:5002",
        player.proto.id,
        "cam",
    )


def test_a_twisted_logger_line_without_context_has_no_context_fields(
    server_json: list[dict[str, Any]],
) -> None:
    Logger(namespace="fms.cli").info("listening on {url}", url="rtmp://127.0.0.1:1935")
    assert set(line(server_json, "listening on")) == {"time", "level", "system", "message"}


# ------------------------------------------------------------------------ configuration


def test_the_log_format_is_text_unless_configured() -> None:
    assert parse_config("").server.log_format == "text"
    assert parse_config('[server]\nlog_format = "json"\n').server.log_format == "json"


def test_an_unknown_log_format_is_refused_naming_the_choices() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config('[server]\nlog_format = "xml"\n', "fms.toml")
    assert caught.value.problems == ["fms.toml: server.log_format: 'xml' is not one of text, json"]


def test_check_config_refuses_an_unknown_log_format(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from fms.cli import main

    path = tmp_path / "fms.toml"
    path.write_text('[server]\nlog_format = "xml"\n')
    assert main(["check-config", str(path)]) == 1
    assert capsys.readouterr().err == (
        f"error: {path}: server.log_format: 'xml' is not one of text, json\n"
    )
