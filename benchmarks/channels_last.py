"""CERTIFY on a CPU with the network in the channels-last memory format (``FastModel(model, channels_last=True)``,
``rs-plugin certify --channels-last``) against the network as given, side by side.

The networks of ``throughput.py`` (small CNNs on 1x28x28) and ResNet-20 of ``resnets.py`` (3x32x32, random
weights), each run both ways: the bare forward pass at one batch size, then CERTIFY (one input, rs-plugin's default
batch size) in interleaved repetitions; the median of the per-repetition ratios (channels last / as given) is
reported, with the two certificates (their counts must agree: the layout changes the rounding of the network's
arithmetic, not the noise) and :func:`rs_plugin.adapters.torch.label_agreement` on noisy copies.

    python benchmarks/channels_last.py [--n 20000] [--repeats 5] [--networks cnn16 cnn32 resnet20]
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Sequence

import numpy as np
import torch
from limit import add_allocator_option, allocator, forward_rate, noisy_batch, timed  # benchmarks/limit.py
from resnets import NETWORKS, build  # benchmarks/resnets.py
from throughput import small_cnn  # benchmarks/throughput.py
from torch import nn

from rs_plugin import SmoothedClassifier
from rs_plugin.adapters.torch import FastModel, label_agreement
from rs_plugin.noises import Gaussian

SIGMA, ALPHA, BATCH = 0.25, 0.001, 128


def network(name: str) -> tuple[nn.Module, int, tuple[int, ...]]:
    """``(model, classes, input shape)`` of a network by name: ``cnn16``, ``cnn32`` or ``resnet20``."""
    if name.startswith("cnn"):
        return small_cnn(int(name[3:])), 10, (1, 28, 28)
    model, classes = build(NETWORKS[name])
    return model, classes, NETWORKS[name].shape


def compare(name: str, n: int, repeats: int) -> list[str]:
    """The report's lines for one network: forward passes and CERTIFY, as given and in channels last."""
    model, classes, shape = network(name)
    fast = FastModel(model, channels_last=True)
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    batch = noisy_batch(x, BATCH, SIGMA)
    ways = {"as given": model, "channels last": fast}
    gs = {way: SmoothedClassifier(net, classes, SIGMA, seed=0) for way, net in ways.items()}
    for g in gs.values():  # warm-up: the batch sizer's first measurements
        g.certify(x, 100, n, ALPHA)
    rates: dict[str, list[float]] = {f"{kind}, {way}": [] for kind in ("forward", "certify") for way in ways}
    for _ in range(repeats):
        for way, net in ways.items():
            rates[f"forward, {way}"].append(forward_rate(net, batch, samples=n))
            rates[f"certify, {way}"].append(timed(lambda g=gs[way]: g.certify(x, 100, n, ALPHA), 100 + n))
    given, last = (gs[way].certify(x, 100, n, ALPHA) for way in ways)
    agreement = label_agreement(model, fast, x[None], Gaussian(SIGMA), 200)
    lines = [f"{name}: {sum(p.numel() for p in model.parameters()):,} parameters, input {shape}"]
    for kind in ("forward", "certify"):
        a, b = rates[f"{kind}, as given"], rates[f"{kind}, channels last"]
        ratio = statistics.median(q / p for p, q in zip(a, b, strict=True))
        at = f" (batch {BATCH})" if kind == "forward" else ""
        lines.append(f"  {kind:8} as given {statistics.median(a):10,.0f}/s  channels last "
                     f"{statistics.median(b):10,.0f}/s  ratio {ratio:.2f}{at}")
    lines.append(f"  certificates: as given {given.count} of {given.n} for class {given.selected}, channels last "
                 f"{last.count} of {last.n} for class {last.selected}; labels agree on {agreement:.1%} of 200 "
                 "noisy copies")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--networks", nargs="+", default=["cnn16", "cnn32", "resnet20"])
    add_allocator_option(parser)
    args = parser.parse_args(argv)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU; CERTIFY n0=100 n={args.n}; "
          f"{allocator(args.default_allocator)}")
    for name in args.networks:
        print("\n".join(compare(name, args.n, args.repeats)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
