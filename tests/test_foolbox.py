"""foolbox 3 on the smoothed classifier, called as foolbox's README calls models: ``fb.PyTorchModel(model.eval(),
bounds=(0, 1))`` around :class:`SmoothedModule` for the gradient attacks, around its frozen-noise view
(:class:`FrozenNoise`) for the decision-based ones. foolbox's ``success`` judges one noisy forward pass; the tests
judge attacks with PREDICT (n=500, alpha=0.001, an abstention counts as not robust)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
fb = pytest.importorskip("foolbox")
from scipy.stats import binomtest  # noqa: E402

from rs_plugin import ABSTAIN, SmoothedClassifier  # noqa: E402
from rs_plugin.adapters.torch import FrozenNoise, SmoothedModule  # noqa: E402

SIGMA, N, ALPHA = 0.25, 500, 0.001  # PREDICT's and CERTIFY's samples and failure probability
NUM = 16  # digits attacked by the gradient attacks
L2_LARGE, LINF_LARGE = 2.0, 0.4  # budgets at which the smoothed accuracy must drop (radii are ~0.5 at sigma 0.25)
GRADIENT_ATTACKS = {  # name: (attack, norm, epsilons)
    "L2PGD": (lambda: fb.attacks.L2PGD(steps=10), 2, [0.0, 0.5, L2_LARGE]),
    "LinfPGD": (lambda: fb.attacks.LinfPGD(steps=10), np.inf, [0.0, 0.1, LINF_LARGE]),
    "L2DeepFool": (lambda: fb.attacks.L2DeepFoolAttack(steps=10, candidates=3), 2, [0.5, L2_LARGE]),
    "L2CarliniWagner": (lambda: fb.attacks.L2CarliniWagnerAttack(binary_search_steps=2, steps=20, stepsize=0.1,
                                                                  initial_const=10.0),
                        2, [0.5, L2_LARGE]),
}


def smoothed_module(net, num_noise: int = 8) -> SmoothedModule:
    return SmoothedModule(net, SIGMA, num_noise=num_noise, batch_size=4096, seed=0)


def predict(net, x: torch.Tensor) -> np.ndarray:
    return SmoothedClassifier(net, 10, SIGMA, seed=1).predict_many(x, N, ALPHA, progress=False)


def accuracy(net, x: torch.Tensor, y: torch.Tensor) -> float:
    predictions = predict(net, x)
    return float(np.mean((predictions == y.numpy()) & (predictions != ABSTAIN)))


@pytest.fixture(scope="module")
def digits(digits_test):
    x, y = digits_test
    return torch.from_numpy(x[:NUM]), torch.from_numpy(y[:NUM])


@pytest.fixture(scope="module")
def clean_accuracy(noisy_digits_net, digits) -> float:
    return accuracy(noisy_digits_net, *digits)


@pytest.mark.parametrize("name", sorted(GRADIENT_ATTACKS))
def test_gradient_attacks_on_the_smoothed_module_keep_foolbox_contract_and_lower_predict_accuracy(
    noisy_digits_net, digits, clean_accuracy, name
):
    make, norm, epsilons = GRADIENT_ATTACKS[name]
    images, labels = digits
    fmodel = fb.PyTorchModel(smoothed_module(noisy_digits_net).eval(), bounds=(0, 1))
    torch.manual_seed(0)
    raw, clipped, success = make()(fmodel, images, labels, epsilons=epsilons)
    assert isinstance(raw, list) and isinstance(clipped, list) and len(raw) == len(clipped) == len(epsilons)
    assert isinstance(success, torch.Tensor) and success.dtype == torch.bool
    assert success.shape == (len(epsilons), len(images))
    for epsilon, adv in zip(epsilons, clipped, strict=True):
        assert isinstance(adv, torch.Tensor) and adv.shape == images.shape and adv.dtype == torch.float32
        assert adv.min() >= 0 and adv.max() <= 1
        assert (adv - images).flatten(1).norm(p=norm, dim=1).max() <= epsilon + 1e-4
    attacked = accuracy(noisy_digits_net, clipped[-1], labels)
    assert clean_accuracy >= 0.9
    assert attacked <= clean_accuracy - 0.3, (clean_accuracy, attacked)


def test_predict_does_not_flip_within_half_the_certified_radius_beyond_the_alpha_rate(noisy_digits_net, digits):
    images, labels = digits
    certificates = SmoothedClassifier(noisy_digits_net, 10, SIGMA, seed=2).certify_many(
        images, 100, N, ALPHA, progress=False
    )
    epsilon = 0.2
    inside = [i for i, c in enumerate(certificates) if c.prediction != ABSTAIN and c.radius >= 2 * epsilon]
    assert len(inside) >= NUM // 2
    fmodel = fb.PyTorchModel(smoothed_module(noisy_digits_net).eval(), bounds=(0, 1))
    torch.manual_seed(0)
    _, (adv,), _ = fb.attacks.L2PGD(steps=10)(fmodel, images[inside], labels[inside], epsilons=[epsilon])
    predictions = predict(noisy_digits_net, adv)
    flips = sum(p not in (ABSTAIN, certificates[i].prediction) for i, p in zip(inside, predictions, strict=True))
    # CERTIFY and PREDICT each err with probability at most alpha
    assert binomtest(flips, len(inside), 2 * ALPHA, alternative="greater").pvalue > 0.01, flips


def decision_attacks():
    return {
        "HopSkipJump": fb.attacks.HopSkipJumpAttack(steps=2, initial_gradient_eval_steps=10,
                                                    max_gradient_eval_steps=20),
        "Boundary": fb.attacks.BoundaryAttack(steps=20),
    }


@pytest.mark.parametrize("name", ["HopSkipJump", "Boundary"])
def test_decision_based_attacks_run_through_the_frozen_noise_view(noisy_digits_net, digits, name):
    images, labels = (t[:8] for t in digits)
    frozen = FrozenNoise(smoothed_module(noisy_digits_net, num_noise=8))
    fmodel = fb.PyTorchModel(frozen.eval(), bounds=(0, 1))
    torch.manual_seed(0)
    raw, clipped, success = decision_attacks()[name](fmodel, images, labels, epsilons=[L2_LARGE])
    (adv,) = clipped
    assert adv.shape == images.shape and adv.dtype == torch.float32
    assert adv.min() >= 0 and adv.max() <= 1
    assert success.shape == (1, len(images))
    # the view is deterministic: foolbox's success is a property of the input, the same on a second look
    assert torch.equal(frozen(raw[0]).argmax(1) != labels, frozen(raw[0]).argmax(1) != labels)
    assert (frozen(raw[0]).argmax(1) != labels).all()  # every raw output fools the frozen view


def test_frozen_noise_is_a_deterministic_function_of_the_input_and_its_position(noisy_digits_net, digits):
    images, _ = digits
    module = smoothed_module(noisy_digits_net, num_noise=4)
    frozen = FrozenNoise(module)
    assert torch.equal(frozen(images), frozen(images))
    assert torch.equal(frozen(images), module(images, noise_seed=frozen.noise_seed))
    assert not torch.equal(module(images), module(images))  # the plain module draws fresh noise at every call
    assert FrozenNoise(smoothed_module(noisy_digits_net, num_noise=4)).noise_seed == frozen.noise_seed  # seeded


def test_decision_based_attacks_fail_on_the_plain_module_which_draws_fresh_noise(noisy_digits_net, digits):
    """On fresh noise at every call, foolbox re-checks its starting points and some flip back."""
    images, labels = digits
    fmodel = fb.PyTorchModel(smoothed_module(noisy_digits_net, num_noise=8).eval(), bounds=(0, 1))
    torch.manual_seed(0)
    with pytest.raises(ValueError, match="init_attack failed"):
        fb.attacks.HopSkipJumpAttack(steps=1)(fmodel, images, labels, epsilons=None)
