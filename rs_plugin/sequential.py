"""Sequential estimation for CERTIFY with a target radius: stop as soon as the answer at the target is clear.

Construction (alpha spending over a geometric schedule, a union bound): the estimation samples are
examined only at the checkpoints ``n_1 < n_2 < ... < n_K = n`` (``n_1 = first``, each the previous
times ``growth``). Checkpoint ``j`` gets its own level ``alpha_j`` with ``sum_j alpha_j = alpha``: half
of ``alpha`` goes to the last checkpoint, so that an example that needs all ``n`` samples loses little
against fixed-n CERTIFY, and the other half is shared equally by the earlier ones. At checkpoint ``j``
the one-sided Clopper-Pearson bounds at level ``alpha_j`` are computed from all samples so far. By the
union bound, the probability that *any* checkpoint's lower bound exceeds the true probability is at
most ``alpha``, so the lower bound at whatever checkpoint the procedure stops at (a stopping time) is a
valid ``1 - alpha`` bound, and so is the radius computed from it. The upper bounds only decide when
to stop; they never enter a certificate. This is the "Clopper-Pearson bounds at a geometric schedule
of checkpoints with alpha spent across them" family of anytime-valid tests (a Bonferroni group-
sequential design, Wald 1947 and Pocock 1977 for the idea; applied to randomized smoothing with
Clopper-Pearson stages by Horvath et al., "Boosting randomized smoothing with variance reduced
classifiers", ICLR 2022).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from .bounds import lower_confidence_bound, upper_confidence_bound

FIRST_CHECKPOINT = 100
GROWTH = 2.0


def checkpoints(n: int, first: int = FIRST_CHECKPOINT, growth: float = GROWTH) -> list[int]:
    """The sample counts at which the bounds are examined: ``first, first*growth, ...``, ending at ``n``."""
    points = []
    t = float(first)
    while round(t) < n:
        points.append(round(t))
        t *= growth
    return [*points, n]


def spend_alpha(alpha: float, k: int) -> list[float]:
    """Levels for ``k`` checkpoints summing to ``alpha``: half at the last, the rest shared equally."""
    if k == 1:
        return [alpha]
    return [alpha / (2 * (k - 1))] * (k - 1) + [alpha / 2]


def estimate(
    draw: Callable[[int], int], n: int, alpha: float, thresholds: Sequence[float]
) -> tuple[int, int, float]:
    """Draw samples in stages until every threshold on ``p`` is decided, or ``n`` samples are drawn.

    ``draw(m)`` draws ``m`` fresh samples and returns how many were successes. A threshold ``t`` is
    decided when the lower bound reaches it (``p >= t`` certified) or the upper bound falls below it.
    Returns ``(successes, samples drawn, lower bound)``; with probability at least ``1 - alpha`` the
    lower bound holds, whenever the procedure stopped.
    """
    schedule = checkpoints(n)
    count = drawn = 0
    lower = 0.0
    for point, level in zip(schedule, spend_alpha(alpha, len(schedule)), strict=True):
        count += draw(point - drawn)
        drawn = point
        lower = lower_confidence_bound(count, drawn, level)
        upper = upper_confidence_bound(count, drawn, level)
        if all(lower >= t or upper < t for t in thresholds):
            break
    return count, drawn, lower
