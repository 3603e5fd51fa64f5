"""Where the adaptive batch size starts, measured side by side: the same certifications from two start sizes.

``resnets.py`` gives rs-plugin a warm-up certification and five timed ones per network; this benchmark times that
sequence (``--calls`` timed certifications after one untimed, on one fixed random input) with the process's
batch sizer forgotten first and started at size A, then at size B, alternating A and B in one process and swapping
their order every pair, so that the machine's slow and fast moments hit both alike. It prints each pair's seconds
and the sizes the sizer ended at, then the geometric mean of time(B) / time(A) with its standard error. Results
never depend on the batch size, so only the time can differ.

    python benchmarks/start_size.py [--network resnet20] [--starts 64 128] [--pairs 12] [--calls 5]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Sequence

import limit  # benchmarks/limit.py
import numpy as np
import resnets  # benchmarks/resnets.py

from rs_plugin import SmoothedClassifier, calibration
from rs_plugin.calibration import BatchSizer


def sequence(g: SmoothedClassifier, x: np.ndarray, start: int, n0: int, n: int, calls: int) -> tuple[float, int]:
    """``(seconds, final size)`` of ``calls`` certifications of ``x`` after one untimed, the process's sizers
    forgotten first and the one for ``g`` on inputs like ``x`` replaced by a new sizer at ``start`` (its largest size
    the one a run would have); the process's sizers are forgotten again after."""
    key = calibration.calibration_key(g.backend, g.backend.prepare(x))
    sizer = BatchSizer(start, max_size=BatchSizer.for_input(x.shape).max_size)
    calibration._SIZERS.clear()
    calibration._SIZERS[key] = sizer
    try:
        g.certify(x, n0, n, resnets.ALPHA)
        began = time.perf_counter()
        for _ in range(calls):
            g.certify(x, n0, n, resnets.ALPHA)
        return time.perf_counter() - began, sizer.size
    finally:
        calibration._SIZERS.clear()


def compare(network: str, starts: tuple[int, int], pairs: int, calls: int, n0: int, n: int) -> list[str]:
    """The report's lines: each pair's seconds and final sizes, then time(B)/time(A) (geometric mean over pairs)."""
    model, classes = resnets.build(resnets.NETWORKS[network])
    x = np.random.default_rng(0).random(resnets.NETWORKS[network].shape, dtype=np.float32)
    g = SmoothedClassifier(model, classes, resnets.SIGMA, seed=0)
    a, b = starts
    lines, logs = [], []
    for k in range(pairs):
        order = (a, b) if k % 2 == 0 else (b, a)
        runs = {start: sequence(g, x, start, n0, n, calls) for start in order}
        logs.append(math.log(runs[b][0] / runs[a][0]))
        lines.append(f"  pair {k + 1}: " + ", ".join(
            f"start {start}: {runs[start][0]:.2f} s, ended at {runs[start][1]}" for start in order))
    spread = statistics.stdev(logs) / math.sqrt(len(logs)) if len(logs) > 1 else float("nan")
    lines.append(f"time from start {b} / time from start {a}: {math.exp(statistics.fmean(logs)):.4f} "
                 f"(standard error {spread:.4f} in log; {pairs} pairs)")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--network", choices=list(resnets.NETWORKS), default="resnet20")
    parser.add_argument("--starts", type=int, nargs=2, default=[64, 128], metavar=("A", "B"))
    parser.add_argument("--pairs", type=int, default=12)
    parser.add_argument("--calls", type=int, default=5, help="timed certifications per sequence")
    parser.add_argument("--n", type=int, help="CERTIFY's n (default: resnets.py's for the network)")
    parser.add_argument("--n0", type=int, help="CERTIFY's n0 (default: resnets.py's for the network)")
    limit.add_allocator_option(parser)
    args = parser.parse_args(argv)
    network = resnets.NETWORKS[args.network]
    n, n0 = args.n or network.n, args.n0 or network.n0
    print(f"{args.network}, CERTIFY n0={n0} n={n}, {args.calls} timed calls after one untimed per sequence; "
          f"{limit.allocator(args.default_allocator)}")
    print("\n".join(compare(args.network, tuple(args.starts), args.pairs, args.calls, n0, n)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
