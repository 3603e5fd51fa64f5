"""Attacks on the smoothed classifier (torchattacks' PGDL2 on SmoothedModule, SmoothAdvPGD) and DeepFool radii."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
torchattacks = pytest.importorskip("torchattacks")
from torch import nn  # noqa: E402

from rs_plugin import ABSTAIN, SmoothedClassifier  # noqa: E402
from rs_plugin.adapters.torch import SmoothedModule  # noqa: E402
from rs_plugin.attacks import SmoothAdvPGD, deepfool_radii, empirical_robust_accuracy  # noqa: E402

SIGMA = 0.25
NUM = 60  # digits test examples attacked
EPS = 1.0  # about twice the typical certified radius (~0.5) of the sigma = 0.25 digits model


@pytest.fixture(scope="module")
def examples(digits_test):
    x, y = digits_test
    return torch.from_numpy(x[:NUM]), torch.from_numpy(y[:NUM])


def smoothed_accuracy(net, x, y) -> float:
    """PREDICT's accuracy (n=1000, alpha=0.001); an abstention counts as a failure of the classifier."""
    smoothed = SmoothedClassifier(net, 10, SIGMA, seed=0)
    predictions = smoothed.predict_many(x, 1000, 0.001, progress=False)
    return float(np.mean((predictions == y.numpy()) & (predictions != ABSTAIN)))


def distances(adv, x):
    return (adv - x).flatten(1).norm(dim=1)


@pytest.fixture(scope="module")
def clean_accuracy(noisy_digits_net, examples):
    return smoothed_accuracy(noisy_digits_net, *examples)


def test_pgdl2_on_the_smoothed_module_stays_in_the_ball_and_lowers_smoothed_accuracy(
    noisy_digits_net, examples, clean_accuracy
):
    x, y = examples
    torch.manual_seed(0)
    module = SmoothedModule(noisy_digits_net, SIGMA, num_noise=16, batch_size=4000)
    adv = torchattacks.PGDL2(module, eps=EPS, alpha=2 * EPS / 10, steps=10, random_start=False)(x, y)
    assert adv.shape == x.shape
    assert distances(adv, x).max() <= EPS + 1e-5
    assert adv.min() >= 0 and adv.max() <= 1
    attacked = smoothed_accuracy(noisy_digits_net, adv, y)
    assert clean_accuracy >= 0.9
    assert attacked <= 0.5, (clean_accuracy, attacked)


def test_smoothadv_pgd_stays_in_per_example_balls_and_lowers_smoothed_accuracy(
    noisy_digits_net, examples, clean_accuracy
):
    x, y = examples
    eps = torch.linspace(0.8 * EPS, 1.2 * EPS, len(x))  # one radius per example
    attack = SmoothAdvPGD(noisy_digits_net, SIGMA, eps, steps=10, num_noise=16, batch_size=4000, seed=0)
    adv = attack(x, y)
    assert adv.shape == x.shape and adv.dtype == x.dtype
    assert (distances(adv, x) <= eps + 1e-5).all()
    assert adv.min() >= 0 and adv.max() <= 1
    attacked = smoothed_accuracy(noisy_digits_net, adv, y)
    assert attacked <= 0.5, (clean_accuracy, attacked)
    assert noisy_digits_net.training is False  # the model's mode is left as it was


def test_smoothadv_pgd_is_reproducible_and_both_noise_modes_and_random_start_work(noisy_digits_net, examples):
    x, y = examples[0][:8], examples[1][:8]
    runs = [SmoothAdvPGD(noisy_digits_net, SIGMA, 0.5, steps=3, num_noise=4, seed=1)(x, y) for _ in range(2)]
    torch.testing.assert_close(runs[0], runs[1])
    for options in ({"reuse_noise": True}, {"random_start": True}):
        adv = SmoothAdvPGD(noisy_digits_net, SIGMA, 0.5, steps=3, num_noise=4, seed=1, **options)(x, y)
        assert (distances(adv, x) <= 0.5 + 1e-5).all() and adv.min() >= 0 and adv.max() <= 1


def test_targeted_mode_moves_the_soft_classifier_to_the_target(noisy_digits_net, examples):
    x, y = examples[0][:20], examples[1][:20]
    target = (y + 1) % 10
    attack = SmoothAdvPGD(noisy_digits_net, SIGMA, 2.0, steps=20, num_noise=16, seed=0)
    attack.set_mode_targeted_by_label(quiet=True)
    adv = attack(x, target)
    with torch.no_grad():
        soft = SmoothedModule(noisy_digits_net, SIGMA, num_noise=256, seed=1)(adv).argmax(1)
    assert (soft == target).float().mean() >= 0.7


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"eps": 0.0}, ValueError, "eps must be finite and > 0"),
        ({"eps": -1.0}, ValueError, "eps must be finite and > 0"),
        ({"eps": torch.ones(2, 2)}, ValueError, "eps must be a number or of shape 1-D"),
        ({"eps": "big"}, TypeError, "eps must be a number"),
        ({"alpha": 0.0}, ValueError, "alpha must be finite and > 0"),
        ({"steps": 0}, ValueError, "steps must be at least 1"),
        ({"num_noise": 0}, ValueError, "num_noise must be at least 1"),
        ({"sigma": -0.5}, ValueError, "sigma must be a positive"),
    ],
)
def test_bad_attack_arguments_are_named(noisy_digits_net, kwargs, error, match):
    arguments = {"sigma": SIGMA, "eps": 0.5, **kwargs}
    with pytest.raises(error, match=match):
        SmoothAdvPGD(noisy_digits_net, **arguments)


def test_bad_attack_inputs_are_named(noisy_digits_net, examples):
    x, y = examples[0][:4], examples[1][:4]
    attack = SmoothAdvPGD(noisy_digits_net, SIGMA, 0.5, steps=1, num_noise=2)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, num_classes=10\)"):
        attack(x, torch.tensor([0, 1, 2, 10]))
    with pytest.raises(ValueError, match=r"labels must have shape \(4,\)"):
        attack(x, y[:3])
    with pytest.raises(TypeError, match="labels must be an integer"):
        attack(x, y.float())
    with pytest.raises(ValueError, match="images must be a non-empty batch"):
        attack(x[0, 0, 0], y[:1])
    with pytest.raises(ValueError, match=r"images must be finite and lie in \[0, 1\]"):
        attack(x * 16, y)
    with pytest.raises(ValueError, match=r"eps must be a number or of shape \(4,\)"):
        SmoothAdvPGD(noisy_digits_net, SIGMA, torch.ones(3), steps=1, num_noise=2)(x, y)
    with pytest.raises(ValueError, match="put the normalisation inside the model"):
        attack.set_normalization_used(mean=[0.5], std=[0.5])


# DeepFool


def linear_classifier(weight, bias) -> nn.Module:
    weight = np.asarray(weight)
    model = nn.Sequential(nn.Flatten(), nn.Linear(weight.shape[1], weight.shape[0]))
    with torch.no_grad():
        model[1].weight.copy_(torch.as_tensor(weight, dtype=torch.float32))
        model[1].bias.copy_(torch.as_tensor(bias, dtype=torch.float32))
    return model


@pytest.mark.parametrize("overshoot", [0.02, 0.1])
def test_deepfool_radius_on_a_linear_model_is_the_distance_to_the_boundary_times_the_overshoot(overshoot):
    rng = np.random.default_rng(0)
    dim = 16
    weight = rng.normal(size=(2, dim))
    bias = np.array([0.0, 0.0])
    x = rng.uniform(0.4, 0.6, size=(20, 1, 4, 4))  # far from the [0, 1] clamp
    margin = x.reshape(20, -1) @ (weight[1] - weight[0])
    # shift the boundary so that every point is 0.01..0.1 away from it, on either side
    bias[1] = -margin.mean()
    true_distance = np.abs(margin + bias[1]) / np.linalg.norm(weight[1] - weight[0])
    model = linear_classifier(weight, bias)
    with torch.no_grad():
        y = model(torch.tensor(x, dtype=torch.float32)).argmax(1)
    radii = deepfool_radii(model, x, y, overshoot=overshoot)
    assert true_distance.max() < 0.3
    np.testing.assert_allclose(radii, (1 + overshoot) * true_distance, rtol=1e-4, atol=1e-6)


def test_deepfool_radius_on_a_multiclass_linear_model_is_the_distance_to_the_nearest_boundary():
    rng = np.random.default_rng(1)
    weight, bias = rng.normal(size=(4, 9)), rng.normal(scale=0.1, size=4)
    x = torch.tensor(rng.uniform(0.45, 0.55, size=(30, 9)), dtype=torch.float32)
    model = linear_classifier(weight, bias)
    with torch.no_grad():
        y = model(x).argmax(1)
    scores = x.double().numpy() @ weight.T + bias
    expected = []
    for s, label in zip(scores, y.numpy(), strict=True):
        gaps = [abs(s[k] - s[label]) / np.linalg.norm(weight[k] - weight[label]) for k in range(4) if k != label]
        expected.append(1.02 * min(gaps))
    radii = deepfool_radii(model, x, y)
    inside = np.array(expected) < 0.4  # the steps stay inside [0, 1]
    assert inside.sum() >= 10
    np.testing.assert_allclose(radii[inside], np.array(expected)[inside], rtol=1e-4, atol=1e-6)


def test_deepfool_radius_is_zero_when_already_wrong_and_inf_when_deepfool_fails():
    # class 1 only where x1 + x2 > 5: unreachable inside [0, 1]^2, so DeepFool's steps are clamped back
    model = linear_classifier([[0.0, 0.0], [1.0, 1.0]], [0.0, -5.0])
    x = torch.tensor([[0.2, 0.3], [0.6, 0.1]])
    radii = deepfool_radii(model, x, torch.tensor([0, 1]), steps=5)
    assert radii[0] == np.inf and radii[1] == 0.0
    assert all(p.requires_grad and p.grad is None for p in model.parameters())


def test_deepfool_on_the_undefended_digits_net(clean_digits_net, digits_test):
    x, y = digits_test
    radii = deepfool_radii(clean_digits_net, x[:40], y[:40], batch_size=16)
    with torch.no_grad():
        correct = clean_digits_net(torch.from_numpy(x[:40])).argmax(1).numpy() == y[:40]
    assert ((radii == 0) == ~correct).all()
    assert np.isfinite(radii).all()  # DeepFool finds an adversarial input for every example
    curve = empirical_robust_accuracy(radii, [0.0, 0.5, 1.0, 2.0])
    assert curve[0] == pytest.approx(correct.mean())
    assert (np.diff(curve) <= 0).all() and curve[-1] < curve[0]


def test_empirical_robust_accuracy_counts_radii_beyond_each_radius():
    radii = [0.0, 0.5, 1.0, np.inf]
    np.testing.assert_allclose(empirical_robust_accuracy(radii, [0.0, 0.5, 0.75, 2.0]), [0.75, 0.5, 0.5, 0.25])
    with pytest.raises(ValueError, match="radii must be"):
        empirical_robust_accuracy([-1.0], 0.0)
    with pytest.raises(ValueError, match="at must hold radii >= 0"):
        empirical_robust_accuracy([1.0], [-0.1])


def test_bad_deepfool_inputs_are_named():
    model = linear_classifier([[1.0, 0.0], [0.0, 1.0]], [0.0, 0.0])
    x = torch.rand(3, 2)
    with pytest.raises(ValueError, match=r"y must lie in \[0, num_classes=2\)"):
        deepfool_radii(model, x, torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match=r"y must have shape \(3,\)"):
        deepfool_radii(model, x, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="overshoot must be >= 0"):
        deepfool_radii(model, x, torch.tensor([0, 1, 1]), overshoot=-0.1)
    with pytest.raises(ValueError, match="steps must be at least 1"):
        deepfool_radii(model, x, torch.tensor([0, 1, 1]), steps=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_attacks_run_on_the_model_device(noisy_digits_net, examples):
    import copy

    net = copy.deepcopy(noisy_digits_net).cuda()
    x, y = examples[0][:8], examples[1][:8]
    adv = SmoothAdvPGD(net, SIGMA, 0.5, steps=2, num_noise=4, seed=0)(x, y)  # CPU inputs are moved
    assert adv.device.type == "cuda" and (distances(adv.cpu(), x) <= 0.5 + 1e-5).all()
    radii = deepfool_radii(net, x.cuda(), y.cuda())
    assert radii.shape == (8,)
