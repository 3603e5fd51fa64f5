"""Empirical against certified robustness of smoothed classifiers: for each model, the certified accuracy at l2
radius r (CERTIFY: correct and certified with radius >= r) next to the robust accuracy under ART's AutoAttack (its
default attacks at norm 2 and eps = r, on rs-plugin's soft smoothed classifier as a PyTorchClassifier) and under
SmoothAdv PGD (eps = r), both judged by PREDICT on fresh noise (an abstention counts as not robust).

A certificate holds against every attack, so certified <= empirical at every radius; an example certified at r that
an attack breaks is counted and reported as a violation (exit status 1), since with alpha = 0.001 it is almost surely
a bug. An example broken at a smaller radius counts as broken at the larger ones (its adversarial input lies in the
larger ball too); only examples still robust are attacked again.

By default the digits CNNs trained with Gaussian noise at sigma 0.12, 0.25 and 0.5 (trained in seconds on first use,
then cached); a few minutes on 2 CPU cores:

    python examples/empirical_vs_certified.py [--sigmas 0.12 0.25 0.5] [--num-examples 60] [--n 1000]
        [--json results.json] [--plot empirical_vs_certified.png]
    python examples/empirical_vs_certified.py --checkpoint model.pt --sigmas 0.25   # a digits checkpoint

AutoAttack is built as ART's users build it, ``AutoAttack(classifier, norm=2, eps=r)``: its default attack list
(APGD-CE, APGD-DLR, DeepFool, Square). By default their budgets are shortened (APGD 20 iterations and 1 restart,
DeepFool 20 iterations, Square 100 queries and 1 restart), since every query is a Monte-Carlo evaluation of the
smoothed classifier and ART's full budgets (APGD 100 iterations and 5 restarts, DeepFool 100, Square 5000 queries
and 5 restarts) take hours on a CPU; ``--full`` keeps ART's budgets untouched.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
import warnings
from typing import Any

import numpy as np
import torch
from art.attacks.evasion import AutoAttack, AutoProjectedGradientDescent, DeepFool, SquareAttack
from matplotlib.figure import Figure

from rs_plugin import ABSTAIN, SmoothedClassifier
from rs_plugin.adapters.art import soft_smoothed_classifier
from rs_plugin.adapters.checkpoints import load_checkpoint
from rs_plugin.adapters.training import digits_model
from rs_plugin.attacks import SmoothAdvPGD
from rs_plugin.datasets import digits_arrays

NUM_CLASSES, INPUT_SHAPE = 10, (1, 8, 8)
BATCH = 4096  # noisy copies per forward pass (results do not depend on it)


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sigmas", type=float, nargs="+", default=[0.12, 0.25, 0.5],
                        help="noise levels of the digits models (with --checkpoint: its sigma, one value)")
    parser.add_argument("--checkpoint", help="a digits checkpoint in the paper's format instead of the digits models")
    parser.add_argument("--radii", type=float, nargs="+", default=[0.25, 0.5, 1.0], help="l2 radii")
    parser.add_argument("--num-examples", type=int, default=60, help="digits test examples (the first ones)")
    parser.add_argument("--n", type=int, default=1000, help="samples of CERTIFY and PREDICT")
    parser.add_argument("--n0", type=int, default=100, help="selection samples of CERTIFY")
    parser.add_argument("--alpha", type=float, default=0.001, help="failure probability of CERTIFY and PREDICT")
    parser.add_argument("--steps", type=int, default=20, help="SmoothAdv PGD steps")
    parser.add_argument("--num-noise", type=int, default=8, help="noise draws per input, attacked classifier")
    parser.add_argument("--full", action="store_true", help="AutoAttack's full default budgets (hours on a CPU)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1: fastest for the digits CNN, and no stalls on a busy machine)")
    parser.add_argument("--json", help="write the rows and settings to this file")
    parser.add_argument("--plot", help="save the plot to this file (e.g. a .png)")
    args = parser.parse_args(argv)
    if args.checkpoint and len(args.sigmas) != 1:
        parser.error("--checkpoint: give its noise level as one --sigmas value")
    if min(args.num_examples, args.n, args.num_noise, args.threads) < 1:
        parser.error("--num-examples, --n, --num-noise and --threads must be positive")
    return args


def autoattack(net: torch.nn.Module, sigma: float, eps: float, args: argparse.Namespace) -> AutoAttack:
    """ART's ``AutoAttack(classifier, norm=2, eps=eps)`` with its default attack list, on the soft smoothed
    classifier as a ``PyTorchClassifier``; their budgets shortened unless ``--full``."""
    classifier = soft_smoothed_classifier(net, sigma, num_noise=args.num_noise, batch_size=BATCH, seed=0,
                                          input_shape=INPUT_SHAPE, nb_classes=NUM_CLASSES)
    attack = AutoAttack(classifier, norm=2, eps=eps)
    for default in attack.attacks:
        default.verbose = False
        if args.full:
            continue
        if isinstance(default, AutoProjectedGradientDescent):
            default.max_iter, default.nb_random_init = 20, 1
        elif isinstance(default, DeepFool):
            default.max_iter = 20
        elif isinstance(default, SquareAttack):
            default.max_iter, default.nb_restarts = 100, 1
    return attack


def smoothadv(net: torch.nn.Module, sigma: float, eps: float, args: argparse.Namespace) -> Any:
    attack = SmoothAdvPGD(net, sigma, eps=eps, steps=args.steps, num_noise=args.num_noise, batch_size=BATCH, seed=0)
    return lambda x, y: attack(torch.from_numpy(x), torch.from_numpy(y)).numpy()


def evaluate(net: torch.nn.Module, sigma: float, x: np.ndarray, y: np.ndarray, args: argparse.Namespace) -> list[dict]:
    """One row per radius: certified accuracy, robust accuracy under each attack, and the violations."""
    smoothed = SmoothedClassifier(net, NUM_CLASSES, sigma, seed=0)
    certificates = smoothed.certify_many(x, args.n0, args.n, args.alpha, progress=False)
    prediction = np.array([c.prediction for c in certificates])
    radius = np.array([c.radius for c in certificates])
    clean = smoothed.predict_many(x, args.n, args.alpha, progress=False) == y
    attacks = {"autoattack": lambda x_, y_, r: _autoattack(net, sigma, r, args, x_, y_),
               "smoothadv_pgd": lambda x_, y_, r: smoothadv(net, sigma, r, args)(x_, y_)}
    robust = {name: clean.copy() for name in attacks}
    rows = []
    for r in args.radii:
        certified = (prediction == y) & (radius >= r)
        row: dict[str, Any] = {"sigma": sigma, "radius": r, "certified": float(certified.mean()),
                               "clean": float(clean.mean())}
        for name, attack in attacks.items():
            index = np.flatnonzero(robust[name])
            if len(index):
                adv = attack(x[index], y[index], r)
                distance = np.linalg.norm((adv - x[index]).reshape(len(index), -1), axis=1).max()
                assert distance <= r + 1e-4 and adv.min() >= 0 and adv.max() <= 1, (name, distance)
                answers = smoothed.predict_many(adv, args.n, args.alpha, indices=index, progress=False)
                robust[name][index] = (answers == y[index]) & (answers != ABSTAIN)
            row[name] = float(robust[name].mean())
            row[f"{name}_violations"] = int((certified & ~robust[name]).sum())
        rows.append(row)
    return rows


def _autoattack(net: torch.nn.Module, sigma: float, r: float, args: argparse.Namespace, x: np.ndarray,
                y: np.ndarray) -> np.ndarray:
    np.random.seed(0)  # ART draws random starts and Square's squares from numpy's global generator
    return autoattack(net, sigma, r, args).generate(x, y=y)


def table(rows: list[dict]) -> str:
    lines = ["| sigma | radius | certified | AutoAttack | SmoothAdv PGD | gap (strongest attack - certified) |",
             "| ---: | ---: | ---: | ---: | ---: | ---: |"]
    for row in rows:
        empirical = min(row["autoattack"], row["smoothadv_pgd"])
        flag = " **violation**" if row["autoattack_violations"] or row["smoothadv_pgd_violations"] else ""
        lines.append(f"| {row['sigma']:g} | {row['radius']:g} | {row['certified']:.3f} | {row['autoattack']:.3f} | "
                     f"{row['smoothadv_pgd']:.3f} | {empirical - row['certified']:+.3f}{flag} |")
    return "\n".join(lines)


def plot(rows: list[dict], path: str) -> None:
    sigmas = sorted({row["sigma"] for row in rows})
    figure = Figure(figsize=(3.6 * len(sigmas), 3.2), layout="constrained")
    axes = np.atleast_1d(figure.subplots(1, len(sigmas), sharey=True))
    for ax, sigma in zip(axes, sigmas, strict=True):
        mine = [row for row in rows if row["sigma"] == sigma]
        radii = [row["radius"] for row in mine]
        for key, label, style in (("certified", "certified (CERTIFY)", "o-"), ("autoattack", "AutoAttack", "s--"),
                                  ("smoothadv_pgd", "SmoothAdv PGD", "^--")):
            ax.plot(radii, [row[key] for row in mine], style, label=label)
        ax.set_title(f"sigma = {sigma:g}")
        ax.set_xlabel("l2 radius")
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("accuracy (PREDICT on attacked inputs)")
    axes[0].legend(fontsize="small", loc="lower left")
    figure.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    warnings.filterwarnings("ignore", category=RuntimeWarning)  # ART's l2 Square divides 0 by 0 on 8x8 inputs
    logging.getLogger("art").setLevel(logging.ERROR)
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    x, y = digits_arrays("test")
    x, y = x[: args.num_examples], y[: args.num_examples]
    start, rows = time.perf_counter(), []
    for sigma in args.sigmas:
        net = load_checkpoint(args.checkpoint)[0] if args.checkpoint else digits_model(sigma)
        began = time.perf_counter()
        rows += evaluate(net.eval(), sigma, x, y, args)
        print(f"sigma {sigma:g}: {time.perf_counter() - began:.0f} s", file=sys.stderr, flush=True)
    print(table(rows))
    elapsed = time.perf_counter() - start
    print(f"\n{len(x)} digits, n = {args.n}, alpha = {args.alpha}, num_noise = {args.num_noise}, "
          f"AutoAttack budgets {'ART full' if args.full else 'shortened'}; {elapsed:.0f} s")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as file:
            json.dump({"settings": vars(args), "rows": rows, "seconds": elapsed}, file, indent=1)
    if args.plot:
        plot(rows, args.plot)
    violations = sum(row["autoattack_violations"] + row["smoothadv_pgd_violations"] for row in rows)
    if violations or any(row["certified"] > min(row["autoattack"], row["smoothadv_pgd"]) for row in rows):
        print(f"VIOLATION: {violations} certified examples broken by an attack (certified must be <= empirical)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
