"""Pre-flight diagnostics: what a run can certify at all, said before any sample is drawn.

With ``n`` estimation samples at level ``alpha``, the best CERTIFY can do is the lower bound when every sample
votes for the selected class, so the largest certifiable radius is known in advance; PREDICT likewise cannot
answer when even ``n`` votes to none fail its test. These functions raise ``ValueError`` when a run could only
abstain, and warn (:class:`PreflightWarning`) when it can certify less than it was asked to, or when the inputs'
scale makes ``sigma`` meaningless.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import sequential
from .bounds import lower_confidence_bound, top_two_differ
from .checks import positive_int, probability, real_input
from .checks import radii as check_radii
from .noises import Noise

SPAN_PER_SIGMA = 100.0
"""Inputs spanning more than this many sigmas get a warning: the noise barely perturbs them."""


class PreflightWarning(UserWarning):
    """A run that will certify less than it was asked to, or whose ``sigma`` does not fit its inputs."""


def best_lower_bound(n: int, alpha: float, *, sequence: str | None = None) -> float:
    """The largest lower bound on p_A that ``n`` estimation samples at level ``alpha`` can give: every sample on
    the selected class (for sequential CERTIFY with the anytime-valid bound ``sequence``, that bound's)."""
    if sequence is None:
        return lower_confidence_bound(n, n, alpha)
    return sequential.make_sequence(sequence, alpha, n).lower(n, n)


def smallest_n(alpha: float, *, sequence: str | None = None) -> int:
    """The smallest ``n`` whose unanimous estimation samples give a lower bound above 1/2 at level ``alpha`` (below
    it CERTIFY can only abstain); ``sequence`` as in :func:`best_lower_bound`. An anytime-valid bound is never
    tighter than Clopper-Pearson's at a fixed ``n``, so the search starts at the fixed-``n`` answer."""
    n = math.floor(math.log2(1 / alpha)) + 1  # fixed n: alpha ** (1 / n) > 1/2
    while sequence is not None and best_lower_bound(n, alpha, sequence=sequence) <= 0.5:
        n += 1
    return n


def largest_radius(noise: Noise, n: int, alpha: float, *, sequence: str | None = None) -> float:
    """The largest radius CERTIFY can return with ``n`` estimation samples at level ``alpha`` (0 when it can only
    abstain); ``sequence`` as in :func:`best_lower_bound`."""
    p_lower = best_lower_bound(n, alpha, sequence=sequence)
    return noise.radius(p_lower) if p_lower > 0.5 else 0.0


def check_certify(
    noise: Noise,
    n: int,
    alpha: float,
    target_radius: float | Sequence[float] | None = None,
    *,
    sequence: str | None = None,
) -> float:
    """Before CERTIFY runs: ``ValueError`` when ``n`` and ``alpha`` cannot certify any radius; a
    :class:`PreflightWarning` when only unanimous samples certify, or when a target radius exceeds the
    largest certifiable one (with the anytime-valid bound ``sequence`` for sequential CERTIFY). Returns that
    radius."""
    n, alpha = positive_int("n", n), probability("alpha", alpha)
    targets = None if target_radius is None else check_radii("target_radius", target_radius)
    best = largest_radius(noise, n, alpha, sequence=sequence)
    if best <= 0:
        bound = "" if sequence is None else f" (the {sequence} sequence's)"
        raise ValueError(
            f"n={n} with alpha={alpha} cannot certify any radius: even with all {n} samples on one class the "
            f"lower bound{bound} on its probability is at most 1/2, so every example abstains; use n >= "
            f"{smallest_n(alpha, sequence=sequence)}"
        )
    if lower_confidence_bound(n - 1, n, alpha) <= 0.5:
        warnings.warn(
            f"n={n} with alpha={alpha}: only an example whose {n} samples all agree is certified, and the "
            f"largest certifiable radius is {best:.3g}; most examples will abstain (use n >= 100)",
            PreflightWarning,
            stacklevel=3,
        )
    above = [r for r in targets or () if r > best]
    if above:
        warnings.warn(
            f"target_radius {', '.join(f'{r:g}' for r in above)} exceeds the largest radius n={n} with "
            f"alpha={alpha} can certify ({best:.3g}): never certified; raise n",
            PreflightWarning,
            stacklevel=3,
        )
    return best


def check_predict(n: int, alpha: float) -> None:
    """Before PREDICT runs: ``ValueError`` when ``n`` votes at level ``alpha`` always abstain (even ``n`` votes
    to none do not pass PREDICT's two-sided test)."""
    n, alpha = positive_int("n", n), probability("alpha", alpha)
    if not top_two_differ(n, 0, alpha):
        needed = math.ceil(math.log2(2 / alpha) - 1e-9)
        raise ValueError(
            f"n={n} with alpha={alpha}: PREDICT always abstains (even {n} votes to 0 fail its test at level "
            f"alpha); use n >= {needed}"
        )


def check_run(
    mode: str, noise: Noise, n: int, alpha: float, target_radius: Any = None, *, sequence: str | None = None
) -> None:
    """:func:`check_certify` or :func:`check_predict` for a run in ``mode`` (``certify`` or ``predict``)."""
    if mode == "predict":
        check_predict(n, alpha)
    else:
        check_certify(noise, n, alpha, target_radius, sequence=sequence)


def check_input_scale(xs: Any, sigma: float) -> None:
    """A :class:`PreflightWarning` when the inputs ``xs`` (an array or tensor, or a sequence of them) span more
    than :data:`SPAN_PER_SIGMA` sigmas, e.g. 0-255 pixels with sigma 0.25: the noise barely perturbs them, so
    the certificate says little. Inputs that can only be iterated once are not inspected."""
    try:
        if hasattr(xs, "min") and hasattr(xs, "max"):
            low, high = _extremes(xs)
        elif isinstance(xs, Sequence) and len(xs):
            lows, highs = zip(*map(_extremes, xs), strict=True)
            low, high = min(lows), max(highs)
        else:
            return
    except (TypeError, ValueError, RuntimeError, NotImplementedError):  # not real numbers: the checks will say so
        return
    if high - low > SPAN_PER_SIGMA * sigma:
        warnings.warn(
            f"the inputs span [{low:g}, {high:g}], over {SPAN_PER_SIGMA:g} times sigma={sigma:g}: noise this small "
            "barely perturbs them; scale the inputs to [0, 1] (as rs-plugin's models expect) or sigma to their range",
            PreflightWarning,
            stacklevel=3,
        )


def _extremes(x: Any) -> tuple[float, float]:
    real_input(x)  # by dtype, never converting x; complex inputs are refused when the inputs are prepared
    if hasattr(x, "min") and hasattr(x, "max"):  # numpy arrays and torch tensors, on any device
        return _number(x.min()), _number(x.max())
    values = np.asarray(x, dtype=np.float64)
    return float(values.min()), float(values.max())


def _number(value: Any) -> float:
    """A 0-d array or tensor (or a number) as a float, through ``item()`` where it has one: a tensor that requires
    a gradient converts without torch's warning."""
    return float(value.item() if hasattr(value, "item") else value)
