"""The field maker of the configuration's dataclasses: a default with validation metadata
(range or choices) and a one-line doc that ``conf/fms.toml``'s test and ``fms check-config``
read."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import field
from typing import Any


def option(
    default: Any,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    choices: tuple[str, ...] | None = None,
    doc: str = "",
) -> Any:
    """A dataclass field with validation metadata (range or choices) and a one-line doc."""
    meta = {"min": minimum, "max": maximum, "choices": choices, "doc": doc}
    return field(default=default, metadata=meta)


def tables(value: object, where: str, problems: list[str], kind: str) -> Iterator[tuple[str, Any]]:
    """The entries of an array of tables (``[[apps.NAME.KIND]]``) with where each stands
    (``WHERE[i]``); one problem for a value that is no array and for each entry that is no
    table (skipped)."""
    if not isinstance(value, list):
        problems.append(f"{where}: expected an array of tables ([[...{kind}]])")
        return
    for index, entry in enumerate(value):
        here = f"{where}[{index}]"
        if not isinstance(entry, Mapping):
            problems.append(f"{here}: expected a table with 'url'")
            continue
        yield here, entry


def retry_problems(here: str, options: Mapping[str, Any], problems: list[str]) -> None:
    """The backoff of a push or pull: positive seconds, ``retry_max`` not below
    ``retry_initial`` (defaults 1 and 30)."""
    for key in ("retry_initial", "retry_max"):
        if key in options and options[key] <= 0:
            problems.append(f"{here}.{key}: expected a positive number of seconds")
    if options.get("retry_max", 30.0) < options.get("retry_initial", 1.0):
        problems.append(f"{here}.retry_max: below retry_initial")
