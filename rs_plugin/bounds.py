"""Confidence bounds and tests on binomial counts, the statistics behind PREDICT and CERTIFY."""

from __future__ import annotations

from scipy.stats import beta, binomtest


def lower_confidence_bound(k: int, n: int, alpha: float) -> float:
    """One-sided Clopper-Pearson bound: ``P(p >= bound) >= 1 - alpha`` for ``k ~ Binomial(n, p)``.

    Equal to the lower end of statsmodels' two-sided ``proportion_confint(k, n, 2 * alpha, "beta")``.
    """
    return 0.0 if k == 0 else float(beta.ppf(alpha, k, n - k + 1))


def upper_confidence_bound(k: int, n: int, alpha: float) -> float:
    """One-sided Clopper-Pearson bound: ``P(p <= bound) >= 1 - alpha`` for ``k ~ Binomial(n, p)``."""
    return 1.0 if k == n else float(beta.ppf(1 - alpha, k + 1, n - k))


def top_two_differ(count1: int, count2: int, alpha: float) -> bool:
    """Whether a two-sided binomial test rejects, at level ``alpha``, that the top two classes are equally likely.

    This is PREDICT's test (Hung & Fithian 2019): when it rejects, the top class is the most likely one
    with probability at least ``1 - alpha``.
    """
    return binomtest(count1, count1 + count2, p=0.5).pvalue <= alpha
