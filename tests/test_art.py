"""The ART adapter: SmoothedEstimator's predictions, gradients, losses, abstention, preprocessing and the backend
hook, for a torch network and a scikit-learn logistic regression (attacks: test_art_attacks.py; the estimator
contract: test_art_contract.py)."""

from __future__ import annotations

import copy
import math
import warnings

import numpy as np
import pytest

pytest.importorskip("art")
pytest.importorskip("sklearn")
torch = pytest.importorskip("torch")

from art.attacks.attack import EvasionAttack  # noqa: E402
from art.attacks.evasion import (  # noqa: E402
    CarliniL2Method,
    DeepFool,
    FastGradientMethod,
    HopSkipJump,
    ProjectedGradientDescent,
    SquareAttack,
)
from art.defences.preprocessor import Preprocessor  # noqa: E402
from art.estimators.classification import PyTorchClassifier, SklearnClassifier  # noqa: E402
from art.utils import to_categorical  # noqa: E402
from scipy.stats import norm  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from torch import nn  # noqa: E402

from rs_plugin import ABSTAIN, SmoothedClassifier  # noqa: E402
from rs_plugin.adapters.art import SmoothedEstimator, torch_model  # noqa: E402
from rs_plugin.adapters.datasets import digits_arrays  # noqa: E402
from rs_plugin.plugins import make_backend  # noqa: E402

SIGMA = 0.25


def torch_classifier(model: nn.Module, input_shape: tuple[int, ...], nb_classes: int, **options) -> PyTorchClassifier:
    return PyTorchClassifier(
        model, loss=nn.CrossEntropyLoss(), input_shape=input_shape, nb_classes=nb_classes, device_type="cpu", **options
    )


@pytest.fixture(scope="module")
def digits(digits_test):
    """The first 20 test digits."""
    x, y = digits_test
    return x[:20], y[:20]


@pytest.fixture(scope="module")
def torch_estimator(noisy_digits_net):
    clf = torch_classifier(noisy_digits_net, (1, 8, 8), 10, clip_values=(0, 1))
    return SmoothedEstimator(clf, SIGMA, num_noise=32, seed=0)


@pytest.fixture(scope="module")
def sklearn_estimator():
    """A logistic regression on flattened digits, wrapped once fitted, then refitted with noise by the estimator."""
    x, y = digits_arrays("train")
    x = x.reshape(len(x), -1)
    clf = SklearnClassifier(LogisticRegression(max_iter=300).fit(x, y), clip_values=(0, 1))
    estimator = SmoothedEstimator(clf, SIGMA, num_noise=32, seed=0)
    estimator.fit(x, to_categorical(y, 10), nb_epochs=4)
    return estimator


class NumpyIdentity(Preprocessor):
    """A preprocessing defence that runs in numpy: a PyTorchClassifier with it goes through predict/class_gradient."""

    def __init__(self) -> None:
        super().__init__(is_fitted=True)

    def __call__(self, x, y=None):
        return x, y

    def estimate_gradient(self, x, grad):
        return grad


@pytest.fixture(scope="module", params=["torch", "sklearn"])
def case(request, digits):
    """``(estimator, x, y)`` for the torch network and for the logistic regression."""
    x, y = digits
    if request.param == "torch":
        return request.getfixturevalue("torch_estimator"), x, y
    return request.getfixturevalue("sklearn_estimator"), x.reshape(len(x), -1), y


def smoothed_accuracy(estimator: SmoothedEstimator, x: np.ndarray, y: np.ndarray) -> float:
    """PREDICT's accuracy with 200 samples (an abstention counts as an error)."""
    return float(np.mean(estimator.predict_class(x, n=200, alpha=0.001) == y))


def test_attack_requirements_and_wrapped_properties(torch_estimator, sklearn_estimator):
    for estimator in (torch_estimator, sklearn_estimator):
        for attack in (ProjectedGradientDescent, FastGradientMethod, DeepFool, HopSkipJump, CarliniL2Method):
            assert EvasionAttack.is_estimator_valid(estimator, attack._estimator_requirements), attack
        assert EvasionAttack.is_estimator_valid(estimator, SquareAttack._estimator_requirements)
    assert torch_estimator.nb_classes == 10 and torch_estimator.input_shape == (1, 8, 8)
    assert sklearn_estimator.input_shape == (64,)
    np.testing.assert_array_equal(torch_estimator.clip_values, [0, 1])
    assert torch_estimator.channels_first is True and sklearn_estimator.channels_first is False


def test_predict_returns_vote_frequencies_of_the_smoothed_classifier(case):
    estimator, x, _ = case
    votes = estimator.predict(x)
    assert votes.shape == (len(x), 10)
    np.testing.assert_allclose(votes.sum(axis=1), 1, atol=1e-6)
    np.testing.assert_allclose(votes * estimator.num_noise, np.round(votes * estimator.num_noise), atol=1e-4)
    decided = estimator.predict_class(x, n=200)
    assert np.mean(votes.argmax(axis=1)[decided != ABSTAIN] == decided[decided != ABSTAIN]) >= 0.95
    # Same distribution as the core's counts: 2000 draws each, within 5 binomial standard deviations.
    estimator.set_params(num_noise=2000)
    try:
        fresh = estimator.predict(x[:3])
    finally:
        estimator.set_params(num_noise=32)
    core = np.stack([estimator.smoothed.counts(example, 2000, index=i) for i, example in enumerate(x[:3])]) / 2000
    assert np.all(np.abs(fresh - core) <= 5 * np.sqrt(0.25 * 2 / 2000) + 1e-9)


def test_soft_scores_argmax_agrees_with_votes(torch_estimator, digits):
    """class_gradient and loss_gradient differentiate the averaged softmax; its argmax is predict's."""
    x, _ = digits

    def probability(c: int) -> np.ndarray:  # a fresh estimator with one seed: the same noise for every class
        return np.exp(-SmoothedEstimator(torch_estimator.classifier, SIGMA, seed=4).compute_loss(x, np.full(20, c)))

    soft = np.stack([probability(c) for c in range(10)], axis=1)
    np.testing.assert_allclose(soft.sum(axis=1), 1, atol=1e-4)
    assert np.mean(soft.argmax(axis=1) == torch_estimator.predict(x).argmax(axis=1)) >= 0.9


class Probit(nn.Module):
    """Two classes with P(class 1) = Phi(w.x + b): its smoothed probability is analytic,
    E Phi(w.(x + sigma eps) + b) = Phi((w.x + b) / sqrt(1 + sigma^2 |w|^2))."""

    def __init__(self, w: np.ndarray, b: float) -> None:
        super().__init__()
        self.register_buffer("w", torch.as_tensor(w, dtype=torch.float32))
        self.b = b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = x @ self.w + self.b
        return torch.stack([torch.special.log_ndtr(-z), torch.special.log_ndtr(z)], dim=1)


def test_gradients_are_those_of_the_smoothed_classifier_not_the_base():
    rng = np.random.default_rng(0)
    w = rng.standard_normal(5)
    w *= 6 / np.linalg.norm(w)  # sigma |w| = 3: smoothing shrinks the gradient a lot
    x = (w / 36)[None].astype(np.float32)  # w.x = 1/6, so z = w.x + b = 1
    b = 1 - float(w @ x[0])
    sigma, scale = 0.5, math.sqrt(1 + 0.25 * 36)
    a = 1 / scale
    smoothed_grad, base_grad = norm.pdf(a) / scale * w, norm.pdf(1.0) * w
    estimator = SmoothedEstimator(
        torch_classifier(Probit(w, b), (5,), 2), sigma, num_noise=20_000, batch_size=5000, seed=1
    )
    class_grad = estimator.class_gradient(x)[0]  # (2, 5)
    loss_grad = estimator.loss_gradient(x, np.array([1]))[0]
    for got, want in [(class_grad[1], smoothed_grad), (class_grad[0], -smoothed_grad),
                      (loss_grad, -smoothed_grad / norm.cdf(a))]:
        assert np.linalg.norm(got - want) <= 0.05 * np.linalg.norm(want)
    assert np.linalg.norm(class_grad[1] - base_grad) >= 0.5 * np.linalg.norm(base_grad)
    np.testing.assert_allclose(estimator.class_gradient(x, label=1)[0, 0], class_grad[1], rtol=0.05)


def blended_case(kind: str, sklearn_estimator: SmoothedEstimator, digits) -> tuple:
    """``(classifier, x, y)``: a 6 and a 2 blended (no class near-certain) for the torch path, the path through
    ART's predict / class_gradient with logits (a torch network behind a numpy preprocessing defence) and with a
    logistic regression's probabilities."""
    x, y = digits
    x, y = ((x[0] + x[3]) / 2)[None], y[:1]
    if kind == "sklearn":
        return sklearn_estimator.classifier, x.reshape(1, -1), y
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.Tanh(), nn.Linear(32, 10))
    defence = NumpyIdentity() if kind == "generic" else None
    return torch_classifier(net, (1, 8, 8), 10, clip_values=(0, 1), preprocessing_defences=defence), x, y


def central_difference(f, x: np.ndarray, v: np.ndarray, h: float = 1e-3) -> np.ndarray:
    return (f(x + h * v) - f(x - h * v)) / (2 * h)


@pytest.mark.parametrize("kind", ["torch", "generic", "sklearn"])
def test_gradients_match_finite_differences_on_common_noise(kind, sklearn_estimator, digits):
    """Fresh estimators with one seed draw the same noise on their first call: the smoothed objective is then a
    fixed smooth function, and loss_gradient / class_gradient must be its derivatives."""
    clf, x, y = blended_case(kind, sklearn_estimator, digits)

    def fresh() -> SmoothedEstimator:
        return SmoothedEstimator(clf, SIGMA, num_noise=64, seed=7)

    assert (torch_model(clf) is not None) == (kind == "torch")
    directions = np.random.default_rng(0).standard_normal((3, *x.shape)).astype(np.float32)
    loss_grad, class_grad = fresh().loss_gradient(x, y), fresh().class_gradient(x, label=int(y[0]))
    all_grads = fresh().class_gradient(x)
    for v in directions:
        loss_fd = central_difference(lambda z: fresh().compute_loss(z, y), x, v)
        prob_fd = central_difference(lambda z: np.exp(-fresh().compute_loss(z, y)), x, v)
        np.testing.assert_allclose(np.sum(loss_grad * v), loss_fd[0], rtol=0.01, atol=1e-3)
        np.testing.assert_allclose(np.sum(class_grad[:, 0] * v), prob_fd[0], rtol=0.01, atol=1e-3)
    np.testing.assert_allclose(all_grads[:, y[0]], class_grad[:, 0], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(all_grads.sum(axis=1), 0, atol=1e-5)  # the probabilities sum to 1


@pytest.mark.parametrize("kind", ["torch", "generic", "sklearn"])
def test_logits_output_and_dlr_loss_are_differentiated_consistently(kind, sklearn_estimator, digits):
    """output="logits": predict returns log(mean_k softmax(f(x + noise_k))), whose cross-entropy is compute_loss and
    whose derivatives are class_gradient; loss="difference_logits_ratio" is AutoAttack's DLR of those logits, with
    loss_gradient its derivative (common noise: fresh estimators with one seed)."""
    clf, x, y = blended_case(kind, sklearn_estimator, digits)

    def fresh(**options) -> SmoothedEstimator:
        return SmoothedEstimator(clf, SIGMA, num_noise=64, seed=7, output="logits", **options)

    logits = fresh().predict(x)
    assert logits.dtype == np.float32 and (logits <= 0).all()
    np.testing.assert_allclose(np.exp(logits).sum(axis=1), 1, rtol=1e-5)
    np.testing.assert_allclose(fresh().compute_loss(x, y), -logits[0, y], rtol=1e-5)
    top, second, third = np.sort(logits[0])[::-1][:3]
    best_other = second if logits[0].argmax() == y[0] else top
    dlr = fresh(loss="difference_logits_ratio")
    np.testing.assert_allclose(dlr.compute_loss(x, y), -(logits[0, y] - best_other) / (top - third), rtol=1e-4)
    class_grads, dlr_grad = fresh().class_gradient(x), fresh(loss="difference_logits_ratio").loss_gradient(x, y)
    for v in np.random.default_rng(1).standard_normal((3, *x.shape)).astype(np.float32):
        logits_fd = central_difference(lambda z: fresh().predict(z).astype(np.float64), x, v)[0]
        dlr_fd = central_difference(lambda z: fresh(loss="difference_logits_ratio").compute_loss(z, y), x, v)
        np.testing.assert_allclose(np.sum(class_grads[0] * v[0], axis=tuple(range(1, v.ndim))), logits_fd,
                                   rtol=0.02, atol=2e-3)
        np.testing.assert_allclose(np.sum(dlr_grad * v), dlr_fd[0], rtol=0.02, atol=1e-3)


def test_dlr_needs_three_classes():
    with pytest.raises(ValueError, match="needs at least 3 classes"):
        SmoothedEstimator(torch_classifier(nn.Linear(3, 2), (3,), 2), SIGMA, loss="difference_logits_ratio")


def test_probabilities_or_logits_give_the_same_smoothed_classifier(noisy_digits_net, digits):
    """A model ending in a softmax is detected as returning probabilities and smoothed exactly as the same model
    returning logits, in torch and through ART's predict / class_gradient (a numpy preprocessing defence)."""
    x, y = digits
    with_softmax = nn.Sequential(noisy_digits_net, nn.Softmax(dim=1))
    for defence in (None, NumpyIdentity()):
        a, b = (
            SmoothedEstimator(torch_classifier(net, (1, 8, 8), 10, preprocessing_defences=defence), SIGMA,
                              num_noise=16, seed=2)
            for net in (noisy_digits_net, with_softmax)
        )
        assert (a.base_output, b.base_output) == ("logits", "probabilities")
        np.testing.assert_allclose(a.loss_gradient(x, y), b.loss_gradient(x, y), rtol=1e-3, atol=1e-5)
        np.testing.assert_allclose(a.class_gradient(x[:4]), b.class_gradient(x[:4]), rtol=1e-3, atol=1e-5)
        np.testing.assert_array_equal(a.predict(x), b.predict(x))


def test_abstention_is_never_class_0():
    """A base classifier that votes 3 or 7 with probability 1/2 each: PREDICT and CERTIFY abstain (-1)."""

    class Split(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            side = (x[:, :1] - 0.5) * torch.tensor([[0.0] * 3 + [-1.0] + [0.0] * 3 + [1.0] + [0.0] * 2])
            return side - 100 * torch.tensor([[1.0] * 3 + [0.0] + [1.0] * 3 + [0.0] + [1.0] * 2])

    clf = torch_classifier(Split(), (4,), 10, clip_values=(0, 1))
    estimator = SmoothedEstimator(clf, SIGMA, num_noise=1000, seed=0)
    x = np.full((8, 4), 0.5, dtype=np.float32)
    assert (estimator.predict_class(x, n=1000) == ABSTAIN).all()
    predictions, radii = estimator.certify(x, 1000, progress=False)
    assert (predictions == ABSTAIN).all() and (radii == 0).all()
    votes = estimator.predict(x)
    assert set(votes.argmax(axis=1)) <= {3, 7} and (votes[:, 0] == 0).all()
    np.testing.assert_allclose(votes[:, [3, 7]].sum(axis=1), 1)


def test_certify_follows_arts_convention_and_matches_the_core(torch_estimator, digits):
    x, _ = digits
    predictions, radii = torch_estimator.certify(x[:8], 500, batch_size=200, progress=False)
    assert predictions.shape == radii.shape == (8,) and predictions.dtype == np.int64
    for i, example in enumerate(x[:8]):
        certificate = torch_estimator.smoothed.certify(example, torch_estimator.n0, 500, 0.001, index=i)
        assert (predictions[i], radii[i]) == (certificate.prediction, certificate.radius)
    assert ((radii > 0) == (predictions != ABSTAIN)).all()
    assert radii.mean() > 0.3
    assert torch_estimator.batch_size is None  # the call's batch_size did not stick


def test_noise_comes_before_arts_preprocessing(noisy_digits_net, digits):
    """The same network with its normalisation given to ART as ``preprocessing`` certifies exactly as with the
    normalisation inside the model, directly through SmoothedClassifier and through SmoothedEstimator."""
    x, y = digits
    inside = torch_classifier(noisy_digits_net, (1, 8, 8), 10, clip_values=(0, 1))
    outside = torch_classifier(nn.Sequential(*list(noisy_digits_net)[1:]), (1, 8, 8), 10, clip_values=(0, 1),
                               preprocessing=(0.3, 0.4))
    a, b = (SmoothedClassifier(clf, 10, SIGMA, seed=3) for clf in (inside, outside))
    for i in range(5):
        ca, cb = a.certify(x[i], 100, 1000, 0.001, index=i), b.certify(x[i], 100, 1000, 0.001, index=i)
        assert (ca.prediction, ca.count) == (cb.prediction, cb.count)
        assert ca.radius == pytest.approx(cb.radius)
    ea, eb = (SmoothedEstimator(clf, SIGMA, num_noise=16, seed=3) for clf in (inside, outside))
    np.testing.assert_allclose(ea.loss_gradient(x[:4], y[:4]), eb.loss_gradient(x[:4], y[:4]), rtol=1e-4, atol=1e-6)


def test_sklearn_classifier_as_base_goes_through_predict(sklearn_estimator, digits):
    x, _ = digits
    x = x.reshape(len(x), -1)
    clf = sklearn_estimator.classifier
    through_art = SmoothedClassifier(clf, 10, SIGMA, seed=5)
    direct = SmoothedClassifier(lambda batch: clf.model.predict_proba(batch), 10, SIGMA, seed=5)
    for i in range(3):
        np.testing.assert_array_equal(through_art.counts(x[i], 500, index=i), direct.counts(x[i], 500, index=i))


def test_fit_adds_noise_to_raw_inputs(noisy_digits_net, sklearn_estimator, digits):
    """fit hands the classifier raw inputs plus N(0, sigma^2) noise; the classifier's preprocessing comes after."""
    x, y = digits_arrays("train")
    seen = []
    clf = torch_classifier(nn.Sequential(*list(noisy_digits_net)[1:]), (1, 8, 8), 10, preprocessing=(0.3, 0.4))
    clf.fit = lambda inputs, labels, **kwargs: seen.append((inputs, kwargs))
    SmoothedEstimator(clf, SIGMA).fit(x, y, batch_size=32, nb_epochs=2)
    assert [kwargs for _, kwargs in seen] == [{"batch_size": 32, "nb_epochs": 1}] * 2
    for inputs, _ in seen:
        assert abs(np.std(inputs - x) - SIGMA) < 0.01 and abs(np.mean(inputs - x)) < 0.01
    assert not np.array_equal(seen[0][0], seen[1][0])
    clf = SklearnClassifier(LogisticRegression(max_iter=50).fit(x.reshape(len(x), -1)[:100], y[:100]))
    clf.fit = lambda inputs, labels, **kwargs: seen.append((inputs, labels))
    SmoothedEstimator(clf, SIGMA).fit(x.reshape(len(x), -1), y, nb_epochs=3)  # refitted from scratch: one fit
    inputs, labels = seen[-1]
    assert inputs.shape == (3 * len(x), 64) and np.array_equal(labels, np.tile(y, 3))
    assert abs(np.std(inputs - np.tile(x.reshape(len(x), -1), (3, 1))) - SIGMA) < 0.01
    accuracy = smoothed_accuracy(sklearn_estimator, digits[0].reshape(20, -1), digits[1])
    assert accuracy >= 0.9  # the logistic regression the fixture refitted with noise


def test_an_empty_batch_gets_empty_answers_of_every_method(case):
    """Like numpy (and ART's own class_gradient and compute_loss), an empty batch is answered with empty arrays of the
    right shapes by every method; it once raised IndexError."""
    estimator, x, y = case
    empty, no_labels, k = x[:0], y[:0], estimator.nb_classes
    assert estimator.predict(empty).shape == (0, k)
    assert estimator.predict_class(empty, n=100).shape == (0,)
    assert [a.shape for a in estimator.certify(empty, 100, progress=False)] == [(0,), (0,)]
    assert estimator.compute_loss(empty, no_labels).shape == (0,)
    assert estimator.loss_gradient(empty, no_labels).shape == empty.shape
    assert estimator.class_gradient(empty).shape == (0, k, *x.shape[1:])
    assert estimator.class_gradient(empty, label=1).shape == (0, 1, *x.shape[1:])


def test_get_params_and_set_params(torch_estimator):
    params = torch_estimator.get_params()
    assert params["sigma"] == SIGMA and params["num_noise"] == 32 and params["base_output"] == "logits"
    assert (params["output"], params["loss"]) == ("votes", "cross_entropy")
    assert SmoothedEstimator(**params).get_params() == params
    copy = SmoothedEstimator(**params)
    copy.set_params(sigma=0.5, num_noise=8, alpha=0.01)
    assert (copy.sigma, copy.smoothed.sigma, copy.num_noise, copy.alpha) == (0.5, 0.5, 8, 0.01)
    assert copy.predict(np.zeros((2, 1, 8, 8), dtype=np.float32)).shape == (2, 10)
    with pytest.raises(ValueError, match="sigma"):
        copy.set_params(sigma=-1.0)
    assert copy.sigma == 0.5
    with pytest.raises(ValueError, match="unknown parameters"):
        copy.set_params(scale=0.5)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda e, x, y: e.predict(x[:, 0]), ValueError, r"x must be a batch of shape \(N, 1, 8, 8\)"),
        (lambda e, x, y: e.loss_gradient(np.where(x == 0, np.nan, x), y), ValueError, "NaN"),
        (lambda e, x, y: e.predict(np.where(x == 0, 1e39, x.astype(np.float64))), ValueError, r"^x contains NaN or"),
        # ART's InputFilter makes a list an array before the call (a ragged list fails there, in ART's own code)
        (lambda e, x, y: e.predict([[[["a"] * 8] * 8]]), ValueError, r"^x must be a numeric batch, got ndarray: cou"),
        (lambda e, x, y: e.loss_gradient(x, y[:3]), ValueError, "y must be"),
        (lambda e, x, y: e.class_gradient(x, label=10), ValueError, "label must lie"),
        (lambda e, x, y: e.certify(x, 0), ValueError, "n must be at least 1"),
        (lambda e, x, y: e.compute_loss(x, y, reduction="max"), ValueError, "reduction"),
        (lambda e, x, y: SmoothedEstimator(e.classifier, 0.0), ValueError, "sigma must be a positive"),
        (lambda e, x, y: SmoothedEstimator(e.classifier, -1.0), ValueError, "sigma must be a positive"),
        (lambda e, x, y: SmoothedEstimator(e.classifier, SIGMA, num_noise=0), ValueError, "num_noise"),
        (lambda e, x, y: SmoothedEstimator(e.classifier, SIGMA, output="logit"), ValueError, "output must be one of"),
        (lambda e, x, y: SmoothedEstimator(e.classifier, SIGMA, base_output="logit"), ValueError, "base_output"),
        (lambda e, x, y: SmoothedEstimator(e.classifier, SIGMA, loss="dlr"), ValueError, "loss must be one of"),
        (lambda e, x, y: SmoothedEstimator(e.classifier.model, SIGMA), TypeError, "must be an ART classifier"),
        (lambda e, x, y: SmoothedEstimator(LogisticRegression(), SIGMA), TypeError, "must be an ART classifier"),
        (lambda e, x, y: SmoothedClassifier(e.classifier, 9, SIGMA), ValueError, "nb_classes=10"),
        (lambda e, x, y: SmoothedClassifier(e.classifier, 10, SIGMA, device="cuda"), ValueError, "device"),
        (lambda e, x, y: SmoothedClassifier(e.classifier, 10, SIGMA).certify(x[0, 0], 10, 100, 0.01), ValueError,
         r"input_shape \(1, 8, 8\)"),
    ],
)
def test_bad_input_raises_clear_errors(torch_estimator, digits, call, error, match):
    """Each bad argument gets its one-line error naming it, and nothing else (no numpy warning on the way)."""
    x, y = digits
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(error, match=match):
            call(torch_estimator, x[:4], y[:4])


def test_unfitted_sklearn_classifier_is_usable_once_fitted(digits):
    """An unfitted classifier (what ART's clone_for_refitting gives for scikit-learn) is wrapped; everything but fit
    says it must be fitted; fit makes it a working smoothed classifier. The core refuses it outright."""
    x, y = digits_arrays("train")
    x = x.reshape(len(x), -1)
    estimator = SmoothedEstimator(SklearnClassifier(LogisticRegression(max_iter=300)), SIGMA, num_noise=32, seed=0)
    assert estimator.input_shape is None and estimator.smoothed is None
    for call in (estimator.predict, estimator.predict_class, lambda v: estimator.certify(v, 10)):
        with pytest.raises(ValueError, match="not fitted; call fit first"):
            call(x[:2])
    estimator.fit(x, to_categorical(y, 10), nb_epochs=2)
    assert estimator.input_shape == (64,) and estimator.base_output == "probabilities"
    assert smoothed_accuracy(estimator, digits[0].reshape(20, -1), digits[1]) >= 0.9
    with pytest.raises(ValueError, match="input_shape is unknown"):
        SmoothedClassifier(SklearnClassifier(LogisticRegression()), 10, SIGMA)


def test_backend_hook_accepts_art_classifiers_only(torch_estimator):
    assert make_backend(torch_estimator.classifier, 10) is not None
    with pytest.raises(TypeError, match="no plugin"):
        make_backend(object(), 10)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gradients_on_the_gpu(noisy_digits_net, digits):
    x, y = digits
    net = copy.deepcopy(noisy_digits_net)
    clf = PyTorchClassifier(net, loss=nn.CrossEntropyLoss(), input_shape=(1, 8, 8), nb_classes=10,
                            clip_values=(0, 1), device_type="gpu")
    assert next(net.parameters()).device.type == "cuda"
    estimator = SmoothedEstimator(clf, SIGMA, num_noise=64, seed=0)
    grads = estimator.loss_gradient(x, y)
    assert isinstance(grads, np.ndarray) and grads.shape == x.shape and np.isfinite(grads).all()
    assert estimator.class_gradient(x[:2]).shape == (2, 10, 1, 8, 8)
    assert smoothed_accuracy(estimator, x, y) >= 0.9
