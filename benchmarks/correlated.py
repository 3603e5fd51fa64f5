"""Low-pass against i.i.d. Gaussian noise at equal total power (issue 24, part 2), on digits through the CLI.

For each sigma and noise (``gaussian``, and ``--spec``, a low-pass noise with the same mean variance sigma^2):
``rs-plugin train --dataset digits --method M --noise NOISE --sigma S --out DIR/...pt`` (resumed if there), then
``rs-plugin certify --checkpoint ... --noise NOISE --sigma S --n N --skip K`` (n0 = 100, alpha = 0.001): each model is
trained and certified with its own noise. Prints, per model:

* the clean accuracy of the smoothed classifier (certified at radius 0);
* the plain l2 certified accuracy at ``--radii`` (the radius in the results file: for low-pass noise, the smallest
  semi-axis of the certified ellipsoid, so low-pass loses here);
* the certified accuracy against perturbations restricted to the lowest DCT frequencies (those below the low-pass
  noise's cutoff) of l2 norm up to each of ``--low-radii``: the largest such perturbation inside the certified region
  has norm ``Phi^-1(p_A)`` times the smallest noise standard deviation among those frequencies (the ellipsoid's
  semi-axis there; for i.i.d. noise, sigma: the l2 radius itself), read from the l2 radius exactly.

    python benchmarks/correlated.py [--sigma 0.25 0.5] [--spec lowpass:shape=1x8x8,cutoff=0.25,ratio=4] [--n 10000]
"""

from __future__ import annotations

import argparse
import os

import numpy as np
from methods import certified_radii, run  # benchmarks/methods.py: the same CLI calls and radii

from rs_plugin.plugins import make_noise

L2_RADII = (0.25, 0.5, 0.75, 1.0)
LOW_RADII = (0.5, 1.0, 1.5, 2.0)


def low_frequency_factor(spec: str, sigma: float) -> float:
    """How much further than the l2 radius the certified region reaches within the low-pass noise's low frequencies:
    the smallest standard deviation among them over the smallest overall (1 for i.i.d. noise)."""
    noise = make_noise(spec, sigma)
    return float(noise.stds[noise.low].min() / noise.stds.min())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sigma", type=float, nargs="+", default=[0.25, 0.5])
    parser.add_argument("--spec", default="lowpass:shape=1x8x8,cutoff=0.25,ratio=4")
    parser.add_argument("--method", default="gaussian")
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--skip", type=int, default=1, help="every SKIP-th test digit (default 1: all 360)")
    parser.add_argument("--dir", default="out/correlated")
    args = parser.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    factor = low_frequency_factor(args.spec, 1.0)
    for sigma in args.sigma:
        print(
            f"\ndigits, sigma={sigma}, method {args.method}, CERTIFY n0=100 n={args.n} alpha=0.001, every "
            f"{args.skip}-th test digit; low-frequency reach of {args.spec}: {factor:.3f} x its l2 radius"
        )
        print(
            f"{'noise':44} {'clean':>5} | l2: "
            + " ".join(f"{r:>5}" for r in L2_RADII)
            + " | low DCT: "
            + " ".join(f"{r:>5}" for r in LOW_RADII)
        )
        for noise in ("gaussian", args.spec):
            stem = os.path.join(args.dir, f"{args.method}-{noise.partition(':')[0]}-{sigma}")
            run(
                "train",
                "--dataset",
                "digits",
                "--method",
                args.method,
                "--noise",
                noise,
                "--sigma",
                str(sigma),
                "--out",
                stem + ".pt",
            )
            run(
                "certify",
                "--checkpoint",
                stem + ".pt",
                "--noise",
                noise,
                "--sigma",
                str(sigma),
                "--n",
                str(args.n),
                "--skip",
                str(args.skip),
                "--out",
                stem + ".tsv",
            )
            rows = certified_radii(stem + ".tsv")
            reach = rows * (1.0 if noise == "gaussian" else factor)
            clean = np.mean(rows > 0)
            l2 = " ".join(f"{np.mean(rows >= r):5.3f}" for r in L2_RADII)
            low = " ".join(f"{np.mean(reach >= r):5.3f}" for r in LOW_RADII)
            print(f"{noise:44} {clean:5.3f} |     {l2} |          {low}", flush=True)


if __name__ == "__main__":
    main()
