"""PREDICT and CERTIFY against analytic truth: a linear base classifier.

For f(x) = 1[w.x + b > 0] and any symmetric noise, the smoothed classifier equals f, and the distance
from x to f's boundary is exactly how far g's prediction is robust. With w = e_1 every noise family's
radius formula is tight: Gaussian (l2), Laplace and uniform (l1) all certify |x_1 + b| as n grows.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binomtest, norm

from rs_plugin import ABSTAIN, SmoothedClassifier

DIM = 6


def halfspace(w: np.ndarray, b: float):
    """The linear base classifier 1[w.x + b > 0] on a batch."""
    w = np.asarray(w, dtype=np.float32)
    return lambda batch: (batch.reshape(len(batch), -1) @ w + b > 0).astype(np.int64)


def point_at(distance: float, w: np.ndarray, b: float) -> np.ndarray:
    """A point at signed l2 distance ``distance`` from the hyperplane w.x + b = 0."""
    unit = w / np.linalg.norm(w)
    return (unit * (distance - b / np.linalg.norm(w))).astype(np.float32)


AXIS = np.eye(DIM)[0]
SLANTED = np.array([1.0, -2.0, 0.5, 0.0, 3.0, 1.0])


@pytest.mark.parametrize("noise", ["gaussian", "laplace", "uniform"])
@pytest.mark.parametrize("distance", [-0.6, 0.3, 0.8])
def test_smoothed_classifier_equals_linear_base_and_certifies_its_distance(noise: str, distance: float) -> None:
    sigma = 0.5
    g = SmoothedClassifier(halfspace(AXIS, 0.1), 2, sigma, noise=noise, seed=1)
    x = point_at(distance, AXIS, 0.1)
    expected = int(distance > 0)
    assert g.predict(x, 2000, 0.001) == expected
    cert = g.certify(x, 100, 100_000, 0.001)
    assert cert.prediction == expected
    assert cert.norm == ("l2" if noise == "gaussian" else "l1")
    assert cert.num_samples == 100_100 and cert.n == 100_000
    assert cert.radius <= abs(distance)  # sound (fails with probability <= alpha)
    assert cert.radius >= 0.95 * abs(distance)  # and tight for large n


def test_uniform_noise_certifies_at_most_its_half_width() -> None:
    """Uniform noise on [-a, a] cannot certify beyond a = sigma sqrt(3), however far the boundary is."""
    g = SmoothedClassifier(halfspace(AXIS, 0.0), 2, 0.5, noise="uniform", seed=1)
    cert = g.certify(point_at(3.0, AXIS, 0.0), 100, 100_000, 0.001)
    assert cert.count == 100_000
    assert 0.99 * 0.5 * np.sqrt(3) < cert.radius < 0.5 * np.sqrt(3)


def test_certified_l2_radius_of_a_slanted_hyperplane_is_its_euclidean_distance() -> None:
    g = SmoothedClassifier(halfspace(SLANTED, -0.4), 2, 0.25, seed=2)
    cert = g.certify(point_at(0.4, SLANTED, -0.4), 100, 100_000, 0.001)
    assert cert.prediction == 1 and 0.38 < cert.radius <= 0.4
    assert cert.radii["linf"] == pytest.approx(cert.radius / np.sqrt(DIM))


def test_certify_overstates_the_radius_at_most_alpha_of_the_time() -> None:
    """Repeated seeded trials: the rate of radii beyond the true distance stays under alpha."""
    alpha, trials, distance, sigma = 0.05, 1000, 0.2, 0.5
    x = point_at(distance, AXIS, 0.0)
    g = SmoothedClassifier(halfspace(AXIS, 0.0), 2, sigma, seed=3)
    overstated = sum(g.certify(x, 20, 200, alpha).radius > distance for _ in range(trials))
    assert binomtest(overstated, trials, alpha, alternative="greater").pvalue > 0.01
    # The bound is not vacuous: Clopper-Pearson's conservatism keeps the rate below, but near, alpha.
    assert overstated > 0


def test_predict_returns_the_wrong_class_at_most_alpha_of_the_time() -> None:
    """Close to the boundary (p_A = 0.55) PREDICT mostly abstains, and errs in under alpha of the trials."""
    alpha, trials, sigma = 0.05, 1000, 0.5
    x = point_at(sigma * norm.ppf(0.55), AXIS, 0.0)
    g = SmoothedClassifier(halfspace(AXIS, 0.0), 2, sigma, seed=4)
    answers = np.array([g.predict(x, 100, alpha) for _ in range(trials)])
    wrong = int((answers == 0).sum())
    assert binomtest(wrong, trials, alpha, alternative="greater").pvalue > 0.01
    assert (answers == ABSTAIN).mean() > 0.5


def test_predict_abstains_on_the_boundary() -> None:
    """With p_A = p_B = 1/2 there is no right answer: PREDICT must abstain at least 1 - alpha of the time."""
    alpha, trials = 0.05, 300
    g = SmoothedClassifier(halfspace(AXIS, 0.0), 2, 1.0, seed=5)
    answered = sum(g.predict(np.zeros(DIM, np.float32), 200, alpha) != ABSTAIN for _ in range(trials))
    assert binomtest(answered, trials, alpha, alternative="greater").pvalue > 0.01


def test_certify_abstains_when_no_class_reaches_one_half() -> None:
    g = SmoothedClassifier(halfspace(AXIS, 0.0), 2, 1.0, seed=6)
    cert = g.certify(np.zeros(DIM, np.float32), 100, 1000, 0.001)
    assert cert.abstained and cert.prediction == ABSTAIN and cert.radius == 0.0
    assert cert.radii == {"l1": 0.0, "l2": 0.0, "linf": 0.0} and cert.p_lower < 0.5


def test_selection_and_estimation_use_separate_samples() -> None:
    """CERTIFY evaluates the base n0 + n times, never more than batch_size at once."""
    sizes: list[int] = []

    def base(batch: np.ndarray) -> np.ndarray:
        sizes.append(len(batch))
        return np.zeros(len(batch), dtype=np.int64)

    cert = SmoothedClassifier(base, 3, 0.5, batch_size=64, seed=0).certify(np.zeros(4), 10, 150, 0.01)
    assert sizes == [10, 64, 64, 22]
    assert cert.num_samples == 160 and cert.count == 150 and cert.prediction == 0


def test_same_seed_same_result_and_other_seed_other_noise() -> None:
    x = point_at(0.3, AXIS, 0.0)

    def certify(seed: int):
        return SmoothedClassifier(halfspace(AXIS, 0.0), 2, 0.5, seed=seed).certify(x, 100, 5000, 0.001)

    assert certify(7) == certify(7)
    assert certify(7).count != certify(8).count


def test_per_example_seeding_makes_any_split_of_a_dataset_agree() -> None:
    rng = np.random.default_rng(0)
    xs = rng.uniform(-0.5, 0.5, size=(12, DIM)).astype(np.float32)
    make = lambda: SmoothedClassifier(halfspace(AXIS, 0.0), 2, 0.5, seed=11)  # noqa: E731
    whole = make().certify_many(xs, 50, 500, 0.01, progress=False)
    first = make().certify_many(xs[:5], 50, 500, 0.01, progress=False)
    second = make().certify_many(xs[5:], 50, 500, 0.01, indices=range(5, 12), progress=False)
    assert whole == first + second
    reversed_order = make().certify_many(xs[::-1], 50, 500, 0.01, indices=range(11, -1, -1), progress=False)
    assert whole == reversed_order[::-1]
    predictions = make().predict_many(xs, 500, 0.01, progress=False)
    assert predictions.tolist() == [make().predict(x, 500, 0.01, index=i) for i, x in enumerate(xs)]


def test_scores_are_accepted_as_well_as_labels() -> None:
    w = AXIS.astype(np.float32)
    scores = lambda batch: np.stack([-(batch @ w), batch @ w], axis=1)  # noqa: E731
    x = point_at(0.4, AXIS, 0.0)
    by_scores = SmoothedClassifier(scores, 2, 0.5, seed=9).certify(x, 100, 2000, 0.001)
    by_labels = SmoothedClassifier(halfspace(AXIS, 0.0), 2, 0.5, seed=9).certify(x, 100, 2000, 0.001)
    assert by_scores == by_labels
