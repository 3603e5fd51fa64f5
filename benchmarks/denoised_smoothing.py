"""Off-the-shelf networks on digits: denoised smoothing and ensembles of Gaussian-trained networks.

Trains (digits classifiers once, then cached) an undefended CNN, a DnCNN denoiser for it (stability objective),
Gaussian-trained CNNs of seeds 0, 1, 2, certifies the undefended network, it behind the denoiser, each
Gaussian-trained network and their ensemble on the 360 test digits, prints certified accuracy at r = sigma, ACR
and training time, the issue's criteria, and saves a plot of certified accuracy against radius.

    python benchmarks/denoised_smoothing.py                          # sigma 0.25, n = 2,000: minutes on 2 CPU cores
    python benchmarks/denoised_smoothing.py --num-examples 100 --n 500 --plot quick.png
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from off_the_shelf import (
    DENOISED,
    ENSEMBLE,
    UNDEFENDED,
    OffTheShelfConfig,
    member_name,
    off_the_shelf_experiment,
)

from rs_plugin.analysis import plot_certified_accuracy


def main() -> None:
    defaults = OffTheShelfConfig()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sigma", type=float, default=defaults.sigma)
    parser.add_argument("--n0", type=int, default=defaults.n0)
    parser.add_argument("--n", type=int, default=defaults.n)
    parser.add_argument("--alpha", type=float, default=defaults.alpha)
    parser.add_argument("--num-examples", type=int, default=defaults.num_examples)
    parser.add_argument("--denoiser-epochs", type=int, default=defaults.denoiser_epochs)
    parser.add_argument("--plot", type=Path, default=Path("denoised_smoothing.png"), help="where the plot goes")
    parser.add_argument("--json", type=Path, help="also write the numbers as JSON")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args()
    config = OffTheShelfConfig(sigma=args.sigma, n0=args.n0, n=args.n, alpha=args.alpha,
                               num_examples=args.num_examples, denoiser_epochs=args.denoiser_epochs)
    start = time.perf_counter()
    result = off_the_shelf_experiment(config, progress=not args.no_progress)
    print(f"Off-the-shelf networks: digits, sigma={config.sigma}, {config.num_examples} test examples, "
          f"CERTIFY n0={config.n0} n={config.n} alpha={config.alpha} ({time.perf_counter() - start:.0f} s in all)")
    print(f"{'model':<24} {f'certified@{config.sigma:g}':>14} {'ACR':>7} {'train s':>8}")
    for name in result.predictions:
        print(f"{name:<24} {result.certified_accuracy(name, config.sigma):>14.3f} {result.acr(name):>7.3f} "
              f"{result.train_seconds.get(name, 0.0):>8.1f}")
    print("criteria (issue: >= 0.85; clearly > 0; >= 1):")
    for criterion, value in result.criteria().items():
        print(f"  {criterion}: {value:.3f}")
    shown = [UNDEFENDED, DENOISED, member_name(config.seeds[0]), ENSEMBLE]
    plot_certified_accuracy([result.results(name) for name in shown], shown, args.plot,
                            title=f"digits, sigma = {config.sigma:g}, n = {config.n}")
    print(f"plot: {args.plot}")
    if args.json:
        args.json.write_text(json.dumps(result.to_dict(), indent=2))


if __name__ == "__main__":
    main()
