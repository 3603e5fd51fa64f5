"""Pre-flight diagnostics: what n and alpha can certify is said before any sample is drawn, and it is the truth."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.stats import norm

from rs_plugin import SmoothedClassifier
from rs_plugin.diagnostics import PreflightWarning, largest_radius
from rs_plugin.noises import Gaussian, Laplace


class Counting:
    """A base classifier that always answers class 0 and counts the inputs it was shown."""

    def __init__(self) -> None:
        self.seen = 0

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        self.seen += len(batch)
        return np.zeros(len(batch), dtype=np.int64)


X = np.full((3, 4), 0.5, dtype=np.float32)


@pytest.mark.parametrize("n", [10, 100, 10_000])
@pytest.mark.parametrize("noise", [Gaussian(0.25), Laplace(0.5)])
def test_the_largest_radius_is_what_unanimous_samples_certify(noise, n):
    """Analytic: all n samples on one class give the Clopper-Pearson bound alpha ** (1 / n); a base classifier that
    always answers the same class reaches exactly that radius."""
    assert largest_radius(noise, n, 0.001) == pytest.approx(noise.radius(0.001 ** (1 / n)), rel=1e-9)
    smoothed = SmoothedClassifier(Counting(), 2, noise.sigma, noise=noise.name, seed=0)
    assert smoothed.certify(X[0], 10, n, 0.001).radius == pytest.approx(largest_radius(noise, n, 0.001), rel=1e-9)


def test_the_readme_figure_for_the_tightness_run():
    """n = 10,000 and alpha = 0.001 certify no radius above 0.25 * Phi^-1(0.001 ** (1 / 10000)), about 0.8."""
    assert largest_radius(Gaussian(0.25), 10_000, 0.001) == pytest.approx(0.25 * norm.ppf(0.001**1e-4))
    assert round(largest_radius(Gaussian(0.25), 10_000, 0.001), 1) == 0.8


def test_sequential_certification_never_exceeds_its_largest_radius():
    base = Counting()
    smoothed = SmoothedClassifier(base, 2, 0.25, seed=0)
    with pytest.warns(PreflightWarning, match="target_radius 2 exceeds the largest radius"):
        (certificate,) = smoothed.certify_many(X[:1], 10, 1000, 0.001, target_radius=[0.25, 2.0], progress=False)
    best = largest_radius(Gaussian(0.25), 1000, 0.001, sequence="betting")
    assert 0.25 <= certificate.radius <= best < 2.0


@pytest.mark.parametrize("sequence", [None, "betting", "bonferroni"])
@pytest.mark.parametrize("alpha", [0.2, 0.01, 0.001, 1e-6])
def test_the_smallest_n_a_refusal_names_is_exact_for_fixed_n_and_each_sequence(sequence, alpha):
    """``use n >= m``: m - 1 samples are refused and m certify a radius, fixed or sequential (a sequential run once
    named the fixed-n figure, which its own bound refused)."""
    smoothed = SmoothedClassifier(Counting(), 2, 0.25, seed=0)
    options = {} if sequence is None else {"target_radius": 0.1, "sequence": sequence}
    with pytest.raises(ValueError, match=r"use n >= (\d+)$") as refused:
        smoothed.certify(X[0], 10, 2, alpha, **options)
    needed = int(refused.value.args[0].rsplit(" ", 1)[1])
    if needed > 2:
        with pytest.raises(ValueError, match=f"n={needed - 1} .*use n >= {needed}$"):
            smoothed.certify(X[0], 10, needed - 1, alpha, **options)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PreflightWarning)
        assert smoothed.certify(X[0], 10, needed, alpha, **options).radius > 0


def test_n_and_alpha_that_can_only_abstain_are_refused_before_any_sample():
    base = Counting()
    smoothed = SmoothedClassifier(base, 2, 0.25, seed=0)
    with pytest.raises(ValueError, match=r"n=9 with alpha=0.001 cannot certify any radius.*use n >= 10"):
        smoothed.certify_many(X, 10, 9, 0.001, progress=False)
    with pytest.raises(ValueError, match=r"n=10 with alpha=0.001: PREDICT always abstains.*use n >= 11"):
        smoothed.predict_many(X, 10, 0.001, progress=False)
    assert base.seen == 0
    # the limits are exact: one more sample and the answer is no longer forced
    assert smoothed.certify(X[0], 10, 10, 0.001).radius > 0
    assert smoothed.predict(X[0], 11, 0.001) == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        smoothed.predict_many(X, 11, 0.001, progress=False)


def test_only_unanimous_certification_is_warned_about():
    smoothed = SmoothedClassifier(Counting(), 2, 0.25, seed=0)
    with pytest.warns(PreflightWarning, match="only an example whose 10 samples all agree is certified"):
        smoothed.certify_many(X, 10, 10, 0.001, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        smoothed.certify_many(X, 10, 100, 0.001, progress=False)


@pytest.mark.parametrize("as_list", [False, True])
def test_inputs_on_another_scale_than_sigma_are_warned_about(as_list):
    pixels = np.random.default_rng(0).integers(0, 256, (3, 4)).astype(np.float32)  # 0-255, not [0, 1]
    smoothed = SmoothedClassifier(Counting(), 2, 0.25, seed=0)
    xs = list(pixels) if as_list else pixels
    with pytest.warns(PreflightWarning, match=r"the inputs span \[\d+, \d+\], over 100 times sigma=0.25"):
        smoothed.certify_many(xs, 10, 100, 0.001, progress=False)
    with pytest.warns(PreflightWarning, match="scale the inputs to"):
        smoothed.predict_many(xs, 100, 0.001, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        smoothed.certify_many(pixels / 255, 10, 100, 0.001, progress=False)
        smoothed.certify_many(iter(pixels / 255), 10, 100, 0.001, progress=False)
