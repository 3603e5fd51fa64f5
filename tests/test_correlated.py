"""Correlated and anisotropic Gaussian noise N(0, Sigma) and its ellipsoid certificate, against analytic truth.

A linear base classifier f(z) = [w.z + b > 0] is its own smoothed classifier under any symmetric noise, and under
N(0, Sigma) the vote's probability is p_A = Phi((w.x + b) / sqrt(w' Sigma w)): the true certified Mahalanobis radius,
Phi^-1(p_A), is exactly the Mahalanobis distance from x to the hyperplane, reached at
delta* = -(w.x + b) Sigma w / (w' Sigma w). A certificate that contains delta* (a point where g changes class) fails;
over repeated seeded trials that may happen in at most an alpha fraction.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binomtest, norm

from rs_plugin import SmoothedClassifier
from rs_plugin.bounds import lower_confidence_bound
from rs_plugin.correlated import Diagonal, LowPass
from rs_plugin.engine import NumpyStream
from rs_plugin.plugins import make_noise, parse_spec

SHAPE, SIGMA = (1, 4, 4), 0.5
SPEC = "lowpass:shape=1x4x4,cutoff=0.3,ratio=4"


def covariance_times(noise: LowPass | Diagonal, w: np.ndarray) -> np.ndarray:
    """``Sigma w``."""
    return noise.to_input(noise.stds**2 * noise.to_basis(w[None]))[0]


def linear(w: np.ndarray, b: float):
    return lambda batch: ((batch * w).reshape(len(batch), -1).sum(1) + b > 0).astype(np.int64)


def too_often(failures: int, trials: int, alpha: float) -> bool:
    return binomtest(failures, trials, alpha, alternative="greater").pvalue <= 0.01


def test_samples_have_the_covariance_and_the_power_of_iid_noise_at_sigma() -> None:
    for noise in (make_noise(SPEC, SIGMA), Diagonal(SIGMA, np.linspace(1.0, 3.0, 16).reshape(SHAPE))):
        assert np.mean(noise.stds**2) == pytest.approx(SIGMA**2)  # equal total power
        samples = NumpyStream(noise, 0).fill(np.empty((40_000, *SHAPE), dtype=np.float32))
        white = noise.to_basis(samples.astype(np.float64)) / noise.stds
        assert np.abs(np.cov(white.reshape(len(white), -1).T) - np.eye(16)).max() < 0.05
        # whole rows drawn in pieces are the rows drawn at once (results do not depend on the batch size)
        stream = NumpyStream(noise, 1)
        pieces = [stream.fill(np.empty((k, *SHAPE), dtype=np.float32)) for k in (3, 1, 5)]
        assert np.array_equal(np.concatenate(pieces), NumpyStream(noise, 1).fill(np.empty((9, *SHAPE), np.float32)))
    with pytest.raises(ValueError, match=r"shape \(1, 4, 4\)"):
        NumpyStream(make_noise(SPEC, SIGMA), 0).fill(np.empty((2, 1, 8, 8), dtype=np.float32))


def test_the_low_frequencies_get_the_large_variance() -> None:
    noise = make_noise(SPEC, SIGMA)
    assert noise.stds[noise.low].min() == pytest.approx(4 * noise.stds[~noise.low].max())
    assert noise.low[0, 0, 0] and not noise.low[0, 3, 3]
    assert noise.radius(0.9) == pytest.approx(noise.stds.min() * norm.ppf(0.9))
    assert noise.p_needed(noise.radius(0.9)) == pytest.approx(0.9)


def linear_trials(noise, w: np.ndarray, x: np.ndarray, alpha: float, trials: int, n: int, seed: int):
    """Seeded certificates of the linear base at ``x``, with the truth: ``(certificates, M_true, l2 distance,
    delta*)``."""
    sigma_w = covariance_times(noise, w)
    margin = float((w * x).sum())
    mahalanobis, distance = margin / np.sqrt((w * sigma_w).sum()), margin / np.linalg.norm(w)
    delta_star = -margin * sigma_w / (w * sigma_w).sum()
    assert noise.mahalanobis(delta_star) == pytest.approx(mahalanobis)
    g = SmoothedClassifier(linear(w, 0.0), 2, SIGMA, noise=noise, seed=seed, batch_size=1000)
    return [g.certify(x, 50, n, alpha) for _ in range(trials)], mahalanobis, distance, delta_star


def test_the_ellipsoid_certificate_is_sound_and_the_test_catches_wrong_ellipsoids() -> None:
    """The certified ellipsoid contains delta* in at most an alpha fraction of seeded trials, and the l2 radius (its
    smallest semi-axis) exceeds the true l2 distance no more often. The same tests fail for a radius from the largest
    semi-axis and for a Clopper-Pearson bound at 2 alpha (tight enough to be seen, unlike the soft betting bound)."""
    alpha, trials = 0.1, 300
    noise = make_noise(SPEC, SIGMA)
    w = noise.to_input(np.where(noise.low, 0.2, 1.0)[None].copy())[0]  # mostly high frequencies: small variance
    x = (0.25 * w / np.linalg.norm(w)).astype(np.float32)
    certificates, mahalanobis, distance, delta_star = linear_trials(noise, w, x, alpha, trials, 1000, seed=3)
    assert sum(c.prediction == 1 for c in certificates) > trials / 2
    assert not too_often(sum(c.certifies(delta_star) for c in certificates), trials, alpha)
    assert sum(c.certifies(delta_star) for c in certificates) == sum(
        c.ellipsoid.radius > mahalanobis for c in certificates if c.ellipsoid
    )
    assert not too_often(sum(c.radius > distance for c in certificates), trials, alpha)
    largest = [c.ellipsoid.radius * noise.stds.max() if c.ellipsoid else 0.0 for c in certificates]
    assert too_often(sum(r > distance for r in largest), trials, alpha)
    doubled = [norm.ppf(lower_confidence_bound(c.count, c.n, 2 * alpha)) for c in certificates if c.selected == 1]
    assert too_often(sum(m > mahalanobis for m in doubled), trials, alpha)


def test_the_ellipsoid_reaches_further_along_the_low_frequencies_and_is_tight_for_large_n() -> None:
    noise = make_noise(SPEC, SIGMA)
    w = np.random.default_rng(0).normal(size=SHAPE)
    x = (0.3 * w / np.linalg.norm(w)).astype(np.float32)
    (certificate,), mahalanobis, _, _ = linear_trials(noise, w, x, 0.001, 1, 100_000, seed=0)
    assert 0.93 * mahalanobis < certificate.ellipsoid.radius < mahalanobis
    assert certificate.radius == pytest.approx(certificate.ellipsoid.radius * noise.stds.min())
    dc, corner = np.zeros((1, *SHAPE)), np.zeros((1, *SHAPE))
    dc[0, 0, 0, 0], corner[0, 0, 3, 3] = 1, 1  # the lowest and the highest DCT frequency, as perturbations
    dc, corner = noise.to_input(dc)[0], noise.to_input(corner)[0]
    r = certificate.radius
    assert certificate.certifies(3.9 * r * dc) and not certificate.certifies(4.1 * r * dc)  # semi-axis 4 r
    assert certificate.certifies(0.99 * r * corner) and not certificate.certifies(1.01 * r * corner)
    assert certificate.certifies(np.stack([0.5 * r * corner, 2 * r * corner])).tolist() == [True, False]


def test_the_soft_certificate_under_correlated_noise_is_sound() -> None:
    """Probit base f_A(z) = Phi(w.z) under N(0, Sigma): G_A(x) = Phi(w.x / sqrt(1 + w' Sigma w)), and argmax G changes
    at delta*. The soft ellipsoid contains delta* in at most an alpha fraction of trials; twice its radius does not."""
    alpha, trials = 0.1, 100
    noise = make_noise(SPEC, SIGMA)
    w = 3 * np.random.default_rng(1).normal(size=SHAPE)
    x = (0.1 * w / np.linalg.norm(w)).astype(np.float32)

    def base(batch: np.ndarray) -> np.ndarray:
        p = norm.cdf((batch * w).reshape(len(batch), -1).sum(1))
        return np.log(np.clip(np.stack([1 - p, p], axis=1), 1e-300, 1))

    sigma_w = covariance_times(noise, w)
    mahalanobis = float((w * x).sum() / np.sqrt((w * sigma_w).sum()))
    g = SmoothedClassifier(base, 2, SIGMA, noise=noise, seed=2, batch_size=1000)
    certificates = [g.certify(x, 50, 1000, alpha, smoothing="soft") for _ in range(trials)]
    radii = [c.ellipsoid.radius if c.ellipsoid else 0.0 for c in certificates]
    assert sum(r > 0 for r in radii) > trials / 2
    assert not too_often(sum(r > mahalanobis for r in radii), trials, alpha)
    assert too_often(sum(2 * r > mahalanobis for r in radii), trials, alpha)


def test_certificates_of_iid_noise_certify_their_balls() -> None:
    g = SmoothedClassifier(linear(np.ones(4), 0.0), 2, SIGMA, seed=0)
    certificate = g.certify(np.full(4, 0.5, dtype=np.float32), 100, 10_000, 0.001)
    r = certificate.radius
    assert certificate.ellipsoid is None and certificate.input_shape == (4,)
    assert certificate.certifies([0.99 * r, 0, 0, 0]) and not certificate.certifies([1.01 * r, 0, 0, 0])
    assert certificate.certifies(np.zeros((3, 4))).tolist() == [True] * 3
    with pytest.raises(ValueError, match="delta must have shape"):
        certificate.certifies(np.zeros(5))


def test_spec_strings_name_a_family_with_its_options(tmp_path) -> None:
    assert parse_spec("lowpass: shape=1x4x4, ratio=2") == ("lowpass", {"shape": "1x4x4", "ratio": "2"})
    assert parse_spec("gaussian") == ("gaussian", {})
    profile = np.arange(1.0, 17.0).reshape(SHAPE)
    np.save(tmp_path / "profile.npy", profile)
    noise = make_noise(f"diagonal:profile={tmp_path / 'profile.npy'}", SIGMA)
    assert noise.shape == SHAPE and np.allclose(noise.stds / noise.stds[0, 0, 0], profile)
    assert make_noise(noise, SIGMA) is noise
    for spec, match in [
        ("gaussian:ratio=2", r"^noise: the gaussian noise does not take the option\(s\) ratio \(it takes: none\)$"),
        ("lowpass:ratio=2", r"^noise: the lowpass noise needs the option\(s\) shape \(lowpass:shape=...,ratio=...\)$"),
        ("lowpass:shape=1x4x4,size=2", r"does not take the option\(s\) size \(it takes: shape, cutoff, ratio\)$"),
        ("lowpass:shape=1x4x4,ratio", "is not an option key=value"),
        ("lowpass:shape=1x4x4,ratio=2,ratio=3", "given twice"),
        ("lowpass:shape=4", "shape must be an image shape"),
        ("lowpass:shape=1x4x4,cutoff=2", "cutoff must lie in"),
        ("lowpass:shape=1x4x4,ratio=0.5", "ratio must be at least 1"),
        ("diagonal:profile=missing.npy", "profile: cannot read"),
        ("triangle", "unknown noise 'triangle'"),
    ]:
        with pytest.raises(ValueError, match=match):
            make_noise(spec, SIGMA)
    with pytest.raises(ValueError, match="sigma: the noise"):
        make_noise(noise, 2 * SIGMA)
    with pytest.raises(ValueError, match="profile must be"):
        Diagonal(SIGMA, np.zeros(SHAPE))


def test_torch_streams_draw_correlated_noise_on_the_device() -> None:
    """Standard normals from the stream's generator, mapped by the DCT as two small matrix products: the numpy
    noise's map of the same normals, the covariance Sigma, and the same rows however they are asked for."""
    torch = pytest.importorskip("torch")
    from rs_plugin.adapters.torch import TorchStream
    from rs_plugin.adapters.torch.streams import DEVICE_TRANSFORMS

    for noise in (make_noise("lowpass:shape=3x4x6,cutoff=0.4,ratio=3", SIGMA), Diagonal(SIGMA, np.arange(1.0, 17.0))):
        z = np.random.default_rng(0).standard_normal((5, *noise.shape))
        mapped = DEVICE_TRANSFORMS[type(noise)](noise, torch.device("cpu"))(torch.as_tensor(z))
        assert np.allclose(mapped.numpy(), noise.to_input(noise.stds * z), atol=1e-6)
        samples = TorchStream(noise, 0).fill(torch.empty(20_000, *noise.shape)).double().numpy()
        white = noise.to_basis(samples) / noise.stds
        assert np.abs(np.cov(white.reshape(len(white), -1).T) - np.eye(noise.row_size)).max() < 0.06
        stream = TorchStream(noise, 1)
        pieces = torch.cat([stream.fill(torch.empty(k, *noise.shape)) for k in (3, 1, 5)])
        assert torch.equal(pieces, TorchStream(noise, 1).fill(torch.empty(9, *noise.shape)))
    with pytest.raises(ValueError, match=r"shape \(1, 4, 4\)"):
        TorchStream(make_noise(SPEC, SIGMA), 0).fill(torch.empty(2, 1, 8, 8))


def test_every_torch_face_takes_the_spec(digits_test) -> None:
    """SmoothedClassifier on an nn.Module, SmoothedModule, the ART estimator and a trainer accept the spec string."""
    torch = pytest.importorskip("torch")
    from rs_plugin.adapters.plugins import make_trainer
    from rs_plugin.adapters.torch import SmoothedModule
    from rs_plugin.adapters.trainers import TrainConfig, fit

    spec = "lowpass:shape=1x8x8,ratio=4"
    x, y = torch.as_tensor(digits_test[0][:32]), torch.as_tensor(digits_test[1][:32])
    with torch.random.fork_rng():
        torch.manual_seed(0)
        network = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    trainer = make_trainer("gaussian", 0.25, noise=spec)
    fit(trainer, network, (x, y), TrainConfig(epochs=1, inputs_per_step=16, seed=0))
    certificates = SmoothedClassifier(network, 10, 0.25, noise=spec, seed=0).certify_many(
        x[:4], 20, 200, 0.01, progress=False
    )
    assert all((c.ellipsoid is not None) == (c.radius > 0) for c in certificates)
    module = SmoothedModule(network, 0.25, noise=spec, num_noise=8)
    assert module(x[:4]).shape == (4, 10)
    art = pytest.importorskip("art")
    from art.estimators.classification import PyTorchClassifier

    from rs_plugin.adapters.art import SmoothedEstimator

    classifier = PyTorchClassifier(network, loss=torch.nn.CrossEntropyLoss(), input_shape=(1, 8, 8), nb_classes=10)
    estimator = SmoothedEstimator(classifier, 0.25, noise=spec, n0=20, alpha=0.01, seed=0)
    predictions, radii = estimator.certify(x[:4].numpy(), 200, progress=False)
    assert art and predictions.shape == radii.shape == (4,)


@pytest.mark.parametrize("method", ["gaussian", "smoothadv"])
def test_training_under_low_pass_noise_resumes_to_the_weights_of_an_uninterrupted_run(
    method, digits_test, tmp_path
) -> None:
    """A resumed run skips the noise it had drawn (whole inputs at a time); the checkpoint records the spec; SmoothAdv
    hands the noise on to its attack."""
    torch = pytest.importorskip("torch")
    from rs_plugin.adapters.plugins import make_trainer
    from rs_plugin.adapters.trainers import TrainConfig, fit, read_checkpoint

    spec = "lowpass:shape=1x8x8,cutoff=0.2,ratio=3"
    data = (torch.as_tensor(digits_test[0][:64]), torch.as_tensor(digits_test[1][:64]))

    def network() -> torch.nn.Module:
        with torch.random.fork_rng():
            torch.manual_seed(0)
            return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))

    options = {"num_noise": 2, "steps": 1} if method == "smoothadv" else {}

    def train(epochs: int, checkpoint: str) -> torch.nn.Module:
        model = network()
        trainer = make_trainer(method, 0.25, noise=spec, **options)
        fit(trainer, model, data, TrainConfig(epochs=epochs, seed=0), checkpoint=tmp_path / checkpoint)
        return model

    whole = train(2, "whole.pt")
    train(1, "part.pt")
    resumed = train(2, "part.pt")
    assert all(torch.equal(whole.state_dict()[k], resumed.state_dict()[k]) for k in whole.state_dict())
    assert read_checkpoint(tmp_path / "part.pt")["noise"] == spec


def test_the_command_line_trains_and_certifies_with_a_spec(tmp_path, capsys) -> None:
    pytest.importorskip("torch")
    import json

    from rs_plugin.cli import main

    spec, model, results = "lowpass:shape=1x8x8,ratio=4", tmp_path / "m.pt", tmp_path / "m.tsv"
    common = ["--sigma", "0.25", "--noise", spec, "--no-progress"]
    assert main(["train", "--method", "gaussian", "--epochs", "1", "--out", str(model), *common]) == 0
    assert (
        main(
            ["certify", "--checkpoint", str(model), "--n", "200", "--max-examples", "3", "--out", str(results), *common]
        )
        == 0
    )
    assert len(results.read_text().splitlines()) == 4
    assert json.loads((tmp_path / "m.tsv.settings.json").read_text())["settings"]["noise"] == spec
    capsys.readouterr()
    assert (
        main(
            [
                "certify",
                "--checkpoint",
                str(model),
                "--n",
                "200",
                "--out",
                str(tmp_path / "x.tsv"),
                "--sigma",
                "0.25",
                "--noise",
                "lowpass:shape=1x4x4",
                "--max-examples",
                "1",
                "--no-progress",
            ]
        )
        != 0
    )
    assert "shape (1, 4, 4)" in capsys.readouterr().err


def test_a_covariance_chosen_per_input_by_what_it_certifies_fails_the_soundness_test() -> None:
    """Sigma must be fixed before the input is seen. Choosing it per input from a menu, keeping the one whose
    certificate is largest, breaks the guarantee; here five anisotropic noises whose true certified Mahalanobis radius
    at x is the same (permuted profiles, a linear base with equal weights): each alone contains delta* in at most an
    alpha fraction of trials, the per-input choice in far more."""
    alpha, trials = 0.1, 150
    w = np.ones(SHAPE)
    x = np.full(SHAPE, 0.02, dtype=np.float32)
    rng = np.random.default_rng(0)
    profile = np.linspace(1.0, 2.0, 16).reshape(SHAPE)
    menu = [Diagonal(SIGMA, rng.permutation(profile.ravel()).reshape(SHAPE)) for _ in range(5)]
    runs = [linear_trials(noise, w, x, alpha, trials, 500, seed=k) for k, noise in enumerate(menu)]
    truth = runs[0][1]
    assert all(run[1] == pytest.approx(truth) for run in runs)
    radii = np.array([[c.ellipsoid.radius if c.ellipsoid else 0.0 for c in run[0]] for run in runs])
    assert all(not too_often(int((row > truth).sum()), trials, alpha) for row in radii)
    assert too_often(int((radii.max(axis=0) > truth).sum()), trials, alpha)
