"""The ART workflow with rs-plugin: wrap an ART classifier, certify it, attack the smoothed classifier with ART's
own attacks through its smoothed gradients, and compare smoothed accuracy before and after.

Uses the digits CNN trained with Gaussian noise (sigma = 0.25; trained in seconds on first use, then cached).
Runs in well under a minute on a laptop CPU:

    python examples/art_wrapping.py
"""

from __future__ import annotations

import numpy as np
import torch
from art.attacks.evasion import DeepFool, ProjectedGradientDescent
from art.estimators.classification import PyTorchClassifier

from rs_plugin import ABSTAIN
from rs_plugin.adapters.art import SmoothedEstimator
from rs_plugin.adapters.datasets import digits_arrays
from rs_plugin.adapters.training import digits_model

SIGMA, NUM_EXAMPLES = 0.25, 60


def main() -> None:
    x, y = digits_arrays("test")
    x, y = x[:NUM_EXAMPLES], y[:NUM_EXAMPLES]
    classifier = PyTorchClassifier(
        digits_model(SIGMA), loss=torch.nn.CrossEntropyLoss(), input_shape=(1, 8, 8), nb_classes=10,
        clip_values=(0, 1), device_type="cpu",
    )
    # The smoothed classifier g is an ART estimator: attacks, metrics and defences accept it.
    smoothed = SmoothedEstimator(classifier, SIGMA, num_noise=64, n0=100, alpha=0.001, seed=0)

    predictions, radii = smoothed.certify(x, n=1000)  # ART's convention: ABSTAIN (-1) with radius 0
    print(f"certified {NUM_EXAMPLES} digits with n = 1000, alpha = 0.001 (abstained: {np.sum(predictions == ABSTAIN)})")
    for radius in (0.0, 0.25, 0.5):  # n = 1000 at alpha = 0.001 certifies at most 0.62 = sigma * Phi^-1(0.9931)
        print(f"  certified accuracy at l2 radius {radius:.2f}: {np.mean((predictions == y) & (radii >= radius)):.2f}")

    def accuracy(inputs: np.ndarray) -> float:  # PREDICT with abstention; an abstention counts as an error
        return float(np.mean(smoothed.predict_class(inputs, n=500) == y))

    print(f"smoothed accuracy (PREDICT, n = 500): clean {accuracy(x):.2f}")
    attacks = {
        f"PGD l2 eps={eps}": ProjectedGradientDescent(smoothed, norm=2, eps=eps, eps_step=eps / 4, max_iter=10,
                                                       verbose=False)
        for eps in (0.5, 1.0)
    }
    attacks["DeepFool"] = DeepFool(smoothed, max_iter=5, verbose=False)
    for name, attack in attacks.items():  # every gradient is the smoothed classifier's, not the base network's
        x_adv = attack.generate(x, y=y if name.startswith("PGD") else None)
        distance = np.median(np.linalg.norm((x_adv - x).reshape(len(x), -1), axis=1))
        print(f"  after {name:15} {accuracy(x_adv):.2f}  (median l2 perturbation {distance:.2f})")


if __name__ == "__main__":
    main()
