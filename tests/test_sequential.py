"""Sequential CERTIFY: as sound as fixed-n CERTIFY for every stopping rule, with far fewer samples.

Soundness is tested where it is decided: (1) the confidence sequences' bounds hold at every checkpoint of
whole sample paths at once (the worst stopping rule), checked on many seeded Binomial paths; (2) each
stopping mode (targets, abandoned targets, radius tolerance) run end to end on analytic points. Each
failure rate must not exceed alpha by a one-sided binomial test; re-testing a fixed-level Clopper-Pearson
bound at every checkpoint (the mistake to avoid) is rejected by the same tests.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import numpy as np
import pytest
from scipy.special import betaln
from scipy.stats import beta as beta_distribution
from scipy.stats import binomtest, norm

from rs_plugin import SmoothedClassifier
from rs_plugin.bounds import lower_confidence_bound
from rs_plugin.noises import Gaussian
from rs_plugin.sequential import (
    SEQUENCES,
    BettingSequence,
    BonferroniSequence,
    ConfidenceSequence,
    estimate,
    make_sequence,
)

AXIS = np.eye(4, dtype=np.float32)[0]
SIGMA = 0.25
NOISE = Gaussian(SIGMA)


def halfspace(batch: np.ndarray) -> np.ndarray:
    return (batch @ AXIS > 0).astype(np.int64)


def at(distance: float) -> np.ndarray:
    return AXIS * distance


def radius(p: float) -> float:
    return NOISE.radius(p) if p >= 0.5 else 0.0


class RetestedClopperPearson(ConfidenceSequence):
    """The mistake: a Clopper-Pearson bound at the full level alpha, re-read at every betting checkpoint."""

    def checkpoints(self, n: int) -> list[int]:
        return BettingSequence(self.alpha).checkpoints(n)

    def lower(self, k: int, t: int) -> float:
        return lower_confidence_bound(k, t, self.alpha)


def not_above(failures: int, trials: int, alpha: float) -> bool:
    """Whether ``failures`` in ``trials`` is consistent with a failure rate of at most ``alpha``."""
    return binomtest(failures, trials, alpha, alternative="greater").pvalue > 0.01


# ----------------------------------------------------------------------------------------------- the bounds


def test_bonferroni_schedule_doubles_ends_at_n_and_spends_exactly_alpha() -> None:
    sequence = BonferroniSequence(0.001, 100_000)
    assert sequence.checkpoints(100_000) == [100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600, 51200, 100_000]
    assert sum(sequence.levels.values()) == pytest.approx(0.001) and sequence.levels[100_000] == 0.0005
    assert BonferroniSequence(0.01, 50).levels == {50: 0.01}
    assert sequence.lower(900, 1600) == lower_confidence_bound(900, 1600, 0.00005)


def test_betting_checkpoints_grow_by_a_tenth_and_end_at_n() -> None:
    points = BettingSequence(0.001).checkpoints(100_000)
    assert points[:4] == [100, 110, 121, 133] and points[-1] == 100_000
    assert all(1.05 < b / a < 1.15 for a, b in itertools.pairwise(points[1:-1]))
    assert BettingSequence(0.001).checkpoints(50) == [50]


@pytest.mark.parametrize("t", [1, 40, 5793, 100_000])
def test_betting_bound_with_every_sample_a_success_is_its_closed_form(t: int) -> None:
    """All successes: W_t(m) = B(1 + t, b) / B(1, b) / m^t, so the bound is (alpha B(1 + t, b) / B(1, b))^(1/t)."""
    alpha, (a, b) = 0.001, BettingSequence.prior
    exact = math.exp((math.log(alpha) + betaln(a + t, b) - betaln(a, b)) / t)
    bound = BettingSequence(alpha).lower(t, t)
    assert exact - 1e-13 <= bound <= exact


def test_betting_bound_is_the_end_of_the_set_wealth_has_not_excluded() -> None:
    """At the bound the wealth has reached 1/alpha (excluded), just above it has not; the bound is below CP's."""
    rng = np.random.default_rng(0)
    sequence = BettingSequence(0.01)
    for _ in range(200):
        t = int(rng.integers(1, 200_000))
        k = int(rng.integers(1, t + 1))
        bound = sequence.lower(k, t)
        assert 0 < bound <= lower_confidence_bound(k, t, 0.01) <= k / t
        assert sequence.log_wealth(k, t, bound) >= math.log(100)
        assert sequence.log_wealth(k, t, bound + 1e-9 * (1 - bound)) < math.log(100)
    assert sequence.lower(0, 10) == 0.0


@pytest.mark.parametrize("p", [0.6, 0.9, 0.999])
def test_betting_bounds_hold_at_every_checkpoint_at_once(p: float) -> None:
    """20,000 seeded Binomial paths to n = 100,000: a bound above p at ANY checkpoint (the worst stopping
    rule) happens at most alpha of the time; for the re-tested Clopper-Pearson bound far more often."""
    alpha, n, trials = 0.05, 100_000, 10_000
    points = np.array(BettingSequence(alpha).checkpoints(n))
    rng = np.random.default_rng(1)
    k = np.cumsum(rng.binomial(np.diff(points, prepend=0), p, size=(trials, len(points))), axis=1)
    a, b = BettingSequence.prior
    log_wealth = betaln(a + k, b + points - k) - betaln(a, b) - k * math.log(p) - (points - k) * math.log1p(-p)
    excluded = (log_wealth >= math.log(1 / alpha)) & (k > p * points)  # p below the sequence's lower bound
    assert not_above(int(excluded.any(axis=1).sum()), trials, alpha)
    retested = beta_distribution.ppf(alpha, np.maximum(k, 1), points - k + 1) > p
    assert not not_above(int(retested.any(axis=1).sum()), trials, alpha)


# ------------------------------------------------------------------------- the stopping modes, end to end

MODES = {
    # truth p just at the threshold: "certified" would be wrong; the worst case for a target
    "targets": dict(thresholds=[0.9]),
    # the same, with a target no budget can certify (abandoned at the start) and one certified early
    "futility": dict(thresholds=[0.6, 0.9, 0.99999]),
    "tolerance": dict(thresholds=[], radius_tolerance=0.02, radius=radius),
}


def failures(sequence: Callable[[], ConfidenceSequence], mode: str, p: float, trials: int, n: int = 1000) -> int:
    rng = np.random.default_rng(2)
    wrong = 0
    for _ in range(trials):
        _, _, lower = estimate(lambda m: int(rng.binomial(m, p)), n, sequence(), **MODES[mode])
        wrong += lower > p
    return wrong


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("name", ["betting", "bonferroni"])
def test_every_mode_gives_a_bound_above_the_truth_at_most_alpha_of_the_time(mode: str, name: str) -> None:
    alpha, trials = 0.05, 150
    wrong = failures(lambda: make_sequence(name, alpha, 1000), mode, 0.9, trials)
    assert not_above(wrong, trials, alpha)


@pytest.mark.slow
@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("name", ["betting", "bonferroni"])
@pytest.mark.parametrize("p", [0.6, 0.9, 0.99])
def test_every_mode_stays_under_alpha_over_many_trials(mode: str, name: str, p: float) -> None:
    alpha, trials = 0.05, 1000
    thresholds = {"targets": [p], "futility": [0.55, p, 0.99999], "tolerance": []}[mode]
    rng = np.random.default_rng(3)
    wrong = 0
    for _ in range(trials):
        options = dict(MODES[mode], thresholds=thresholds)
        _, _, lower = estimate(lambda m: int(rng.binomial(m, p)), 3000, make_sequence(name, alpha, 3000), **options)
        wrong += lower > p
    assert not_above(wrong, trials, alpha)


def test_the_same_end_to_end_test_rejects_a_re_tested_fixed_level_bound() -> None:
    trials = 300
    assert not not_above(failures(lambda: RetestedClopperPearson(0.05), "targets", 0.9, trials), trials, 0.05)


@pytest.mark.parametrize("noise", ["gaussian", "laplace"])
@pytest.mark.parametrize("options", [dict(target_radius=0.3), dict(radius_tolerance=0.05)])
def test_certifying_beyond_the_true_distance_happens_at_most_alpha_of_the_time(noise: str, options: dict) -> None:
    """A linear base classifier at distance just below r: CERTIFY claiming radius >= r is a failure.
    (``pytest -m slow`` runs every mode on far more trials at the level of the estimation.)"""
    alpha, trials, r = 0.05, 200, 0.3
    g = SmoothedClassifier(halfspace, 2, 0.5, noise=noise, seed=0)
    wrong = sum(g.certify(at(0.97 * r), 20, 1000, alpha, **options).radius >= r for _ in range(trials))
    assert not_above(wrong, trials, alpha)


# -------------------------------------------------------------------------------------- samples saved


def test_an_input_whose_samples_all_succeed_is_certified_at_075_with_half_the_bonferroni_samples() -> None:
    """sigma 0.25, radius 0.75 (p >= 0.99865): fixed-n Clopper-Pearson needs 5,114 straight successes."""
    tau, n = NOISE.p_needed(0.75), 100_000
    used = {name: estimate(lambda m: m, n, make_sequence(name, 0.001, n), [tau])[1] for name in SEQUENCES}
    assert used["bonferroni"] == 12_800 and 5114 < used["betting"] <= 6400


def test_a_target_beyond_what_n_can_certify_is_abandoned_at_the_start() -> None:
    """With n = 100,000 and alpha = 0.001 nothing beyond ~0.94 is certifiable at sigma 0.25: radius 1.0 does
    not keep an input sampling once 0.25 and 0.5 are decided."""
    n = 100_000
    sequence = make_sequence("betting", 0.001, n)
    assert radius(sequence.lower(n, n)) < 1.0
    _, used, lower = estimate(lambda m: m, n, sequence, [NOISE.p_needed(r) for r in (0.25, 0.5, 1.0)])
    assert used < 500 and radius(lower) >= 0.5


@pytest.mark.parametrize(("distance", "robust"), [(0.9, True), (0.1, False)])
@pytest.mark.parametrize("name", ["betting", "bonferroni"])
def test_clear_cases_are_decided_with_a_tenth_of_the_samples(distance: float, robust: bool, name: str) -> None:
    n, r, trials = 100_000, 0.3, 30
    g = SmoothedClassifier(halfspace, 2, 0.5, seed=1)
    certs = [g.certify(at(distance), 100, n, 0.001, target_radius=r, sequence=name) for _ in range(trials)]
    assert np.mean([c.n for c in certs]) <= n / 10
    assert np.mean([(c.radius >= r) == robust for c in certs]) >= 0.95
    assert all(c.num_samples == 100 + c.n for c in certs)


def test_several_radii_are_decided_together_and_a_hopeless_one_is_abandoned_as_fixed_n_would_fail() -> None:
    g = SmoothedClassifier(halfspace, 2, 0.5, seed=2)
    cert = g.certify(at(0.3), 100, 100_000, 0.001, target_radius=[0.05, 0.6])
    assert 0.05 <= cert.radius < 0.3 and cert.n < 5000
    # true distance 0.3, target 0.299: no bound from 100,000 samples gets there (fixed-n's does not either)
    assert g.certify(at(0.3), 100, 100_000, 0.001).radius < 0.299
    hopeless = g.certify(at(0.3), 100, 100_000, 0.001, target_radius=0.299)
    assert hopeless.radius < 0.299 and hopeless.n < 20_000


@pytest.mark.parametrize("distance", [0.1, 0.3, 0.6])
def test_the_tolerance_mode_radius_is_near_fixed_ns_with_a_fraction_of_the_samples(distance: float) -> None:
    """Linear base classifier (sigma 0.25, n = 20,000): the tolerance radius falls short of fixed-n CERTIFY's
    by at most eps (+ the sequence's small cost at n) on average, with at most half the samples."""
    n, eps, trials = 20_000, 0.05, 20
    g = SmoothedClassifier(halfspace, 2, SIGMA, seed=4)
    fixed = [g.certify(at(distance), 100, n, 0.001).radius for _ in range(trials)]
    early = [g.certify(at(distance), 100, n, 0.001, radius_tolerance=eps) for _ in range(trials)]
    assert np.mean(fixed) - np.mean([c.radius for c in early]) <= eps
    assert np.mean([c.n for c in early]) <= n / 2
    assert all(c.radius <= distance for c in early)


def test_betting_needs_fewer_samples_than_bonferroni_on_analytic_points() -> None:
    """The default is the better bound: summed over points around the radii 0.25-0.75, for targets and tolerance."""
    n, rng = 100_000, np.random.default_rng(5)
    used = {"betting": 0, "bonferroni": 0}
    targets = [NOISE.p_needed(r) for r in (0.25, 0.5, 0.75)]
    for p in norm.cdf(np.array([0.5, 1.5, 2.5, 3.5, 4.5])):
        draw = lambda m, p=p: int(rng.binomial(m, p))  # noqa: E731
        for name in used:
            for options in (dict(thresholds=targets), dict(radius_tolerance=0.05, radius=radius)):
                used[name] += estimate(draw, n, make_sequence(name, 0.001, n), **options)[1]
    assert used["betting"] < 0.8 * used["bonferroni"]


def test_without_target_radius_or_tolerance_certify_is_the_fixed_n_procedure() -> None:
    cert = SmoothedClassifier(halfspace, 2, 0.5, seed=3).certify(at(0.9), 100, 100_000, 0.001)
    assert cert.n == 100_000 and cert.num_samples == 100_100


# ------------------------------------------------------------------------------------ inputs and runs


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (dict(radius_tolerance=0), "radius_tolerance must be"),
        (dict(radius_tolerance=-0.1), "radius_tolerance must be"),
        (dict(radius_tolerance=float("nan")), "radius_tolerance must be"),
        (dict(radius_tolerance=True), "radius_tolerance must be"),
        (dict(target_radius=0.5, sequence="wald"), "sequence must be one of betting, bonferroni"),
    ],
)
def test_bad_sequential_options_raise_one_line_errors_naming_them(options: dict, message: str) -> None:
    calls = []
    g = SmoothedClassifier(lambda batch: calls.append(1) or halfspace(batch), 2, 0.5, seed=0)
    with pytest.raises(ValueError, match=message):
        g.certify(at(0.5), 10, 100, 0.01, **options)
    assert not calls  # before any sample is drawn


def test_dataset_task_and_command_line_take_the_tolerance_and_the_sequence(tmp_path) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    from rs_plugin.cli import main
    from rs_plugin.results import read_results
    from rs_plugin.runs import DatasetTask

    task = DatasetTask("digits", 0.25, radius_tolerance=0.1, sequence="bonferroni")
    assert task.columns[-1] == "samples" and task.radius_tolerance == 0.1
    with pytest.raises(ValueError, match="radius_tolerance applies to certify only"):
        DatasetTask("digits", 0.25, mode="predict", radius_tolerance=0.1)
    with pytest.raises(ValueError, match="sequence must be one of"):
        DatasetTask("digits", 0.25, sequence="wald")
    model = tmp_path / "tiny.py"
    model.write_text("import torch\n\ndef linear():\n    torch.manual_seed(0)\n"
                     "    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))\n")
    out = tmp_path / "tolerance.tsv"
    code = main(["certify", "--model", f"{model}:linear", "--sigma", "0.25", "--n", "2000", "--max-examples", "3",
                 "--radius-tolerance", "0.1", "--sequence", "bonferroni", "--no-progress", "--out", str(out)])
    assert code == 0 and out.read_text().splitlines()[0].endswith("\tsamples")
    assert np.all(read_results(out)["samples"] <= 2100)
    assert main(["certify", "--model", f"{model}:linear", "--sigma", "0.25", "--sequence", "wald",
                 "--radius-tolerance", "0.1", "--out", str(tmp_path / "x.tsv")]) == 1
