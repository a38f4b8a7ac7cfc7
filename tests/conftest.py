"""Shared pytest configuration.

Hypothesis runs derandomized under CI (``CI=true``) so a red run can be reproduced; locally it
explores freely. The ``logged`` fixture gives a test the lines logged while it runs.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

from tests.support.ci import IN_CI
from tests.support.logs import log_lines

settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    max_examples=200,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", deadline=None, max_examples=100)
settings.load_profile("ci" if IN_CI else "dev")


@pytest.fixture
def logged() -> Iterator[list[str]]:
    """Every event logged during the test, formatted as the log shows it, in order."""
    yield from log_lines()
