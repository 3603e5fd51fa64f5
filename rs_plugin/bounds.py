"""Confidence bounds and tests on binomial counts, the statistics behind PREDICT and CERTIFY."""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import brentq
from scipy.special import bdtr
from scipy.stats import beta


def lower_confidence_bound(k: int, n: int, alpha: float) -> float:
    """One-sided Clopper-Pearson bound: ``P(p >= bound) >= 1 - alpha`` for ``k ~ Binomial(n, p)``.

    Equal to the lower end of statsmodels' two-sided ``proportion_confint(k, n, 2 * alpha, "beta")``.
    """
    return 0.0 if k == 0 else float(beta.ppf(alpha, k, n - k + 1))


def upper_confidence_bound(k: int, n: int, alpha: float) -> float:
    """One-sided Clopper-Pearson bound: ``P(p <= bound) >= 1 - alpha`` for ``k ~ Binomial(n, p)``.

    The beta distribution's upper-tail quantile (``isf(alpha)``), so that a tiny ``alpha`` keeps its precision
    (``ppf(1 - alpha)`` would first round ``1 - alpha``)."""
    return 1.0 if k == n else float(beta.isf(alpha, k + 1, n - k))


def top_two_differ(count1: int, count2: int, alpha: float) -> bool:
    """Whether a two-sided binomial test rejects, at level ``alpha``, that the top two classes are equally likely.

    This is PREDICT's test (Hung & Fithian 2019): when it rejects, the top class is the most likely one
    with probability at least ``1 - alpha``.
    """
    return two_sided_pvalue(count1, count2) <= alpha


def two_sided_pvalue(count1: int, count2: int) -> float:
    """The p-value of scipy's exact two-sided ``binomtest(count1, count1 + count2, p=0.5)``, computed as twice the
    smaller tail (the Binomial(n, 1/2) distribution is symmetric) with one call of ``scipy.special.bdtr``, so that
    PREDICT's test costs microseconds, not scipy's general search over the other tail."""
    if count1 == count2:
        return 1.0
    return min(1.0, 2.0 * float(bdtr(min(count1, count2), count1 + count2, 0.5)))


def mean_lower_bound(samples: np.ndarray, alpha: float, *, max_bet: float = 0.9, horizon: int | None = None) -> float:
    """A lower confidence bound on the mean of i.i.d. samples in ``[0, 1]``: ``P(mean >= bound) >= 1 - alpha``.

    The betting bound of Waudby-Smith & Ramdas (2023) for bounded means, which generalises the Bernoulli betting
    sequence of :mod:`rs_plugin.sequential` to any ``[0, 1]``-valued samples. A gambler betting that the mean exceeds
    ``m`` multiplies her wealth by ``1 + lambda_i (X_i - m)`` at sample ``i``, with a predictable stake ``lambda_i``
    (the plug-in ``sqrt(2 ln(1 / alpha) / (horizon var_{i-1}))`` of the samples before ``i``, at most ``max_bet`` < 1,
    so her wealth stays positive for every ``m`` in ``[0, 1]``). Under mean ``m`` her wealth is a nonnegative martingale
    of mean 1, so by Ville's inequality it reaches ``1 / alpha`` with probability at most ``alpha``; since it
    decreases in ``m``, every ``m`` at or below the root of ``wealth(m) = 1 / alpha`` is excluded, and the root
    (taken on its excluded side, so never tighter than the exact one) is the bound.
    Tighter than Hoeffding's when the samples vary little (as the soft scores of a confident classifier do).

    ``horizon`` (default: the number of samples) is the sample size the stakes are tuned for. The stakes do not depend
    on how many samples are read, so for a fixed horizon the bounds of the first ``t`` samples, for every
    ``t <= horizon``, come from one martingale per ``m``: they hold at every ``t`` at once with probability at least
    ``1 - alpha`` (a confidence sequence), and reading them at a stopping time keeps the guarantee.
    """
    x = np.asarray(samples, dtype=np.float64).ravel()
    if x.size == 0 or not np.isfinite(x).all() or x.min() < 0 or x.max() > 1:
        raise ValueError("samples must be a non-empty array of values in [0, 1]")
    if not 0 < alpha < 1 or not 0 < max_bet < 1:
        raise ValueError(f"alpha and max_bet must lie in (0, 1), got {alpha} and {max_bet}")
    n, threshold = len(x), math.log(1 / alpha)
    if horizon is None:
        horizon = n
    elif isinstance(horizon, bool) or not isinstance(horizon, (int, np.integer)) or horizon < n:
        raise ValueError(f"horizon must be an int at least the number of samples ({n}), got {horizon!r}")
    t = np.arange(1, n + 1)
    means = (0.5 + np.cumsum(x)) / (t + 1)
    variances = (0.25 + np.cumsum((x - means) ** 2)) / (t + 1)
    previous = np.concatenate(([0.25], variances[:-1]))  # the variance known before each sample
    stakes = np.minimum(np.sqrt(2 * threshold / (horizon * previous)), max_bet)

    def excess(m: float) -> float:  # log wealth(m) - log(1 / alpha): decreasing in m
        return float(np.log1p(stakes * (x - m)).sum()) - threshold

    if excess(0.0) < 0:
        return 0.0
    top = float(x.mean())
    if excess(top) >= 0:  # wealth at the sample mean is at most 1 (concavity of log): no bound above it
        return top
    root = brentq(excess, 0.0, top, xtol=1e-12, rtol=4 * math.ulp(1.0))
    while root > 0 and excess(root) < 0:  # step onto the excluded side: never tighter than the exact bound
        root = max(root - 1e-12, 0.0)
    return root


def mean_upper_bound(samples: np.ndarray, alpha: float, *, horizon: int | None = None) -> float:
    """An upper confidence bound on the mean of i.i.d. samples in ``[0, 1]``: ``P(mean <= bound) >= 1 - alpha``
    (:func:`mean_lower_bound` of ``1 - samples``, a confidence sequence up to ``horizon`` likewise)."""
    return 1.0 - mean_lower_bound(1.0 - np.asarray(samples, dtype=np.float64), alpha, horizon=horizon)
