"""Training methods for smoothing: each loss against its paper's formula, the shared loop (reproducible, resumable,
refusing foreign files), the plugin lookup, `rs-plugin train`, and the ART estimator's fit."""

from __future__ import annotations

import functools
import itertools
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")

import torch.nn.functional as F  # noqa: E402
from scipy.stats import norm  # noqa: E402
from torch import nn  # noqa: E402

from rs_plugin import hookimpl  # noqa: E402
from rs_plugin.adapters.datasets import digits_arrays  # noqa: E402
from rs_plugin.adapters.plugins import make_trainer, trainers  # noqa: E402
from rs_plugin.adapters.torch import SmoothedModule, TorchStream  # noqa: E402
from rs_plugin.adapters.trainers import Step, TrainConfig, fit, read_checkpoint  # noqa: E402
from rs_plugin.adapters.trainers.macer import soft_radius_gap  # noqa: E402
from rs_plugin.adapters.trainers.smoothmix import mixup  # noqa: E402
from rs_plugin.cli import main  # noqa: E402
from rs_plugin.noises import Gaussian  # noqa: E402
from rs_plugin.plugins import get_plugin_manager  # noqa: E402
from rs_plugin.seeding import stream_seed  # noqa: E402

METHODS = ("standard", "gaussian", "smoothadv", "consistency", "macer", "smoothmix", "denoiser")
FAST = {  # hyperparameters for seconds-long tests; warm-ups off so that the objective stays fixed
    "smoothadv": {"warmup": 1, "num_noise": 2},
    "smoothmix": {"warmup": 1},
    "macer": {"num_noise": 4},
}


def linear(seed: int = 0) -> nn.Module:
    """A tiny digits classifier (inputs in [0, 1])."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 10))


class TinyDenoiser(nn.Module):
    """A stand-in denoiser: ``x`` minus one 3x3 convolution of it."""

    def __init__(self) -> None:
        super().__init__()
        self.noise = nn.Conv2d(1, 1, 3, padding=1)
        nn.init.zeros_(self.noise.weight)
        nn.init.zeros_(self.noise.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x - self.noise(x)


class Recorder(nn.Module):
    """``net``, remembering every batch it saw."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net, self.inputs = net, []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.inputs.append(x.detach().clone())
        return self.net(x)


class Constant(nn.Module):
    """Logits that do not depend on the input: every noisy copy predicts the same."""

    def __init__(self, logits: list[float]) -> None:
        super().__init__()
        self.logits = nn.Parameter(torch.tensor(logits))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits.expand(len(x), -1)


@pytest.fixture(scope="module")
def digits() -> tuple[torch.Tensor, torch.Tensor]:
    """256 training digits."""
    x, y = digits_arrays("train")
    return torch.from_numpy(x[:256]), torch.from_numpy(y[:256])


@pytest.fixture(scope="module")
def classifier(digits) -> nn.Module:
    """A linear digits classifier trained without noise (the frozen classifier of the denoiser tests)."""
    model = linear(1)
    fit(make_trainer("standard"), model, digits, TrainConfig(epochs=20, lr=0.05))
    return model


def step_for(sigma: float = 0.5, seed: int = 0, epoch: int = 0, epochs: int = 1) -> Step:
    noise = Gaussian(sigma)
    generator = torch.Generator().manual_seed(seed)
    return Step(noise, TorchStream(noise, stream_seed(seed, "train")), generator, epoch, epochs)


def make(method: str, classifier: nn.Module | None = None, **options):
    extra = {"classifier": classifier} if method == "denoiser" else {}
    return make_trainer(method, 0.5, **{**FAST.get(method, {}), **options}, **extra)


# --- the losses, as their papers write them ---------------------------------------------------------------------


def test_gaussian_loss_is_the_cross_entropy_of_one_noisy_copy_from_the_run_stream(digits):
    x, y = digits[0][:8], digits[1][:8]
    model = Recorder(linear())
    loss, _ = make("gaussian").loss(model, x, y, step_for())
    noise = TorchStream(Gaussian(0.5), stream_seed(0, "train")).fill(torch.empty_like(x))
    torch.testing.assert_close(model.inputs[0], x + noise)
    torch.testing.assert_close(loss, F.cross_entropy(model.net(x + noise), y))


def test_consistency_kl_term_vanishes_when_all_copies_agree(digits):
    x, y = digits[0][:8], digits[1][:8]
    logits = [2.0, -1.0, 0.5, 0, 0, 0, 0, 0, 0, 1.0]
    p = torch.tensor(logits).softmax(0)
    cross_entropy = F.cross_entropy(torch.tensor(logits).expand(8, -1), y)
    entropy = -(p * p.log()).sum()
    for lbd in (0.0, 20.0):  # the KL term is 0, whatever its weight
        loss, _ = make("consistency", lbd=lbd, eta=0.5).loss(Constant(logits), x, y, step_for())
        torch.testing.assert_close(loss, cross_entropy + 0.5 * entropy)


def test_consistency_loss_is_the_papers_formula_on_the_copies(digits):
    x, y = digits[0][:8], digits[1][:8]
    model = Recorder(linear())
    loss, _ = make("consistency", num_noise=3, lbd=7.0, eta=0.25).loss(model, x, y, step_for())
    copies = model.net(model.inputs[0]).view(8, 3, 10)  # copies of an input are consecutive
    probs = copies.softmax(-1)
    mean = probs.mean(1)
    kl = sum((mean * (mean.log() - probs[:, i].log())).sum(1) for i in range(3)) / 3
    expected = (F.cross_entropy(copies.flatten(0, 1), y.repeat_interleave(3)) + 7.0 * kl.mean()
                - 0.25 * (mean * mean.log()).sum(1).mean())
    torch.testing.assert_close(loss, expected)
    assert kl.min() > 0


def test_macer_hinge_is_zero_beyond_gamma_and_the_papers_formula_below(digits):
    x, y = digits[0][:4], torch.zeros(4, dtype=torch.int64)
    logits = [3.0, 1.0, 0, 0, 0, 0, 0, 0, 0, 0]
    p = torch.tensor(logits).softmax(0).double()
    xi = float(norm.ppf(p[0]) - norm.ppf(p[1]))  # the soft radius gap with beta = 1: G is this softmax
    cross_entropy = -math.log(p[0])
    far = make("macer", beta=1.0, gamma=0.9 * xi, lbd=10.0).loss(Constant(logits), x, y, step_for())[0].detach()
    assert float(far) == pytest.approx(cross_entropy, rel=1e-5)
    near = make("macer", beta=1.0, gamma=xi + 2.0, lbd=10.0).loss(Constant(logits), x, y, step_for())[0].detach()
    assert float(near) == pytest.approx(cross_entropy + 10.0 * 0.5 / 2 * 2.0, rel=1e-5)
    wrong = make("macer", beta=1.0, gamma=xi + 2.0, lbd=10.0).loss(Constant(logits), x, y + 1, step_for())[0].detach()
    assert float(wrong) == pytest.approx(-math.log(p[1]), rel=1e-5)  # misclassified inputs get no hinge


def test_macer_soft_radius_gap_is_finite_with_a_gradient_even_for_saturated_probabilities():
    logits = torch.tensor([[[50.0, 0, 0], [50.0, 0, 0]], [[1.0, 0.5, 0], [0.8, 0.7, 0]]], requires_grad=True)
    xi, counted = soft_radius_gap(logits, torch.tensor([0, 0]), beta=16.0)
    assert counted.tolist() == [False, True] and xi[0] == 0
    xi.sum().backward()
    assert torch.isfinite(logits.grad).all() and logits.grad[1].abs().sum() > 0


def test_smoothmix_mixed_points_lie_on_the_segment_and_labels_move_towards_uniform():
    start, end = torch.rand(5, 1, 8, 8), torch.rand(5, 1, 8, 8)
    probabilities = torch.rand(5, 10).softmax(-1)
    lam = torch.rand(5) / 2
    x_mix, y_mix = mixup(start, end, probabilities, lam)
    for b in range(5):
        torch.testing.assert_close(x_mix[b], start[b] + lam[b] * (end[b] - start[b]))
        assert (x_mix[b] - start[b]).norm() <= 0.5 * (end[b] - start[b]).norm() + 1e-6
    torch.testing.assert_close(y_mix.sum(1), torch.ones(5))
    torch.testing.assert_close(y_mix, (1 - lam[:, None]) * probabilities + lam[:, None] / 10)


def test_smoothmix_adversary_takes_steps_of_alpha_inside_the_unit_box(digits):
    x, y = digits[0][:6], digits[1][:6]
    iterates = make("smoothmix", steps=3, alpha=0.4).adversary(linear(), x, y, seed=5)
    assert len(iterates) == 4 and torch.equal(iterates[0], x)
    for before, after in itertools.pairwise(iterates):
        assert ((after - before).flatten(1).norm(dim=1) <= 0.4 + 1e-5).all()
        assert after.min() >= 0 and after.max() <= 1
    assert (iterates[-1] != x).any()


def test_smoothmix_without_mixup_is_the_cross_entropy_on_the_adversarys_noise(digits):
    x, y = digits[0][:8], digits[1][:8]
    model = Recorder(linear())
    loss, _ = make("smoothmix", eta=0.0, num_noise=2).loss(model, x, y, step_for())
    clean, mixed = model.inputs[-2:]  # the clean copies, then the mixed ones
    torch.testing.assert_close(loss, F.cross_entropy(model.net(clean), y.repeat_interleave(2)))
    x_mix = (mixed - (clean - x.repeat_interleave(2, 0))).view(8, 2, -1)
    torch.testing.assert_close(x_mix, x_mix[:, :1].expand(-1, 2, -1))  # both copies of an input: the same noise


def test_smoothadv_trains_on_the_noise_its_attack_held_fixed_within_eps(digits):
    x, y = digits[0][:8], digits[1][:8]
    model = Recorder(linear())
    trainer = make("smoothadv", eps=0.5, steps=2, num_noise=3, warmup=4)
    loss, logits = trainer.loss(model, x, y, step_for(epoch=1))  # warm-up: eps 0.5 * 2 / 4
    first_attack, trained = next(i for i in model.inputs if len(i) == 24), model.inputs[-1]
    noise = first_attack - x.repeat_interleave(3, 0)  # the attack starts at x
    attacked = (trained - noise).view(8, 3, -1)
    torch.testing.assert_close(attacked, attacked[:, :1].expand(-1, 3, -1))  # one x' per input: the noise is shared
    distance = (attacked[:, 0] - x.flatten(1)).norm(dim=1)
    assert (distance <= 0.25 + 1e-5).all() and distance.max() > 0.2
    torch.testing.assert_close(loss, F.cross_entropy(logits.flatten(0, 1), y.repeat_interleave(3)))


def test_step_noise_with_a_seed_is_the_smoothed_modules_noise(digits):
    x = digits[0][:4]
    model = Recorder(linear())
    SmoothedModule(model, 0.5, num_noise=3, batch_size=12)(x, noise_seed=11)
    torch.testing.assert_close(step_for().noisy(x, 3, seed=11).flatten(0, 1), model.inputs[0])


def test_denoiser_objectives_are_the_papers(digits, classifier):
    x, y = digits[0][:16], digits[1][:16]
    denoiser = Recorder(TinyDenoiser())
    nn.init.normal_(denoiser.net.noise.weight, std=0.1)
    stability, logits = make("denoiser", classifier, objective="stability").loss(denoiser, x, y, step_for())
    denoised = denoiser.net(denoiser.inputs[0])
    torch.testing.assert_close(logits, classifier(denoised))
    torch.testing.assert_close(stability, F.cross_entropy(classifier(denoised), classifier(x).argmax(1)))
    mse, _ = make("denoiser", classifier, objective="mse").loss(denoiser, x, y, step_for(seed=1))
    torch.testing.assert_close(mse, ((denoiser.net(denoiser.inputs[1]) - x) ** 2).mean())


# --- the loop -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_each_method_lowers_its_loss_in_a_few_epochs(method, digits, classifier):
    trainer = make(method, classifier)
    model = TinyDenoiser() if method == "denoiser" else linear()
    fit(trainer, model, digits, TrainConfig(epochs=3, inputs_per_step=64, lr=0.01))
    losses = [entry["loss"] for entry in trainer.history]
    assert len(losses) == 3 and losses[-1] < losses[0], losses
    assert not model.training


def test_denoiser_training_leaves_the_classifier_as_it_was(digits, classifier):
    before = {k: v.clone() for k, v in classifier.state_dict().items()}
    classifier.train()
    denoiser = TinyDenoiser()
    fit(make("denoiser", classifier), denoiser, digits, TrainConfig(epochs=1, lr=0.01))
    assert all(torch.equal(before[k], v) for k, v in classifier.state_dict().items())
    assert classifier.training and all(p.requires_grad for p in classifier.parameters())
    assert denoiser.noise.weight.abs().sum() > 0
    classifier.eval()


def test_same_seed_same_weights_other_seed_other_weights(digits):
    def run(seed: int) -> dict:
        model = linear()
        fit(make("smoothmix"), model, digits, TrainConfig(epochs=1, seed=seed))
        return model.state_dict()

    first, again, other = run(0), run(0), run(1)
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not torch.equal(first["1.weight"], other["1.weight"])


@pytest.mark.parametrize("method", ["gaussian", "consistency", "smoothadv", "smoothmix"])
def test_resumed_run_ends_with_the_weights_of_an_uninterrupted_one(method, digits, tmp_path):
    """Stopped after epoch 1 of 3 and resumed: the same weights, optimizer and history as one run (noise stream,
    shuffling, the methods' own draws and torch's generator all restored)."""
    whole = linear()
    fit(make(method), whole, digits, TrainConfig(epochs=3), checkpoint=tmp_path / "whole.pt")
    part = linear()
    fit(make(method), part, digits, TrainConfig(epochs=1), checkpoint=tmp_path / "part.pt")
    resumed = linear(seed=9)  # the checkpoint, not the initial weights, decides
    trainer = make(method)
    fit(trainer, resumed, digits, TrainConfig(epochs=3), checkpoint=tmp_path / "part.pt")
    assert all(torch.equal(whole.state_dict()[k], resumed.state_dict()[k]) for k in whole.state_dict())
    saved = read_checkpoint(tmp_path / "part.pt")
    assert saved["epoch"] == 3 and [h["epoch"] for h in trainer.history] == [1, 2, 3]
    whole_history = read_checkpoint(tmp_path / "whole.pt")["history"]
    assert [h["loss"] for h in saved["history"]] == [h["loss"] for h in whole_history]


def test_checkpoint_is_the_papers_format_plus_the_run(digits, tmp_path):
    fit(make("consistency", lbd=3.0), linear(), digits, TrainConfig(epochs=2), checkpoint=tmp_path / "c.pt",
        arch="tiny")
    saved = torch.load(tmp_path / "c.pt", weights_only=True)
    assert {"arch", "state_dict", "epoch", "optimizer", "method", "sigma", "noise"} <= saved.keys()
    assert (saved["arch"], saved["epoch"], saved["method"], saved["sigma"], saved["noise"]) == (
        "tiny", 2, "consistency", 0.5, "gaussian")
    assert saved["settings"]["option.lbd"] == 3.0 and len(saved["history"]) == 2
    assert not list(tmp_path.glob("*.tmp"))


def test_a_file_that_is_not_our_checkpoint_is_never_overwritten(digits, tmp_path):
    for content in (b"my thesis", None):
        path = tmp_path / "precious.pt"
        if content is None:
            torch.save({"arch": "digits_cnn", "state_dict": linear().state_dict()}, path)  # someone else's model
        else:
            path.write_bytes(content)
        before = path.read_bytes()
        with pytest.raises(ValueError, match="not a training checkpoint of rs-plugin; refusing to overwrite"):
            fit(make("gaussian"), linear(), digits, TrainConfig(epochs=1), checkpoint=path)
        assert path.read_bytes() == before


def test_resuming_with_other_settings_is_refused_naming_the_difference(digits, tmp_path):
    path = tmp_path / "c.pt"
    fit(make("consistency"), linear(), digits, TrainConfig(epochs=1), checkpoint=path)
    before = path.read_bytes()
    cases = [
        (make_trainer("consistency", 0.25), TrainConfig(epochs=2), "sigma 0.5 there, 0.25 here"),
        (make("consistency", lbd=1.0), TrainConfig(epochs=2), "option.lbd 5.0 there, 1.0 here"),
        (make("macer"), TrainConfig(epochs=2), 'method "consistency" there, "macer" here'),
        (make("consistency"), TrainConfig(epochs=2, lr=0.01), "lr 0.001 there, 0.01 here"),
        (make("consistency"), TrainConfig(epochs=2, seed=1), "seed 0 there, 1 here"),
    ]
    for trainer, config, message in cases:
        with pytest.raises(ValueError, match=message.replace("(", r"\(")):
            fit(trainer, linear(), digits, config, checkpoint=path)
    assert path.read_bytes() == before


def test_a_diverging_run_stops_without_saving(digits, tmp_path):
    x, y = digits
    with pytest.raises(ValueError, match="training diverged: the loss of epoch 1 is nan"):
        fit(make("gaussian"), linear(), (x * float("nan"), y), TrainConfig(epochs=1), checkpoint=tmp_path / "c.pt")
    assert not (tmp_path / "c.pt").exists()


def test_bad_arguments_give_one_line_errors():
    cases = [
        (lambda: make_trainer("magic", 0.5), ValueError, "method: unknown method 'magic'; known methods: consistency"),
        (lambda: make_trainer("gaussian"), ValueError, "sigma: the gaussian method trains under noise"),
        (lambda: make_trainer("gaussian", -1.0), ValueError, "sigma must be a positive finite number"),
        (lambda: make_trainer("gaussian", 0.5, noise="pink"), ValueError, "unknown noise 'pink'"),
        (lambda: make_trainer("consistency", 0.5, lbda=1), ValueError, "consistency has no option 'lbda'; its opt"),
        (lambda: make_trainer("consistency", 0.5, num_noise=1), ValueError, "num_noise must be at least 2"),
        (lambda: make_trainer("macer", 0.5, k="many"), ValueError, "option: num_noise must be int, got 'many'"),
        (lambda: make_trainer("smoothmix", 0.5, mix_step=2), ValueError, r"mix_step must lie in \[0, steps=2\)"),
        (lambda: make_trainer("smoothadv", 0.5, eps=0.0), ValueError, "eps must be a finite number > 0"),
        (lambda: make_trainer("denoiser", 0.5, objective="l1"), ValueError, "objective must be one of stability"),
        (lambda: make_trainer("denoiser", 0.5), TypeError, "classifier: the denoiser method needs the frozen"),
        (lambda: TrainConfig(epochs=0), ValueError, "epochs must be at least 1"),
        (lambda: TrainConfig(lr=float("inf")), ValueError, "lr must be a finite number > 0"),
        (lambda: fit(make_trainer("standard"), "model", (torch.zeros(2, 3), torch.zeros(2))), TypeError, "model must"),
    ]
    for call, error, message in cases:
        with pytest.raises(error, match=message) as info:
            call()
        assert "\n" not in str(info.value)


# --- plugins ------------------------------------------------------------------------------------------------------


def test_built_in_methods_are_entry_point_plugins_and_a_third_party_one_joins_them(digits):
    assert set(METHODS) <= set(trainers())

    class Twice(make_trainer("gaussian", 0.5).__class__):
        name = "twice"

        def loss(self, model, x, y, step):
            loss, logits = super().loss(model, x, y, step)
            return 2 * loss, logits

    class Plugin:
        @staticmethod
        @hookimpl
        def rs_plugin_add_trainers():
            return {"twice": Twice}

    pm = get_plugin_manager()
    pm.register(Plugin, name="twice-plugin")
    try:
        trainer = make_trainer("twice", 0.5)
        fit(trainer, linear(), digits, TrainConfig(epochs=1))
        assert trainer.history[0]["loss"] > 0
    finally:
        pm.unregister(name="twice-plugin")
    assert "twice" not in trainers()


def test_listing_the_methods_does_not_import_torch():
    code = ("import sys, rs_plugin.adapters.plugins as p; names = sorted(p.trainers()); "
            "print(names, 'torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("False") and "'smoothmix'" in done.stdout


# --- the command line ---------------------------------------------------------------------------------------------


def test_cli_gaussian_training_gives_exactly_the_cached_digits_model(tmp_path, capsys):
    """`rs-plugin train --method gaussian` is `digits_model`'s recipe: the same initial weights and the same run."""
    from rs_plugin.adapters.checkpoints import load_checkpoint
    from rs_plugin.adapters.training import digits_model

    out = tmp_path / "g.pt"
    assert main(["train", "--method", "gaussian", "--sigma", "0.25", "--epochs", "2", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert f"{out}: gaussian, digits_cnn, epoch 2/2: loss " in captured.out
    assert "gaussian epoch 2/2" in captured.err and "acc=" in captured.err and "loss=" in captured.err
    trained, arch = load_checkpoint(out)
    expected = digits_model(0.25, epochs=2)
    assert arch == "digits_cnn"
    assert all(torch.equal(expected.state_dict()[k], v) for k, v in trained.state_dict().items())


def test_certify_reads_a_training_checkpoint(tmp_path, capsys):
    out = tmp_path / "c.pt"
    assert main(["train", "--method", "consistency", "--sigma", "0.5", "--epochs", "1", "--option", "lbd=2",
                 "--no-progress", "--out", str(out)]) == 0
    results = tmp_path / "c.tsv"
    assert main(["certify", "--checkpoint", str(out), "--sigma", "0.5", "--n", "200", "--max-examples", "3",
                 "--no-progress", "--out", str(results)]) == 0
    rows = results.read_text().splitlines()
    assert rows[0].startswith("idx\tlabel\tpredict\tradius") and len(rows) == 4


@pytest.mark.slow
def test_cli_train_killed_mid_run_resumes_to_the_weights_of_an_uninterrupted_run(tmp_path):
    """`kill -9` after the first checkpoint; the same command again ends with one uninterrupted run's weights."""
    def command(out: Path) -> list[str]:
        return [sys.executable, "-m", "rs_plugin.cli", "train", "--method", "consistency", "--sigma", "0.5",
                "--epochs", "4", "--inputs-per-step", "128", "--no-progress", "--out", str(out)]

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    killed = tmp_path / "killed.pt"
    process = subprocess.Popen(command(killed), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while not killed.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL
    assert read_checkpoint(killed)["epoch"] < 4  # killed mid-run, with a checkpoint on disk
    for out in (killed, tmp_path / "whole.pt"):
        done = subprocess.run(command(out), env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    resumed, whole = read_checkpoint(killed), read_checkpoint(tmp_path / "whole.pt")
    assert resumed["epoch"] == whole["epoch"] == 4
    assert all(torch.equal(whole["state_dict"][k], v) for k, v in resumed["state_dict"].items())


def test_cli_user_mistakes_end_with_one_line_on_stderr(tmp_path, capsys):
    foreign = tmp_path / "notes.pt"
    foreign.write_text("not a checkpoint")
    cases = [
        (["--method", "magic", "--sigma", "0.5"], "method: unknown method 'magic'"),
        (["--method", "gaussian"], "sigma: the gaussian method trains under noise"),
        (["--method", "gaussian", "--sigma", "0.5", "--option", "lbd"], "option: expected NAME=VALUE, got 'lbd'"),
        (["--method", "gaussian", "--sigma", "0.5", "--option", "lbd=3"], "gaussian has no option 'lbd'"),
        (["--method", "consistency", "--sigma", "0.5", "--lr", "-1"], "lr must be a finite number > 0"),
        (["--method", "gaussian", "--sigma", "0.5", "--dataset", "mnist"], "dataset: unknown dataset 'mnist'"),
        (["--method", "gaussian", "--sigma", "0.5", "--dataset", "cifar10"], "data_dir: the cifar10 dataset is read"),
        (["--method", "gaussian", "--sigma", "0.5", "--arch", "resnet50"], "arch: resnet50 has 1000 classes"),
        (["--method", "denoiser", "--sigma", "0.5", "--classifier", str(tmp_path / "none.pt")],
         f"--classifier {str(tmp_path / 'none.pt')!r}: no such file"),
        (["--method", "gaussian", "--sigma", "0.5", "--out", str(foreign)], "refusing to overwrite it"),
    ]
    for arguments, message in cases:
        if "--out" not in arguments:
            arguments = [*arguments, "--out", str(tmp_path / "out.pt")]
        assert main(["train", "--no-progress", *arguments]) == 1, arguments
        err = capsys.readouterr().err
        assert err.startswith("rs-plugin train: error: ") and message in err and err.count("\n") == 1, err
    assert foreign.read_text() == "not a checkpoint"
    assert not (tmp_path / "out.pt").exists()


def test_cli_train_without_torch_names_the_extra(tmp_path):
    code = textwrap.dedent(f"""
        import sys

        class Uninstalled:
            def find_spec(self, name, path, target=None):
                if name.partition(".")[0] in {{"torch", "torchvision"}}:
                    raise ImportError(f"No module named {{name!r}}")

        sys.meta_path.insert(0, Uninstalled())
        from rs_plugin.cli import main
        sys.exit(main(["train", "--method", "gaussian", "--sigma", "0.5", "--out", {str(tmp_path / "g.pt")!r}]))
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "pip install 'rs-plugin[torch]'" in done.stderr


def test_cli_trains_a_denoiser_for_a_frozen_classifier(tmp_path, capsys):
    pytest.importorskip("rs_plugin.adapters.denoise")
    clean = tmp_path / "clean.pt"
    assert main(["train", "--method", "standard", "--epochs", "1", "--no-progress", "--out", str(clean)]) == 0
    denoiser = tmp_path / "den.pt"
    assert main(["train", "--method", "denoiser", "--classifier", str(clean), "--sigma", "0.25", "--objective", "mse",
                 "--epochs", "1", "--no-progress", "--out", str(denoiser)]) == 0
    saved = read_checkpoint(denoiser)
    assert (saved["arch"], saved["method"], saved["settings"]["option.objective"]) == ("dncnn_digits", "denoiser",
                                                                                         "mse")


def test_cli_trains_cifar10_from_a_local_folder_and_certifies_the_checkpoint(tmp_path, monkeypatch, capsys):
    """The DataLoader path of `rs-plugin train`: CIFAR-10 read from --data-dir (a fake one, 10 random images in
    torchvision's on-disk format), a ResNet trained one epoch, its checkpoint certified by `rs-plugin certify`."""
    import pickle

    import numpy as np

    from rs_plugin.results import read_results

    pytest.importorskip("torchvision")
    import torchvision.datasets.cifar

    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda *args, **kwargs: True)
    folder = tmp_path / "cifar" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {"data": rng.integers(0, 256, (2, 3 * 32 * 32), dtype=np.uint8), "labels": [0, 1]}
        (folder / name).write_bytes(pickle.dumps(batch))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": [f"class{i}" for i in range(10)]}))
    out, results = tmp_path / "resnet.pt", tmp_path / "resnet.tsv"
    assert main(["train", "--dataset", "cifar10", "--data-dir", str(tmp_path / "cifar"), "--arch", "cifar_resnet20",
                 "--method", "gaussian", "--sigma", "0.25", "--epochs", "1", "--inputs-per-step", "4", "--no-progress",
                 "--out", str(out)]) == 0
    saved = read_checkpoint(out)
    assert (saved["arch"], saved["epoch"], saved["settings"]["dataset"]) == ("cifar_resnet20", 1, "cifar10")
    assert main(["certify", "--dataset", "cifar10", "--data-dir", str(tmp_path / "cifar"), "--checkpoint", str(out),
                 "--sigma", "0.25", "--n0", "4", "--n", "8", "--alpha", "0.1", "--no-progress",
                 "--out", str(results)]) == 0
    assert read_results(results)["idx"].tolist() == [0, 1]


# --- ART ----------------------------------------------------------------------------------------------------------


def test_art_fit_trains_with_any_method(digits):
    pytest.importorskip("art")
    from art.estimators.classification import PyTorchClassifier, SklearnClassifier
    from sklearn.linear_model import LogisticRegression

    from rs_plugin.adapters.art import SmoothedEstimator

    x, y = digits[0].numpy(), digits[1].numpy()
    model = linear()
    classifier = PyTorchClassifier(model, loss=nn.CrossEntropyLoss(), input_shape=(1, 8, 8), nb_classes=10,
                                   optimizer=torch.optim.Adam(model.parameters(), lr=0.01), clip_values=(0, 1))
    smoothed = SmoothedEstimator(classifier, sigma=0.5, num_noise=16, seed=0)
    before = (smoothed.predict(x).argmax(1) == y).mean()
    smoothed.fit(x, y, batch_size=32, nb_epochs=3, method="consistency", method_options={"lbd": 2.0})
    assert (smoothed.predict(x).argmax(1) == y).mean() > before + 0.3
    logistic = SmoothedEstimator(SklearnClassifier(LogisticRegression().fit(x.reshape(256, -1), y)), sigma=0.5)
    with pytest.raises(ValueError, match="method: 'macer' trains a PyTorchClassifier"):
        logistic.fit(x.reshape(256, -1), y, method="macer")


# --- the done-when criterion ----------------------------------------------------------------------------------------


ROBUST_METHODS = ("smoothadv", "consistency", "macer", "smoothmix")


@pytest.fixture(scope="module")
def cli_acr(tmp_path_factory) -> Callable[[str], float]:
    """Issue 13's criterion at a tenth of its samples: the ACR of a method trained by `rs-plugin train` with its
    defaults on digits at sigma 0.5 and certified from its checkpoint by `rs-plugin certify` (n = 1,000, all 360
    test digits); each method is trained once per module.

    `benchmarks/methods.py` measures the criterion itself at n = 10,000 (README: best 1.115, worst 1.043 of
    Gaussian's ACR); with n = 1,000 every radius shrinks, so the bar here is 0.95 for each method and 1.05 for
    the best (measured: 1.052 for the lowest, consistency, and 1.123 for smoothadv). Training is deterministic on
    one CPU and torch build, so there this gives one answer.
    """
    from rs_plugin.results import read_results

    @functools.cache
    def of(method: str) -> float:
        folder = tmp_path_factory.mktemp(method)
        checkpoint, results = folder / f"{method}.pt", folder / f"{method}.tsv"
        assert main(["train", "--method", method, "--sigma", "0.5", "--no-progress",
                     "--out", str(checkpoint)]) == 0
        assert main(["certify", "--checkpoint", str(checkpoint), "--sigma", "0.5", "--n", "1000",
                     "--no-progress", "--out", str(results)]) == 0
        rows = read_results(results)
        return float(((rows["correct"] == 1) * rows["radius"]).mean())

    return of


@pytest.mark.slow
@pytest.mark.parametrize("method", ROBUST_METHODS)
def test_each_robust_method_certifies_at_least_95_percent_of_gaussian_from_its_cli_checkpoint(cli_acr, method):
    """One method per test, so that no single test runs long (each trains one method, the first also Gaussian)."""
    ratio = cli_acr(method) / cli_acr("gaussian")
    assert ratio >= 0.95, (method, ratio)


@pytest.mark.slow
def test_the_best_robust_method_certifies_5_percent_more_than_gaussian_from_its_cli_checkpoint(cli_acr):
    """Run after the tests above, it reuses their models (alone, it trains all five)."""
    ratios = {method: cli_acr(method) / cli_acr("gaussian") for method in ROBUST_METHODS}
    assert max(ratios.values()) >= 1.05, ratios
