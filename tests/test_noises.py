"""Noise families: moments and distribution of both samplers, radius formulas, sigma validation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from rs_plugin.noises import Gaussian, Laplace, Noise, Uniform

SIGMA = 0.7
FAMILIES = [
    (Gaussian, 0.0, stats.norm(0, SIGMA)),
    (Laplace, 3.0, stats.laplace(0, SIGMA / math.sqrt(2))),
    (Uniform, -1.2, stats.uniform(-SIGMA * math.sqrt(3), 2 * SIGMA * math.sqrt(3))),
]


def numpy_draws(noise: Noise, size: int) -> np.ndarray:
    out = np.empty(size, dtype=np.float32)
    noise.sample(np.random.default_rng(0), out)
    return out.astype(np.float64)


def torch_draws(noise: Noise, size: int) -> np.ndarray:
    torch = pytest.importorskip("torch")
    from rs_plugin.adapters.torch import TorchStream

    out = torch.empty(size)
    TorchStream(noise, 0).fill(out)
    return out.double().numpy()


@pytest.mark.parametrize("draws", [numpy_draws, torch_draws], ids=["numpy", "torch"])
@pytest.mark.parametrize(("family", "excess_kurtosis", "law"), FAMILIES, ids=lambda v: getattr(v, "name", ""))
def test_samples_have_the_family_moments_and_law(draws, family, excess_kurtosis, law) -> None:
    sample = draws(family(SIGMA), 2_000_000)
    assert np.isfinite(sample).all()
    assert abs(sample.mean()) < 5 * SIGMA / math.sqrt(len(sample))
    assert sample.std() == pytest.approx(SIGMA, rel=0.004)
    assert stats.kurtosis(sample) == pytest.approx(excess_kurtosis, abs=0.06)
    assert stats.kstest(sample[:200_000], law.cdf).pvalue > 1e-3


@pytest.mark.parametrize("family", [Gaussian, Laplace, Uniform])
def test_samplers_fill_the_buffer_in_place_and_differ_per_draw(family) -> None:
    noise, rng = family(1.0), np.random.default_rng(1)
    out = np.zeros((3, 4), dtype=np.float32)
    noise.sample(rng, out)
    first = out.copy()
    noise.sample(rng, out)
    assert (first != 0).all() and not np.array_equal(first, out)


def test_radius_formulas() -> None:
    p = 0.9
    assert Gaussian(0.5).radius(p) == pytest.approx(0.5 * stats.norm.ppf(p))
    assert Laplace(0.5).radius(p) == pytest.approx(-(0.5 / math.sqrt(2)) * math.log(2 * (1 - p)))
    assert Uniform(0.5).radius(p) == pytest.approx(2 * 0.5 * math.sqrt(3) * (p - 0.5))
    for family in (Gaussian, Laplace, Uniform):
        assert family(0.5).radius(0.5) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("family", [Gaussian, Laplace, Uniform])
@pytest.mark.parametrize("radius", [0.0, 0.1, 0.37, 0.8])
def test_p_needed_inverts_radius(family, radius: float) -> None:
    noise = family(0.5)
    assert noise.radius(noise.p_needed(radius)) == pytest.approx(radius, abs=1e-9)


def test_radii_in_other_norms_follow_norm_inequalities() -> None:
    assert Gaussian(1.0).radii(0.8, 64) == {"l1": 0.8, "l2": 0.8, "linf": 0.1}
    assert Laplace(1.0).radii(0.8, 64) == {"l1": 0.8, "l2": 0.1, "linf": 0.0125}


@pytest.mark.parametrize("sigma", [0, -0.5, float("nan"), float("inf")])
def test_sigma_must_be_positive_and_finite(sigma: float) -> None:
    with pytest.raises(ValueError, match="sigma"):
        Gaussian(sigma)


def test_sigma_must_be_a_number() -> None:
    with pytest.raises(TypeError, match="sigma"):
        Laplace("0.5")
