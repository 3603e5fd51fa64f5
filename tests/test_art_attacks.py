"""ART's evasion attacks end to end on SmoothedEstimator: the digits CNN trained with noise (torch path) and a
logistic regression (ART's own class_gradient path). Every attack returns float32 inputs of the original shape
within the clip values (and within eps for the bounded attacks) and lowers the smoothed accuracy, judged by
PREDICT with abstention (an abstention counts as an error)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("art")
pytest.importorskip("sklearn")
pytest.importorskip("torch")

from art.attacks.evasion import (
    AutoAttack,
    AutoProjectedGradientDescent,
    CarliniL2Method,
    DeepFool,
    FastGradientMethod,
    HopSkipJump,
    ProjectedGradientDescent,
    SquareAttack,
)
from art.estimators.classification import PyTorchClassifier, SklearnClassifier
from art.utils import to_categorical
from sklearn.linear_model import LogisticRegression
from torch import nn

from rs_plugin.adapters.art import SmoothedEstimator
from rs_plugin.adapters.datasets import digits_arrays

SIGMA, L2, LINF = 0.25, 1.0, 0.2
AUTO_L2, AUTO_LINF = 1.5, 0.25  # AutoPGD and AutoAttack: stronger than PGD per step, but they keep only the
# iterates that one noisy prediction of the smoothed classifier already calls misclassified
INF = np.inf


def apgd(estimator: SmoothedEstimator, norm: float, eps: float) -> AutoProjectedGradientDescent:
    return AutoProjectedGradientDescent(estimator, norm=norm, eps=eps, eps_step=eps / 4, max_iter=10, nb_random_init=1,
                                        verbose=False)


def auto_attack(e: dict[str, SmoothedEstimator]) -> AutoAttack:
    """AutoAttack's own attack list at small budgets: APGD-CE, APGD-DLR, DeepFool, Square (linf)."""
    attacks = [
        apgd(e["logits"], INF, AUTO_LINF),
        apgd(e["dlr"], INF, AUTO_LINF),
        DeepFool(e["logits"], max_iter=5, verbose=False),
        SquareAttack(e["logits"], norm=INF, eps=AUTO_LINF, max_iter=20, nb_restarts=1, verbose=False),
    ]
    return AutoAttack(e["logits"], norm=INF, eps=AUTO_LINF, attacks=attacks)


# name: (attack on the estimators {"votes", "logits", "dlr"}, norm, eps or None (unbounded), examples, whether the
# attack takes the true labels, highest smoothed accuracy allowed afterwards). Square's random search gains too
# little against the Monte-Carlo noise of the smoothed scores to require a drop (0.5 to 1.0 over five seeds).
ATTACKS = {
    "fgsm": (lambda e: FastGradientMethod(e["votes"], norm=INF, eps=LINF), INF, LINF, 12, True, 0.7),
    "fgm-l2": (lambda e: FastGradientMethod(e["votes"], norm=2, eps=L2), 2, L2, 12, True, 0.7),
    "pgd-l2": (lambda e: ProjectedGradientDescent(e["votes"], norm=2, eps=L2, eps_step=L2 / 4, max_iter=10,
                                                  verbose=False), 2, L2, 12, True, 0.4),
    "pgd-linf": (lambda e: ProjectedGradientDescent(e["votes"], norm=INF, eps=LINF, eps_step=LINF / 4, max_iter=10,
                                                    verbose=False), INF, LINF, 12, True, 0.6),
    "deepfool": (lambda e: DeepFool(e["logits"], max_iter=5, verbose=False), None, None, 12, False, 0.4),
    "carlini-wagner-l2": (lambda e: CarliniL2Method(e["logits"], max_iter=5, binary_search_steps=2, learning_rate=0.1,
                                                    initial_const=1.0, verbose=False), None, None, 8, False, 0.4),
    "hopskipjump": (lambda e: HopSkipJump(e["votes"], norm=2, max_iter=1, max_eval=20, init_eval=5, init_size=10,
                                          verbose=False), None, None, 6, False, 0.5),
    "square-linf": (lambda e: SquareAttack(e["logits"], norm=INF, eps=0.3, max_iter=30, nb_restarts=1,
                                           verbose=False), INF, 0.3, 8, True, None),
    "autopgd-ce": (lambda e: apgd(e["logits"], 2, AUTO_L2), 2, AUTO_L2, 12, True, 0.5),
    "autopgd-dlr": (lambda e: apgd(e["dlr"], 2, AUTO_L2), 2, AUTO_L2, 8, True, 0.5),
    "autoattack": (auto_attack, INF, AUTO_LINF, 12, True, 0.5),
}
ON_SKLEARN = ("fgm-l2", "pgd-l2", "deepfool", "hopskipjump", "autopgd-ce")


@pytest.fixture(scope="module")
def torch_classifier(noisy_digits_net) -> PyTorchClassifier:
    return PyTorchClassifier(noisy_digits_net, loss=nn.CrossEntropyLoss(), input_shape=(1, 8, 8), nb_classes=10,
                             clip_values=(0, 1), device_type="cpu")


@pytest.fixture(scope="module")
def sklearn_classifier() -> SklearnClassifier:
    """A logistic regression on flattened digits, refitted with noise by the estimator."""
    x, y = digits_arrays("train")
    x = x.reshape(len(x), -1)
    classifier = SklearnClassifier(LogisticRegression(max_iter=300).fit(x, y), clip_values=(0, 1))
    SmoothedEstimator(classifier, SIGMA, seed=0).fit(x, to_categorical(y, 10), nb_epochs=4)
    return classifier


def estimators(classifier) -> dict[str, SmoothedEstimator]:
    """Fresh seeded estimators: vote frequencies, logits, and logits with the DLR loss."""
    common = {"num_noise": 32, "seed": 0}
    return {
        "votes": SmoothedEstimator(classifier, SIGMA, **common),
        "logits": SmoothedEstimator(classifier, SIGMA, output="logits", **common),
        "dlr": SmoothedEstimator(classifier, SIGMA, output="logits", loss="difference_logits_ratio", **common),
    }


def smoothed_accuracy(estimator: SmoothedEstimator, x: np.ndarray, y: np.ndarray) -> float:
    """PREDICT's accuracy with 200 samples at alpha 0.001; an abstention counts as an error."""
    return float(np.mean(estimator.predict_class(x, n=200, alpha=0.001) == y))


@pytest.mark.parametrize(("kind", "name"), [("torch", n) for n in ATTACKS] + [("sklearn", n) for n in ON_SKLEARN])
def test_attack_stays_in_budget_and_lowers_smoothed_accuracy(kind, name, request, digits_test):
    make, norm, eps, count, labelled, most = ATTACKS[name]
    x, y = (a[:count] for a in digits_test)
    if kind == "sklearn":
        x, most = x.reshape(len(x), -1), 0.5
    e = estimators(request.getfixturevalue(f"{kind}_classifier"))
    np.random.seed(0)  # ART's attacks draw their random starts and searches from numpy's global generator
    clean = smoothed_accuracy(e["votes"], x, y)
    x_adv = make(e).generate(x, y=y if labelled else None)
    assert x_adv.shape == x.shape and x_adv.dtype == np.float32 and np.isfinite(x_adv).all()
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    if eps is not None:
        distance = np.linalg.norm((x_adv - x).reshape(len(x), -1), ord=norm, axis=1)
        assert distance.max() <= eps * (1 + 1e-5)
    attacked = smoothed_accuracy(e["votes"], x_adv, y)
    assert clean >= 0.9 and attacked <= (clean if most is None else most), (clean, attacked)


def test_autopgd_and_autoattack_need_logits_and_the_estimators_own_loss(torch_classifier):
    """The carve-outs the README states: ART's AutoPGD refuses vote frequencies; AutoPGD's loss_type and
    AutoAttack's default attack list (which sets it) exist only for ART's PyTorch and TensorFlow classifiers,
    so the smoothed classifier's losses come from its own ``loss`` parameter instead."""
    e = estimators(torch_classifier)
    with pytest.raises(ValueError, match="expecting logits"):
        AutoProjectedGradientDescent(e["votes"])
    assert AutoProjectedGradientDescent(e["logits"]).estimator is e["logits"]
    for loss_type in ("cross_entropy", "difference_logits_ratio"):
        with pytest.raises(ValueError, match="not supported for the provided estimator"):
            AutoProjectedGradientDescent(e["logits"], loss_type=loss_type)
    with pytest.raises(ValueError, match="not supported for the provided estimator"):
        AutoAttack(e["logits"])
