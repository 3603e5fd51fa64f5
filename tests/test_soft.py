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
    certificate = SmoothedClassifier(probit(w, 0.0), 2, SIGMA, seed=1).certify(x, 100, 100_000, 0.001, smoothing="soft")
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
        ({"smoothing": "soft", "target_radius": 0.2, "sequence": "bonferroni"}, "reads the betting bounds"),
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
    soft = SmoothedClassifier(network, 10, 0.25, seed=0).certify_many(
        x, 50, 500, 0.01, smoothing="soft", progress=False
    )
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
    sequential = tmp_path / "sequential.tsv"  # sequential soft CERTIFY: a samples column
    assert main([*common, "--smoothing", "soft", "--radius-tolerance", "0.05", "--out", str(sequential)]) == 0
    assert sequential.read_text().splitlines()[0].endswith("samples")
    with pytest.raises(SystemExit):
        main([*common, "--smoothing", "medium", "--out", str(tmp_path / "x.tsv")])
    capsys.readouterr()
    assert main(["analyze", str(tmp_path / "hard.tsv"), str(tmp_path / "soft.tsv"), "--radii", "0", "0.25"]) == 0
    table = capsys.readouterr().out
    assert f"{tmp_path / 'soft.tsv'} (soft)" in table and f"{tmp_path / 'hard.tsv'} (soft)" not in table


class Recorded:
    """The probit base classifier, keeping every output it returns (in the order the noisy copies were drawn)."""

    def __init__(self, w: np.ndarray, b: float) -> None:
        self.base, self.outputs = probit(w, b), []

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        self.outputs.append(self.base(batch))
        return self.outputs[-1]

    def estimation_pairs(self, n: int, selected: int) -> np.ndarray:
        """The ``(n, 2)`` pairs (selected class's softmax, runner-up's) of the last ``n`` noisy copies, read as the
        backend reads them."""
        from rs_plugin.backends import pairs_of, probabilities

        outputs = np.concatenate(self.outputs)[-n:]
        return pairs_of(probabilities(outputs, n, 2), np.full(n, selected))


def soft_radii(pairs: np.ndarray, alpha: float) -> dict[str, float]:
    """The soft radius from one trial's estimation pairs, correct and wrong: ``"sound"`` as certify must compute it
    (each bound at alpha / 2), ``"no half"`` without the 1/2, ``"plug-in"`` with the sample means in place of the
    bounds (no confidence at all)."""
    lower, upper = mean_lower_bound(pairs[:, 0], alpha / 2), mean_upper_bound(pairs[:, 1], alpha / 2)
    sound = SIGMA / 2 * float(norm.ppf(lower) - norm.ppf(upper))
    plug_in = SIGMA / 2 * float(norm.ppf(pairs[:, 0].mean()) - norm.ppf(pairs[:, 1].mean()))
    return {"sound": max(sound, 0.0), "no half": 2 * max(sound, 0.0), "plug-in": max(plug_in, 0.0)}


def too_often(overstated: int, trials: int, alpha: float) -> bool:
    """The soundness test: a one-sided binomial test rejects, at level 0.01, that radii overstate at rate <= alpha."""
    return binomtest(overstated, trials, alpha, alternative="greater").pvalue <= 0.01


def soft_trials(w: np.ndarray, x: np.ndarray, alpha: float, trials: int, n: int, seed: int) -> dict[str, list[float]]:
    """``trials`` seeded soft certificates of ``x``: each variant's radius per trial (the package's as ``"certify"``),
    checking that certify's radius and bounds are exactly the betting bounds at alpha / 2 of its own samples."""
    base = Recorded(w, 0.0)
    g = SmoothedClassifier(base, 2, SIGMA, seed=seed, batch_size=1000)
    radii: dict[str, list[float]] = {"certify": [], "sound": [], "no half": [], "plug-in": []}
    for _ in range(trials):
        base.outputs.clear()
        certificate = g.certify(x, 50, n, alpha, smoothing="soft")
        pairs = base.estimation_pairs(n, certificate.selected)
        assert certificate.p_lower == mean_lower_bound(pairs[:, 0], alpha / 2)  # not at alpha: the union bound
        assert certificate.p_upper == mean_upper_bound(pairs[:, 1], alpha / 2)
        radii["certify"].append(certificate.radius)
        for name, radius in soft_radii(pairs, alpha).items():
            radii[name].append(radius if certificate.selected == 1 else 0.0)  # class 0 is never certified here
    assert radii["certify"] == pytest.approx(radii["sound"], abs=1e-12)
    return radii


def test_the_soundness_test_passes_the_soft_certificate_and_fails_a_radius_without_the_half_or_without_bounds() -> None:
    """One test, applied to each variant on the same samples: the radius overstates G's own (ideal) radius
    sigma / 2 (Phi^-1(G_A) - Phi^-1(G_B)) in at most an alpha fraction of seeded trials. It can only overstate it
    when a bound fails, so the sound radius passes; twice the radius, or the plug-in radius of the sample means,
    overstates it in most trials.

    What a frequency test cannot see: a bound at the wrong level. At fixed n the betting bound fails far less often
    than its level (its width is about sigma sqrt(2 ln(1 / alpha) / n), so it fails with probability about
    1 - Phi(sqrt(2 ln(1 / alpha))): 0.007 at alpha = 0.05), so bounds at 2 alpha (no union bound) still pass.
    :func:`soft_trials` catches that one exactly instead: certify's bounds must equal the betting bounds at
    alpha / 2 of its own estimation samples."""
    alpha, trials = 0.1, 200
    x = np.array([0.15, 0.3, -0.2], dtype=np.float32)
    _, ideal, true = soft_truth(STEEP, 0.0, x)
    radii = soft_trials(STEEP, x, alpha, trials, 1000, seed=11)
    assert sum(r > 0 for r in radii["certify"]) > trials / 2
    assert not too_often(sum(r > ideal for r in radii["certify"]), trials, alpha)
    assert not too_often(sum(r > true for r in radii["certify"]), trials, alpha)
    assert too_often(sum(r > ideal for r in radii["no half"]), trials, alpha)
    assert too_often(sum(r > ideal for r in radii["plug-in"]), trials, alpha)


def test_bounds_at_twice_alpha_fail_the_exact_check_of_the_soft_bounds(monkeypatch) -> None:
    """The wrong variant the frequency test cannot see (bounds at alpha instead of alpha / 2) fails
    :func:`soft_trials`' exact check."""
    import rs_plugin.sequential

    real = rs_plugin.sequential.mean_lower_bound
    monkeypatch.setattr(
        rs_plugin.sequential, "mean_lower_bound", lambda samples, alpha, **options: real(samples, 2 * alpha, **options)
    )
    with pytest.raises(AssertionError):
        soft_trials(STEEP, np.array([0.15, 0.3, -0.2], dtype=np.float32), 0.1, 1, 1000, seed=11)


@pytest.mark.slow
def test_the_soft_certificate_is_sound_at_several_inputs_and_levels() -> None:
    """The soundness test of the default suite at more inputs, levels and trials (a shallow probit too, whose scores
    vary widely)."""
    for w, x, alpha in [
        (STEEP, np.array([0.05, 0.0, 0.0]), 0.05),
        (np.array([0.8, -0.6, 0.0]), np.array([0.9, 0.1, 0.3]), 0.2),
        (STEEP, np.array([0.3, 0.0, 0.0]), 0.01),
    ]:
        x = x.astype(np.float32)
        _, ideal, _ = soft_truth(w, 0.0, x)
        radii = soft_trials(w, x, alpha, 1000, 2000, seed=12)
        assert not too_often(sum(r > ideal for r in radii["certify"]), 1000, alpha)
        assert too_often(sum(r > ideal for r in radii["no half"]), 1000, alpha)


@pytest.mark.slow
def test_sequential_soft_certificates_are_sound_over_repeated_trials_and_stop_early() -> None:
    """Soft CERTIFY that stops at a target radius (reached or out of reach) or once the radius is settled: the radius
    overstates G's own in at most an alpha fraction of seeded trials, whatever checkpoint it stopped at, and twice the
    radius fails the same test. The rules stop early: fewer samples than n on average."""
    alpha, trials, n = 0.1, 100, 4000
    x = np.array([0.15, 0.3, -0.2], dtype=np.float32)
    _, ideal, _ = soft_truth(STEEP, 0.0, x)
    g = SmoothedClassifier(probit(STEEP, 0.0), 2, SIGMA, seed=21, batch_size=1000)
    for options in ({"target_radius": [0.5 * ideal, 0.8 * ideal]}, {"radius_tolerance": 0.01}):
        certificates = [g.certify(x, 50, n, alpha, smoothing="soft", **options) for _ in range(trials)]
        assert np.mean([c.n for c in certificates]) < 0.75 * n
        assert sum(c.radius > 0 for c in certificates) > trials / 2
        assert not too_often(sum(c.radius > ideal for c in certificates), trials, alpha)
        assert too_often(sum(2 * c.radius > ideal for c in certificates), trials, alpha)


def test_a_sequential_soft_run_that_never_settles_is_the_fixed_n_certificate() -> None:
    """The checkpoints only read the bounds: one that draws all n samples certifies what fixed n certifies (the same
    samples, the same bounds with horizon n)."""
    x = np.array([0.15, 0.3, -0.2], dtype=np.float32)
    g = SmoothedClassifier(probit(STEEP, 0.0), 2, SIGMA, seed=0, batch_size=256)
    fixed = g.certify(x, 50, 3000, 0.01, smoothing="soft", index=4)
    settled_never = g.certify(x, 50, 3000, 0.01, smoothing="soft", radius_tolerance=1e-12, index=4)
    assert settled_never == fixed and fixed.n == 3000


def test_the_soft_bounds_with_a_horizon_hold_at_every_checkpoint_at_once() -> None:
    """The betting bound with a fixed horizon is a confidence sequence: over seeded trials, the lower bound exceeds the
    mean at some checkpoint (every 10% of samples from 100) in at most an alpha fraction of trials."""
    from rs_plugin.sequential import SoftBounds

    alpha, trials, rng = 0.2, 300, np.random.default_rng(3)
    bounds = SoftBounds(alpha, 3000, stops_early=True)
    missed = 0
    for _ in range(trials):
        samples = rng.beta(2.0, 1.0, size=(3000, 2))  # mean 2/3 for both columns
        missed += any(bounds.bounds(samples[:t])[0] > 2 / 3 for t in bounds.checkpoints())
    assert not too_often(missed, trials, alpha / 2)
    with pytest.raises(ValueError, match="horizon"):
        mean_lower_bound(np.ones(10), 0.1, horizon=5)
