"""Certifying the soft smoothed classifier G(x) = E[softmax(f(x + noise))] against analytic truth.

A probit base classifier, f_A(z) = Phi(w.z + b) and f_B = 1 - f_A, has G_A(x) = Phi((w.x + b) / sqrt(1 + sigma^2
|w|^2)) in closed form, so argmax G is constant exactly on the side of the hyperplane w.x + b = 0 where x lies: its
true robust radius is the distance |w.x + b| / |w|. The certified radius must stay below it with probability at
least 1 - alpha over repeated seeded trials, and approach sigma / 2 (Phi^-1(G_A) - Phi^-1(G_B)) for large n.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binomtest, norm

from rs_plugin import ABSTAIN, SmoothedClassifier
from rs_plugin.bounds import lower_confidence_bound, mean_lower_bound, mean_upper_bound

SIGMA = 0.5


def probit(w: np.ndarray, b: float):
    """The base classifier returning log-probabilities (logits whose softmax is (1 - Phi(w.z + b), Phi(w.z + b)))."""
    w = np.asarray(w, dtype=np.float64)

    def base(batch: np.ndarray) -> np.ndarray:
        p = norm.cdf(batch.reshape(len(batch), -1) @ w + b)
        return np.log(np.clip(np.stack([1 - p, p], axis=1), 1e-300, 1))

    return base


def soft_truth(w: np.ndarray, b: float, x: np.ndarray) -> tuple[float, float, float]:
    """``(G_A, ideal soft radius, true radius)`` at ``x`` for the class A = 1."""
    g_a = float(norm.cdf((w @ x + b) / np.sqrt(1 + SIGMA**2 * (w @ w))))
    return g_a, SIGMA / 2 * float(norm.ppf(g_a) - norm.ppf(1 - g_a)), float((w @ x + b) / np.linalg.norm(w))


STEEP = np.array([4.0, 0.0, 0.0])  # nearly a hard classifier: the soft radius nearly reaches the true one


def test_the_soft_radius_is_sound_over_repeated_trials_and_a_radius_without_the_half_is_not() -> None:
    alpha, trials = 0.1, 300
    x = np.array([0.15, 0.3, -0.2], dtype=np.float32)
    g_a, ideal, true = soft_truth(STEEP, 0.0, x)
    assert ideal < true  # the soft classifier's own radius never reaches the true one
    g = SmoothedClassifier(probit(STEEP, 0.0), 2, SIGMA, seed=5)
    certificates = [g.certify(x, 50, 2000, alpha, smoothing="soft") for _ in range(trials)]
    assert all(c.smoothing == "soft" and c.prediction in (1, ABSTAIN) for c in certificates)
    assert sum(c.prediction == 1 for c in certificates) > trials / 2
    overstated = sum(c.radius > true for c in certificates)
    assert binomtest(overstated, trials, alpha, alternative="greater").pvalue > 0.01
    missed = sum(c.p_lower > g_a for c in certificates)  # the bound on G_A itself, at level alpha / 2
    assert binomtest(missed, trials, alpha / 2, alternative="greater").pvalue > 0.01
    # The 1/2 matters: twice the radius (a radius without it) overstates the true one in most trials.
    assert sum(2 * c.radius > true for c in certificates) > trials / 2


def test_for_large_n_the_soft_radius_approaches_the_ideal_one() -> None:
    x = np.array([0.4, 0.0, 0.0], dtype=np.float32)
    w = np.array([1.0, 0.5, 0.0])
    _, ideal, true = soft_truth(w, 0.0, x)
    certificate = SmoothedClassifier(probit(w, 0.0), 2, SIGMA, seed=1).certify(x, 100, 100_000, 0.001,
                                                                               smoothing="soft")
    assert 0.9 * ideal < certificate.radius <= ideal < true


def test_the_soft_and_the_hard_classifier_can_disagree_and_each_certificate_says_which_it_is() -> None:
    """60% of the noise gives the scores (0.4, 0.35, 0.25) (vote: class 0), 40% gives (0, 1, 0): the mean softmax
    is (0.24, 0.61, 0.15), so the soft classifier says 1 where the vote says 0."""

    def base(batch: np.ndarray) -> np.ndarray:
        first = batch[:, 0] < norm.ppf(0.6) * SIGMA
        probs = np.where(first[:, None], [0.4, 0.35, 0.25], [1e-12, 1.0, 1e-12])
        return np.log(probs)

    x = np.zeros(2, dtype=np.float32)
    g = SmoothedClassifier(base, 3, SIGMA, seed=0)
    hard, soft = g.certify(x, 100, 20_000, 0.001), g.certify(x, 100, 20_000, 0.001, smoothing="soft")
    assert (hard.prediction, hard.smoothing, hard.p_upper) == (0, "hard", None)
    assert (soft.prediction, soft.smoothing) == (1, "soft") and soft.p_lower > soft.p_upper


def test_labels_are_one_hot_so_the_soft_bound_of_a_hard_base_is_a_vote_bound() -> None:
    base = lambda batch: (batch[:, 0] > 0).astype(np.int64)  # noqa: E731
    g = SmoothedClassifier(base, 2, SIGMA, seed=3)
    x = np.array([0.3, 0.0], dtype=np.float32)
    soft = g.certify(x, 100, 10_000, 0.001, smoothing="soft")
    assert soft.prediction == 1 and soft.p_lower + soft.p_upper <= 1
    # a vote of the soft bound's samples: near the one-sided Clopper-Pearson bound of the same count and level
    assert lower_confidence_bound(soft.count, 10_000, 0.0005) - 0.01 < soft.p_lower <= soft.count / 10_000


def test_the_betting_bound_is_valid_and_near_clopper_pearson_on_votes() -> None:
    rng = np.random.default_rng(0)
    failures = sum(mean_lower_bound((rng.random(300) < 0.8).astype(float), 0.05) > 0.8 for _ in range(1000))
    assert binomtest(failures, 1000, 0.05, alternative="greater").pvalue > 0.01
    votes = (rng.random(10_000) < 0.9).astype(float)
    exact = lower_confidence_bound(int(votes.sum()), len(votes), 0.001)
    assert exact - 0.005 < mean_lower_bound(votes, 0.001) <= votes.mean()
    scores = rng.beta(40, 1, size=10_000)  # confident soft scores: far tighter than Hoeffding
    hoeffding = scores.mean() - np.sqrt(np.log(1 / 0.001) / (2 * len(scores)))
    assert hoeffding < mean_lower_bound(scores, 0.001) <= scores.mean()
    assert mean_upper_bound(1 - scores, 0.001) == pytest.approx(1 - mean_lower_bound(scores, 0.001))


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"smoothing": "medium"}, "smoothing must be one of hard, soft"),
        ({"smoothing": "soft", "target_radius": 0.2}, "'soft' certifies with fixed n"),
        ({"smoothing": "soft", "noise": "laplace"}, "laplace noise has no certificate for the soft"),
    ],
)
def test_what_soft_certification_refuses(options: dict, match: str) -> None:
    noise = options.pop("noise", "gaussian")
    g = SmoothedClassifier(probit(STEEP, 0.0), 2, SIGMA, noise=noise, seed=0)
    with pytest.raises(ValueError, match=match):
        g.certify(np.zeros(3, dtype=np.float32), 10, 100, 0.01, **options)


def test_the_torch_and_art_faces_certify_the_soft_classifier(digits_test) -> None:
    torch = pytest.importorskip("torch")
    x = digits_test[0][:6]
    network = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    with torch.random.fork_rng():
        torch.manual_seed(0)
        torch.nn.init.normal_(network[1].weight, std=2.0)
    soft = SmoothedClassifier(network, 10, 0.25, seed=0).certify_many(x, 50, 500, 0.01, smoothing="soft",
                                                                      progress=False)
    assert all(c.smoothing == "soft" and (c.radius > 0) == (c.prediction != ABSTAIN) for c in soft)
    art = pytest.importorskip("art")
    from art.estimators.classification import PyTorchClassifier

    from rs_plugin.adapters.art import SmoothedEstimator

    classifier = PyTorchClassifier(network, loss=torch.nn.CrossEntropyLoss(), input_shape=(1, 8, 8), nb_classes=10)
    estimator = SmoothedEstimator(classifier, 0.25, n0=50, alpha=0.01, seed=0)
    predictions, radii = estimator.certify(x, 500, smoothing="soft", progress=False)
    assert art and predictions.shape == radii.shape == (6,) and ((radii > 0) == (predictions != ABSTAIN)).all()


def test_the_command_line_certifies_the_soft_classifier_and_analyze_keeps_the_two_apart(tmp_path, capsys) -> None:
    pytest.importorskip("torch")
    import json

    from rs_plugin.cli import main

    common = ["certify", "--sigma", "0.25", "--n0", "50", "--n", "500", "--max-examples", "3", "--no-progress"]
    assert main([*common, "--out", str(tmp_path / "hard.tsv")]) == 0
    assert main([*common, "--smoothing", "soft", "--out", str(tmp_path / "soft.tsv")]) == 0
    assert json.loads((tmp_path / "soft.tsv.settings.json").read_text())["settings"]["smoothing"] == "soft"
    with pytest.raises(SystemExit):
        main([*common, "--smoothing", "medium", "--out", str(tmp_path / "x.tsv")])
    capsys.readouterr()
    assert main(["analyze", str(tmp_path / "hard.tsv"), str(tmp_path / "soft.tsv"), "--radii", "0", "0.25"]) == 0
    table = capsys.readouterr().out
    assert f"{tmp_path / 'soft.tsv'} (soft)" in table and f"{tmp_path / 'hard.tsv'} (soft)" not in table
