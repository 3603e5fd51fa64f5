"""Certification throughput against the forward-pass limit and ART, measured side by side.

A small CNN on 1x28x28 inputs, batches of 200, CPU. The forward-pass limit is the time the same
forward passes take over a pre-made noisy batch; a ratio of 1.0 means certification costs nothing
beyond the network. Repetitions are interleaved (limit, rs-plugin, ART, limit, ...) so that machine noise
hits all three alike; medians are reported.

    python benchmarks/throughput.py [--n 20000] [--repeats 5]
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


def small_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 16, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 5 * 5, 64), nn.ReLU(), nn.Linear(64, 10),
    ).eval()


def batch_sizes(num: int) -> list[int]:
    return [min(BATCH, num - start) for start in range(0, num, BATCH)]


def forward_limit(model: nn.Module, sizes: list[int]) -> float:
    noisy = torch.rand(BATCH, *SHAPE) + SIGMA * torch.randn(BATCH, *SHAPE)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n0", type=int, default=100)
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    model = small_cnn()
    x = np.random.default_rng(0).random(SHAPE, dtype=np.float32)
    sizes = batch_sizes(args.n0) + batch_sizes(args.n)
    runs: dict[str, list[float]] = {"limit": [], "rs-plugin": [], "ART": []}
    ours(model, x, args.n0, 1000), art(model, x, args.n0, 1000), forward_limit(model, sizes[:5])  # warm-up
    for _ in range(args.repeats):
        runs["limit"].append(forward_limit(model, sizes))
        runs["rs-plugin"].append(ours(model, x, args.n0, args.n))
        runs["ART"].append(art(model, x, args.n0, args.n))
    limit = statistics.median(runs["limit"])
    samples = args.n0 + args.n
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; n0={args.n0} n={args.n} batch={BATCH}")
    print(f"{'':12}{'median s':>10}{'samples/s':>12}{'of limit':>10}")
    for name, times in runs.items():
        median = statistics.median(times)
        print(f"{name:12}{median:10.3f}{samples / median:12.0f}{limit / median:10.3f}")


if __name__ == "__main__":
    main()
