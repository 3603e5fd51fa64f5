"""Certification throughput against the real forward-pass limit and ART, measured side by side.

Small CNNs on 1x28x28 inputs, CPU. The forward-pass limit is the throughput of the bare network on pre-made noisy
batches at its best batch size (the best size differs per network, input and machine): the sweep's three fastest
sizes are measured in every repetition, and the limit is the one of the best median (``limit.py``).
CERTIFY (one input, n0 = 100, n = 20,000) and PREDICT over many inputs (n = 100: a few hundred copies per
input, so packing several inputs per forward pass matters) run with rs-plugin's default settings (the batch
size adapted during the run, after a warm-up run), as fractions of that limit; so does CERTIFY at each candidate
size fixed (at the limit's size it is the loop's own cost; beside the default, what adapting the size did); the
network with its noise drawn by torch's sampler in a plain loop at each candidate size (what any loop drawing the
same noise pays: the default's ratios to it, at the limit's size, are printed last); ART's
PyTorchRandomizedSmoothing.certify with its default batch size and at the best one. Freed memory is kept for reuse
(``rs_plugin.allocator``, as the command line does) unless ``--default-allocator``. Repetitions are interleaved
so that machine noise hits all alike; the median of per-repetition ratios is reported. ``--disturb S`` runs a
CPU-bound process for S seconds during rs-plugin's first certification, when its batch size is first measured.

    python benchmarks/throughput.py [--n 20000] [--repeats 5] [--widths 16 32] [--disturb 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from collections.abc import Callable

import numpy as np
import torch
from limit import (  # benchmarks/limit.py
    LIMIT,
    add_allocator_option,
    allocator,
    art_certify,
    at_batch,
    candidate_runs,
    fastest,
    sweep,
    timed,
    with_limit,
    with_noise,
)
from torch import nn

from rs_plugin import SmoothedClassifier

SHAPE, SIGMA, ALPHA = (1, 28, 28), 0.25, 0.001
SWEEP = (32, 64, 100, 128, 200, 256, 500, 512, 1000, 2048)


def small_cnn(width: int = 16) -> nn.Module:
    """Two 3x3 convolutions (``width`` and ``2 * width`` channels) with max-pooling, then two linear layers:
    ``width=16`` is a tiny CNN (the hardest case for overhead), ``width=32`` the size of PyTorch's MNIST example."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, width, 3),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(width, 2 * width, 3),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(2 * width * 5 * 5, 128),
        nn.ReLU(),
        nn.Linear(128, 10),
    ).eval()


def certify_run(g: SmoothedClassifier, x: np.ndarray, n0: int, n: int) -> Callable[[], float]:
    """A timed CERTIFY of ``x`` by ``g``, ready to call (samples/s). With ``g`` at a fixed batch size, beside the
    default's, it tells the loop's own cost at the limit's size from what the adaptive size gains or loses."""
    return lambda: timed(lambda: g.certify(x, n0, n, ALPHA), n0 + n)


def compare(
    width: int, n0: int, n: int, predict_inputs: int, repeats: int, disturb: float, seconds: float = 0.5
) -> None:
    """Print the comparison for the CNN of ``width``: the sweep (each size for about ``seconds`` a round), the limit,
    rs-plugin's batch report and every run's samples/s and ratios."""
    model = small_cnn(width)
    rng = np.random.default_rng(0)
    x = rng.random(SHAPE, dtype=np.float32)
    xs = rng.random((predict_inputs, *SHAPE), dtype=np.float32)
    rates_by_size = sweep(model, x, SWEEP, SIGMA, seconds=seconds)
    candidates = fastest(rates_by_size, 3)
    g = SmoothedClassifier(model, 10, SIGMA, seed=0)
    if disturb:  # another CPU-bound process during the first run, while the batch size is first measured
        busy = subprocess.Popen(
            [sys.executable, "-c", f"import time\nend = time.time() + {disturb}\nwhile time.time() < end: pass"]
        )
        g.certify(x, n0, n, ALPHA)
        busy.wait()
    art_best = candidates[0]
    runs = {
        **candidate_runs(model, x, candidates, SIGMA, n0 + n, noise=True),
        "rs-plugin certify": certify_run(g, x, n0, n),
        **{
            fixed_label(size): certify_run(
                SmoothedClassifier(model, 10, SIGMA, seed=0, batch_size=size), x, n0, n
            )
            for size in candidates
        },
        "rs-plugin predict_many n=100": lambda: timed(
            lambda: g.predict_many(xs, 100, ALPHA, progress=False), 100 * predict_inputs
        ),
        "ART certify (default batch)": lambda: timed(art_certify(model, 10, x, n0, n, SIGMA, ALPHA, None), n0 + n),
        f"ART certify (batch {art_best})": lambda: timed(
            art_certify(model, 10, x, n0, n, SIGMA, ALPHA, art_best), n0 + n
        ),
    }
    for run in runs.values():  # warm-up
        run()
    measured: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            measured[name].append(run())
    best, rates = with_limit(measured, candidates)
    print(f"\nCNN of width {width}: {sum(p.numel() for p in model.parameters()):,} parameters")
    print(
        "  forward passes alone, median samples/s by batch size: "
        + ", ".join(f"{b}: {r:,.0f}" for b, r in rates_by_size.items())
    )
    print(f"  the limit: batch size {best}, the fastest of {', '.join(map(str, candidates))} over the repetitions")
    print(f"  rs-plugin: {g.batch_report(x)}")
    print(f"  {'':32}{'samples/s':>12}{'of limit':>10}{'of its size':>13}  (median of {repeats} per-repetition "
          "ratios; of its size: against the forward pass at the same batch size, no size chosen by the timings)")
    for name, values in rates.items():
        ratio = median_ratio(values, rates[LIMIT])
        size = next((at_batch(s) for s in candidates if name == fixed_label(s)), None)
        own = f"{median_ratio(values, rates[size]):13.3f}" if size else ""
        print(f"  {name:32}{statistics.median(values):12,.0f}{ratio:10.3f}{own}")
    noisy = rates[with_noise(best)]
    print(f"  against the network with its noise drawn at batch {best} (a plain torch loop, "
          f"{median_ratio(noisy, rates[LIMIT]):.3f} of the limit): rs-plugin certify "
          f"{median_ratio(rates['rs-plugin certify'], noisy):.3f}, predict_many n=100 "
          f"{median_ratio(rates['rs-plugin predict_many n=100'], noisy):.3f}")


def fixed_label(size: int) -> str:
    """The label of CERTIFY's rates with the batch size fixed at ``size``."""
    return f"rs-plugin certify (batch {size})"


def median_ratio(values: list[float], limits: list[float]) -> float:
    """The median of the per-repetition ratios ``values[i] / limits[i]``."""
    return statistics.median(v / limit for v, limit in zip(values, limits, strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n0", type=int, default=100)
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--predict-inputs", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--widths", type=int, nargs="+", default=[16, 32])
    parser.add_argument(
        "--disturb",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="run a CPU-bound process for this long during rs-plugin's first certification",
    )
    add_allocator_option(parser)
    args = parser.parse_args()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; CERTIFY n0={args.n0} n={args.n}; "
        f"PREDICT n=100 on {args.predict_inputs} inputs; {allocator(args.default_allocator)}"
    )
    for width in args.widths:
        compare(width, args.n0, args.n, args.predict_inputs, args.repeats, args.disturb)


if __name__ == "__main__":
    main()
