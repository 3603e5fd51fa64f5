"""Certification throughput against the forward-pass limit and ART, measured side by side.

A small CNN on 1x28x28 inputs, batches of 200, CPU. The forward-pass limit is the time the same
forward passes take over a pre-made noisy batch; a ratio of 1.0 means certification costs nothing
beyond the network. Repetitions are interleaved (limit, rs-plugin, ART, limit, ...) so that machine noise
hits all three alike; medians are reported.

    python benchmarks/throughput.py [--n 20000] [--repeats 7] [--widths 16 32]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from torch import nn

from rs_plugin import SmoothedClassifier

SHAPE, BATCH, SIGMA = (1, 28, 28), 200, 0.25


def small_cnn(width: int = 16) -> nn.Module:
    """Two 3x3 convolutions (``width`` and ``2 * width`` channels) with max-pooling, then two linear layers:
    ``width=16`` is a tiny CNN (the hardest case for overhead), ``width=32`` the size of PyTorch's MNIST example."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, width, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(width, 2 * width, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(2 * width * 5 * 5, 128), nn.ReLU(), nn.Linear(128, 10),
    ).eval()


def batch_sizes(num: int) -> list[int]:
    return [min(BATCH, num - start) for start in range(0, num, BATCH)]


def forward_limit(model: nn.Module, x: np.ndarray, sizes: list[int]) -> float:
    noisy = torch.from_numpy(x) + SIGMA * torch.randn(BATCH, *SHAPE)
    start = time.perf_counter()
    with torch.inference_mode():
        for size in sizes:
            model(noisy[:size]).argmax(1)
    return time.perf_counter() - start


def ours(model: nn.Module, x: np.ndarray, n0: int, n: int) -> float:
    g = SmoothedClassifier(model, 10, SIGMA, batch_size=BATCH, seed=0)
    start = time.perf_counter()
    g.certify(x, n0, n, 0.001)
    return time.perf_counter() - start


def art(model: nn.Module, x: np.ndarray, n0: int, n: int) -> float:
    from art.estimators.certification.randomized_smoothing import PyTorchRandomizedSmoothing

    classifier = PyTorchRandomizedSmoothing(
        model, nn.CrossEntropyLoss(), SHAPE, 10, clip_values=(0, 1), device_type="cpu",
        sample_size=n0, scale=SIGMA, alpha=0.001,
    )
    start = time.perf_counter()
    classifier.certify(x[None], n=n, batch_size=BATCH)
    return time.perf_counter() - start


def compare(width: int, n0: int, n: int, repeats: int) -> None:
    model = small_cnn(width)
    x = np.random.default_rng(0).random(SHAPE, dtype=np.float32)
    sizes = batch_sizes(n0) + batch_sizes(n)
    ours(model, x, n0, 1000), art(model, x, n0, 1000), forward_limit(model, x, sizes[:5])  # warm-up
    times: dict[str, list[float]] = {"limit": [], "rs-plugin": [], "ART": []}
    for _ in range(repeats):  # each repetition measures all three back to back; ratios are per repetition
        times["limit"].append(forward_limit(model, x, sizes))
        times["rs-plugin"].append(ours(model, x, n0, n))
        times["ART"].append(art(model, x, n0, n))
    print(f"CNN of width {width}: {sum(p.numel() for p in model.parameters()):,} parameters")
    print(f"  {'':10}{'median s':>10}{'samples/s':>12}{'of limit':>10}  (median of {repeats} per-repetition ratios)")
    for name, seconds in times.items():
        ratio = statistics.median(limit / t for limit, t in zip(times["limit"], seconds, strict=True))
        median = statistics.median(seconds)
        print(f"  {name:10}{median:10.3f}{(n0 + n) / median:12.0f}{ratio:10.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n0", type=int, default=100)
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--widths", type=int, nargs="+", default=[16, 32])
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; n0={args.n0} n={args.n} batch={BATCH}")
    for width in args.widths:
        compare(width, args.n0, args.n, args.repeats)


if __name__ == "__main__":
    main()
