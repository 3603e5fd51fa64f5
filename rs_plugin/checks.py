"""Argument checks shared by every entry point; each error names the argument and what was wrong."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
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


def radii(name: str, value: float | Sequence[float]) -> list[float]:
    """``value`` (one radius or a sequence of them) as a list of floats; ``ValueError`` unless it holds at least
    one radius and every one is a finite number >= 0."""
    values = [value] if isinstance(value, numbers.Real) else list(value)
    if not values or not all(
        isinstance(r, numbers.Real) and not isinstance(r, bool) and math.isfinite(r) and r >= 0 for r in values
    ):
        raise ValueError(f"{name} must be a finite radius >= 0 or a non-empty list of them, got {values}")
    return [float(r) for r in values]


def seed(name: str, value: Any) -> int | None:
    """``value`` unchanged; ``ValueError`` unless it is None or a non-negative int."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0):
        raise ValueError(f"{name} must be None or a non-negative int, got {value!r}")
    return None if value is None else int(value)
