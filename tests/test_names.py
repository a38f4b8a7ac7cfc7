"""Stream and application names: what is refused, and why."""

from __future__ import annotations

import pytest

from fms.live.names import name_problem


@pytest.mark.parametrize("name", ["cam", "room1/cam", "Caméra 2", "key_123-abc.flv"])
def test_ordinary_names_are_accepted(name: str) -> None:
    assert name_problem(name, 256, allow_slash=True) is None


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("", "empty"),
        ("a" * 257, "257 bytes"),
        ("cam\x00", "U+0000"),
        ("cam\nX", "U+000A"),
        ("cam\u202e", "U+202E"),
        ("a\\b", "backslash"),
        ("../etc", "'..'"),
        ("a/./b", "'..'"),
        ("/abs", "empty path segment"),
        ("a//b", "empty path segment"),
    ],
)
def test_hostile_names_are_refused_with_a_reason(name: str, reason: str) -> None:
    problem = name_problem(name, 256, allow_slash=True)
    assert problem is not None and reason in problem


def test_slash_is_refused_where_not_allowed() -> None:
    assert name_problem("a/b", 256) == "the name contains a slash"


def test_the_length_cap_counts_utf8_bytes() -> None:
    assert name_problem("é" * 128, 256) is None
    assert name_problem("é" * 129, 256) is not None
