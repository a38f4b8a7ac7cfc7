"""A real ``redis-server`` (Debian's package) for end-to-end tests: on 127.0.0.1 and a free
port, without persistence, started by the test (never the system service), and read with
``redis-cli``. Under CI a missing ``redis-server`` fails the test (``require_client``)."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from tests.e2e.harness import require_client


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class RedisServer:
    """One ``redis-server`` process; :meth:`kill` and :meth:`start` again keep its port."""

    def __init__(self, folder: Path) -> None:
        self.binary = require_client("redis-server")
        self.cli = require_client("redis-cli")
        self.folder = folder
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self, timeout: float = 20.0) -> None:
        """Start it (empty: nothing is saved) and wait until it answers PING."""
        command = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        command += ["--save", "", "--appendonly", "no", "--dir", str(self.folder)]
        log = (self.folder / "redis.log").open("ab")
        self.process = subprocess.Popen(command, stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + timeout
        while self.command("PING") != "PONG":
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(
                    "redis-server did not start:\n" + (self.folder / "redis.log").read_text()
                )
            time.sleep(0.05)

    def command(self, *args: str) -> str:
        """One redis-cli command; its answer as text ("" for nil or when unreachable)."""
        out = subprocess.run(
            [self.cli, "-h", "127.0.0.1", "-p", str(self.port), "--raw", *args],
            capture_output=True, timeout=20, check=False,
        )  # fmt: skip
        return out.stdout.decode().strip() if out.returncode == 0 else ""

    def get(self, key: str) -> str | None:
        value = self.command("GET", key)
        return value or None

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=20)
        self.process = None


def redis_server(folder: Path) -> Iterator[RedisServer]:
    """For a fixture: ``yield from redis_server(tmp_path)``."""
    server = RedisServer(folder)
    try:
        yield server
    finally:
        server.kill()
