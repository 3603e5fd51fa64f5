"""Certification throughput against the real forward-pass limit and ART, measured side by side.

Small CNNs on 1x28x28 inputs, CPU. The forward-pass limit is the best throughput of the bare network over
pre-made noisy batches, swept over batch sizes (the best size differs per network, input and machine); in each
repetition it is the best of the sweep's three fastest sizes, measured again.
CERTIFY (one input, n0 = 100, n = 20,000) and PREDICT over many inputs (n = 100: a few hundred copies per
input, so packing several inputs per forward pass matters) run with rs-plugin's default settings (the batch
size adapted during the run, after a warm-up run), as fractions of that limit; ART's
PyTorchRandomizedSmoothing.certify with its default batch size and at the best one. Repetitions are interleaved
so that machine noise hits all alike; the median of per-repetition ratios is reported. ``--disturb S`` runs a
CPU-bound process for S seconds during rs-plugin's first certification, when its batch size is first measured.

    python benchmarks/throughput.py [--n 20000] [--repeats 5] [--widths 16 32] [--disturb 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from rs_plugin import SmoothedClassifier
from rs_plugin.adapters.torch import TorchStream, noisy_batches
from rs_plugin.noises import Gaussian

SHAPE, SIGMA = (1, 28, 28), 0.25
SWEEP = (32, 64, 100, 128, 200, 256, 500, 512, 1000, 2048)


def small_cnn(width: int = 16) -> nn.Module:
    """Two 3x3 convolutions (``width`` and ``2 * width`` channels) with max-pooling, then two linear layers:
    ``width=16`` is a tiny CNN (the hardest case for overhead), ``width=32`` the size of PyTorch's MNIST example."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, width, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(width, 2 * width, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(2 * width * 5 * 5, 128), nn.ReLU(), nn.Linear(128, 10),
    ).eval()


def forward_rate(model: nn.Module, x: torch.Tensor, batch: int, total: int = 20_000) -> float:
    """Samples/s of the bare network on pre-made noisy batches of ``batch``."""
    noisy, _ = next(noisy_batches(x[None], [batch], TorchStream(Gaussian(SIGMA), 0), batch))
    steps = max(1, total // batch)
    with torch.inference_mode():
        model(noisy).argmax(1)
        start = time.perf_counter()
        for _ in range(steps):
            model(noisy).argmax(1)
    return steps * batch / (time.perf_counter() - start)


def timed(run: Callable[[], object], samples: int) -> float:
    start = time.perf_counter()
    run()
    return samples / (time.perf_counter() - start)


def art_certify(model: nn.Module, x: np.ndarray, n0: int, n: int, batch: int | None) -> Callable[[], object]:
    from art.estimators.certification.randomized_smoothing import PyTorchRandomizedSmoothing

    classifier = PyTorchRandomizedSmoothing(
        model, nn.CrossEntropyLoss(), SHAPE, 10, clip_values=(0, 1), device_type="cpu",
        sample_size=n0, scale=SIGMA, alpha=0.001,
    )
    options = {} if batch is None else {"batch_size": batch}
    return lambda: classifier.certify(x[None], n=n, **options)


def compare(width: int, n0: int, n: int, predict_inputs: int, repeats: int, disturb: float) -> None:
    model = small_cnn(width)
    rng = np.random.default_rng(0)
    x = rng.random(SHAPE, dtype=np.float32)
    xs = rng.random((predict_inputs, *SHAPE), dtype=np.float32)
    sweep = {size: forward_rate(model, torch.from_numpy(x), size) for size in SWEEP}
    best = max(sweep, key=sweep.get)
    top = sorted(sweep, key=sweep.get)[-3:]  # one short sweep is noisy: the limit re-measures its three best sizes
    g = SmoothedClassifier(model, 10, SIGMA, seed=0)
    if disturb:  # another CPU-bound process during the first run, while the batch size is first measured
        busy = subprocess.Popen([sys.executable, "-c", f"import time\nend = time.time() + {disturb}\n"
                                 "while time.time() < end: pass"])
        g.certify(x, n0, n, 0.001)
        busy.wait()
    runs = {
        "forward limit": lambda: max(forward_rate(model, torch.from_numpy(x), size) for size in top),
        "rs-plugin certify": lambda: timed(lambda: g.certify(x, n0, n, 0.001), n0 + n),
        "rs-plugin predict_many n=100": lambda: timed(
            lambda: g.predict_many(xs, 100, 0.001, progress=False), 100 * predict_inputs
        ),
        "ART certify (default batch)": lambda: timed(art_certify(model, x, n0, n, None), n0 + n),
        f"ART certify (batch {best})": lambda: timed(art_certify(model, x, n0, n, best), n0 + n),
    }
    for run in runs.values():  # warm-up
        run()
    rates: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            rates[name].append(run())
    print(f"\nCNN of width {width}: {sum(p.numel() for p in model.parameters()):,} parameters")
    print("  forward passes alone, samples/s by batch size: " + ", ".join(f"{b}: {r:,.0f}" for b, r in sweep.items()))
    print(f"  best batch size {best} (the limit: the best of {', '.join(map(str, sorted(top)))} in each "
          f"repetition); rs-plugin: {g.batch_report(x)}")
    print(f"  {'':32}{'samples/s':>12}{'of limit':>10}  (median of {repeats} per-repetition ratios)")
    for name, values in rates.items():
        ratio = statistics.median(v / limit for v, limit in zip(values, rates["forward limit"], strict=True))
        print(f"  {name:32}{statistics.median(values):12,.0f}{ratio:10.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n0", type=int, default=100)
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--predict-inputs", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--widths", type=int, nargs="+", default=[16, 32])
    parser.add_argument("--disturb", type=float, default=0.0, metavar="SECONDS",
                        help="run a CPU-bound process for this long during rs-plugin's first certification")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; CERTIFY n0={args.n0} n={args.n}; "
          f"PREDICT n=100 on {args.predict_inputs} inputs")
    for width in args.widths:
        compare(width, args.n0, args.n, args.predict_inputs, args.repeats, args.disturb)


if __name__ == "__main__":
    main()
