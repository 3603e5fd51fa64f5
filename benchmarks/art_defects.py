"""ART's own randomized smoothing (``PyTorchRandomizedSmoothing``) beside :class:`SmoothedEstimator`, on the
digits CNN trained with noise (sigma 0.25): the defects the README lists, each measured.

1. abstentions: ART's ``predict`` abstains with all-zero rows, which ART's label helpers read as class 0;
2. gradients: the attacks' gradients, and the smoothed accuracy (PREDICT) left by PGD and FGM using them;
3. ``class_gradient`` and DeepFool;
4. where the noise is added in ``fit`` and in ``certify`` when ``preprocessing`` is set.
(Memory: ``benchmarks/memory.py``.)

    python benchmarks/art_defects.py [--num-examples 360]   # about 2.5 minutes on 2 CPU cores
"""

from __future__ import annotations

import argparse
import logging
import warnings

import numpy as np
import torch
from art.attacks.evasion import DeepFool, FastGradientMethod, ProjectedGradientDescent
from art.estimators.certification.randomized_smoothing import PyTorchRandomizedSmoothing
from art.estimators.classification import PyTorchClassifier
from art.utils import get_labels_np_array, to_categorical
from torch import nn

from rs_plugin import ABSTAIN
from rs_plugin.adapters.art import SmoothedEstimator
from rs_plugin.adapters.datasets import digits_arrays
from rs_plugin.adapters.training import digits_model

SIGMA = 0.25
COMMON = {"loss": nn.CrossEntropyLoss(), "input_shape": (1, 8, 8), "nb_classes": 10, "clip_values": (0, 1),
          "device_type": "cpu"}


def abstentions(art_rs: PyTorchRandomizedSmoothing, ours: SmoothedEstimator, x: np.ndarray, y: np.ndarray) -> None:
    rows = art_rs.predict(x)
    zero = rows.sum(axis=1) == 0
    read_as = np.unique(get_labels_np_array(rows).argmax(axis=1)[zero])
    print(f"1. ART: {zero.sum()} of {len(x)} rows all-zero (abstentions), read by ART as classes {read_as.tolist()}")
    predictions = ours.predict_class(x, n=100)
    print(f"   ours: predict_class returns -1 on {(predictions == ABSTAIN).sum()} abstentions; "
          f"predict rows sum to 1: {np.allclose(ours.predict(x).sum(axis=1), 1)}")


def gradients(art_rs, ours: SmoothedEstimator, base: PyTorchClassifier, x: np.ndarray, y: np.ndarray) -> None:
    one_hot = to_categorical(y, 10)
    same = np.abs(art_rs.loss_gradient(x, one_hot) - base.loss_gradient(x, one_hot)).max()
    print(f"2. ART loss_gradient minus the base classifier's: max |difference| = {same}")
    print(f"   clean smoothed accuracy (PREDICT, n=1000): {(ours.predict_class(x, n=1000) == y).mean():.3f}")
    for eps in (0.5, 1.0):
        for name, estimator in (("ART's (base) gradients", art_rs), ("smoothed gradients", ours)):
            pgd = ProjectedGradientDescent(estimator, norm=2, eps=eps, eps_step=eps / 4, max_iter=10, verbose=False)
            fgm = FastGradientMethod(estimator, norm=2, eps=eps)
            accuracy = [(ours.predict_class(attack.generate(x, y=y), n=1000) == y).mean() for attack in (pgd, fgm)]
            print(f"   eps={eps} with {name:24}: smoothed accuracy after PGD {accuracy[0]:.3f}, FGM {accuracy[1]:.3f}")


def deepfool(art_rs, ours: SmoothedEstimator, x: np.ndarray, y: np.ndarray) -> None:
    try:
        art_rs.class_gradient(x[:2])
        print("3. ART class_gradient works")
    except NotImplementedError:
        print("3. ART class_gradient raises NotImplementedError, so DeepFool cannot run on it")
    adversarial = DeepFool(ours, max_iter=5, verbose=False).generate(x)
    before, after = ((ours.predict_class(v, n=1000) == y).mean() for v in (x, adversarial))
    print(f"   ours: DeepFool lowers smoothed accuracy {before:.2f} -> {after:.2f} on {len(x)} digits")


def noise_space() -> None:
    inner = nn.Sequential(*list(digits_model(SIGMA))[1:])  # without its Normalize layer
    seen: list[torch.Tensor] = []
    hook = inner[0].register_forward_pre_hook(lambda module, args: seen.append(args[0].detach().clone()))
    art_pre = PyTorchRandomizedSmoothing(
        inner, sample_size=100, scale=SIGMA, alpha=0.001, preprocessing=(0.3, 0.4),
        optimizer=torch.optim.SGD(inner.parameters(), lr=0.0), **COMMON,
    )
    constant = np.full((512, 1, 8, 8), 0.5, dtype=np.float32)
    art_pre.fit(constant, np.zeros(512, dtype=np.int64), batch_size=512, nb_epochs=1)
    fit_std = (torch.cat(seen).numpy() * 0.4 + 0.3 - 0.5).std()
    seen.clear()
    art_pre.certify(constant[:1], n=1000)
    certify_std = (torch.cat(seen).numpy() * 0.4 + 0.3 - 0.5).std()
    hook.remove()
    print(f"4. ART with preprocessing=(0.3, 0.4), noise std in raw input space: fit {fit_std:.3f}, "
          f"certify {certify_std:.3f} (sigma {SIGMA})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-examples", type=int, default=360)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    torch.manual_seed(0)
    np.random.seed(0)
    net = digits_model(SIGMA)
    x, y = (a[: args.num_examples] for a in digits_arrays("test"))
    art_rs = PyTorchRandomizedSmoothing(net, sample_size=100, scale=SIGMA, alpha=0.001, **COMMON)
    ours = SmoothedEstimator(PyTorchClassifier(net, **COMMON), SIGMA, num_noise=100, seed=0)
    abstentions(art_rs, ours, x, y)
    gradients(art_rs, ours, PyTorchClassifier(net, **COMMON), x, y)
    deepfool(art_rs, ours, x[:20], y[:20])
    noise_space()


if __name__ == "__main__":
    main()
