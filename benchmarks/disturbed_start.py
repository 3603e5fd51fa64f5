"""The batch size when another process runs during a run's first certificate, with and without the steadiness
rule (``rs_plugin.calibration.UNSTEADY``), on the tiny CNN of ``throughput.py``.

In each round, for each variant in turn: a fresh batch sizer certifies one input (n = ``--n``) while another
CPU-bound process runs for ``--seconds``; once that process has ended, ``--certificates`` more certificates, each
timed beside one at a fixed batch size (``--fixed``, the tiny CNN's best on a 2-core CPU) in turn. A round prints
where the size ended, how many trials went unjudged and the median of the certificates' speed as a fraction of the
fixed size's; the last lines, per variant, the sizes at the end and the median and worst of the rounds.

    python benchmarks/disturbed_start.py [--rounds 10] [--seconds 3] [--n 20000] [--certificates 4] [--fixed 256]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence

import numpy as np
from limit import add_allocator_option, allocator  # benchmarks/limit.py
from sizer import switched  # benchmarks/sizer.py
from throughput import ALPHA, SHAPE, SIGMA, small_cnn
from torch import nn

from rs_plugin import SmoothedClassifier, calibration

BUSY = "import sys, time\nend = time.time() + float(sys.argv[1])\nwhile time.time() < end: pass"


def seconds_of(g: SmoothedClassifier, x: np.ndarray, n0: int, n: int) -> float:
    start = time.perf_counter()
    g.certify(x, n0, n, ALPHA)
    return time.perf_counter() - start


def round_of(
    model: nn.Module, x: np.ndarray, fixed: SmoothedClassifier, args: argparse.Namespace
) -> tuple[int, int, float]:
    """One variant's round (the variant is the current ``calibration.UNSTEADY``): ``(size at the end, trials
    unjudged, median speed against the fixed size)``."""
    calibration._SIZERS.clear()
    g = SmoothedClassifier(model, 10, SIGMA, seed=0)
    busy = subprocess.Popen([sys.executable, "-c", BUSY, str(args.seconds)])
    g.certify(x, args.n0, args.n, ALPHA)
    busy.wait()
    ratios = [seconds_of(fixed, x, args.n0, args.n) / seconds_of(g, x, args.n0, args.n)
              for _ in range(args.certificates)]
    sizer = calibration.sizer_for(g.backend, g.backend.prepare(x))
    return sizer.size, sizer.unsteady, statistics.median(ratios)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=3.0, help="how long the other process runs")
    parser.add_argument("--n0", type=int, default=100)
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--certificates", type=int, default=4, help="timed certificates after the disturbed one")
    parser.add_argument("--fixed", type=int, default=256, help="the fixed batch size compared with")
    add_allocator_option(parser)
    args = parser.parse_args(argv)
    print(f"tiny CNN, n0 = {args.n0}, n = {args.n:,}; another process for {args.seconds} s during the first "
          f"certificate; {allocator(args.default_allocator)}")
    model = small_cnn(16)
    x = np.random.default_rng(0).random(SHAPE, dtype=np.float32)
    fixed = SmoothedClassifier(model, 10, SIGMA, seed=0, batch_size=args.fixed)
    fixed.certify(x, args.n0, args.n, ALPHA)  # warm-up
    variants: dict[str, dict[str, float]] = {f"judged when steady ({calibration.UNSTEADY:.0%})": {},
                                             "every trial judged": {"UNSTEADY": float("inf")}}
    results: dict[str, list[tuple[int, int, float]]] = {label: [] for label in variants}
    for number in range(args.rounds):
        for label, settings in variants.items():
            with switched(settings):
                results[label].append(round_of(model, x, fixed, args))
            size, unjudged, ratio = results[label][-1]
            print(f"  round {number + 1}, {label:26} size {size:5}, {unjudged} unjudged, {ratio:.3f} of batch "
                  f"{args.fixed}", flush=True)
    for label, rows in results.items():
        ratios = [ratio for _, _, ratio in rows]
        print(f"{label:26} sizes {[size for size, _, _ in rows]}; of batch {args.fixed}: median "
              f"{statistics.median(ratios):.3f}, worst {min(ratios):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
