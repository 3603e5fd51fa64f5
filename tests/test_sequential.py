"""Sequential CERTIFY at a target radius: as sound as fixed-n CERTIFY, with far fewer samples."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binomtest

from rs_plugin import SmoothedClassifier
from rs_plugin.sequential import checkpoints, spend_alpha

AXIS = np.eye(4, dtype=np.float32)[0]


def halfspace(batch: np.ndarray) -> np.ndarray:
    return (batch @ AXIS > 0).astype(np.int64)


def at(distance: float) -> np.ndarray:
    return AXIS * distance


def test_schedule_is_geometric_ends_at_n_and_spends_exactly_alpha() -> None:
    assert checkpoints(100_000) == [100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600, 51200, 100_000]
    assert checkpoints(400) == [100, 200, 400] and checkpoints(50) == [50]
    levels = spend_alpha(0.001, 11)
    assert sum(levels) == pytest.approx(0.001) and levels[-1] == pytest.approx(0.0005)
    assert spend_alpha(0.01, 1) == [0.01]


@pytest.mark.parametrize("noise", ["gaussian", "laplace"])
def test_certifying_a_radius_beyond_the_true_distance_happens_at_most_alpha_of_the_time(noise: str) -> None:
    """True distance just below r: over many seeded trials, 'certified at r' stays within alpha."""
    alpha, trials, r = 0.05, 1000, 0.3
    g = SmoothedClassifier(halfspace, 2, 0.5, noise=noise, seed=0)
    wrong = sum(g.certify(at(0.97 * r), 20, 10_000, alpha, target_radius=r).radius >= r for _ in range(trials))
    assert binomtest(wrong, trials, alpha, alternative="greater").pvalue > 0.01


@pytest.mark.parametrize(("distance", "robust"), [(0.9, True), (0.1, False)])
def test_clear_cases_are_decided_with_a_tenth_of_the_samples(distance: float, robust: bool) -> None:
    n, r, trials = 100_000, 0.3, 100
    g = SmoothedClassifier(halfspace, 2, 0.5, seed=1)
    certs = [g.certify(at(distance), 100, n, 0.001, target_radius=r) for _ in range(trials)]
    assert np.mean([c.n for c in certs]) <= n / 10
    assert np.mean([(c.radius >= r) == robust for c in certs]) >= 0.95
    assert all(c.num_samples == 100 + c.n for c in certs)


def test_several_radii_are_decided_together() -> None:
    g = SmoothedClassifier(halfspace, 2, 0.5, seed=2)
    cert = g.certify(at(0.3), 100, 100_000, 0.001, target_radius=[0.05, 0.6])
    assert 0.05 <= cert.radius < 0.3 and cert.n < 100_000
    undecided = g.certify(at(0.3), 100, 100_000, 0.001, target_radius=0.299)
    assert undecided.n == 100_000  # too close to call: sequential uses all n samples, like fixed-n


def test_without_target_radius_certify_is_the_fixed_n_procedure() -> None:
    cert = SmoothedClassifier(halfspace, 2, 0.5, seed=3).certify(at(0.9), 100, 100_000, 0.001)
    assert cert.n == 100_000 and cert.num_samples == 100_100
