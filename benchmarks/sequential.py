"""Samples saved by sequential certification (``certify(..., target_radius=r)``), with its decisions checked.

1. Analytic points (a linear base classifier, whose true robust radius is its distance to the boundary):
   a clearly robust and a clearly non-robust point at r, many seeded trials each: mean estimation
   samples against fixed n, and how often the decision at r is right.
2. The digits CNN trained with noise: certified accuracy at the target radii from fixed-n CERTIFY
   (n = 100,000) and from one sequential run deciding all radii at once, and the forward passes each used.

    python benchmarks/sequential.py [--num-examples 100] [--n 100000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from rs_plugin import SmoothedClassifier

SIGMA, ALPHA, N0 = 0.25, 0.001, 100


def analytic(n: int, trials: int) -> None:
    axis = np.eye(8, dtype=np.float32)[0]
    g = SmoothedClassifier(lambda batch: (batch @ axis > 0).astype(np.int64), 2, SIGMA, seed=0)
    r = 0.25
    print(f"1. linear base classifier, sigma={SIGMA}, r={r}, n={n}, alpha={ALPHA}, {trials} trials per point")
    print(f"   {'true distance':>14}{'robust at r':>12}{'mean samples':>14}{'of fixed n':>11}{'right':>8}")
    for distance in (3 * r, r / 3):
        certs = [g.certify(axis * distance, N0, n, ALPHA, target_radius=r) for _ in range(trials)]
        used = np.mean([c.n for c in certs])
        right = np.mean([(c.radius >= r) == (distance >= r) for c in certs])
        print(f"   {distance:14.3f}{distance >= r!s:>12}{used:14.0f}{used / n:11.4f}{right:8.1%}")


def digits(num_examples: int, n: int, radii: list[float]) -> None:
    import torch

    from rs_plugin.adapters.datasets import digits_arrays
    from rs_plugin.adapters.training import digits_model

    torch.manual_seed(0)
    x, y = digits_arrays("test")
    x, y = x[:num_examples], y[:num_examples]
    g = SmoothedClassifier(digits_model(SIGMA), 10, SIGMA, seed=0)
    print(f"2. digits CNN (sigma={SIGMA}), {num_examples} test examples, n={n}, alpha={ALPHA}, radii {radii}")
    runs = {}
    for name, target in (("fixed n", None), ("sequential", radii)):
        start = time.perf_counter()
        certs = g.certify_many(x, N0, n, ALPHA, target_radius=target, progress=True)
        runs[name] = (certs, time.perf_counter() - start)
    print(f"   {'':12}" + "".join(f"{'acc@' + str(r):>10}" for r in radii) + f"{'passes':>14}{'seconds':>9}")
    for name, (certs, seconds) in runs.items():
        correct = np.array([c.prediction for c in certs]) == y
        accuracy = [np.mean(correct & (np.array([c.radius for c in certs]) >= r)) for r in radii]
        passes = sum(c.num_samples for c in certs)
        print(f"   {name:12}" + "".join(f"{a:10.3f}" for a in accuracy) + f"{passes:14,d}{seconds:9.1f}")
    fixed, seq = (sum(c.num_samples for c in runs[k][0]) for k in ("fixed n", "sequential"))
    print(f"   sequential used {seq / fixed:.4f} of the forward passes ({fixed / seq:.1f}x fewer)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-examples", type=int, default=100)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--radii", type=float, nargs="+", default=[0.25, 0.5])
    args = parser.parse_args()
    analytic(args.n, args.trials)
    digits(args.num_examples, args.n, args.radii)


if __name__ == "__main__":
    main()
