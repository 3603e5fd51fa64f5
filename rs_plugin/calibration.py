"""Choosing the batch size by measurement: the number of noisy copies per forward pass that evaluates fastest.

The best size depends on the network, the input, the device and the machine (caches), so it is measured: a few
batches at a few sizes through the backend's own noisy-evaluation loop, a fraction of a second, cached for the
process. Results never depend on it (each example's noise comes from its own stream).
"""

from __future__ import annotations

import time
from typing import Any

CANDIDATES = (32, 64, 128, 256, 512, 1024, 2048, 4096)
"""Batch sizes tried, smallest first."""

BUDGET_SECONDS = 1.0
"""Calibration stops trying larger sizes once it has spent this long (after at least :data:`MIN_SIZES` sizes)."""

MIN_SIZES = 4

_MEASURED: dict[tuple, tuple[int, float]] = {}


def calibration_key(backend: Any, x: Any) -> tuple:
    """What the best batch size depends on: the backend's model and device (its ``identity()``; a backend without
    one is its own identity), the input's shape and dtype."""
    identity = backend.identity() if hasattr(backend, "identity") else (id(backend),)
    return (*identity, tuple(getattr(x, "shape", ())), str(getattr(x, "dtype", "")))


def measure(backend: Any, noise: Any, x: Any, size: int, min_seconds: float = 0.02) -> float:
    """Noisy copies evaluated per second by ``backend`` on batches of ``size`` copies of ``x`` (after a warm-up):
    the best of at least two timed batches, and of as many as fit in ``min_seconds``."""
    stream = backend.stream(noise, 0)
    backend.counts([x], [size], [stream], size)
    rates: list[float] = []
    spent = 0.0
    while len(rates) < 2 or (spent < min_seconds and len(rates) < 50):
        start = time.perf_counter()
        backend.counts([x], [size], [stream], size)
        seconds = time.perf_counter() - start
        rates.append(size / seconds)
        spent += seconds
    return max(rates)


def best_batch_size(backend: Any, noise: Any, x: Any) -> tuple[int, float]:
    """``(size, copies per second)`` of the fastest of :data:`CANDIDATES` for ``backend`` on inputs like the
    prepared ``x``: the sizes are measured from the smallest up (until a size four times the fastest so far, or
    the time budget), then once more, keeping each size's best; once per process for each :func:`calibration_key`."""
    key = calibration_key(backend, x)
    if key not in _MEASURED:
        rates: dict[int, float] = {}
        start = time.perf_counter()
        for size in CANDIDATES:
            rates[size] = measure(backend, noise, x, size)
            best = max(rates, key=rates.get)
            late = len(rates) >= MIN_SIZES and time.perf_counter() - start > BUDGET_SECONDS
            if late or size >= 4 * best:
                break
        for size in rates:  # a second round, so that a passing load on the machine does not decide
            rates[size] = max(rates[size], measure(backend, noise, x, size))
        best = max(rates, key=rates.get)
        _MEASURED[key] = (best, rates[best])
    return _MEASURED[key]
