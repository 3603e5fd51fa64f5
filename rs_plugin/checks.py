"""Argument checks shared by every entry point; each error names the argument and what was wrong."""

from __future__ import annotations

import numbers
from typing import Any


def positive_int(name: str, value: Any) -> int:
    """``value`` as an int; ``TypeError`` unless it is an int, ``ValueError`` unless it is at least 1."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}")
    return int(value)


def probability(name: str, value: Any) -> float:
    """``value`` as a float; ``ValueError`` unless it is a number strictly between 0 and 1."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 < value < 1:
        raise ValueError(f"{name} must lie strictly between 0 and 1, got {value!r}")
    return float(value)


def seed(name: str, value: Any) -> int | None:
    """``value`` unchanged; ``ValueError`` unless it is None or a non-negative int."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0):
        raise ValueError(f"{name} must be None or a non-negative int, got {value!r}")
    return None if value is None else int(value)
