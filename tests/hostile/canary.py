"""Imported only if the server builds a class that a peer named: the test that sends
``tests.hostile.canary.Canary`` as an AMF class name checks that this never happens."""

from __future__ import annotations

import os
from pathlib import Path

_marker = os.environ.get("FMS_HOSTILE_CANARY")
if _marker:
    Path(_marker).write_text("imported\n")


class Canary:
    def __init__(self) -> None:
        if _marker:
            Path(_marker).write_text("instantiated\n")
