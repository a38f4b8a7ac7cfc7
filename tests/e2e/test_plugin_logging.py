"""A plugin's stdlib ``logging`` in a real server process: docs/plugins.md's example, with
``log_level = "info"``: the info line is written with time, level and the logger's name, the
debug line (logged just before it, by the same hook) is not."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.e2e.harness import ServerProcess
from tests.e2e.test_plugin_doc import block
from tests.hostile.support import Client

pytestmark = pytest.mark.e2e

INFO_LINE = re.compile(
    r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ info \[fms_user_plugins\.greeter\] "
    r"hello 127\.0\.0\.1, welcome to live$"
)


def test_stdlib_logging_in_a_plugin_file_is_written_at_the_server_level(tmp_path: Path) -> None:
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "greeter.py").write_text(block("plugins/greeter.py"))
    config = tmp_path / "fms.toml"
    config.write_text(
        f'[server]\nlog_level = "info"\nplugin_dirs = [{json.dumps(str(tmp_path / "plugins"))}]\n'
        '[[apps.live.plugins]]\nuse = "greeter"\n'
    )
    server = ServerProcess(config=config)
    try:
        Client(server.port).connect("live").close()
        line = server.wait_for_line(r"\[fms_user_plugins\.greeter\]", timeout=20)
        assert INFO_LINE.match(line), line
        # The debug line was logged before the info line by the same call: had it passed the
        # filter, it would already be in the log.
        assert not [x for x in server.lines if "connect parameters" in x], server.log()
    finally:
        assert server.stop() == 0, server.log()
