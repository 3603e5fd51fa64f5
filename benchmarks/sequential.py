"""Forward passes saved by sequential CERTIFY, against fixed-n CERTIFY, with its answers checked.

1. Analytic points: a linear base classifier's votes are Binomial(m, Phi(d / sigma)) at distance d from its
   boundary, so the estimation is run on Binomial draws at several distances: mean estimation samples of
   each confidence sequence for the targets 0.25/0.5/0.75/1.0 and for the radius tolerance.
2. The digits CNN trained with noise: the certified-accuracy table at the target radii from fixed-n CERTIFY
   (run once and cached: about 15 minutes on 2 busy cores), from sequential CERTIFY with each confidence
   sequence, and the tolerance mode's average certified radius (ACR), with forward passes and seconds.
3. Time side by side, with default settings: fixed-n against sequential CERTIFY (betting, the same targets) over a
   dataset (certify_many) and one input at a time, with the certified-accuracy table of each.

    python benchmarks/sequential.py [--num-examples 100] [--n 100000] [--tolerance 0.05]
    python benchmarks/sequential.py --parts time [--time-examples 20] [--repeats 1]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
import warnings
from typing import Any

import numpy as np

from rs_plugin import SmoothedClassifier
from rs_plugin.diagnostics import PreflightWarning
from rs_plugin.noises import Gaussian
from rs_plugin.sequential import SEQUENCES, estimate, make_sequence

SIGMA, ALPHA, N0, SEED = 0.25, 0.001, 100, 0
RADII = [0.25, 0.5, 0.75, 1.0]
PARTS = ("analytic", "digits", "time")
NOISE = Gaussian(SIGMA)


def radius(p: float) -> float:
    return NOISE.radius(p) if p >= 0.5 else 0.0


def analytic(n: int, trials: int, tolerance: float) -> None:
    targets = [NOISE.p_needed(r) for r in RADII]
    print(f"1. Binomial votes of a linear base classifier at distance d, sigma={SIGMA}, n={n}, alpha={ALPHA}, "
          f"{trials} trials each: mean estimation samples")
    print(f"   {'d/sigma':>8}{'p':>10}" + "".join(f"{'targets ' + s:>22}{'tolerance ' + s:>22}" for s in SEQUENCES))
    for z in (0.5, 1.5, 2.5, 3.5, 4.5, np.inf):
        p = 1.0 if z == np.inf else float(NOISE.p_needed(z * SIGMA))
        rng = np.random.default_rng(0)
        draw = lambda m, p=p, rng=rng: int(rng.binomial(m, p))  # noqa: E731
        cells = []
        for name in SEQUENCES:
            for options in (dict(thresholds=targets), dict(radius_tolerance=tolerance, radius=radius)):
                used = [estimate(draw, n, make_sequence(name, ALPHA, n), **options)[1] for _ in range(trials)]
                cells.append(f"{np.mean(used):22,.0f}")
        print(f"   {z:8.1f}{p:10.6f}" + "".join(cells))


def fixed_n(g: SmoothedClassifier, x: np.ndarray, n: int) -> dict[str, Any]:
    """Fixed-n CERTIFY of every input, cached (it is the expensive part): ``{"seconds", "rows"}``."""
    from rs_plugin.adapters.training import cache_dir

    name = f"benchmark-sequential-fixed-sigma{SIGMA:g}-n{n}-n0{N0}-alpha{ALPHA:g}-seed{SEED}-{len(x)}.json"
    path = cache_dir() / name
    if path.exists():
        return json.loads(path.read_text())
    start = time.perf_counter()
    certs = g.certify_many(x, N0, n, ALPHA)
    result = {"seconds": time.perf_counter() - start, "rows": [_row(c) for c in certs]}
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    partial.write_text(json.dumps(result))
    os.replace(partial, path)
    return result


def _row(cert: Any) -> dict[str, Any]:
    return {"prediction": cert.prediction, "radius": cert.radius, "count": cert.count, "n": cert.n,
            "num_samples": cert.num_samples}


def digits(num_examples: int, n: int, tolerance: float) -> None:
    import torch

    from rs_plugin.adapters.datasets import digits_arrays
    from rs_plugin.adapters.training import digits_model

    torch.set_num_threads(1)  # faster than 2 threads on this busy 2-core machine
    x, y = digits_arrays("test")
    x, y = x[:num_examples], y[:num_examples]
    g = SmoothedClassifier(digits_model(SIGMA), 10, SIGMA, seed=SEED)
    runs = {"fixed n": fixed_n(g, x, n)}
    for label, options in [*((f"{s}, targets", dict(target_radius=RADII, sequence=s)) for s in SEQUENCES),
                           (f"betting, eps={tolerance:g}", dict(radius_tolerance=tolerance))]:
        start = time.perf_counter()
        certs = g.certify_many(x, N0, n, ALPHA, progress=False, **options)
        runs[label] = {"seconds": time.perf_counter() - start, "rows": [_row(c) for c in certs]}

    print(f"\n2. digits CNN (sigma={SIGMA}), {num_examples} test digits, n0={N0}, n={n}, alpha={ALPHA}; "
          "certified accuracy (correct and radius >= r)")
    header = "".join(f"{'@' + str(r):>7}" for r in RADII)
    print(f"   {'':22}{header}{'ACR':>8}{'forward passes':>16}{'fewer':>7}{'seconds':>9}")
    fixed_passes = sum(row["num_samples"] for row in runs["fixed n"]["rows"])
    radii = {}
    for label, run in runs.items():
        rows = run["rows"]
        correct = np.array([r["prediction"] for r in rows]) == y
        radii[label] = np.where(correct, [r["radius"] for r in rows], 0.0)
        counts = "".join(f"{int(np.sum(radii[label] >= r)):7d}" for r in RADII)
        passes = sum(r["num_samples"] for r in rows)
        print(f"   {label:22}{counts}{radii[label].mean():8.3f}{passes:16,d}{fixed_passes / passes:6.1f}x"
              f"{run['seconds']:9.0f}")
    tolerant = radii[f"betting, eps={tolerance:g}"]
    short = radii["fixed n"] - tolerant
    print(f"   tolerance mode: ACR {tolerant.mean():.3f} against {radii['fixed n'].mean():.3f} for fixed n "
          f"(difference {radii['fixed n'].mean() - tolerant.mean():+.3f}, eps {tolerance:g}); "
          f"{int(np.sum(short > tolerance))} of {num_examples} radii more than eps below fixed n's, "
          f"largest shortfall {short.max():.3f}")
    limits(runs["betting, targets"]["rows"], radii["betting, targets"], n)


def limits(rows: list[dict[str, Any]], radii: np.ndarray, n: int) -> None:
    """Where the forward passes of sequential CERTIFY went."""
    passes = np.array([r["num_samples"] for r in rows])
    top = NOISE.p_needed(max(r for r in RADII if r < radius(make_sequence("betting", ALPHA, n).lower(n, n))))
    floor = int(np.ceil(np.log(ALPHA) / np.log(top)))
    certified_top = radii >= radius(top) - 1e-12
    long = passes > N0 + n // 4
    print(f"   where the betting run's passes went: {int(certified_top.sum())} digits certified at the largest "
          f"reachable target used {passes[certified_top].sum() / passes.sum():.0%} (no valid bound certifies it with "
          f"fewer than {floor:,} samples, every one a success); {int(long.sum())} digits drew more than n/4 samples "
          f"(p near a target's threshold): {passes[long].sum() / passes.sum():.0%}")


def timing(num_examples: int, n: int, repeats: int) -> None:
    """Seconds of fixed-n and sequential CERTIFY (betting, the four target radii) side by side, over a dataset
    (``certify_many``) and one input at a time, with default settings (the batch size adapts during the run; a
    warm-up run first), and the certified-accuracy table of each."""
    import torch

    from rs_plugin.adapters.datasets import digits_arrays
    from rs_plugin.adapters.training import digits_model

    x, y = digits_arrays("test")
    x, y = x[:num_examples], y[:num_examples]
    model = digits_model(SIGMA)
    warnings.simplefilter("ignore", PreflightWarning)  # target 1.0 is out of reach at n = 100,000: by design

    def run(options: dict[str, Any], together: bool) -> tuple[float, np.ndarray, int]:
        g = SmoothedClassifier(model, 10, SIGMA, seed=SEED)
        start = time.perf_counter()
        if together:
            certs = g.certify_many(x, N0, n, ALPHA, progress=False, **options)
        else:
            certs = [g.certify(xi, N0, n, ALPHA, index=i, **options) for i, xi in enumerate(x)]
        seconds = time.perf_counter() - start
        correct = np.array([c.prediction for c in certs]) == y
        return seconds, np.where(correct, [c.radius for c in certs], 0.0), sum(c.num_samples for c in certs)

    sequential = dict(target_radius=RADII)
    run(sequential, True)  # warm-up: the batch size settles
    runs = {(mode, together): [] for mode in ("fixed n", "sequential") for together in (True, False)}
    tables, samples = {}, {}
    for _ in range(repeats):
        for (mode, together), seconds in runs.items():
            took, radii, samples[mode] = run({} if mode == "fixed n" else sequential, together)
            seconds.append(took)
            tables[mode] = [int(np.sum(radii >= r)) for r in RADII]
    print(f"\n3. time side by side: digits CNN (sigma={SIGMA}), {num_examples} test digits, n0={N0}, n={n}, "
          f"alpha={ALPHA}, torch {torch.get_num_threads()} threads, median of {repeats}")
    for together in (True, False):
        fixed = statistics.median(runs[("fixed n", together)])
        seq = statistics.median(runs[("sequential", together)])
        how = "certify_many (over the dataset)" if together else "certify, one input at a time"
        print(f"   {how:34} fixed n {fixed:7.1f} s, sequential {seq:6.1f} s: {fixed / seq:5.1f}x less time")
    print(f"   samples: fixed n {samples['fixed n']:,}, sequential {samples['sequential']:,} "
          f"({samples['fixed n'] / samples['sequential']:.1f}x fewer)")
    for mode, table in tables.items():
        print(f"   certified at {', '.join(map(str, RADII))}: {mode} {table}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-examples", type=int, default=100)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--tolerance", type=float, default=0.05)
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument("--time-examples", type=int, default=20, help="digits in part 3 (time side by side)")
    parser.add_argument("--repeats", type=int, default=1, help="repetitions of part 3")
    args = parser.parse_args()
    if "analytic" in args.parts:
        analytic(args.n, args.trials, args.tolerance)
    if "digits" in args.parts:
        digits(args.num_examples, args.n, args.tolerance)
    if "time" in args.parts:
        timing(args.time_examples, args.n, args.repeats)


if __name__ == "__main__":
    main()
