"""ART's AutoAttack with its default attacks, and AutoPGD with its ``loss_type`` losses, on the smoothed classifier of
a torch model. The object an evaluation suite builds is ``soft_smoothed_classifier(net, sigma)``: a genuine ART
``PyTorchClassifier`` whose ``model`` is the differentiable :class:`SmoothedModule`, so ART's own code paths accept
it and their losses and gradients are the smoothed classifier's. Attacks are judged by PREDICT (n=500,
alpha=0.001; an abstention counts as not robust)."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("art")
pytest.importorskip("multiprocess")
from art.attacks.evasion import AutoAttack, AutoProjectedGradientDescent, DeepFool, SquareAttack  # noqa: E402
from art.estimators.classification import PyTorchClassifier  # noqa: E402

from rs_plugin import ABSTAIN, SmoothedClassifier  # noqa: E402
from rs_plugin.adapters.art import SmoothedEstimator, smoothed_module, soft_smoothed_classifier  # noqa: E402
from rs_plugin.adapters.torch import SmoothedModule  # noqa: E402

SIGMA, N, ALPHA = 0.25, 500, 0.001
NUM = 12  # digits attacked by AutoPGD
EPS = 1.5  # l2 budget of AutoPGD (about three times the typical certified radius at sigma 0.25)


def soft(net, num_noise: int = 8, seed: int = 0) -> PyTorchClassifier:
    return soft_smoothed_classifier(net, SIGMA, num_noise=num_noise, batch_size=4096, seed=seed, input_shape=(1, 8, 8),
                                    nb_classes=10)


def accuracy(net, x: np.ndarray, y: np.ndarray) -> float:
    predictions = SmoothedClassifier(net, 10, SIGMA, seed=1).predict_many(x, N, ALPHA, progress=False)
    return float(np.mean((predictions == y) & (predictions != ABSTAIN)))


def l2(adv: np.ndarray, x: np.ndarray) -> np.ndarray:
    return np.linalg.norm((adv - x).reshape(len(x), -1), axis=1)


@pytest.fixture(scope="module")
def digits(digits_test):
    x, y = digits_test
    return x[:NUM], y[:NUM]


def test_autoattack_defaults_are_built_on_the_smoothed_module_not_on_the_base(noisy_digits_net):
    classifier = soft(noisy_digits_net)
    assert type(classifier) is PyTorchClassifier and isinstance(classifier.model, SmoothedModule)
    assert smoothed_module(classifier).base is noisy_digits_net
    attack = AutoAttack(classifier, norm=2, eps=0.5)
    kinds = [type(a) for a in attack.attacks]
    assert kinds == [AutoProjectedGradientDescent, AutoProjectedGradientDescent, DeepFool, SquareAttack]
    for apgd in attack.attacks[:2]:  # ART rebuilds a PyTorchClassifier around classifier.model with its own loss
        assert apgd.estimator.model is classifier.model


def test_art_refuses_the_smoothed_estimator_for_autoattack_defaults(noisy_digits_net):
    """What not to build: ART constructs AutoPGD's losses only for its own PyTorch and TensorFlow classifiers."""
    base = PyTorchClassifier(noisy_digits_net, loss=torch.nn.CrossEntropyLoss(), input_shape=(1, 8, 8), nb_classes=10,
                             clip_values=(0, 1))
    estimator = SmoothedEstimator(base, SIGMA, num_noise=8, seed=0, output="logits")
    with pytest.raises(ValueError, match="not supported for the provided estimator"):
        AutoAttack(estimator, norm=2, eps=0.5)


def test_gradients_are_the_smoothed_classifiers_not_the_bases(noisy_digits_net, digits):
    x, y = digits
    classifier = soft(noisy_digits_net)
    twin = copy.deepcopy(smoothed_module(classifier))  # the same seed and place in the random streams
    one_hot = np.eye(10, dtype=np.float32)[y]
    gradient = classifier.loss_gradient(x, one_hot)
    inputs = torch.from_numpy(x).requires_grad_(True)
    loss = torch.nn.functional.cross_entropy(twin(inputs), torch.from_numpy(y))  # the next call's noise
    (expected,) = torch.autograd.grad(loss, inputs)
    np.testing.assert_allclose(gradient, expected.numpy(), rtol=1e-4, atol=1e-7)
    base = PyTorchClassifier(noisy_digits_net, loss=torch.nn.CrossEntropyLoss(), input_shape=(1, 8, 8), nb_classes=10,
                             clip_values=(0, 1))
    of_base = base.loss_gradient(x, one_hot)
    cosine = (gradient * of_base).sum() / (np.linalg.norm(gradient) * np.linalg.norm(of_base))
    assert cosine < 0.95, cosine
    assert np.allclose(np.exp(classifier.predict(x)).sum(1), 1, atol=1e-4)  # log-probabilities, not the base's logits


@pytest.mark.parametrize("loss_type", ["cross_entropy", "difference_logits_ratio"])
def test_autopgd_with_arts_loss_types_lowers_predict_accuracy(noisy_digits_net, digits, loss_type):
    x, y = digits
    attack = AutoProjectedGradientDescent(soft(noisy_digits_net), norm=2, eps=EPS, eps_step=EPS / 4, max_iter=10,
                                          nb_random_init=1, loss_type=loss_type, verbose=False)
    np.random.seed(0)
    adv = attack.generate(x, y=y)
    assert adv.shape == x.shape and adv.dtype == np.float32
    assert adv.min() >= 0 and adv.max() <= 1 and l2(adv, x).max() <= EPS + 1e-4
    clean, attacked = accuracy(noisy_digits_net, x, y), accuracy(noisy_digits_net, adv, y)
    assert clean >= 0.9
    assert attacked <= clean - 0.3, (clean, attacked)


def test_pickle_and_deepcopy_go_on_as_the_original(noisy_digits_net, digits):
    x, _ = digits
    classifier = soft(noisy_digits_net)
    classifier.predict(x)
    for copied in (pickle.loads(pickle.dumps(classifier)), copy.deepcopy(classifier)):
        assert type(copied) is PyTorchClassifier and isinstance(copied.model, SmoothedModule)
        assert copied.model.seed == 0 and copied.model.num_noise == 8
        np.testing.assert_array_equal(copied.predict(x), copy.deepcopy(classifier).predict(x))
    first, second = classifier.predict(x), classifier.predict(x)
    assert not np.array_equal(first, second)  # fresh noise at every call, as SmoothedModule


def test_nan_rows_give_nan_scores_as_a_plain_network(noisy_digits_net, digits):
    """ART's l2 Square attack (in AutoAttack's defaults) sends NaN rows on 8x8 inputs and discards them."""
    x, _ = digits
    classifier = soft(noisy_digits_net)
    twin = copy.deepcopy(smoothed_module(classifier))
    broken = x.copy()
    broken[1] = np.nan
    scores = classifier.predict(broken)
    assert np.isnan(scores[1]).all() and np.isfinite(np.delete(scores, 1, axis=0)).all()
    expected = twin(torch.from_numpy(np.where(np.isnan(broken), 0, broken))).detach().numpy()
    np.testing.assert_allclose(np.delete(scores, 1, axis=0), np.delete(expected, 1, axis=0), rtol=1e-5)


def shorten(attack: AutoAttack) -> AutoAttack:
    """ART's default attack list with small budgets (the full ones, 5000 Square queries times 5 restarts of
    Monte-Carlo evaluations, take hours on a CPU); every attack and code path stays ART's."""
    for default in attack.attacks:
        if isinstance(default, AutoProjectedGradientDescent):
            default.max_iter, default.nb_random_init, default.verbose = 20, 1, False
        elif isinstance(default, DeepFool):
            default.max_iter, default.verbose = 10, False
        elif isinstance(default, SquareAttack):
            default.max_iter, default.nb_restarts, default.verbose = 30, 1, False
    return attack


@pytest.mark.slow
def test_autoattack_built_with_its_defaults_lowers_predict_accuracy(noisy_digits_net, digits_test):
    x, y = (a[:24] for a in digits_test)
    np.random.seed(0)  # ART draws its random starts and Square's squares from numpy's global generator
    attack = shorten(AutoAttack(soft(noisy_digits_net, num_noise=16), norm=2, eps=0.5))
    adv = attack.generate(x, y=y)
    assert adv.shape == x.shape and adv.dtype == np.float32
    assert adv.min() >= 0 and adv.max() <= 1 and l2(adv, x).max() <= 0.5 + 1e-4
    assert (attack.best_attacks >= 0).any()  # some attack of the default list succeeded on the soft classifier
    clean, attacked = accuracy(noisy_digits_net, x, y), accuracy(noisy_digits_net, adv, y)
    assert attacked < clean, (clean, attacked)
