"""The statistics behind PREDICT and CERTIFY, against statsmodels, scipy and exact coverage."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binom, binomtest

from rs_plugin.bounds import lower_confidence_bound, top_two_differ, two_sided_pvalue, upper_confidence_bound

proportion_confint = pytest.importorskip("statsmodels.stats.proportion").proportion_confint

CASES = [(k, n) for n in (1, 2, 10, 100, 1000, 100_000) for k in sorted({0, 1, n // 3, n // 2, n - 1, n})]


@pytest.mark.parametrize("alpha", [0.001, 0.01, 0.05])
@pytest.mark.parametrize(("k", "n"), CASES)
def test_clopper_pearson_matches_statsmodels(k: int, n: int, alpha: float) -> None:
    low, high = proportion_confint(k, n, alpha=2 * alpha, method="beta")
    assert lower_confidence_bound(k, n, alpha) == pytest.approx(low, abs=1e-12)
    assert upper_confidence_bound(k, n, alpha) == pytest.approx(high, abs=1e-12)


@pytest.mark.parametrize("p", [0.05, 0.5, 0.83, 0.999])
@pytest.mark.parametrize("n", [20, 500])
def test_lower_bound_exact_coverage_is_at_least_one_minus_alpha(p: float, n: int) -> None:
    """Summed over the whole binomial distribution, the bound exceeds the truth with probability <= alpha."""
    alpha = 0.01
    ks = np.arange(n + 1)
    fails = np.array([lower_confidence_bound(int(k), n, alpha) > p for k in ks])
    upper_fails = np.array([upper_confidence_bound(int(k), n, alpha) < p for k in ks])
    assert binom.pmf(ks, n, p)[fails].sum() <= alpha
    assert binom.pmf(ks, n, p)[upper_fails].sum() <= alpha


def test_lower_bound_is_tight_for_large_n() -> None:
    """At n = 100,000 the bound sits within about 3.1 standard errors of the estimate (alpha = 0.001)."""
    k, n = 84_000, 100_000
    se = np.sqrt(0.84 * 0.16 / n)
    assert 0.84 - 3.3 * se < lower_confidence_bound(k, n, 0.001) < 0.84 - 2.9 * se


@pytest.mark.parametrize(("c1", "c2"), [(60, 40), (70, 30), (12, 0), (500, 480), (1, 0), (5, 5)])
@pytest.mark.parametrize("alpha", [0.001, 0.05])
def test_top_two_test_matches_scipy_binomtest(c1: int, c2: int, alpha: float) -> None:
    assert top_two_differ(c1, c2, alpha) == (binomtest(c1, c1 + c2, 0.5).pvalue <= alpha)


def test_the_top_two_p_value_is_scipys_binomtest_on_every_split_of_small_n_and_on_random_large_ones() -> None:
    """PREDICT's test computes scipy's exact two-sided p-value by symmetry: the same value on every split of every
    n up to 60 and on random large counts, so the same decision at any level. A one-sided tail (the p-value
    without the factor 2, a deliberately wrong test at twice the level) differs."""
    rng = np.random.default_rng(0)
    splits = [(c, n - c) for n in range(1, 61) for c in range(n + 1)]
    splits += [(int(c), int(n - c)) for n in rng.integers(1000, 200_000, 40) for c in [rng.integers(0, n + 1)]]
    ours = np.array([two_sided_pvalue(c1, c2) for c1, c2 in splits])
    scipys = np.array([binomtest(c1, c1 + c2, 0.5).pvalue for c1, c2 in splits])
    np.testing.assert_allclose(ours, scipys, rtol=1e-8, atol=1e-300)
    assert not np.allclose(np.minimum(ours, 1.0) / 2, scipys, rtol=1e-3)
