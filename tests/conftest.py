"""Shared pytest configuration.

Hypothesis runs derandomized under CI (``CI=true``) so a red run can be reproduced; locally it
explores freely.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings

from tests.support.ci import IN_CI

settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    max_examples=200,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", deadline=None, max_examples=100)
settings.load_profile("ci" if IN_CI else "dev")
