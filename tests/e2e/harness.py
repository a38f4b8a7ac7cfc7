"""Run the real ``fms`` server process and real RTMP clients for end-to-end tests.

Waits are on observable events (a log line, a process exit) with timeouts, never bare sleeps.
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

LISTENING = re.compile(r"listening on (rtmp://\S+)")
IN_CI = os.environ.get("CI") == "true"


def require_client(name: str) -> str:
    """The path of a real client program; in CI a missing one fails the test, never skips it."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (./scripts/test installs it)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return path


class ServerProcess:
    """``python -m fms run`` on 127.0.0.1 and a free port, with its log collected line by line."""

    def __init__(self, *args: str, config: Path | None = None) -> None:
        command = [sys.executable, "-m", "fms", "run", "--host", "127.0.0.1", "--port", "0"]
        if config is not None:
            command += ["--config", str(config)]
        command += list(args)
        self.process = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parents[2],
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.url = self._wait_listening()
        self.port = int(self.url.rsplit(":", 1)[1])

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line.rstrip("\n"))
            self._queue.put(line)
        self._queue.put(None)

    def _wait_listening(self, timeout: float = 20.0) -> str:
        line = self.wait_for_line(LISTENING, timeout)
        match = LISTENING.search(line)
        assert match is not None
        return match.group(1)

    def wait_for_line(self, pattern: re.Pattern[str] | str, timeout: float = 10.0) -> str:
        """Block until a log line matches ``pattern`` (searching lines already seen first)."""
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        for line in list(self.lines):
            if regex.search(line):
                return line
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    f"no log line matched {regex.pattern!r} in {timeout}s; log:\n" + self.log()
                )
            try:
                line = self._queue.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(
                    f"server exited ({self.process.poll()}) before a line matched "
                    f"{regex.pattern!r}; log:\n" + self.log()
                )
            if regex.search(line):
                return line

    def log(self) -> str:
        return "\n".join(self.lines)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        """Signal the server and return its exit status."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(
                "server did not stop within the timeout; log:\n" + self.log()
            ) from None
        finally:
            self._reader.join(timeout=5)


def run_client(
    command: Sequence[str], timeout: float = 30.0, input: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    """Run a client to completion (killed on timeout, reported with its output)."""
    try:
        return subprocess.run(
            list(command), capture_output=True, timeout=timeout, input=input, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(
            f"{command[0]} did not finish in {timeout}s; stderr:\n"
            + (exc.stderr or b"").decode(errors="replace")[-4000:]
        ) from None
