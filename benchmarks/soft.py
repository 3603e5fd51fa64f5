"""Soft against hard certification (issue 24): the same digits models, the same samples, CERTIFY of the vote
(``--smoothing hard``) and of the mean softmax (``--smoothing soft``), per training method.

For each sigma and method: ``rs-plugin train --dataset digits --method M --sigma S --out DIR/M-S.pt`` (resumed if
there), then ``rs-plugin certify --checkpoint DIR/M-S.pt --sigma S --smoothing {hard,soft} --n N --skip K`` (n0 = 100,
alpha = 0.001). Prints, for each, the average certified radius (ACR: the radius when correct, else 0) and the
certified accuracy at 0.25 / 0.5 / 0.75; soft / hard is the ratio of the ACRs.

    python benchmarks/soft.py [--sigma 0.25 0.5] [--methods gaussian macer smoothadv] [--n 2000] [--skip 3]
"""

from __future__ import annotations

import argparse
import os

from methods import certified_radii, run  # benchmarks/methods.py: the same CLI calls and radii

METHODS = ("gaussian", "consistency", "macer", "smoothadv", "smoothmix")
RADII = (0.25, 0.5, 0.75)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sigma", type=float, nargs="+", default=[0.25, 0.5])
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--skip", type=int, default=3, help="every SKIP-th test digit (default 3: 120 digits)")
    parser.add_argument("--dir", default="out/soft")
    args = parser.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    for sigma in args.sigma:
        print(f"\ndigits, sigma={sigma}, CERTIFY n0=100 n={args.n} alpha=0.001, every {args.skip}-th test digit")
        print(f"{'method':12} {'smoothing':9} {'ACR':>6} " + " ".join(f"{r:>5}" for r in RADII) + f" {'soft/hard':>9}")
        for method in args.methods:
            stem = os.path.join(args.dir, f"{method}-{sigma}")
            run("train", "--dataset", "digits", "--method", method, "--sigma", str(sigma), "--out", stem + ".pt")
            acr = {}
            for smoothing in ("hard", "soft"):
                out = f"{stem}-{smoothing}.tsv"
                run("certify", "--checkpoint", stem + ".pt", "--sigma", str(sigma), "--n", str(args.n), "--skip",
                    str(args.skip), "--smoothing", smoothing, "--out", out)
                radii = certified_radii(out)
                acr[smoothing] = radii.mean()
                accuracy = " ".join(f"{(radii >= r).mean():5.3f}" for r in RADII)
                ratio = f"{acr['soft'] / acr['hard']:9.3f}" if smoothing == "soft" and acr["hard"] else ""
                print(f"{method:12} {smoothing:9} {radii.mean():6.3f} {accuracy} {ratio}", flush=True)


if __name__ == "__main__":
    main()
