"""Another worker, for the tests of :mod:`fms.cluster.seats`: a process with its own
:class:`LockSeats` on a folder, driven line by line (record locks belong to a process, so the
other worker must be another process).

Run as ``python -m tests.support.seat_holder FOLDER``; each line on stdin is a JSON list
``["take", app, key, limit]`` (answered with the seat number or ``null``) or
``["release", app, key, seat]`` (answered with ``null``). End of file on stdin ends it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from fms.cluster.seats import LockSeats

ROOT = Path(__file__).resolve().parents[2]


class OtherWorker:
    """The test's handle on a ``seat_holder`` process."""

    def __init__(self, folder: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.support.seat_holder", str(folder)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )

    def _ask(self, *request: object) -> object:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        assert line, f"the other worker ended ({self.process.wait(10)})"
        return json.loads(line)

    def take(self, app: str, key: str, limit: int) -> int | None:
        answer = self._ask("take", app, key, limit)
        assert answer is None or isinstance(answer, int)
        return answer

    def release(self, app: str, key: str, seat: int) -> None:
        self._ask("release", app, key, seat)

    def kill(self) -> None:
        """End it the way that runs no cleanup at all (SIGKILL), and wait until it is gone."""
        self.process.kill()
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            self.process.wait(10)


def main(folder: str) -> None:
    seats = LockSeats(folder)
    for line in sys.stdin:
        action, app, key, number = json.loads(line)
        if action == "take":
            answer = seats.take(app, key, number)
        else:
            answer = seats.release(app, key, number)
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
