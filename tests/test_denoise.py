"""Off-the-shelf networks: Denoised and Ensemble as base classifiers everywhere, the DnCNN, the denoiser plugin
point (a fake diffusion denoiser registered through the hook) and the command line's --denoiser and ensembles."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("art")
pytest.importorskip("sklearn")

from art.estimators.classification import PyTorchClassifier  # noqa: E402
from scipy import stats  # noqa: E402
from torch import nn  # noqa: E402

from rs_plugin import SmoothedClassifier, hookimpl  # noqa: E402
from rs_plugin.adapters.art import SmoothedEstimator  # noqa: E402
from rs_plugin.adapters.checkpoints import load_checkpoint, save_checkpoint  # noqa: E402
from rs_plugin.adapters.denoise import Denoised, DiffusionDenoiser, DnCNN, Ensemble, diffusion_timestep  # noqa: E402
from rs_plugin.adapters.models import get_architecture  # noqa: E402
from rs_plugin.adapters.plugins import make_denoiser  # noqa: E402
from rs_plugin.adapters.torch import SmoothedModule, TorchStream, noisy_batches  # noqa: E402
from rs_plugin.attacks import SmoothAdvPGD  # noqa: E402
from rs_plugin.cli import main  # noqa: E402
from rs_plugin.noises import Gaussian  # noqa: E402
from rs_plugin.plugins import get_plugin_manager  # noqa: E402
from rs_plugin.runs import DatasetTask  # noqa: E402
from rs_plugin.seeding import stream_seed  # noqa: E402

SIGMA = 0.25
SHAPE = (1, 4, 4)


def seeded(build, seed: int) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build().eval()


def classifier(seed: int) -> nn.Module:
    """A tiny classifier of 1x4x4 inputs into 3 classes."""
    return seeded(lambda: nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3)), seed)


def denoiser(seed: int = 7, channels: int = 1, depth: int = 3, width: int = 4) -> DnCNN:
    """A DnCNN whose last layer is random too (an untrained one is the identity)."""

    def build() -> DnCNN:
        model = DnCNN(channels, depth=depth, width=width)
        nn.init.normal_(model.noise[-1].weight, std=0.3)
        return model

    return seeded(build, seed)


def inputs(count: int = 6, seed: int = 0) -> torch.Tensor:
    return torch.rand(count, *SHAPE, generator=torch.Generator().manual_seed(seed))


MODELS = {
    "denoised": lambda: Denoised(denoiser(), classifier(0)),
    "ensemble": lambda: Ensemble([classifier(0), classifier(1), classifier(2)]),
}


def reference(name: str, x: torch.Tensor) -> torch.Tensor:
    """What the model computes, written out: scores whose argmax is its class."""
    if name == "denoised":
        return classifier(0)(denoiser()(x))
    return torch.stack([classifier(s)(x).softmax(-1) for s in range(3)]).mean(0).log()


# Composition


def test_denoised_is_the_classifier_on_the_denoised_input() -> None:
    x = inputs()
    with torch.no_grad():
        assert torch.equal(Denoised(denoiser(), classifier(0))(x), classifier(0)(denoiser()(x)))
        assert not torch.allclose(denoiser()(x), x, atol=1e-2)  # the test's denoiser does change its input


def test_ensemble_probabilities_are_the_members_average_softmax() -> None:
    x = inputs()
    with torch.no_grad():
        out = MODELS["ensemble"]()(x)
        average = torch.stack([classifier(s)(x).softmax(-1) for s in range(3)]).mean(0)
        torch.testing.assert_close(out.exp(), average)
        torch.testing.assert_close(nn.functional.log_softmax(out, -1), out)  # cross-entropy sees the average
        assert len({tuple(classifier(s)(x).argmax(1).tolist()) for s in range(3)}) > 1  # the members disagree


def test_ensemble_of_identical_members_is_that_member() -> None:
    x = inputs(50)
    member = classifier(0)
    with torch.no_grad():
        torch.testing.assert_close(Ensemble([member] * 3)(x).exp(), member(x).softmax(-1))
    one, three = (SmoothedClassifier(m, 3, SIGMA, seed=0) for m in (member, Ensemble([member] * 3)))
    assert one.certify_many(x[:5], 20, 200, 0.01, progress=False) == three.certify_many(
        x[:5], 20, 200, 0.01, progress=False
    )


def test_ensemble_rejects_bad_members() -> None:
    with pytest.raises(ValueError, match="members must hold at least one classifier"):
        Ensemble([])
    with pytest.raises(TypeError, match=r"members\[1\] must be a torch.nn.Module"):
        Ensemble([classifier(0), lambda x: x])
    other = seeded(lambda: nn.Sequential(nn.Flatten(), nn.Linear(16, 5)), 0)
    with pytest.raises(ValueError, match=r"members: member 1 returned scores of shape \(6, 5\)"):
        Ensemble([classifier(0), other])(inputs())
    with pytest.raises(TypeError, match=r"classifier must be a torch\.nn\.Module"):
        Denoised(denoiser(), lambda x: x)


@pytest.mark.parametrize(("channels", "size", "arch"), [(1, 8, "dncnn_digits"), (3, 32, "dncnn_cifar10")])
def test_dncnn_subtracts_its_noise_prediction_and_keeps_the_shape(channels: int, size: int, arch: str) -> None:
    x = torch.rand(2, channels, size, size)
    with torch.no_grad():
        assert torch.equal(get_architecture(arch)(x), x)  # an untrained DnCNN is the identity
        model = denoiser(channels=channels)
        out = model(x)
        assert out.shape == x.shape and torch.equal(out, x - model.noise(x))
    with pytest.raises(ValueError, match="depth must be at least 2"):
        DnCNN(1, depth=1)


# Everything a base classifier must support, for both


@pytest.mark.parametrize("name", sorted(MODELS))
def test_certify_through_the_torch_backend_votes_for_the_composition(name: str) -> None:
    """Certificates equal those of a module computing the same scores written out: same votes on the same noise."""

    class Written(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return reference(name, x)

    x = inputs(4)
    ours, written = (SmoothedClassifier(m, 3, SIGMA, seed=0) for m in (MODELS[name](), Written()))
    certificates = ours.certify_many(x, 20, 300, 0.01, progress=False)
    assert certificates == written.certify_many(x, 20, 300, 0.01, progress=False)
    assert {c.prediction for c in certificates} != {-1}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_smoothed_module_gradients_flow_through_the_composition(name: str) -> None:
    model = MODELS[name]()
    x = inputs(3).requires_grad_(True)
    y = torch.tensor([0, 1, 2])
    out = SmoothedModule(model, SIGMA, num_noise=8, seed=0)(x, noise_seed=5)
    nn.functional.nll_loss(out, y).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    noise = torch.stack([s.fill(torch.empty(8, *SHAPE)) for s in SmoothedModule(model, SIGMA, num_noise=8)
                         .streams(3, "cpu", 5)], 1)  # the draws of noise_seed 5, (8, B, *shape)
    with torch.no_grad():
        expected = torch.stack([reference(name, x + noise[k]).softmax(-1) for k in range(8)]).mean(0).log()
    torch.testing.assert_close(out.detach(), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_art_pytorch_classifier_of_the_composition(name: str) -> None:
    model = MODELS[name]()
    art = PyTorchClassifier(model, loss=nn.CrossEntropyLoss(), input_shape=SHAPE, nb_classes=3, clip_values=(0, 1),
                            device_type="cpu")
    x = inputs(4)
    np.testing.assert_allclose(art.predict(x.numpy()), reference(name, x).detach().numpy(), rtol=1e-5, atol=1e-6)
    ours, direct = (SmoothedClassifier(m, 3, SIGMA, seed=0) for m in (art, model))
    assert ours.certify(x[0], 20, 200, 0.01) == direct.certify(x[0], 20, 200, 0.01)
    gradient = SmoothedEstimator(art, SIGMA, num_noise=16, seed=0).loss_gradient(x.numpy(), np.array([0, 1, 2, 0]))
    assert gradient.shape == x.shape and np.isfinite(gradient).all() and np.abs(gradient).sum() > 0


@pytest.mark.parametrize("name", sorted(MODELS))
def test_smoothadv_pgd_attacks_the_composition_within_eps(name: str) -> None:
    x, y = inputs(4), torch.tensor([0, 1, 2, 0])
    adv = SmoothAdvPGD(MODELS[name](), sigma=SIGMA, eps=0.3, steps=3, num_noise=4, seed=0)(x, y)
    assert (adv - x).flatten(1).norm(dim=1).max() <= 0.3 + 1e-5 and not torch.equal(adv, x)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_pickle_and_state_dict_round_trips_compute_the_same(name: str) -> None:
    model, x = MODELS[name](), inputs()
    with torch.no_grad():
        assert torch.equal(pickle.loads(pickle.dumps(model))(x), model(x))
        fresh = Denoised(DnCNN(1, depth=3, width=4), classifier(9)) if name == "denoised" else Ensemble(
            [classifier(9) for _ in range(3)]
        )
        fresh.load_state_dict(model.state_dict())
        assert torch.equal(fresh.eval()(x), model(x))


# The denoiser plugin point


class FakeDiffusion:
    """A third-party plugin: a "diffusion model" whose noise prediction is zero, and which records its inputs."""

    alphas_cumprod = torch.tensor([0.99, 0.95, 0.8, 0.5, 0.1], dtype=torch.float64)

    def __init__(self) -> None:
        self.seen: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.sources: list[str | None] = []

    def eps(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.seen.append((x_t.detach().clone(), t))
        return torch.zeros_like(x_t)

    def make(self, sigma: float, source: str | None) -> DiffusionDenoiser:
        self.sources.append(source)
        plugin = self

        class Eps(nn.Module):
            def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
                return plugin.eps(x_t, t)

        return DiffusionDenoiser(Eps(), self.alphas_cumprod, sigma)

    @hookimpl
    def rs_plugin_add_denoisers(self) -> dict:
        return {"fake-diffusion": self.make}


@pytest.fixture
def fake_diffusion():
    plugin, pm = FakeDiffusion(), get_plugin_manager()
    pm.register(plugin, name="fake-diffusion")
    yield plugin
    pm.unregister(plugin)


def test_a_denoiser_registered_through_the_hook_is_found_by_name(fake_diffusion: FakeDiffusion) -> None:
    made = make_denoiser("fake-diffusion:weights.bin", SIGMA)
    assert isinstance(made, DiffusionDenoiser) and fake_diffusion.sources == ["weights.bin"]
    assert made.timestep == 2 and made.alpha == pytest.approx(1 / (1 + 4 * SIGMA**2))  # 0.8
    make_denoiser("fake-diffusion", SIGMA)
    assert fake_diffusion.sources[-1] is None
    x = inputs()
    with torch.no_grad():
        torch.testing.assert_close(made(x), x)  # a zero noise prediction returns the input (the maps invert)


def test_the_timestep_makes_the_noisy_input_the_ddpms_x_t(fake_diffusion: FakeDiffusion) -> None:
    """The diffusion model sees sqrt(a_t) (2x - 1) + N(0, 1 - a_t), its forward process at t, when the input is
    x + N(0, sigma^2) from the engine: chi-square test of the residual's variance; the mapping without the factor
    2 for [-1, 1] (a_t = 1 / (1 + sigma^2), here 0.95) is rejected by the same test."""
    x = inputs(1)
    denoised = Denoised(make_denoiser("fake-diffusion", SIGMA), nn.Sequential(nn.Flatten(), nn.Linear(16, 3)))
    stream = TorchStream(Gaussian(SIGMA), stream_seed(0, "test-diffusion"))
    with torch.no_grad():
        for batch, _ in noisy_batches(x, [20_000], [stream], 5000):
            denoised(batch)
    assert all(torch.equal(t, torch.full_like(t, 2)) for _, t in fake_diffusion.seen)
    residual = torch.cat([x_t for x_t, _ in fake_diffusion.seen]) - np.sqrt(0.8) * (2 * x - 1)
    total, count = float((residual.double() ** 2).sum()), residual.numel()
    for alpha, matches in ((0.8, True), (0.95, False)):
        # scaled by sqrt(alpha) instead of sqrt(0.8), the residual's squares grow by alpha / 0.8; expected: 1 - alpha
        statistic = total * (alpha / 0.8) / (1 - alpha)
        p = 2 * min(stats.chi2.cdf(statistic, count), stats.chi2.sf(statistic, count))
        assert (p > 0.001) == matches, (alpha, p)
    assert diffusion_timestep(FakeDiffusion.alphas_cumprod, 0.5) == 3  # 1 / (1 + 4 * 0.5^2) = 0.5 exactly


# The command line


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """Three digits CNNs trained for one epoch on 500 digits (seeds 0, 1, 2) and a random DnCNN, saved in the paper's
    format."""
    from rs_plugin.adapters.datasets import digits_arrays
    from rs_plugin.adapters.training import train_with_noise

    folder = tmp_path_factory.mktemp("checkpoints")
    x, y = (torch.from_numpy(a[:500]) for a in digits_arrays("train"))
    paths = []
    for seed in range(3):
        model = seeded(lambda: get_architecture("digits_cnn"), seed)
        train_with_noise(model, x, y, SIGMA, epochs=1, seed=seed)
        paths.append(folder / f"clean{seed}.pt")
        save_checkpoint(model, "digits_cnn", paths[-1])
    den = denoiser(seed=3, depth=5, width=32)  # the layers of dncnn_digits, its last one random too
    paths.append(folder / "den.pt")
    save_checkpoint(den, "dncnn_digits", paths[-1])
    return paths


FAST = ["--sigma", str(SIGMA), "--n0", "20", "--n", "100", "--max-examples", "8", "--no-progress"]


def cli_rows(capsys, tmp_path, *args) -> list[list[str]]:
    out = tmp_path / "out.tsv"
    out.unlink(missing_ok=True)
    code = main(["certify", *FAST, *map(str, args), "--out", str(out)])
    assert (code, capsys.readouterr().err) == (0, "")
    return [line.split("\t")[:5] for line in out.read_text().splitlines()[1:]]


def api_rows(model: nn.Module) -> list[list[str]]:
    from rs_plugin.adapters.datasets import digits_arrays

    x, y = digits_arrays("test")
    smoothed = SmoothedClassifier(model, 10, SIGMA, seed=0)
    rows = []
    for idx in range(8):
        c = smoothed.certify(x[idx], 20, 100, 0.001, index=idx)
        rows.append([str(idx), str(y[idx]), str(c.prediction), f"{c.radius:.3}", str(int(c.prediction == y[idx]))])
    return rows


def test_cli_certifies_a_checkpoint_behind_a_denoiser(tmp_path, capsys, checkpoints) -> None:
    clean, den = checkpoints[0], checkpoints[3]
    composed = Denoised(load_checkpoint(den)[0], load_checkpoint(clean)[0])
    rows = cli_rows(capsys, tmp_path, "--checkpoint", clean, "--denoiser", den)
    assert rows == api_rows(composed) == cli_rows(capsys, tmp_path, "--checkpoint", clean, "--denoiser",
                                                  f"dncnn:{den}")
    assert rows != cli_rows(capsys, tmp_path, "--checkpoint", clean)  # the denoiser changed the votes


@pytest.mark.slow
def test_cli_certifies_an_ensemble_of_three_checkpoints(tmp_path, capsys, checkpoints, fake_diffusion) -> None:
    members = [load_checkpoint(path)[0] for path in checkpoints[:3]]
    rows = cli_rows(capsys, tmp_path, "--checkpoint", *checkpoints[:3])
    assert rows == api_rows(Ensemble(members))
    # a plugin denoiser by name, in front of the ensemble (the fake diffusion model returns its input)
    assert rows == cli_rows(capsys, tmp_path, "--checkpoint", *checkpoints[:3], "--denoiser", "fake-diffusion")
    assert fake_diffusion.seen


def test_cli_rejects_a_denoiser_given_as_a_classifier_and_the_reverse(tmp_path, capsys, checkpoints) -> None:
    out = str(tmp_path / "out.tsv")
    cases = [
        (["--checkpoint", checkpoints[3]], "holds the denoiser dncnn_digits; give it with --denoiser"),
        (["--checkpoint", checkpoints[0], "--denoiser", checkpoints[1]], "holds the classifier 'digits_cnn'"),
        (["--checkpoint", checkpoints[0], "--denoiser", "no-such.pt"], "'no-such.pt' is neither a file nor a known "
                                                                       "denoiser (dncnn"),
        (["--checkpoint", checkpoints[0], "--denoiser", "dncnn"], "dncnn needs a checkpoint file"),
    ]
    for args, message in cases:
        code = main(["certify", *FAST, *map(str, args), "--out", out])
        err = capsys.readouterr().err
        assert code == 1 and message in err and err.count("\n") == 1, err


def test_tasks_with_several_checkpoints_pickle_and_no_checkpoint_is_refused() -> None:
    task = DatasetTask("digits", SIGMA, model_options={"checkpoint": ["a.pt", "b.pt", "c.pt"], "denoiser": "den.pt"})
    assert pickle.loads(pickle.dumps(task)) == task
    with pytest.raises(ValueError, match="checkpoint: give at least one checkpoint file"):
        DatasetTask("digits", SIGMA, model_options={"checkpoint": []}).load_base()


def test_plugins_command_lists_the_builtin_denoiser(capsys) -> None:
    assert main(["plugins"]) == 0
    assert "denoisers (rs-plugin" in (out := capsys.readouterr().out) and "  denoisers: dncnn" in out
