"""Ablation (rs_plugin.ablation): randomized ablation for l0 and derandomized column/block smoothing for patches.

Randomized ablation is tested against exact enumeration (Delta over every k-subset of a tiny input) and
statistically: at x = ones, the base classifier below votes A exactly when a kept position of R u S is not zero,
so p_A(x) = 1 - C(d - r - s, k) / C(d, k); at x' (the r positions of R set to 0) it votes A only when no
position of R is kept, and p_A(x') = p_A(x) - Delta(r) exactly: the worst case of the theorem. The sizes make
p_A(x) - Delta(1) = 1/2, so every certificate of radius >= 1 is wrong; over repeated seeded trials that may happen
in at most an alpha fraction, and two wrong variants (Delta with d + 1, the bound at 2 alpha) are caught.

Derandomized smoothing is exact: its vote counts and certificates are checked against brute force over every
band, every patch position and every class an adversary could move the touched bands' votes to.
"""

from __future__ import annotations

import itertools
import math
from fractions import Fraction
from types import SimpleNamespace

import numpy as np
import pytest
from benchmark_scripts import load
from scipy.stats import binomtest, chisquare

from rs_plugin import ABSTAIN, SmoothedClassifier
from rs_plugin.ablation import Ablation, Blocks, Columns
from rs_plugin.certificate import Certificate
from rs_plugin.engine import NumpyStream, noisy_batches
from rs_plugin.hookspecs import hookimpl
from rs_plugin.noises import Noise
from rs_plugin.plugins import get_plugin_manager, make_noise


def too_often(failures: int, trials: int, alpha: float) -> bool:
    return binomtest(failures, trials, alpha, alternative="greater").pvalue <= 0.01


# Randomized ablation -----------------------------------------------------------------------------------------------


def test_delta_is_the_chance_that_a_random_k_subset_meets_rho_positions() -> None:
    d = 6
    for k in range(1, d + 1):
        noise = Ablation(1.0, k, (1, 2, 3))
        subsets = list(itertools.combinations(range(d), k))
        for rho in range(d + 1):
            for changed in itertools.combinations(range(d), rho):
                meets = sum(bool(set(s) & set(changed)) for s in subsets)
                assert noise.delta(rho) == Fraction(meets, len(subsets))


def test_radius_is_the_largest_rho_with_p_minus_delta_above_one_half() -> None:
    rng = np.random.default_rng(0)
    for shape, k in [((1, 3, 3), 2), ((8,), 3), ((1, 8, 8), 5), ((3, 32, 32), 45)]:
        noise = Ablation(1.0, k, shape)
        d = noise.size
        for p in [0.5, 0.75, 0.999, 1.0, *rng.uniform(0.5, 1, 5)]:
            scan = [rho for rho in range(d + 1) if Fraction(p) - noise.delta(rho) > Fraction(1, 2)]
            assert noise.radius(p) == (max(scan) if scan else 0)
            if scan and max(scan) > 0:
                needed = noise.p_needed(max(scan))
                assert noise.radius(needed) >= max(scan) > noise.radius(math.nextafter(needed, 0))


def test_masks_keep_k_positions_uniformly_and_do_not_depend_on_the_batch_size() -> None:
    noise = make_noise("ablation:k=2,shape=1x2x2", 1.0)
    x = np.arange(1, 5, dtype=np.float32).reshape(1, 2, 2)
    copies = NumpyStream(noise, 0).randomize(x, np.empty((6000, 1, 2, 2), dtype=np.float32))
    kept = copies != -1
    assert (kept.reshape(len(kept), -1).sum(1) == 2).all()
    assert (copies[kept] == np.broadcast_to(x, copies.shape)[kept]).all()
    subsets = np.unique(kept.reshape(len(kept), -1), axis=0, return_counts=True)[1]
    assert len(subsets) == 6 and chisquare(subsets).pvalue > 0.001  # each of the C(4, 2) subsets equally often
    stream = NumpyStream(noise, 0)
    pieces = [stream.randomize(x, np.empty((k, 1, 2, 2), dtype=np.float32)) for k in (1, 4000, 1999)]
    assert np.array_equal(np.concatenate(pieces), copies)
    rows = [NumpyStream(noise, 0).randomize(x, np.empty((5, 1, 2, 2), dtype=np.float32)) for _ in range(2)]
    batched = [b.copy() for b, _ in noisy_batches(np.stack([x, x]), [5, 5], [NumpyStream(noise, 0)] * 2, 3)]
    assert np.array_equal(np.concatenate(batched)[:5], rows[0])  # one shared stream: the second example continues it


def test_bad_options_are_refused_naming_the_option() -> None:
    for spec, name in [("ablation:k=10,shape=1x3x3", "k"), ("ablation:k=0,shape=1x3x3", "k"),
                       ("columns:b=0,shape=1x4x4", "b"), ("columns:b=5,shape=1x4x4", "b"),
                       ("blocks:b=2,shape=4", "shape"), ("ablation:k=2,shape=1x0", "shape"),
                       ("ablation:k=2,shape=1x3x3,value=nan", "value")]:
        with pytest.raises(ValueError, match=f"^{name} "):
            make_noise(spec, 1.0)
    with pytest.raises(ValueError, match="x: the ablation randomization is for inputs of shape"):
        SmoothedClassifier(lambda b: np.zeros(len(b), int), 2, 1.0, noise="ablation:k=2,shape=1x3x3",
                           batch_size=8).predict(np.zeros((1, 4, 4)), 10, 0.01)


def test_an_l0_certificate_counts_pixels_across_channels() -> None:
    certificate = Certificate(prediction=1, radius=2.0, norm="l0", p_lower=0.9, num_samples=10, count=9, n=9,
                              selected=1, radii={"l0": 2.0}, input_shape=(3, 4, 4))
    delta = np.zeros((3, 3, 4, 4))
    delta[0, :, 0, 0] = delta[0, :, 1, 1] = 0.5  # two pixels, all three channels
    delta[1, 0, 0, 0] = delta[1, 2, 1, 1] = delta[1, 1, 2, 2] = 1.0  # three pixels
    delta[2, :, 3, 3] = 10.0  # one pixel, however much
    assert certificate.certifies(delta).tolist() == [True, False, True]


def _worst_case_base(r: int, s: int):
    """At ones: A (1) iff a position of R u S (the first r + s) is kept; any kept zero votes B (0)."""

    def base(batch: np.ndarray) -> np.ndarray:
        flat = batch.reshape(len(batch), -1)
        zero = (flat == 0).any(axis=1)
        return ((flat[:, : r + s] != -1).any(axis=1) & ~zero).astype(np.int64)

    return base


class _WrongDelta(Ablation):
    """Delta computed with d + 1 positions: too small, so the radius is too large."""

    def delta(self, rho: int) -> Fraction:
        return 1 - Fraction(math.comb(self.size + 1 - rho, self.k), math.comb(self.size + 1, self.k))


def _failures(noise: Noise, trials: int, n: int, alpha: float, seed: int) -> int:
    r, s = 1, 3  # d = 9, k = 2: p_A(x) = 1 - C(5, 2) / C(9, 2) = 13/18, Delta(1) = 2/9, p_A(x') = 1/2
    base = _worst_case_base(r, s)
    x = np.ones((1, 3, 3), dtype=np.float32)
    x_prime = x.copy()
    x_prime.reshape(-1)[:r] = 0
    assert Fraction(13, 18) - Ablation(1.0, 2, (1, 3, 3)).delta(r) == Fraction(1, 2)
    smoothed = SmoothedClassifier(base, 2, 1.0, noise=noise, batch_size=4096, seed=seed)
    certificates = smoothed.certify_many([x] * trials, 20, n, alpha, progress=False)
    assert all(c.certifies(x_prime - x) == (c.prediction == 1 and c.radius >= r) for c in certificates)
    return sum(c.prediction not in (1, ABSTAIN) or (c.prediction == 1 and c.radius >= r) for c in certificates)


def test_l0_certificates_fail_at_most_alpha_of_the_time_and_the_wrong_variants_are_caught() -> None:
    alpha, trials = 0.05, 600
    noise = make_noise("ablation:k=2,shape=1x3x3", 1.0)
    assert not too_often(_failures(noise, trials, 1000, alpha, seed=1), trials, alpha)
    assert too_often(_failures(noise, trials, 1000, 2 * alpha, seed=1), trials, alpha)  # the bound at 2 alpha
    wrong = _WrongDelta(1.0, 2, (1, 3, 3))
    assert too_often(_failures(wrong, 40, 10_000, alpha, seed=2), 40, alpha)


# Derandomized smoothing --------------------------------------------------------------------------------------------

SHAPE = (1, 6, 6)


def _base(batch: np.ndarray) -> np.ndarray:
    """Three classes by the mean of the kept (not ablated) values: below 0.4, below 0.6, above."""
    flat = batch.reshape(len(batch), -1)
    kept = flat != -1
    mean = (flat * kept).sum(1) / np.maximum(kept.sum(1), 1)
    return np.digitize(mean, [0.4, 0.6]).astype(np.int64)


def _inputs() -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    ramp = np.tile(np.linspace(0.1, 0.95, 6, dtype=np.float32), (1, 6, 1))
    return [np.full(SHAPE, 0.9, np.float32), np.full(SHAPE, 0.1, np.float32), ramp, ramp.transpose(0, 2, 1).copy(),
            *rng.uniform(0, 1, (4, *SHAPE)).astype(np.float32), (0.3 + 0.5 * (rng.uniform(0, 1, SHAPE) > 0.7))
            .astype(np.float32)]


def _brute_force(noise: Columns | Blocks, x: np.ndarray) -> tuple[np.ndarray, int, int]:
    """Counts over every band built by hand, the prediction, and the largest m such that no patch position of side m
    (columns: m consecutive columns) and no class an adversary gives every touched band can change the top class."""
    height, width = SHAPE[1:]
    bands = []
    if isinstance(noise, Columns):
        for t in range(width):
            bands.append(np.isin(np.arange(width), [(t + i) % width for i in range(noise.b)])[None].repeat(height, 0))
    else:
        for top, left in itertools.product(range(height), range(width)):
            rows = np.isin(np.arange(height), [(top + i) % height for i in range(noise.b)])
            cols = np.isin(np.arange(width), [(left + i) % width for i in range(noise.b)])
            bands.append(rows[:, None] & cols[None])
    votes = _base(np.stack([np.where(band, x[0], -1)[None] for band in bands]))
    counts = np.bincount(votes, minlength=3)
    top = int(np.argmax(counts))
    radius = 0
    for m in range(1, max(height, width) + 1):
        patches = []
        for top_row, left in itertools.product(range(height), range(width)):
            cols = (np.arange(width) - left) % width < m
            rows = (np.arange(height) - top_row) % height < m if isinstance(noise, Blocks) else np.ones(height, bool)
            patches.append(rows[:, None] & cols[None])
        flipped = False
        for patch in patches:
            touched = np.array([(band & patch).any() for band in bands])
            for other in range(3):
                moved = counts - np.bincount(votes[touched], minlength=3)
                moved[other] += touched.sum()
                flipped |= int(np.argmax(moved)) != top
        if flipped:
            break
        radius = m
    return counts, top, radius


@pytest.mark.parametrize("spec", ["columns:b=1", "columns:b=2", "columns:b=3", "blocks:b=1", "blocks:b=2",
                                  "blocks:b=3"])
def test_votes_and_certificates_are_those_of_brute_force_over_every_band_and_patch(spec: str) -> None:
    noise = make_noise(f"{spec},shape=1x6x6", 1.0)
    smoothed = SmoothedClassifier(_base, 3, 1.0, noise=noise, batch_size=7, seed=0)
    inputs = _inputs()
    certificates = smoothed.certify_many(inputs, 1, 1, 0.5, progress=False)  # n0, n and alpha play no part
    assert smoothed.predict_many(inputs, 1, 0.5, progress=False).tolist() == [c.prediction for c in certificates]
    copies = noise.enumerated(SHAPE)
    assert copies == (6 if spec.startswith("columns") else 36)
    for x, certificate in zip(inputs, certificates, strict=True):
        counts, top, radius = _brute_force(noise, x)
        assert (certificate.prediction, certificate.count, certificate.n) == (top, counts[top], copies)
        assert certificate.radius == radius, (spec, counts)
        assert certificate.num_samples == copies and certificate.p_lower == counts[top] / copies
    assert any(c.radius >= 1 for c in certificates)  # the check has certificates to check


@pytest.mark.parametrize("spec", ["columns:b=2", "blocks:b=2"])
def test_no_patch_within_the_certificate_changes_the_prediction(spec: str) -> None:
    noise = make_noise(f"{spec},shape=1x6x6", 1.0)
    smoothed = SmoothedClassifier(_base, 3, 1.0, noise=noise, batch_size=64, seed=0)
    inputs = _inputs()
    certificates = smoothed.certify_many(inputs, 1, 1, 0.5, progress=False)
    rng = np.random.default_rng(0)
    for x, certificate in zip(inputs, certificates, strict=True):
        m = int(certificate.radius)
        if m == 0:
            continue
        attacked, deltas = [], []
        for top_row, left in itertools.product(range(6), range(6)):
            cols = (np.arange(6) - left) % 6 < m
            rows = (np.arange(6) - top_row) % 6 < m
            patch = (rows[:, None] & cols[None])[None]
            for content in (np.zeros(SHAPE), np.ones(SHAPE), rng.uniform(0, 1, SHAPE)):
                attacked.append(np.where(patch, content, x).astype(np.float32))
                deltas.append(attacked[-1] - x)
        assert certificate.certifies(np.stack(deltas)).all()
        assert (smoothed.predict_many(attacked, 1, 0.5, progress=False) == certificate.prediction).all()
        wider = np.zeros(SHAPE)
        wider[0, 0, : m + 1] = 1.0
        wider[0, : m + 1, 0] = 1.0
        assert not certificate.certifies(wider)


def test_tie_breaking_follows_the_paper() -> None:
    columns = Columns(1.0, 1, (1, 1, 10))  # Delta(m) = m
    assert columns.votes_radius(np.array([5, 5])) == (0, 0.0)  # a tie goes to the smaller index
    assert columns.votes_radius(np.array([6, 4])) == (0, 1.0)  # 6 - 4 >= 2
    assert columns.votes_radius(np.array([4, 6])) == (1, 0.0)  # class 1 must lead by more than 2: 6 - 4 - 1 < 2
    assert columns.votes_radius(np.array([3, 7])) == (1, 1.0)
    assert columns.votes_radius(np.array([0, 10, 0])) == (1, 4.0)  # 10 - 0 - 1 >= 2 * 4


def test_results_do_not_depend_on_the_batch_size_or_packing() -> None:
    x = _inputs()[3]
    for spec in ("ablation:k=6,shape=1x6x6", "columns:b=2,shape=1x6x6", "blocks:b=2,shape=1x6x6"):
        runs = [SmoothedClassifier(_base, 3, 1.0, noise=spec, batch_size=size, seed=0) for size in (1, 5, 1000)]
        single = [run.certify(x, 10, 200, 0.01, index=4) for run in runs]
        packed = [run.certify_many([x, x], 10, 200, 0.01, indices=[3, 4], progress=False)[1] for run in runs]
        assert len({repr(c) for c in single + packed}) == 1, spec


def test_target_radius_and_soft_smoothing_are_refused_for_an_enumeration() -> None:
    smoothed = SmoothedClassifier(_base, 3, 1.0, noise="columns:b=2,shape=1x6x6", batch_size=8)
    with pytest.raises(ValueError, match="target_radius"):
        smoothed.certify(_inputs()[0], 1, 10, 0.01, target_radius=1.0)
    with pytest.raises(ValueError, match="smoothing"):
        smoothed.certify(_inputs()[0], 1, 10, 0.01, smoothing="soft")


# A third-party randomization ---------------------------------------------------------------------------------------


class Mirror(Noise):
    """A third party's randomization that is not additive: mirror the image left-right with probability 1/2."""

    name, norm, additive = "mirror", "l2", False

    def sample(self, rng: np.random.Generator, out: np.ndarray) -> None:
        raise TypeError("not additive")

    def randomize(self, rng: np.random.Generator, x: np.ndarray, out: np.ndarray, first: int) -> None:
        out[...] = np.where((rng.random(len(out)) < 0.5)[:, None, None, None], x[..., ::-1], x)

    def radius(self, p_lower: float) -> float:
        return 0.0  # an invariance, not a certificate

    def p_needed(self, radius: float) -> float:
        return 0.5 if radius <= 0 else math.inf


def test_a_third_party_randomization_is_a_plugin_of_a_few_lines() -> None:
    plugin = SimpleNamespace(rs_plugin_add_noises=hookimpl(lambda: {"mirror": Mirror}))
    pm = get_plugin_manager()
    pm.register(plugin, name="mirror-plugin")
    try:
        smoothed = SmoothedClassifier(lambda b: (b[:, 0, 0, 0] > 0.5).astype(np.int64), 2, 1.0, noise="mirror",
                                      batch_size=100, seed=0)
        x = np.zeros((1, 2, 2), np.float32)
        x[0, 0, 0] = 1.0  # left: class 1; mirrored: class 0
        counts = smoothed.counts(x, 2000, index=0)
        assert counts.sum() == 2000 and abs(counts[1] - 1000) < 150
    finally:
        pm.unregister(name="mirror-plugin")


# The torch loop and training ---------------------------------------------------------------------------------------


def test_the_torch_loop_gives_the_numpy_loop_s_copies_and_refuses_gradients() -> None:
    torch = pytest.importorskip("torch")
    from rs_plugin.adapters.torch import TorchStream
    from rs_plugin.adapters.torch import noisy_batches as torch_batches

    xs = np.stack(_inputs()[:3])
    for spec in ("ablation:k=5,shape=1x6x6", "columns:b=2,shape=1x6x6"):
        noise = make_noise(spec, 1.0)
        expected = np.concatenate([b.copy() for b, _ in noisy_batches(xs, [4, 2, 5], [NumpyStream(noise, s)
                                                                                     for s in range(3)], 1000)])
        got = torch.cat([b.clone() for b, _ in torch_batches(torch.from_numpy(xs), [4, 2, 5],
                                                             [TorchStream(noise, s) for s in range(3)], 3)])
        assert np.array_equal(got.numpy(), expected)
        with pytest.raises(ValueError, match="no gradient in the input"):
            next(torch_batches(torch.from_numpy(xs).requires_grad_(), [1] * 3, [TorchStream(noise, 0)] * 3, 3,
                               differentiable=True))


def test_the_trainers_train_on_ablated_inputs_and_resume_exactly(tmp_path) -> None:
    torch = pytest.importorskip("torch")
    from rs_plugin.adapters.plugins import make_trainer
    from rs_plugin.adapters.trainers import TrainConfig, fit

    x = torch.from_numpy(np.stack(_inputs() * 4))
    y = torch.arange(len(x)) % 3

    def run(epochs: int, checkpoint) -> torch.nn.Module:
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(36, 3))
        trainer = make_trainer("gaussian", 1.0, noise="ablation:k=6,shape=1x6x6")
        return fit(trainer, model, (x, y), TrainConfig(epochs, 8, seed=0), checkpoint=checkpoint)

    whole = run(2, None)
    run(1, tmp_path / "run.pt")
    resumed = run(2, tmp_path / "run.pt")
    for a, b in zip(whole.parameters(), resumed.parameters(), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("method", ["consistency", "smoothadv", "smoothmix"])
def test_methods_that_attack_the_input_refuse_ablation_and_the_others_train(method: str) -> None:
    torch = pytest.importorskip("torch")
    from rs_plugin.adapters.plugins import make_trainer
    from rs_plugin.adapters.trainers import TrainConfig, fit

    x, y = torch.from_numpy(np.stack(_inputs())), torch.arange(len(_inputs())) % 3
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(36, 3))
    if method == "consistency":
        fit(make_trainer(method, 1.0, noise="columns:b=2,shape=1x6x6"), model, (x, y), TrainConfig(1, 4, seed=0))
    else:  # SmoothAdv's and SmoothMix's attacks need the gradient in the input: refused before any training
        with pytest.raises(ValueError, match="no gradient in the input"):
            make_trainer(method, 1.0, noise="columns:b=2,shape=1x6x6")


# The command line --------------------------------------------------------------------------------------------------


def test_the_command_line_certifies_l0_and_patches_and_analyze_names_the_norm(tmp_path, capsys) -> None:
    from rs_plugin.cli import main

    model = tmp_path / "bright.py"
    model.write_text("import numpy as np\n\ndef make():\n    return lambda b: (np.where(b == -1, 0, b).reshape(len(b), "
                     "-1).mean(1) * 30).astype(np.int64).clip(0, 9)\n")
    common = ["--model", f"{model}:make", "--sigma", "1", "--max-examples", "6", "--no-progress", "--batch-size", "256"]
    for spec, out in (("ablation:k=5,shape=1x8x8", "l0.tsv"), ("columns:b=2,shape=1x8x8", "columns.tsv")):
        assert main(["certify", *common, "--noise", spec, "--n0", "20", "--n", "300", "--out",
                     str(tmp_path / out)]) == 0
    assert main(["analyze", str(tmp_path / "l0.tsv"), str(tmp_path / "columns.tsv"), "--radii", "0", "1"]) == 0
    table = capsys.readouterr().out
    assert "l0.tsv (l0)" in table and "columns.tsv (columns)" in table
    radii = np.loadtxt(tmp_path / "columns.tsv", skiprows=1, usecols=3)
    assert (radii == np.round(radii)).all() and len(radii) == 6


# The ART estimator -------------------------------------------------------------------------------------------------


def test_the_art_estimator_certifies_patches_with_exact_votes_and_refuses_gradients() -> None:
    torch = pytest.importorskip("torch")
    pytest.importorskip("art")
    from art.estimators.classification import PyTorchClassifier

    from rs_plugin.adapters.art import SmoothedEstimator

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(36, 3))
    classifier = PyTorchClassifier(net, loss=torch.nn.CrossEntropyLoss(), input_shape=SHAPE, nb_classes=3,
                                   clip_values=(0.0, 1.0), device_type="cpu")
    x = np.stack(_inputs()[:4])
    spec = "columns:b=2,shape=1x6x6"
    estimator = SmoothedEstimator(classifier, 1.0, noise=spec, num_noise=5, batch_size=16, seed=0)
    votes = estimator.predict(x)
    smoothed = SmoothedClassifier(net, 3, 1.0, noise=spec, batch_size=16, seed=0)
    certificates = smoothed.certify_many(x, 1, 1, 0.5, progress=False)
    assert np.allclose(votes.max(1), [c.p_lower for c in certificates]) and (votes * 6 % 1 == 0).all()
    predictions, radii = estimator.certify(x, n=1)
    assert predictions.tolist() == [c.prediction for c in certificates]
    assert radii.tolist() == [c.radius for c in certificates]
    with pytest.raises(ValueError, match="no gradient in the input"):
        estimator.loss_gradient(x, np.zeros(len(x), dtype=np.int64))


@pytest.mark.slow
def test_art_derandomized_smoothing_counts_the_same_votes_and_over_certifies_only_refuted_ties(model_cache) -> None:
    """benchmarks/ablation.py at a small size: the digits CNN trained on column-ablated digits, rs-plugin against ART's
    PyTorchDeRandomizedSmoothing (levine2020) on the same network; no patch attack beats a certificate."""
    pytest.importorskip("art")
    benchmark = load("ablation")
    from rs_plugin.adapters.datasets import digits_at

    x, y = (t.numpy()[:40] for t in digits_at("test", 8))
    outcome = benchmark.patch_comparison("columns", 3, 8, x, y, sizes=2, attacked=5)
    assert outcome["counts_equal"] and outcome["beaten"] == 0
    assert outcome["refuted"] == outcome["only_art"] > 0  # ART 1.20's rule (docs/guide/ablation.md): each refuted


@pytest.mark.parametrize(("method", "noise", "message"), [
    ("smoothadv", "ablation:k=10,shape=1x8x8", "no gradient in the input"),
    ("smoothmix", "columns:b=2,shape=1x8x8", "no gradient in the input"),
    ("macer", "ablation:k=10,shape=1x8x8", "soft certified radius"),
    ("macer", "laplace", "soft certified radius"),
])
def test_a_method_that_needs_what_the_randomization_lacks_is_refused_when_made(method, noise, message):
    """SmoothAdv and SmoothMix attack through the noise (an ablated input has no gradient); MACER maximises the
    Gaussian soft radius: each is refused in one line when made, before any training, naming the noise."""
    pytest.importorskip("torch")
    from rs_plugin.adapters.plugins import make_trainer

    with pytest.raises(ValueError, match=f"^noise: .*{message}"):
        make_trainer(method, 0.5, noise=noise)
    make_trainer("consistency", 0.5, noise=noise)  # training on the randomized inputs works
