"""ART's evaluation suite, unchanged, on a smoothed classifier: wrap an ART classifier in SmoothedEstimator, certify
it, then run ART's attacks, metrics and defences on it, judging every attack by PREDICT with abstention.

Uses the digits CNN trained with Gaussian noise (sigma = 0.25; trained in seconds on first use, then cached).
About 4 minutes on 2 CPU cores:

    python examples/art_wrapping.py [--num-examples 60]
"""

from __future__ import annotations

import argparse
import copy
import logging
import time
import warnings

import numpy as np
import torch
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
from art.defences.preprocessor import SpatialSmoothing
from art.defences.trainer import AdversarialTrainer
from art.estimators.classification import DeepPartitionEnsemble, PyTorchClassifier
from art.metrics import clever_u, empirical_robustness, loss_sensitivity
from art.utils import to_categorical

from rs_plugin import ABSTAIN
from rs_plugin.adapters.art import SmoothedEstimator
from rs_plugin.adapters.datasets import digits_arrays
from rs_plugin.adapters.training import digits_model

SIGMA, L2, LINF = 0.25, 1.0, 0.2


def classifier(net: torch.nn.Module, **options) -> PyTorchClassifier:
    return PyTorchClassifier(net, loss=torch.nn.CrossEntropyLoss(), input_shape=(1, 8, 8), nb_classes=10,
                             clip_values=(0, 1), device_type="cpu", **options)


def smoothed(base: PyTorchClassifier, **options) -> SmoothedEstimator:
    return SmoothedEstimator(base, SIGMA, num_noise=32, seed=0, **options)


def accuracy(estimator: SmoothedEstimator, x: np.ndarray, y: np.ndarray) -> float:
    """Smoothed accuracy: PREDICT with n = 500 at alpha = 0.001; an abstention counts as an error."""
    return float(np.mean(estimator.predict_class(x, n=500) == y))


def attacks(votes: SmoothedEstimator, logits: SmoothedEstimator, dlr: SmoothedEstimator) -> dict[str, tuple]:
    """name: (attack, budget, whether it takes the labels). Gradient attacks get the smoothed gradients; AutoPGD,
    Carlini-Wagner, DeepFool and Square see the logits of the soft smoothed classifier."""

    def apgd(estimator: SmoothedEstimator, norm: float, eps: float) -> AutoProjectedGradientDescent:
        return AutoProjectedGradientDescent(estimator, norm=norm, eps=eps, eps_step=eps / 4, max_iter=10,
                                            nb_random_init=1, verbose=False)

    auto = [apgd(logits, np.inf, LINF), apgd(dlr, np.inf, LINF), DeepFool(logits, max_iter=5, verbose=False),
            SquareAttack(logits, norm=np.inf, eps=LINF, max_iter=20, nb_restarts=1, verbose=False)]
    pgd = {"max_iter": 10, "verbose": False}
    return {
        "FGSM": (FastGradientMethod(votes, norm=np.inf, eps=LINF), f"linf {LINF}", True),
        "PGD l2": (ProjectedGradientDescent(votes, norm=2, eps=L2, eps_step=L2 / 4, **pgd), f"l2 {L2}", True),
        "PGD linf": (ProjectedGradientDescent(votes, norm=np.inf, eps=LINF, eps_step=LINF / 4, **pgd), f"linf {LINF}",
                     True),
        "AutoPGD CE": (apgd(logits, 2, L2), f"l2 {L2}", True),
        "AutoPGD DLR": (apgd(dlr, 2, L2), f"l2 {L2}", True),
        "AutoAttack": (AutoAttack(logits, norm=np.inf, eps=LINF, attacks=auto), f"linf {LINF}", True),
        "Square": (SquareAttack(logits, norm=np.inf, eps=LINF, max_iter=50, nb_restarts=1, verbose=False),
                   f"linf {LINF}", True),
        "DeepFool": (DeepFool(logits, max_iter=5, verbose=False), "minimal", False),
        "Carlini-Wagner l2": (CarliniL2Method(logits, max_iter=5, binary_search_steps=2, learning_rate=0.1,
                                              initial_const=1.0, verbose=False), "minimal", False),
        "HopSkipJump (unseeded in ART)": (
            HopSkipJump(votes, norm=2, max_iter=2, max_eval=50, init_eval=10, init_size=20, verbose=False), "minimal",
            False,
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-examples", type=int, default=60)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    np.random.seed(0)  # ART's attacks draw their random starts from numpy's global generator
    torch.manual_seed(0)  # and clone_for_refitting re-initialises weights from torch's
    x, y = (a[: args.num_examples] for a in digits_arrays("test"))
    x_train, y_train = digits_arrays("train")
    net = digits_model(SIGMA)
    base = classifier(net, optimizer=torch.optim.Adam(net.parameters(), lr=1e-3))
    votes = smoothed(base)  # predict: vote frequencies, as ART's randomized smoothing
    logits = smoothed(base, output="logits")  # predict: log of the noise-averaged softmax
    dlr = smoothed(base, output="logits", loss="difference_logits_ratio")

    predictions, radii = votes.certify(x, n=1000, verbose=False)  # ART's convention: ABSTAIN (-1) with radius 0
    certified = ", ".join(f"{np.mean((predictions == y) & (radii >= r)):.2f} at {r}" for r in (0.0, 0.25, 0.5))
    print(f"{len(x)} test digits, sigma {SIGMA}; CERTIFY n=1000: certified accuracy {certified} "
          f"(abstained {np.sum(predictions == ABSTAIN)})")
    clean = accuracy(votes, x, y)
    print(f"\nART attack on the smoothed classifier   budget     smoothed accuracy   median l2   seconds\n"
          f"{'(none)':38} {'':10} {clean:17.2f}")
    for name, (attack, budget, labelled) in attacks(votes, logits, dlr).items():
        start = time.perf_counter()
        x_adv = attack.generate(x, y=y if labelled else None)
        seconds = time.perf_counter() - start
        median = np.median(np.linalg.norm((x_adv - x).reshape(len(x), -1), axis=1))
        print(f"{name:38} {budget:10} {accuracy(votes, x_adv, y):17.2f} {median:11.2f} {seconds:9.1f}")

    print("\nART metric                              base network   smoothed classifier")
    votes, logits = smoothed(base), smoothed(base, output="logits")  # fresh streams: HopSkipJump's draws vary
    fgsm = {"eps_step": 0.01, "eps": 1.0, "norm": 2}
    robustness = [empirical_robustness(e, x, "fgsm", fgsm) for e in (base, votes)]
    print(f"{'empirical_robustness (FGSM, minimal)':39} {robustness[0]:12.3f} {robustness[1]:21.3f}")
    sensitivity = [loss_sensitivity(e, x, to_categorical(y, 10)) for e in (base, logits)]
    print(f"{'loss_sensitivity (mean |loss gradient|)':39} {sensitivity[0]:12.3f} {sensitivity[1]:21.3f}")
    scores = [np.mean([clever_u(e, example, nb_batches=5, batch_size=10, radius=L2, norm=2, verbose=False)
                       for example in x[:5]]) for e in (base, votes)]
    print(f"{'clever_u (l2, radius 1, 5 digits)':39} {scores[0]:12.3f} {scores[1]:21.3f}")

    print("\nART defence with the smoothed classifier                      clean   after PGD l2")
    defended = smoothed(classifier(net, preprocessing_defences=SpatialSmoothing(window_size=2, clip_values=(0, 1))))
    copied = copy.deepcopy(net)
    trained = smoothed(classifier(copied, optimizer=torch.optim.Adam(copied.parameters(), lr=1e-4)))
    attack = ProjectedGradientDescent(trained, norm=2, eps=L2, eps_step=L2 / 4, max_iter=5, verbose=False)
    AdversarialTrainer(trained, attack, ratio=0.5).fit(x_train, to_categorical(y_train, 10), batch_size=64,
                                                      nb_epochs=2)
    ensemble = DeepPartitionEnsemble(smoothed(base), ensemble_size=3, channels_first=True)
    ensemble.fit(x_train, to_categorical(y_train, 10), batch_size=32, nb_epochs=6)
    rows = {
        "SpatialSmoothing (window 2) inside the smoothed classifier": defended,
        "AdversarialTrainer (PGD l2 1.0 on smoothed gradients, 2 epochs)": trained,
    }
    for name, estimator in rows.items():
        pgd = ProjectedGradientDescent(estimator, norm=2, eps=L2, eps_step=L2 / 4, max_iter=10, verbose=False)
        print(f"{name:62} {accuracy(estimator, x, y):5.2f} {accuracy(estimator, pgd.generate(x, y=y), y):14.2f}")
    members = np.mean([accuracy(member, x, y) for member in ensemble.classifiers])
    vote = np.mean(ensemble.predict(x).argmax(axis=1) == y)
    print(f"DeepPartitionEnsemble of 3 smoothed CNNs refitted from clone_for_refitting: "
          f"ensemble vote {vote:.2f}, members' smoothed accuracy {members:.2f}")


if __name__ == "__main__":
    main()
