"""Argument checks shared by every entry point; each error names the argument and what was wrong."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np


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


def positive_number(name: str, value: Any) -> float:
    """``value`` as a float; ``ValueError`` unless it is a finite number > 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def non_negative(name: str, value: Any) -> float:
    """``value`` as a float; ``ValueError`` unless it is a finite number >= 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
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


def real_input(x: Any) -> None:
    """``ValueError`` naming ``x`` when it holds complex numbers (converting them to float would drop their
    imaginary part); every face refuses them. An array of any framework is judged by its ``dtype`` alone, never
    converted (a tensor that requires a gradient, or of a dtype numpy lacks, is checked like any other)."""
    dtype = getattr(x, "dtype", None)
    if ("complex" in str(dtype)) if dtype is not None else np.iscomplexobj(x):
        raise ValueError(f"x must hold real numbers, got complex values ({getattr(x, 'dtype', type(x).__name__)})")


def float32_array(x: Any, what: str = "one numeric input") -> np.ndarray:
    """``x`` as a float32 array (``x`` itself when it is one); ``ValueError`` naming ``x`` (it must be ``what``) when it
    holds complex numbers (:func:`real_input`) or cannot be converted (a string, a ragged list). A value beyond
    float32's range becomes infinite without numpy's overflow warning: the finiteness check that follows refuses it."""
    real_input(x)
    try:
        with np.errstate(over="ignore"):
            return np.asarray(x, dtype=np.float32)
    except (TypeError, ValueError) as err:
        raise ValueError(f"x must be {what}, got {type(x).__name__}: {err}") from err


def seed(name: str, value: Any) -> int | None:
    """``value`` unchanged; ``ValueError`` unless it is None or a non-negative int."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0):
        raise ValueError(f"{name} must be None or a non-negative int, got {value!r}")
    return None if value is None else int(value)


def positive_numbers(name: str, value: Any, count: int | None = None) -> np.ndarray:
    """``value`` (a number, or ``count`` of them, e.g. one per example) as a float64 array of ``count`` (any length
    when ``count`` is None); ``TypeError``/``ValueError`` unless every one is a finite number > 0."""
    if isinstance(value, (bool, str)) or not (isinstance(value, numbers.Real) or hasattr(value, "__len__")):
        raise TypeError(f"{name} must be a number or one number per example, got {type(value).__name__}")
    array = np.asarray(value, dtype=np.float64)
    if array.ndim == 0:
        array = np.full(1 if count is None else count, float(array))
    if array.ndim != 1 or len(array) == 0 or (count is not None and len(array) != count):
        wanted = "1-D" if count is None else f"({count},), one per example"
        raise ValueError(f"{name} must be a number or of shape {wanted}; got shape {array.shape}")
    if not (np.isfinite(array).all() and (array > 0).all()):
        raise ValueError(f"{name} must be finite and > 0, got {array.min():g} as its smallest value")
    return array


def batch(name: str, x: Any, *, unit_range: bool = False) -> None:
    """``TypeError``/``ValueError`` naming ``name`` unless the numpy array ``x`` is a non-empty batch ``(B, *shape)``
    of finite real floats, in ``[0, 1]`` when ``unit_range``."""
    floating = np.issubdtype(getattr(x, "dtype", np.object_), np.floating)
    empty = np.size(x) == 0
    batch_facts(name, tuple(np.shape(x)), floating, *((0.0, 0.0) if empty or not floating else (x.min(), x.max())),
                unit_range=unit_range, kind=type(x).__name__)


def batch_facts(
    name: str, shape: tuple[int, ...], floating: bool, low: float, high: float, *, unit_range: bool, kind: str
) -> None:
    """The check of :func:`batch` on what a framework's adapter read off its tensor: shape, whether its dtype is a
    real floating-point one, its smallest and largest values, the type's name."""
    if not floating:
        raise TypeError(f"{name} must be a floating-point array or tensor batch (B, *shape), got {kind}")
    if len(shape) < 2 or shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty batch (B, *shape) with a batch dimension, got shape {shape}")
    low, high = float(low), float(high)
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError(f"{name} contains NaN or infinite values")
    if unit_range and (low < 0 or high > 1):
        raise ValueError(
            f"{name} must be finite and lie in [0, 1], got values in [{low:g}, {high:g}] (put normalisation inside "
            "the model)"
        )


def labels(name: str, value: Any, count: int, num_classes: int) -> np.ndarray:
    """``value`` as ``count`` int64 class labels; ``TypeError``/``ValueError`` unless they are integers in
    ``[0, num_classes)``."""
    array = np.asarray(value)
    if not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"{name} must be an integer array of class labels, got dtype {array.dtype}")
    if array.shape != (count,):
        raise ValueError(f"{name} must have shape ({count},), one label per input, got {array.shape}")
    outside = array[(array < 0) | (array >= num_classes)]
    if len(outside):
        raise ValueError(f"{name} must lie in [0, num_classes={num_classes}), got {np.unique(outside)[:5].tolist()}")
    return array.astype(np.int64)
