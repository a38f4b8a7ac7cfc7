"""SIGHUP loads the new code of an edited plugin file from ``plugin_dirs``: a client that
connects afterwards is served by the new code, a client connected before keeps the old."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from fms.rtmp.client import ResultReceived
from tests.e2e.harness import ServerProcess
from tests.hostile.support import Client

pytestmark = pytest.mark.e2e

VERSIONED = """
from fms.apps.api import Plugin

VERSION = {version!r}


class Versioned(Plugin):
    def call(self, client, method, args):
        if method != "version":
            return super().call(client, method, args)
        return VERSION
"""


def version(client: Client) -> str:
    """What the plugin serving ``client`` answers to the call ``version``."""
    before = len(client.events)
    client.conn.call("version")
    event = client.until(lambda e: isinstance(e, ResultReceived) and e in client.events[before:])
    assert isinstance(event, ResultReceived)
    return str(event.values[1])


def test_sighup_gives_new_clients_the_edited_plugin_code_and_old_clients_the_old(
    tmp_path: Path,
) -> None:
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    plugin_file = plugins / "versioned.py"
    plugin_file.write_text(VERSIONED.format(version="one"))
    config = tmp_path / "fms.toml"
    config.write_text(
        f"[server]\nplugin_dirs = [{json.dumps(str(plugins))}]\n"
        "[apps.live]\npublish_or_play_timeout = 0\n"
        '[[apps.live.plugins]]\nuse = "versioned"\n'
    )
    server = ServerProcess(config=config)
    try:
        old = Client(server.port).connect("live")
        assert version(old) == "one"
        plugin_file.write_text(VERSIONED.format(version="two"))
        server.process.send_signal(signal.SIGHUP)
        line = server.wait_for_line("configuration reloaded", timeout=20)
        assert f"new plugin code from {plugin_file}" in line, line
        new = Client(server.port).connect("live")
        assert version(new) == "two"
        assert version(old) == "one"
        new.close()
        old.close()
        server.process.send_signal(signal.SIGHUP)  # nothing changed: the log says so
        server.wait_for_line("no plugin file in plugin_dirs changed", timeout=20)
        assert version(Client(server.port).connect("live")) == "two"
    finally:
        assert server.stop() == 0, server.log()
