"""Peak memory that one CERTIFY with n = 100,000 adds, for rs-plugin and for ART, each in its own process.

Each child process builds the small CNN of ``throughput.py``, runs a warm-up certification (so that
one-off allocations are not counted), reads its peak resident set size, certifies once with n = 100,000
and reads the peak again; the growth is what certification itself needs.

    python benchmarks/memory.py [--n 100000]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def child(which: str, n: int) -> None:
    sys.path.insert(0, str(HERE))
    from throughput import SHAPE, art, ours, small_cnn

    model = small_cnn()
    x = np.random.default_rng(0).random(SHAPE, dtype=np.float32)
    certify = ours if which == "rs-plugin" else art
    certify(model, x, 100, 2000)
    before = peak_mb()
    certify(model, x, 100, n)
    print(json.dumps({"before": before, "after": peak_mb()}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--child", choices=["rs-plugin", "ART"])
    args = parser.parse_args()
    if args.child:
        child(args.child, args.n)
        return
    print(f"peak resident memory added by one certify with n={args.n} (batch 200, 1x28x28 inputs)")
    for which in ("rs-plugin", "ART"):
        done = subprocess.run(
            [sys.executable, __file__, "--child", which, "--n", str(args.n)], capture_output=True, text=True, check=True
        )
        peaks = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"{which:10} {peaks['after'] - peaks['before']:8.1f} MB  (peak {peaks['after']:.0f} MB)")


if __name__ == "__main__":
    main()
