"""Issue 13's criterion, end to end through the CLI: every training method with its defaults on digits, certified
from its checkpoint.

For each sigma and method this runs ``rs-plugin train --dataset digits --method M --sigma S --out DIR/M-S.pt`` and
``rs-plugin certify --checkpoint DIR/M-S.pt --sigma S --n N --out DIR/M-S.tsv`` (n0 = 100, alpha = 0.001, all 360
test digits), then prints each method's average certified radius (ACR: the radius when correct, else 0), its ratio
to Gaussian augmentation's, certified accuracy at 0.25 / 0.5 / 0.75 / 1.0, and the training time summed from the
checkpoint's per-epoch history. Both commands resume, so a killed run picks up where it stopped and a finished one
is only read back.

    python benchmarks/methods.py [--sigma 0.25 0.5] [--n 10000] [--dir out/methods]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import numpy as np
import torch

from rs_plugin.results import read_results

METHODS = ("gaussian", "smoothadv", "consistency", "macer", "smoothmix")
RADII = (0.25, 0.5, 0.75, 1.0)


def run(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "rs_plugin.cli", *args, "--no-progress"], check=True)


def certified_radii(path: str) -> np.ndarray:
    """Each example's certified radius, 0 where the prediction is wrong or abstains."""
    rows = read_results(path)
    return np.where(rows["correct"] == 1, rows["radius"], 0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sigma", type=float, nargs="+", default=[0.25, 0.5])
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--dir", default="out/methods")
    args = parser.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    for sigma in args.sigma:
        print(f"digits, sigma={sigma}, CERTIFY n0=100 n={args.n} alpha=0.001 on the 360 test digits")
        print(f"{'method':12} {'ACR':>6} {'/ gauss':>7} " + " ".join(f"{r:>5}" for r in RADII) + f" {'train s':>8}")
        gaussian = None
        for method in args.methods:
            stem = os.path.join(args.dir, f"{method}-{sigma}")
            run("train", "--dataset", "digits", "--method", method, "--sigma", str(sigma), "--out", stem + ".pt")
            run("certify", "--checkpoint", stem + ".pt", "--sigma", str(sigma), "--n", str(args.n),
                "--out", stem + ".tsv")
            radii = certified_radii(stem + ".tsv")
            seconds = sum(epoch["seconds"] for epoch in torch.load(stem + ".pt", weights_only=False)["history"])
            gaussian = radii.mean() if method == "gaussian" else gaussian
            ratio = f"{radii.mean() / gaussian:7.3f}" if gaussian else f"{'':7}"
            print(f"{method:12} {radii.mean():6.3f} {ratio} " + " ".join(f"{(radii >= r).mean():5.3f}" for r in RADII)
                  + f" {seconds:8.1f}", flush=True)


if __name__ == "__main__":
    main()
