"""rs-plugin's training methods beside ART 1.20's: Gaussian augmentation against ``PyTorchRandomizedSmoothing.fit``,
SmoothAdv against ``PyTorchSmoothAdv``, MACER against ``PyTorchMACER``, SmoothMix against ``PyTorchSmoothMix`` (and
consistency regularization, which ART lacks), in one run.

Every pair trains the same digits CNN (the same initial weights) on the same 1437 training digits, at the same sigma,
for the same epochs, batch size and Adam learning rate, with the method's hyperparameters as rs-plugin's defaults
(ART given the same values where it has the parameter). Each network is then certified by rs-plugin's CERTIFY
(n0 = 100, n = 10,000, alpha = 0.001) on the same test digits; the table gives the average certified radius (ACR,
radius 0 when wrong or abstaining), certified accuracy at 0.25 / 0.5 / 0.75 / 1.0, and the training time: wall-clock
and the process's CPU time (on a shared machine the wall time depends on the load; with one thread the CPU time is
what an idle core would take). A one-epoch run of each library first takes imports and first-call allocations out of
every timing.

ART's estimators as shipped: ``PyTorchSmoothAdv`` fails with more than one noise sample per input (its labels are
repeated, its inputs are not), so it runs with ``num_noise_vec=1``, and rs-plugin's SmoothAdv is trained a second
time with ``m`` = 1 for a like-for-like time; ART sets its PGD's ``norm`` (the l_p order) to the warmed-up epsilon
(left as ART has it); ``PyTorchSmoothMix`` uses its certification ``alpha`` as the attack's step size, so it is given
``alpha`` = SmoothMix's step size (ART's certification is not used here).

    OMP_NUM_THREADS=1 python benchmarks/training.py [--sigma 0.5] [--epochs 30] [--examples 100] [--n 10000]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import time
import warnings
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from rs_plugin import SmoothedClassifier
from rs_plugin.adapters.datasets import digits_arrays
from rs_plugin.adapters.models import digits_cnn
from rs_plugin.adapters.trainers import TrainConfig, fit
from rs_plugin.plugins import make_trainer
from rs_plugin.seeding import stream_seed

RADII = (0.25, 0.5, 0.75, 1.0)


def initial_network(seed: int = 0) -> nn.Module:
    """The digits CNN with ``digits_model``'s initial weights."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(stream_seed(seed, "init"))
        return digits_cnn()


def ours(method: str, sigma: float, config: TrainConfig, x: np.ndarray, y: np.ndarray, **options) -> nn.Module:
    model = initial_network()
    fit(make_trainer(method, sigma, **options), model, (torch.from_numpy(x), torch.from_numpy(y)), config)
    return model


def ours_like_art(method: str, sigma: float, config: TrainConfig, x: np.ndarray, y: np.ndarray) -> nn.Module:
    """SmoothAdv with ART's one noise sample per input (``num_noise`` = 1), for a like-for-like time."""
    return ours(method, sigma, config, x, y, num_noise=1)


def art_options(method: str, sigma: float) -> tuple[Callable, dict]:
    """ART's estimator for ``method`` and its arguments, taken from rs-plugin's default hyperparameters."""
    from art.estimators.certification.randomized_smoothing import (
        PyTorchMACER,
        PyTorchRandomizedSmoothing,
        PyTorchSmoothAdv,
        PyTorchSmoothMix,
    )

    c = dataclasses.asdict(make_trainer(method, sigma).config)
    if method == "gaussian":
        return PyTorchRandomizedSmoothing, {}
    if method == "smoothadv":
        return PyTorchSmoothAdv, {"epsilon": c["eps"], "num_steps": c["steps"], "warmup": c["warmup"],
                                  "num_noise_vec": 1}
    if method == "macer":
        return PyTorchMACER, {"beta": c["beta"], "gamma": c["gamma"], "lmbda": c["lbd"],
                              "gaussian_samples": c["num_noise"]}
    return PyTorchSmoothMix, {"eta": c["eta"], "num_noise_vec": c["num_noise"], "num_steps": c["steps"],
                              "warmup": c["warmup"], "mix_step": c["mix_step"], "alpha": c["alpha"]}


def art(method: str, sigma: float, config: TrainConfig, x: np.ndarray, y: np.ndarray) -> nn.Module:
    estimator_class, options = art_options(method, sigma)
    model = initial_network()
    estimator = estimator_class(
        model, loss=nn.CrossEntropyLoss(), input_shape=(1, 8, 8), nb_classes=10, clip_values=(0, 1),
        optimizer=torch.optim.Adam(model.parameters(), lr=config.lr), device_type="cpu", scale=sigma, **options,
    )
    torch.manual_seed(config.seed)  # ART shuffles and draws its noise from torch's global generator
    estimator.fit(x, y, batch_size=config.batch_size, nb_epochs=config.epochs)
    return model.eval()


def certify(model: nn.Module, sigma: float, x: np.ndarray, y: np.ndarray, n: int) -> np.ndarray:
    """Each test digit's certified radius, 0 when CERTIFY abstains or is wrong."""
    smoothed = SmoothedClassifier(model.eval(), 10, sigma, seed=0)
    certificates = smoothed.certify_many(x, 100, n, 0.001, progress=False)
    return np.array([c.radius if c.prediction == label else 0.0 for c, label in zip(certificates, y, strict=True)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sigma", type=float, default=0.5)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--examples", type=int, default=100, help="test digits certified (evenly spaced)")
    parser.add_argument("--n", type=int, default=10_000, help="CERTIFY's estimation samples")
    parser.add_argument("--methods", nargs="+", default=["gaussian", "smoothadv", "consistency", "macer", "smoothmix"])
    parser.add_argument("--json", metavar="PATH", help="also write the numbers as JSON")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    config = TrainConfig(epochs=args.epochs)
    x_train, y_train = digits_arrays("train")
    x_test, y_test = digits_arrays("test")
    chosen = np.linspace(0, len(x_test) - 1, args.examples).round().astype(int)
    x_test, y_test = x_test[chosen], y_test[chosen]
    print(f"digits, sigma={args.sigma}, {args.epochs} epochs, batch {config.batch_size}, Adam lr {config.lr}; "
          f"CERTIFY n0=100 n={args.n} alpha=0.001 on {len(chosen)} test digits; torch threads "
          f"{torch.get_num_threads()}")
    header = (f"{'method':12} {'trainer':26} {'ACR':>6} " + " ".join(f"{r:>5}" for r in RADII)
              + f" {'wall s':>7} {'CPU s':>7}")
    print(header, flush=True)
    for train in (ours, art):  # imports and first-call allocations, outside every timing
        train("gaussian", args.sigma, dataclasses.replace(config, epochs=1), x_train[:64], y_train[:64])
    report = {}
    for method in args.methods:
        runs = [("rs-plugin", ours)] + ([("rs-plugin, m 1", ours_like_art)] if method == "smoothadv" else [])
        runs += [] if method == "consistency" else [("ART", art)]
        for who, train in runs:
            wall, cpu = time.perf_counter(), time.process_time()
            model = train(method, args.sigma, config, x_train, y_train)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            radii = certify(model, args.sigma, x_test, y_test, args.n)
            name = who if who.startswith("rs-plugin") else art_options(method, args.sigma)[0].__name__
            accuracy = [float((radii >= r).mean()) for r in RADII]
            report[f"{method}/{who}"] = {"acr": float(radii.mean()), "wall_seconds": wall, "cpu_seconds": cpu,
                                         "certified": dict(zip(RADII, accuracy, strict=True))}
            print(f"{method:12} {name:26} {radii.mean():6.3f} " + " ".join(f"{a:5.3f}" for a in accuracy)
                  + f" {wall:7.1f} {cpu:7.1f}", flush=True)
    if args.json:
        with open(args.json, "w") as file:
            json.dump({"config": vars(args), "results": report}, file, indent=2)


if __name__ == "__main__":
    main()
