"""The files whose bytes the workers lock: what :mod:`fms.cluster.claims` (publish names) and
:mod:`fms.cluster.seats` (viewer seats) share.

A process's POSIX record locks on a file are all dropped when it closes *any* descriptor of
that file, so each file is opened once per worker, here, when first needed, and closed only
when the worker gives everything back (:meth:`LockFiles.close_files`). The files live in the
supervisor's private folder (mode 0700) and are created 0600.
"""

from __future__ import annotations

import errno
import os

FILES = 16
"""How many files share the locks of one kind (the low bits of a hash choose; a power of 2):
the kernel walks a file's lock list at every lock, so several short lists beat one long one
(measurements in :mod:`fms.cluster.claims`)."""

TAKEN = (errno.EACCES, errno.EAGAIN)
"""What ``lockf`` raises when another process holds the byte (POSIX allows either)."""


class LockFiles:
    """The ``FILES`` files named ``PREFIX-NN`` in ``directory``, each opened once."""

    def __init__(self, directory: str, prefix: str) -> None:
        self.directory = directory
        self.prefix = prefix
        self._files: dict[int, int] = {}
        """File number -> its descriptor, opened once, when first needed."""

    def _file(self, number: int) -> int:
        """File ``number``'s descriptor, opening the file the first time."""
        fd = self._files.get(number)
        if fd is None:
            path = os.path.join(self.directory, f"{self.prefix}-{number:02x}")
            fd = self._files[number] = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        return fd

    def close_files(self) -> None:
        """Close every file: the kernel drops every lock this process holds on them."""
        files, self._files = self._files, {}
        for fd in files.values():
            os.close(fd)
