"""Certification throughput on realistic networks and inputs, against the forward-pass limit and ART, side by side.

The paper's CIFAR-10 ResNet-20 and ResNet-110 on 3x32x32 inputs and torchvision's ResNet-50 on 3x224x224,
random weights (``torch.manual_seed(0)``), CPU. For each network:

- the forward-pass limit: the bare network's samples/s on pre-made noisy batches at its best batch size, chosen by
  the median of three interleaved sweeps over sizes from 1 up (``limit.sweep``; capped per network so that
  one batch's activations stay small; the best size of a large network on a CPU can be well below 32);
- rs-plugin's CERTIFY (one input, ``SmoothedClassifier(model, num_classes, 0.25, seed=0).certify(x, n0, n,
  0.001)``) with its default settings: the batch size is chosen by rs-plugin itself;
- ART's ``PyTorchRandomizedSmoothing.certify`` at its default batch size and at the sweep's best one.

Repetitions are interleaved so that machine noise hits all alike; each ratio is the median of per-repetition
ratios. n is per network (CPU-sized; ``--n-resnet50`` and the like), ``--quick`` is a smoke run. Freed memory is
kept for reuse (``rs_plugin.allocator``, as the command line does) unless ``--default-allocator``.

``--plot PATH`` saves, per network, the sweep's samples/s against the batch size beside each run's median.

    python benchmarks/resnets.py [--networks resnet20 resnet110 resnet50] [--repeats 5] [--quick] [--plot PATH]
"""

from __future__ import annotations

import argparse
import inspect
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import limit  # benchmarks/limit.py
import numpy as np
import torch
from torch import nn

from rs_plugin import SmoothedClassifier
from rs_plugin.adapters.models import architecture, get_architecture

SIGMA, ALPHA = 0.25, 0.001
SWEEP = (1, 2, 4, 8, 16, 32, 64, 128, 256)
"""Batch sizes of the forward-pass sweep, each capped by the network's ``max_batch``."""
RS_PLUGIN = "rs-plugin certify"
LIMIT = limit.LIMIT
ART_DEFAULT, ART_BEST = "ART certify (default batch)", "ART certify (best batch)"


@dataclass(frozen=True)
class Network:
    """One benchmarked network: the architecture's name in :mod:`rs_plugin.adapters.models`, its input shape,
    the default n and n0 of CERTIFY (CPU-sized), and the largest batch of the sweep."""

    arch: str
    shape: tuple[int, int, int]
    n: int
    n0: int
    max_batch: int


NETWORKS = {
    "resnet20": Network("cifar_resnet20", (3, 32, 32), n=4000, n0=100, max_batch=256),
    "resnet110": Network("cifar_resnet110", (3, 32, 32), n=1000, n0=100, max_batch=256),
    "resnet50": Network("resnet50", (3, 224, 224), n=128, n0=16, max_batch=64),
}


def build(network: Network) -> tuple[nn.Module, int]:
    """The network with random weights drawn after ``torch.manual_seed(0)`` (so always the same), in eval mode,
    normalisation layer in front; and its number of classes."""
    torch.manual_seed(0)
    classes = architecture(network.arch).num_classes
    assert classes is not None, f"{network.arch} is not a classifier"
    return get_architecture(network.arch).eval(), classes


def rs_plugin_batch(g: SmoothedClassifier, x: np.ndarray) -> str:
    """What rs-plugin says about the batch size it uses for ``x`` (after a certification), as far as this version
    of it offers: its ``batch_report`` (called with ``x`` where it takes an input) where it has one, otherwise
    ``batch_size_for``."""
    if hasattr(g, "batch_report"):
        report = g.batch_report
        required = [p for p in inspect.signature(report).parameters.values() if p.default is p.empty]
        return str(report(x) if required else report())
    if hasattr(g, "batch_size_for"):
        return f"batch size {g.batch_size_for(g.backend.prepare(x))}"
    return "no batch size reported"


@dataclass
class Comparison:
    """One network's measurements: the sweep (batch size to median samples/s), the best size, what rs-plugin said about
    its batch size, and each run's samples/s per repetition (the same repetitions for all runs)."""

    name: str
    parameters: int
    n0: int
    n: int
    sweep: dict[int, float]
    candidates: list[int]
    """The sweep's three fastest sizes, measured in every repetition; the first is ART's best batch."""
    best: int
    """The limit's batch size: the candidate of the best median over the repetitions."""
    rs_plugin_batch: str
    rates: dict[str, list[float]] = field(default_factory=dict)

    def ratio(self, numerator: str, denominator: str) -> float:
        """The median over repetitions of ``numerator``'s samples/s divided by ``denominator``'s."""
        pairs = zip(self.rates[numerator], self.rates[denominator], strict=True)
        return statistics.median(a / b for a, b in pairs)

    def table(self) -> str:
        """The network's report: parameters, sweep, best batch, limit, each run's samples/s, and the ratios
        rs-plugin/limit, ART default/limit, ART best/limit, rs-plugin/ART best."""
        repeats = len(self.rates[LIMIT])
        lines = [
            f"{self.name}: {self.parameters:,} parameters; CERTIFY n0={self.n0} n={self.n}",
            "  forward passes alone, median samples/s by batch size: "
            + ", ".join(f"{b}: {r:,.1f}" for b, r in self.sweep.items()),
            f"  the limit: batch size {self.best}, the fastest of {', '.join(map(str, self.candidates))} over the "
            f"repetitions; ART's best batch: {self.candidates[0]}",
            f"  rs-plugin: {self.rs_plugin_batch}",
            f"  {'':32}{'samples/s':>12}  (medians of {repeats} repetitions)",
        ]
        lines += [f"  {name:32}{statistics.median(values):12,.1f}" for name, values in self.rates.items()]
        ratios = {
            "rs-plugin / limit": (RS_PLUGIN, LIMIT),
            "ART default / limit": (ART_DEFAULT, LIMIT),
            "ART best / limit": (ART_BEST, LIMIT),
            "rs-plugin / ART best": (RS_PLUGIN, ART_BEST),
        }
        lines += [f"  ratio {label:26}{self.ratio(*pair):12.3f}" for label, pair in ratios.items()]
        return "\n".join(lines)


def compare(name: str, n0: int, n: int, repeats: int, sweep: Sequence[int] = SWEEP, seconds: float = 1.0) -> Comparison:
    """Measures network ``name`` (a key of :data:`NETWORKS`): the forward-pass sweep over the sizes of ``sweep``
    up to the network's ``max_batch`` (three interleaved rounds of about ``seconds`` per size), then one warm-up and
    ``repeats`` interleaved repetitions of the forward pass at the sweep's three fastest sizes (over n samples; the
    limit is the one of the best median), rs-plugin's CERTIFY at default settings and ART's CERTIFY at its default
    and at the sweep's best batch size, on one fixed random input in [0, 1]."""
    network = NETWORKS[name]
    model, classes = build(network)
    x = np.random.default_rng(0).random(network.shape, dtype=np.float32)
    rates_by_size = limit.sweep(model, x, [size for size in sweep if size <= network.max_batch], SIGMA, seconds)
    candidates = limit.fastest(rates_by_size, 3)
    g = SmoothedClassifier(model, classes, SIGMA, seed=0)  # one per network: the batch size found is kept per process
    runs = {
        **limit.candidate_runs(model, x, candidates, SIGMA, n),
        RS_PLUGIN: lambda: limit.timed(lambda: g.certify(x, n0, n, ALPHA), n0 + n),
        ART_DEFAULT: lambda: limit.timed(limit.art_certify(model, classes, x, n0, n, SIGMA, ALPHA, None), n0 + n),
        ART_BEST: lambda: limit.timed(limit.art_certify(model, classes, x, n0, n, SIGMA, ALPHA, candidates[0]), n0 + n),
    }
    for run in runs.values():  # warm-up (rs-plugin starts choosing its batch size here)
        run()
    measured: dict[str, list[float]] = {run: [] for run in runs}
    for _ in range(repeats):
        for run_name, run in runs.items():
            measured[run_name].append(run())
    best, rates = limit.with_limit(measured, candidates)
    parameters = sum(p.numel() for p in model.parameters())
    return Comparison(name, parameters, n0, n, rates_by_size, candidates, best, rs_plugin_batch(g, x), rates)


def save_plot(path: Path, comparisons: Sequence[Comparison]) -> None:
    """One panel per network: the forward passes' samples/s against the batch size (the sweep), and as horizontal
    lines the medians of the limit, rs-plugin's CERTIFY (its batch size its own) and ART's at its default and at its
    best batch."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(4 * len(comparisons), 3.6))
    panels = figure.subplots(1, len(comparisons), squeeze=False)[0]
    for axes, comparison in zip(panels, comparisons, strict=True):
        sizes = list(comparison.sweep)
        axes.plot(sizes, list(comparison.sweep.values()), "-o", color="0.5", label="network alone, by batch size")
        axes.axhline(statistics.median(comparison.rates[LIMIT]), color="k", linewidth=0.8,
                     label=f"the limit: batch {comparison.best}, re-measured in the repetitions")
        for run, color, style in ((RS_PLUGIN, "C0", "-"), (ART_BEST, "C3", "--"), (ART_DEFAULT, "C3", ":")):
            axes.axhline(statistics.median(comparison.rates[run]), color=color, linestyle=style,
                         label=f"{run} ({comparison.ratio(run, LIMIT):.2f} of the limit)")
        axes.set(xscale="log", xlabel="batch size", ylabel="samples/s", ylim=(0, None),
                 title=f"{comparison.name}, CERTIFY n = {comparison.n:,}")
        axes.set_xticks(sizes, [str(size) for size in sizes], fontsize=7)
        axes.legend(fontsize=6, loc="lower right")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--networks", nargs="+", choices=list(NETWORKS), default=list(NETWORKS))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=1.0, help="time per batch size of the sweep")
    parser.add_argument("--quick", action="store_true", help="a smoke run: n=32 (16 for resnet50), n0=8, 1 repeat")
    for name, network in NETWORKS.items():
        parser.add_argument(f"--n-{name}", type=int, default=network.n, help=f"CERTIFY's n (default {network.n})")
        parser.add_argument(f"--n0-{name}", type=int, default=network.n0, help=f"CERTIFY's n0 (default {network.n0})")
    parser.add_argument("--plot", type=Path, default=None, help="save the sweeps and the runs' medians here")
    limit.add_allocator_option(parser)
    args = parser.parse_args(argv)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU; sigma {SIGMA}, alpha {ALPHA}; "
          f"{limit.allocator(args.default_allocator)}")
    comparisons: list[Comparison] = []
    for name in args.networks:
        n, n0 = getattr(args, f"n_{name}"), getattr(args, f"n0_{name}")
        if args.quick:
            n, n0 = (16 if name == "resnet50" else 32), 8
        repeats, seconds = (1, 0.1) if args.quick else (args.repeats, args.seconds)
        comparisons.append(compare(name, n0, n, repeats, seconds=seconds))
        print("\n" + comparisons[-1].table(), flush=True)
    if args.plot:
        save_plot(args.plot, comparisons)
        print(f"\nplot: {args.plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
