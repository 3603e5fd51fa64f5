"""How tight is the certificate? Cohen et al. (2019), section 4, on scikit-learn's digits by default.

Trains (once, then cached) a digits CNN with Gaussian noise augmentation and an undefended one, certifies
test examples with CERTIFY, attacks every example certified correct at radius R with SmoothAdvPGD within
factor * R, judges each attack with PREDICT, and runs DeepFool on the undefended network as the paper's
baseline. Prints a table and saves a plot like the paper's figure 6. Each example's result is appended to
OUT_DIR/tightness_DATASET.jsonl (--rows) as it finishes: rerunning the same command after a crash resumes.

    python examples/tightness_attack.py                 # digits, a few minutes on 2 CPU cores
    python examples/tightness_attack.py --quick         # about a minute
    python examples/tightness_attack.py --dataset cifar10 --data-dir DATA \\
        --checkpoint models/cifar10/resnet110/noise_0.25/checkpoint.pth.tar \\
        --sigma 0.25 --num-examples 100                 # a released model on local data
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rs_plugin.adapters.datasets import as_tensors, load_dataset
from rs_plugin.adapters.models import load_checkpoint
from rs_plugin.adapters.training import digits_model
from rs_plugin.attacks import TightnessConfig, deepfool_radii, empirical_robust_accuracy, tightness_experiment
from rs_plugin.results import file_sha256

# The default run, and --quick; an option given on the command line wins over both.
DEFAULTS = {"num_examples": 360, "n": 10_000, "steps": 20, "num_noise": 32, "predict_n": 1000}
QUICK = {"num_examples": 100, "n": 5000, "steps": 10, "num_noise": 16, "predict_n": 1000}
TABLE_RADII = (0.0, 0.25, 0.5, 0.75, 1.0)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--factors", type=float, nargs="+", default=[1.5, 2.0], help="attack within factor * R")
    parser.add_argument("--sigma", type=float, default=0.25, help="noise level of smoothing (and of training)")
    parser.add_argument("--n0", type=int, default=100, help="CERTIFY's selection samples")
    parser.add_argument("--n", type=int, help=f"CERTIFY's estimation samples (default {DEFAULTS['n']})")
    parser.add_argument("--alpha", type=float, default=0.001, help="failure probability of CERTIFY and PREDICT")
    parser.add_argument("--radius-tolerance", type=float, metavar="EPS",
                        help="sequential CERTIFY: stop once more samples are not expected to raise R by more than EPS")
    parser.add_argument("--predict-n", type=int, help=f"PREDICT's samples (default {DEFAULTS['predict_n']})")
    parser.add_argument("--steps", type=int, help=f"SmoothAdvPGD steps (default {DEFAULTS['steps']})")
    parser.add_argument("--num-noise", type=int, help=f"noise draws per attack step (default {DEFAULTS['num_noise']})")
    parser.add_argument("--num-examples", type=int, help=f"test examples (default {DEFAULTS['num_examples']})")
    parser.add_argument(
        "--batch-size", type=int, default=1000, help="noisy inputs per forward pass (lower for big nets)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help=f"a smaller run: {QUICK}")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write the results as JSON")
    parser.add_argument(
        "--rows",
        type=Path,
        metavar="FILE",
        help="per-example results, written as each example finishes; rerunning the same command "
        "resumes from them (default: OUT_DIR/tightness_DATASET.jsonl)",
    )
    parser.add_argument("--dataset", choices=["digits", "cifar10"], default="digits")
    parser.add_argument("--data-dir", type=Path, help="folder holding the dataset (cifar10: cifar-10-batches-py)")
    parser.add_argument("--checkpoint", type=Path, help="noise-trained base classifier ({'arch', 'state_dict'})")
    parser.add_argument("--undefended-checkpoint", type=Path, help="undefended network for the DeepFool baseline")
    parser.add_argument("--out-dir", type=Path, default=Path("."), help="where the plot and rows go (default: here)")
    parser.add_argument("--plot", type=Path, help="plot file (default: OUT_DIR/tightness_DATASET.png)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    args = parser.parse_args(argv)
    preset = QUICK if args.quick else DEFAULTS
    for name, value in preset.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.dataset != "digits" and (args.checkpoint is None or args.data_dir is None):
        parser.error(f"--dataset {args.dataset} needs --data-dir and --checkpoint (nothing is trained or downloaded)")
    if args.num_examples < 1:
        parser.error("--num-examples must be at least 1")
    return args


def load_models(args: argparse.Namespace) -> tuple[torch.nn.Module, torch.nn.Module | None]:
    """The noise-trained base classifier and the undefended network (None when there is none to use)."""
    if args.checkpoint is not None:
        defended, _ = load_checkpoint(args.checkpoint)
    else:
        defended = digits_model(args.sigma, progress=not args.no_progress)
    if args.undefended_checkpoint is not None:
        undefended, _ = load_checkpoint(args.undefended_checkpoint, option="--undefended-checkpoint")
    elif args.dataset == "digits":
        undefended = digits_model(0.0, progress=not args.no_progress)
    else:
        undefended = None
    return defended.to(args.device), None if undefended is None else undefended.to(args.device)


def load_examples(args: argparse.Namespace) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """``num_examples`` test examples spread evenly over the test set (every k-th), and their positions."""
    dataset = load_dataset(args.dataset, "test", args.data_dir)
    skip = max(1, len(dataset) // args.num_examples)
    chosen = list(range(0, len(dataset), skip))[: args.num_examples]
    x, y = as_tensors(torch.utils.data.Subset(dataset, chosen))
    return x, y, chosen


def number(value: float, spec: str) -> str:
    """``value`` formatted by ``spec``, or a dash where there is none (NaN)."""
    return "-" if math.isnan(value) else format(value, spec)


def print_report(args: argparse.Namespace, result: Any, deepfool: np.ndarray | None) -> None:
    rows = result.rows
    certified = [row for row in rows if row.attacked]
    print(
        f"\nTightness of the certificate: {args.dataset}, sigma={args.sigma}, {len(rows)} test examples, "
        f"CERTIFY n0={args.n0} n={args.n} alpha={args.alpha}"
        + (f" radius_tolerance={args.radius_tolerance}" if args.radius_tolerance else "")
    )
    mean_radius = np.mean([row.radius for row in certified]) if certified else math.nan
    print(f"certified correct (R > 0): {len(certified)}/{len(rows)}, mean R {number(mean_radius, '.3f')}")
    print(
        f"\nSmoothAdvPGD within factor * R ({args.steps} steps, {args.num_noise} noise draws per step); success: "
        f"PREDICT\n(n={args.predict_n}, alpha={args.alpha}) returns a wrong class on the attacked input; "
        "abstentions are counted apart"
    )
    print(f"{'factor':>7} {'attacked':>9} {'succeeded':>10} {'abstained':>10} {'success rate':>13}  95% CI")
    for factor in result.factors.values():
        low, high = factor.interval
        interval = "-" if math.isnan(low) else f"[{low:.3f}, {high:.3f}]"
        print(
            f"{factor.factor:>6g}R {factor.attempted:>9} {factor.succeeded:>10} {factor.abstained:>10} "
            f"{number(factor.success_rate, '>13.3f'):>13}  {interval}"
        )
    print("\ncertified accuracy of the smoothed classifier; DeepFool upper bound on the undefended network")
    print(f"{'radius':>7} {'certified':>10} {'undefended':>11}")
    certified_accuracy = result.certified_accuracy(TABLE_RADII)
    upper = empirical_robust_accuracy(deepfool, TABLE_RADII) if deepfool is not None else [math.nan] * len(TABLE_RADII)
    for radius, acc, bound in zip(TABLE_RADII, certified_accuracy, upper, strict=True):
        print(f"{radius:>7.2f} {acc:>10.3f} {number(bound, '>11.3f'):>11}")


def save_plot(path: Path, result: Any, deepfool: np.ndarray | None, args: argparse.Namespace) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    finite = [] if deepfool is None else deepfool[np.isfinite(deepfool)].tolist()
    largest = max([row.radius for row in result.rows] + finite + [0.5])
    grid = np.linspace(0.0, 1.1 * largest, 200)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(grid, result.certified_accuracy(grid), label=f"smoothed, certified (sigma={args.sigma})")
    if deepfool is not None:
        ax.plot(grid, empirical_robust_accuracy(deepfool, grid), "k--", label="undefended, DeepFool (upper bound)")
    ax.set(
        xlabel="radius (l2)",
        ylabel="accuracy",
        ylim=(0, 1.02),
        title=f"{args.dataset}: certified vs empirical robust accuracy",
    )
    ax.legend(loc="lower left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def by_radius(values: Any) -> dict[str, float]:
    """``values`` at :data:`TABLE_RADII`, keyed by radius for the JSON document."""
    return {str(radius): float(value) for radius, value in zip(TABLE_RADII, values, strict=True)}


def write_json(path: Path, document: dict[str, Any]) -> None:
    """Write ``document`` as strict JSON, atomically (a crash never leaves a half-written file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    partial.write_text(json.dumps(document, indent=1, allow_nan=False))
    os.replace(partial, path)


def config_from(args: argparse.Namespace) -> TightnessConfig:
    """The experiment's settings from the command line (PREDICT at CERTIFY's alpha)."""
    return TightnessConfig(
        args.sigma, factors=tuple(args.factors), n0=args.n0, n=args.n, alpha=args.alpha,
        radius_tolerance=args.radius_tolerance, predict_n=args.predict_n,
        predict_alpha=args.alpha, steps=args.steps, num_noise=args.num_noise, batch_size=args.batch_size,
        seed=args.seed,
    )  # fmt: skip


def identity(args: argparse.Namespace) -> dict[str, Any]:
    """What the rows depend on besides the settings: the data and the model (a checkpoint by its content)."""
    if args.checkpoint is None:
        return {"dataset": args.dataset, "model": f"digits_model({args.sigma})"}
    checkpoint = str(args.checkpoint)
    return {"dataset": args.dataset, "checkpoint": checkpoint, "checkpoint_sha256": file_sha256(checkpoint)}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    config = config_from(args)
    torch.manual_seed(args.seed)
    defended, undefended = load_models(args)
    x, y, positions = load_examples(args)
    rows = args.rows or args.out_dir / f"tightness_{args.dataset}.jsonl"
    rows.parent.mkdir(parents=True, exist_ok=True)
    result = tightness_experiment(
        defended, x, y, config, indices=positions, out=rows, identity=identity(args), progress=not args.no_progress
    )
    deepfool = None
    if undefended is not None:
        deepfool = deepfool_radii(undefended, x, y, progress=not args.no_progress)
    print_report(args, result, deepfool)
    plot = args.plot or args.out_dir / f"tightness_{args.dataset}.png"
    save_plot(plot, result, deepfool, args)
    print(f"\nplot: {plot}\nrows: {rows} (rerun the same command to resume)")
    if args.json is not None:
        document = result.to_dict()
        document["config"].update(dataset=args.dataset, checkpoint=args.checkpoint and str(args.checkpoint))
        document["certified_accuracy"] = by_radius(result.certified_accuracy(TABLE_RADII))
        if deepfool is not None:
            document["deepfool"] = {
                "radii": [None if np.isinf(r) else float(r) for r in deepfool],
                "failed": int(np.isinf(deepfool).sum()),
                "upper_bound": by_radius(empirical_robust_accuracy(deepfool, TABLE_RADII)),
            }
        write_json(args.json, document)
        print(f"json: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
