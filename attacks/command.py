"""``rs-plugin tightness``: Cohen et al.'s tightness experiment (section 4), on scikit-learn's digits by default.

Loads (digits: trains once, then caches) a noise-trained base classifier and an undefended one, certifies test
examples with CERTIFY, attacks every example certified correct at radius R with SmoothAdvPGD within factor * R,
judges each attack with PREDICT, and runs DeepFool on the undefended network as the paper's baseline. Prints a
table and saves a plot like the paper's figure 6. Each example's result is appended to
OUT_DIR/tightness_DATASET.jsonl (--rows) as it finishes: rerunning the same command after a crash resumes; the
examples run through the executors (--executor ray). Torch is imported when the command runs.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from rs_plugin.atomic import write_atomically
from rs_plugin.cli import add_execution_arguments, add_model_arguments, given_model_options, make_executor_from

DEFAULTS = {"num_examples": 360, "n": 10_000, "steps": 20, "num_noise": 32, "predict_n": 1000}
"""The default run; ``--quick`` is :data:`QUICK`; an option given on the command line wins over both."""
QUICK = {"num_examples": 100, "n": 5000, "steps": 10, "num_noise": 16, "predict_n": 1000}
TABLE_RADII = (0.0, 0.25, 0.5, 0.75, 1.0)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command's arguments."""
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
    parser.add_argument("--restarts", type=int, default=1,
                        help="attacks per example and factor, all but the first from a random start; the strongest "
                             "is judged (default 1)")
    parser.add_argument("--num-examples", type=int, help=f"test examples (default {DEFAULTS['num_examples']})")
    parser.add_argument("--resolution", type=int, default=8, metavar="R",
                        help="digits: upsample (bilinear) to R x R, a power of two; the built-in networks are trained "
                             "for that size (default 8, the original images)")
    parser.add_argument("--channels", type=int, default=1, choices=(1, 3),
                        help="digits: repeat the grey image over 3 channels, as colour images (default 1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help=f"a smaller run: {QUICK}")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write the results as JSON")
    parser.add_argument("--rows", type=Path, metavar="FILE",
                        help="per-example results, written as each example finishes; rerunning the same command "
                             "resumes from them (default: OUT_DIR/tightness_DATASET.jsonl)")
    parser.add_argument("--dataset", default="digits", help="digits (default), or cifar10 with --data-dir and a model")
    parser.add_argument("--data-dir", type=Path, help="folder holding the dataset (cifar10: cifar-10-batches-py)")
    add_model_arguments(parser)
    parser.add_argument("--undefended-checkpoint", type=Path, help="undefended network for the DeepFool baseline")
    parser.add_argument("--out-dir", type=Path, default=Path("."), help="where the plot and rows go (default: here)")
    parser.add_argument("--plot", type=Path, help="plot file (default: OUT_DIR/tightness_DATASET.png)")
    add_execution_arguments(parser.add_argument_group("execution"))


def complete(args: argparse.Namespace, parser: argparse.ArgumentParser | None = None) -> argparse.Namespace:
    """Fill the preset (:data:`DEFAULTS` or :data:`QUICK`) into the options not given, and check them."""
    for name, value in (QUICK if args.quick else DEFAULTS).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    problem = None
    if args.dataset != "digits" and (args.data_dir is None or not any(given_model_options(args).values())):
        problem = f"--dataset {args.dataset} needs --data-dir and a model, e.g. --checkpoint (nothing is downloaded)"
    elif args.num_examples < 1:
        problem = "--num-examples must be at least 1"
    elif args.restarts < 1:
        problem = "--restarts must be at least 1"
    elif (args.resolution, args.channels) != (8, 1) and args.dataset != "digits":
        problem = "--resolution and --channels upsample digits; other datasets keep their size"
    elif args.resolution != 8 and (args.resolution < 16 or args.resolution & (args.resolution - 1)):
        problem = f"--resolution must be 8 or a power of two from 16, got {args.resolution}"
    if problem and parser is not None:
        parser.error(problem)
    if problem:
        raise ValueError(problem)
    return args


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line of ``examples/tightness_attack.py`` (``rs-plugin tightness``'s arguments), completed."""
    parser = argparse.ArgumentParser(prog="tightness", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return complete(parser.parse_args(argv), parser)


def size_tag(args: argparse.Namespace) -> str:
    """The dataset and, for upsampled digits, the size: ``digits``, ``digits_32x32x3``; names the output files."""
    if (args.resolution, args.channels) == (8, 1):
        return args.dataset
    return f"{args.dataset}_{args.resolution}x{args.resolution}x{args.channels}"


def number(value: float, spec: str) -> str:
    """``value`` formatted by ``spec``, or a dash where there is none (NaN)."""
    return "-" if math.isnan(value) else format(value, spec)


def print_report(args: argparse.Namespace, result: Any, deepfool: np.ndarray | None) -> None:
    """The tables: certified examples, success per factor with intervals, certified accuracy beside DeepFool's."""
    from .deepfool import empirical_robust_accuracy

    rows = result.rows
    certified = [row for row in rows if row.attacked]
    print(
        f"\nTightness of the certificate: {size_tag(args)} (d = {result.dimension}), sigma={args.sigma}, "
        f"{len(rows)} test examples, CERTIFY n0={args.n0} n={args.n} alpha={args.alpha}"
        + (f" radius_tolerance={args.radius_tolerance}" if args.radius_tolerance else "")
    )
    mean_radius = np.mean([row.radius for row in certified]) if certified else math.nan
    print(f"certified correct (R > 0): {len(certified)}/{len(rows)}, mean R {number(mean_radius, '.3f')}; "
          f"{result.saturated} at the largest radius n samples can certify (every sample voted for the class)")
    restarts = f", best of {args.restarts} restarts" if args.restarts > 1 else ""
    print(
        f"\nSmoothAdvPGD within factor * R ({args.steps} steps, {args.num_noise} noise draws per step{restarts}); "
        "success: "
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
    """Certified accuracy against radius, and DeepFool's upper bound on the undefended network (figure 6)."""
    from matplotlib.figure import Figure

    from .deepfool import empirical_robust_accuracy

    finite = [] if deepfool is None else deepfool[np.isfinite(deepfool)].tolist()
    largest = max([row.radius for row in result.rows] + finite + [0.5])
    grid = np.linspace(0.0, 1.1 * largest, 200)
    figure = Figure(figsize=(5, 3.5))
    ax = figure.subplots()
    ax.plot(grid, result.certified_accuracy(grid), label=f"smoothed, certified (sigma={args.sigma})")
    if deepfool is not None:
        ax.plot(grid, empirical_robust_accuracy(deepfool, grid), "k--", label="undefended, DeepFool (upper bound)")
    ax.set(xlabel="radius (l2)", ylabel="accuracy", ylim=(0, 1.02),
           title=f"{size_tag(args)}: certified vs empirical robust accuracy")
    ax.legend(loc="lower left")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)


def by_radius(values: Any) -> dict[str, float]:
    """``values`` at :data:`TABLE_RADII`, keyed by radius for the JSON document."""
    return {str(radius): float(value) for radius, value in zip(TABLE_RADII, values, strict=True)}


def config_from(args: argparse.Namespace) -> Any:
    """The experiment's settings from the command line (PREDICT at CERTIFY's alpha)."""
    from .tightness import TightnessConfig

    return TightnessConfig(
        args.sigma, factors=tuple(args.factors), n0=args.n0, n=args.n, alpha=args.alpha,
        radius_tolerance=args.radius_tolerance, predict_n=args.predict_n, predict_alpha=args.alpha,
        steps=args.steps, num_noise=args.num_noise, restarts=args.restarts, batch_size=args.batch_size or 1000,
        seed=args.seed,
    )


def run(args: argparse.Namespace) -> int:
    """Run the experiment the arguments describe; print the report; write the plot, rows and JSON."""
    import torch

    from rs_plugin.datasets import load_dataset, num_classes
    from rs_plugin.models import ModelRequest, load_model
    from rs_plugin.runs import model_settings

    from ..adapters.checkpoints import load_checkpoint
    from ..adapters.datasets import as_tensors, upsample
    from ..adapters.training import digits_model
    from .deepfool import deepfool_radii
    from .tightness import tightness_experiment

    config = config_from(args)
    progress = not args.no_progress
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    options = given_model_options(args)
    dataset = load_dataset(args.dataset, "test", args.data_dir)
    skip = max(1, len(dataset) // args.num_examples)
    positions = list(range(0, len(dataset), skip))[: args.num_examples]
    x, y = as_tensors(torch.utils.data.Subset(dataset, positions))
    size = {"resolution": args.resolution, "channels": args.channels}
    if (args.resolution, args.channels) != (8, 1):
        x = upsample(x, args.resolution, args.channels)
    request = ModelRequest(args.dataset, num_classes(args.dataset), args.sigma, options=options,
                           input_shape=tuple(x.shape[1:]))
    defended = load_model(request).to(device)
    if args.undefended_checkpoint is not None:
        undefended = load_checkpoint(args.undefended_checkpoint, option="--undefended-checkpoint")[0]
    else:
        undefended = digits_model(0.0, progress=progress, **size) if args.dataset == "digits" else None
    tag = size_tag(args)
    rows = args.rows or args.out_dir / f"tightness_{tag}.jsonl"
    rows.parent.mkdir(parents=True, exist_ok=True)
    identity = {"dataset": args.dataset, **{k: v for k, v in model_settings(options).items() if v is not None}}
    if (args.resolution, args.channels) != (8, 1):
        identity.update(size)
    result = tightness_experiment(defended, x, y, config, indices=positions, out=rows, identity=identity,
                                  executor=make_executor_from(args), progress=progress)
    deepfool = None if undefended is None else deepfool_radii(undefended.to(device), x, y, progress=progress)
    print_report(args, result, deepfool)
    plot = args.plot or args.out_dir / f"tightness_{tag}.png"
    save_plot(plot, result, deepfool, args)
    print(f"\nplot: {plot}\nrows: {rows} (rerun the same command to resume)")
    if args.json is not None:
        from .deepfool import empirical_robust_accuracy

        document = result.to_dict()
        checkpoint = options.get("checkpoint")
        checkpoint = checkpoint and str(checkpoint[0] if len(checkpoint) == 1 else checkpoint)
        document["config"].update(dataset=args.dataset, **size, dimension=result.dimension, checkpoint=checkpoint)
        document["certified_accuracy"] = by_radius(result.certified_accuracy(TABLE_RADII))
        document["saturated"] = result.saturated
        if deepfool is not None:
            document["deepfool"] = {
                "radii": [None if np.isinf(r) else float(r) for r in deepfool],
                "failed": int(np.isinf(deepfool).sum()),
                "upper_bound": by_radius(empirical_robust_accuracy(deepfool, TABLE_RADII)),
            }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(document, indent=1, allow_nan=False)
        write_atomically(args.json, lambda partial: Path(partial).write_text(text))
        print(f"json: {args.json}")
    return 0


class TightnessCommand:
    """``rs-plugin tightness`` (:class:`rs_plugin.commands.Command`)."""

    help = "how tight is the certificate? certify, attack within factor * R, judge with PREDICT (resumable)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_arguments(parser)

    def run(self, args: argparse.Namespace) -> None:
        run(complete(args))


def main(argv: list[str] | None = None) -> int:
    """``examples/tightness_attack.py``: the command with its own argument parser (``--help`` and exit 2 on syntax)."""
    return run(parse_args(argv))
