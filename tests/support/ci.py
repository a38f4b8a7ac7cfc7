"""Whether the suite runs under CI: any non-empty ``CI`` other than ``false`` or ``0`` (CI
services set ``CI=true``, ``CI=1`` or ``CI=yes``; ``.ci/run`` sets ``CI=true`` itself). Under
CI a missing client or compiler fails a test instead of skipping it, and Hypothesis is
derandomized."""

from __future__ import annotations

import os


def in_ci(environ: dict[str, str] | None = None) -> bool:
    value = (os.environ if environ is None else environ).get("CI", "").strip().lower()
    return value not in ("", "false", "0")


IN_CI = in_ci()
