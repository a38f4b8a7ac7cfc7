"""One publisher per stream name across the workers of ``fms run --workers N``.

Each worker has its own stream registry, and the relay (:mod:`fms.cluster.relay`) tells the
other workers of a publish only once a link is set up, milliseconds after the publish was
accepted: two publishes of one name on two workers within that time would both be accepted.
So a worker claims the name for the whole server before it accepts a publish (the server's
:class:`~fms.server.host.NameClaims`, implemented here) and releases it when the publish
ends.

A claim is a POSIX record lock (``lockf``), exclusive and non-blocking, on one byte of one of
the ``claims-*`` files in the supervisor's private folder
(:attr:`~fms.cluster.spec.WorkerSpec.directory`, mode 0700): SHA-256 of (app, name) says which
file and which byte. The kernel grants or refuses it atomically, and drops every lock of a
process that ends, however it ends (SIGKILL included): the names of a dead worker are free at
once, with no bookkeeping.

Why a lock rather than a question to the supervisor (one table, asked over a socket): a claim
is one system call inside the decision, not a round trip, so a publish is never half-accepted
while an answer is awaited. Players never hear of a publisher that then loses; the winner's
relay link never meets the loser in a registry (which would refuse the link until a retry, up
to 5 s later); there is no answer to time out on.

Why bytes of a few files rather than a file per name: taking a lock creates and removes
nothing, so a claim never waits for the file system (creating a file took up to 8 ms on a busy
disk), and the folder holds at most ``FILES`` files whatever was published. Why several files:
the kernel keeps a file's locks in a list that every claim walks. ``benchmarks/claims.py``
(another process holding N names) measured a claim at 3 us with N = 100, 18 us with 1,000 and
570 us with 10,000 in one file; 4, 5 and 28 us over 16 files.

The price: two names whose 64-bit hashes coincide cannot be published at the same time; the
second is refused as if the name were taken (never are both accepted). With 10,000 streams
published at once, the chance that any two coincide is about 1 in 3 * 10^11.

Record locks belong to a process, not to a descriptor: the locks of one worker never conflict
with each other (its own claims are kept in a table), and closing *any* descriptor of a file
would drop them all, so each worker opens each file once, here, and nothing else opens them.
"""

from __future__ import annotations

import fcntl
import hashlib

from fms.cluster.lockfiles import FILES, TAKEN, LockFiles
from fms.log import Logger

log = Logger(namespace="fms.cluster.claims")


def place(app: str, name: str) -> tuple[int, int]:
    """(file, byte) that stand for (app, name): 64 bits of SHA-256, the low ones choosing the
    file, the rest (below 2**60, well inside a signed 64-bit ``off_t``) the byte. ``live/a`` +
    ``b`` and ``live`` + ``a/b`` are two streams: NUL, refused in names, separates the two."""
    key = f"{app}\0{name}".encode("utf-8", "surrogatepass")
    bits = int.from_bytes(hashlib.sha256(key).digest()[:8], "big")
    return bits % FILES, bits // FILES


class NameLocks(LockFiles):
    """The names this worker claimed for its publishers (see the module docstring).
    ``directory`` is the supervisor's private folder."""

    def __init__(self, directory: str) -> None:
        super().__init__(directory, "claims")
        self._held: dict[tuple[int, int], tuple[str, str]] = {}
        """(file, byte) -> (app, name) of every claim this worker holds."""

    def __len__(self) -> int:
        return len(self._held)

    def claim(self, app: str, name: str) -> bool:
        """Claim (app, name) for a publisher of this worker: True when no worker held it (this
        one does now); False when a worker holds it (this one included), or when the claim could
        not be made (logged: fail closed)."""
        where = place(app, name)
        if where in self._held:
            return False  # this worker publishes it (or a name with the same hash)
        try:
            fcntl.lockf(self._file(where[0]), fcntl.LOCK_EX | fcntl.LOCK_NB, 1, where[1])
        except OSError as exc:
            if exc.errno not in TAKEN:
                log.error(
                    "cannot claim {app}/{name} for this worker: {reason}: refusing the publish",
                    app=app, name=name, reason=exc.strerror or exc,
                )  # fmt: skip
            return False
        self._held[where] = (app, name)
        return True

    def release(self, app: str, name: str) -> None:
        """The publish of (app, name) on this worker ended: any worker may claim it now."""
        where = place(app, name)
        if self._held.get(where) != (app, name):
            return
        del self._held[where]
        try:
            fcntl.lockf(self._files[where[0]], fcntl.LOCK_UN, 1, where[1])
        except OSError as exc:
            log.error(
                "cannot release the claim of {app}/{name}: {reason}; it stays claimed until "
                "this worker ends",
                app=app, name=name, reason=exc.strerror or exc,
            )  # fmt: skip

    def close(self) -> None:
        """Drop every claim of this worker at once (what its end does)."""
        self._held.clear()
        self.close_files()
