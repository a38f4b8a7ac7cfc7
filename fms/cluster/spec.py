"""Who a worker is, as the supervisor tells it (``fms run --worker JSON``)."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from fms.config import Config

READY_FD = 3
"""The worker writes ``ready`` to this descriptor once it accepts connections."""

RELEASE_LOG = b"log\n"
"""The supervisor writes this to a worker's stdin once its listening line is out: the worker
may write the log lines it held back while starting."""


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    """What the supervisor tells a worker (``--worker JSON``): who it is and where the others
    are. ``port``/``tls_port`` are the ports actually reserved (the file may say 0)."""

    index: int
    count: int
    directory: str
    port: int
    tls_port: int = 0
    http_port: int = 0
    """The HTTP port reserved by the supervisor (``[http]``), 0 without one."""
    restarts: int = 0
    """How many times the supervisor restarted this worker (for the metrics)."""

    def socket_path(self, index: int) -> str:
        """The Unix socket on which worker ``index`` takes relayed streams."""
        return str(Path(self.directory) / f"worker-{index}.sock")

    @property
    def peers(self) -> list[int]:
        return [i for i in range(self.count) if i != self.index]

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> WorkerSpec:
        return cls(**json.loads(text))


def worker_count(config: Config) -> int:
    """``[server] workers``, with 0 meaning one per CPU core."""
    return config.server.workers or os.cpu_count() or 1
