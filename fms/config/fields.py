"""The field maker of the configuration's dataclasses: a default with validation metadata
(range or choices) and a one-line doc that ``conf/fms.toml``'s test and ``fms check-config``
read."""

from __future__ import annotations

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
