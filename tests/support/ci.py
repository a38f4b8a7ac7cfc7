"""Whether the suite runs under CI: any non-empty ``CI`` other than ``false`` or ``0`` (CI
services set ``CI=true``, ``CI=1`` or ``CI=yes``; ``.ci/run`` sets ``CI=true`` itself). Under
CI a missing client or compiler fails a test instead of skipping it, and Hypothesis is
derandomized."""

from __future__ import annotations

import os
import shutil

import pytest


def in_ci(environ: dict[str, str] | None = None) -> bool:
    value = (os.environ if environ is None else environ).get("CI", "").strip().lower()
    return value not in ("", "false", "0")


IN_CI = in_ci()


def require_c_compiler() -> None:
    """Fail (under CI) or skip the calling test when there is no C compiler: the benchmarks'
    load generator is built from C at first use."""
    if shutil.which("gcc") is None and shutil.which("cc") is None:
        message = "a C compiler is needed to build the benchmark's load generator"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
