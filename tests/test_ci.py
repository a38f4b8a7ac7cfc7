"""What counts as running under CI (tests/support/ci.py)."""

from __future__ import annotations

import pytest

from tests.support.ci import in_ci


@pytest.mark.parametrize("value", ["true", "1", "yes", "True", "github"])
def test_a_non_empty_ci_other_than_false_or_0_is_ci(value: str) -> None:
    assert in_ci({"CI": value})


@pytest.mark.parametrize("value", ["", "false", "0", "FALSE", " "])
def test_an_empty_false_or_0_ci_is_not_ci(value: str) -> None:
    assert not in_ci({"CI": value})


def test_no_ci_variable_is_not_ci() -> None:
    assert not in_ci({})
