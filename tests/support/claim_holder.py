"""Another worker, for the tests of :mod:`fms.cluster.claims`: a process with its own
:class:`NameLocks` on a folder, driven line by line (record locks belong to a process, so the
other worker must be another process).

Run as ``python -m tests.support.claim_holder FOLDER``; each line on stdin is a JSON list
``["claim", app, name]`` or ``["release", app, name]``, answered by one line (``true``/``false``
for a claim, ``null`` for a release). End of file on stdin ends it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from fms.cluster.claims import NameLocks

ROOT = Path(__file__).resolve().parents[2]


class OtherWorker:
    """The test's handle on a ``claim_holder`` process."""

    def __init__(self, folder: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.support.claim_holder", str(folder)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )

    def _ask(self, *request: str) -> object:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        assert line, f"the other worker ended ({self.process.wait(10)})"
        return json.loads(line)

    def claim(self, app: str, name: str) -> bool:
        answer = self._ask("claim", app, name)
        assert isinstance(answer, bool)
        return answer

    def release(self, app: str, name: str) -> None:
        self._ask("release", app, name)

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
    locks = NameLocks(folder)
    for line in sys.stdin:
        action, app, name = json.loads(line)
        answer = locks.claim(app, name) if action == "claim" else locks.release(app, name)
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
