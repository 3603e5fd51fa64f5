"""Why is the certificate tighter on digits than in the paper? The tightness experiment against input dimension.

Runs ``rs-plugin tightness`` (:mod:`rs_plugin.attacks.command`) on the same digits at several input sizes, each
with its own network trained with Gaussian noise, in four parts:

- ``dimension``: sizes 8x8 (d = 64) to 64x64x3 (d = 12,288) at one sigma;
- ``scaled``: the same sizes at sigma * sqrt(d / 64), which keeps the noise's share of the image's 64 original
  degrees of freedom (bilinear upsampling spreads each pixel over about d / 64 coordinates);
- ``attack``: at one size, a stronger attack (100 steps, 128 noise draws per step, 4 random restarts);
- ``settings``: at that size, the paper's CERTIFY settings (alpha = 0.01, n = 100,000).

Each run's rows are written as they finish (OUT_DIR/NAME.jsonl), so rerunning the same command resumes. At the end
it prints a markdown table (also OUT_DIR/summary.md and summary.json) and plots the success rate within 1.5R and 2R
against d, with the paper's two ImageNet points (OUT_DIR/tightness_dimension.png)::

    python benchmarks/tightness_dimension.py --out-dir runs/dimension          # the study
    python benchmarks/tightness_dimension.py --quick --out-dir runs/quick      # minutes
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rs_plugin.diagnostics import largest_radius
from rs_plugin.noises import Gaussian

PAPER_DIMENSION = 3 * 224 * 224
PAPER_SUCCESS = {"1.5": 0.17, "2.0": 0.53}
"""Cohen et al. (2019), section 4: how often their attack on ImageNet succeeded within 1.5R and 2R."""
SIZES = ("8", "16", "32x3", "64x3")
ATTACK_SIZE = "16"


@dataclass(frozen=True)
class Preset:
    """How large the runs are."""

    sizes: tuple[str, ...]
    num_examples: int
    n: int
    steps: int
    num_noise: int
    paper_n: int
    paper_examples: int
    strong: tuple[tuple[str, tuple[str, ...]], ...]
    large_examples: int
    """Test examples at sizes above d = 4,096 (each costs about d / 3,072 times one at 32x32x3)."""


FULL = Preset(SIZES, 60, 10_000, 20, 32, 100_000, 30, (
    ("100 steps", ("--steps", "100")),
    ("128 draws", ("--num-noise", "128")),
    ("4 restarts", ("--restarts", "4")),
), 30)
QUICK = Preset(("8", "16", "32x3"), 30, 2000, 10, 16, 20_000, 15, (("40 steps", ("--steps", "40")),), 15)


@dataclass(frozen=True)
class Run:
    """One run of the tightness command: its file stem ``name``, the study's ``part``, a ``label`` for the table,
    the input size and sigma, and the command-line ``options``."""

    name: str
    part: str
    label: str
    size: str
    sigma: float
    options: tuple[str, ...]

    @property
    def resolution(self) -> int:
        return int(self.size.split("x")[0])

    @property
    def channels(self) -> int:
        return int(self.size.split("x")[1]) if "x" in self.size else 1

    @property
    def dimension(self) -> int:
        return self.channels * self.resolution**2


def size_argument(text: str) -> str:
    """``R`` or ``RxC`` (e.g. ``32x3``): R = 8 or a power of two from 16, C = 1 or 3."""
    parts = text.split("x")
    ok = 1 <= len(parts) <= 2 and all(p.isdigit() for p in parts)
    if ok:
        resolution, channels = int(parts[0]), int(parts[1]) if len(parts) == 2 else 1
        ok = channels in (1, 3) and (resolution == 8 or (resolution >= 16 and not resolution & (resolution - 1)))
    if not ok:
        raise argparse.ArgumentTypeError(f"a size is R or RxC (R 8 or a power of two >= 16, C 1 or 3), got {text!r}")
    return text


def plan(preset: Preset, sizes: tuple[str, ...], sigma: float, parts: set[str], attack_size: str) -> list[Run]:
    """The runs of the study, in the order they run."""
    base = ("--n", str(preset.n), "--steps", str(preset.steps), "--num-noise", str(preset.num_noise))
    all_factors = ("--factors", "0.5", "1", "1.5", "2")
    runs = []
    if "dimension" in parts:
        runs += [Run(f"dimension_{s}", "dimension", f"sigma {sigma:g}", s, sigma, base + all_factors) for s in sizes]
    if "scaled" in parts:
        for s in sizes:
            scaled = round(sigma * math.sqrt(Run("", "", "", s, 0, ()).dimension / 64), 4)
            if s != "8":
                runs.append(Run(f"scaled_{s}", "scaled", f"sigma {scaled:g} (scaled)", s, scaled, base + all_factors))
    if "attack" in parts:
        for label, options in preset.strong:
            stem = label.replace(" ", "_")
            runs.append(Run(f"attack_{attack_size}_{stem}", "attack", label, attack_size, sigma, base + options))
    if "settings" in parts:
        examples = ("--num-examples", str(preset.paper_examples))
        runs += [
            Run(f"settings_{attack_size}_alpha0.01", "settings", "alpha 0.01", attack_size, sigma,
                (*base, "--alpha", "0.01")),
            Run(f"settings_{attack_size}_paper", "settings", f"alpha 0.01, n {preset.paper_n:,}", attack_size,
                sigma, (*base, "--alpha", "0.01", "--n", str(preset.paper_n), *examples)),
            Run(f"settings_{attack_size}_baseline", "settings", "alpha 0.001, n as above (same examples)",
                attack_size, sigma, base + examples),
        ]  # fmt: skip
    return runs


def execute(run: Run, args: argparse.Namespace, preset: Preset) -> dict[str, Any]:
    """Run (or resume) ``run`` through the tightness command; its JSON document."""
    from rs_plugin.attacks.command import main as tightness

    out = args.out_dir
    examples = preset.num_examples if run.dimension <= 4096 else min(preset.num_examples, preset.large_examples)
    argv = [
        "--resolution", str(run.resolution), "--channels", str(run.channels), "--sigma", str(run.sigma),
        "--num-examples", str(examples), "--seed", str(args.seed), *run.options,
        "--rows", str(out / f"{run.name}.jsonl"), "--json", str(out / f"{run.name}.json"),
        "--plot", str(out / f"{run.name}.png"), "--out-dir", str(out),
    ]  # fmt: skip
    if args.no_progress:
        argv.append("--no-progress")
    print(f"\n=== {run.part}: {run.size} ({run.label}) ===", flush=True)
    if tightness(argv) != 0:
        raise RuntimeError(f"the run {run.name} failed")
    return json.loads((out / f"{run.name}.json").read_text())


def summary_row(run: Run, document: dict[str, Any]) -> dict[str, Any]:
    """What the table shows of one run."""
    config = document["config"]
    examples = document["examples"]
    attacked = [e for e in examples if e["attacked"]]
    radii = [r for r in document["deepfool"]["radii"] if r is not None]
    factors = {
        key: {name: value[name] for name in ("attempted", "succeeded", "success_rate", "ci_low", "ci_high")}
        for key, value in document["factors"].items()
    }
    cap = largest_radius(Gaussian(config["sigma"]), config["n"], config["alpha"])
    for key, entry in factors.items():
        for name, group in (("saturated", True), ("unsaturated", False)):
            outcomes = [e["attacks"][key]["outcome"] for e in attacked if (e["radius"] >= cap * (1 - 1e-12)) == group]
            entry[name] = [outcomes.count("success"), len(outcomes)]
    return {
        "part": run.part, "label": run.label, "size": run.size, "dimension": config["dimension"],
        "sigma": config["sigma"], "n": config["n"], "alpha": config["alpha"], "steps": config["steps"],
        "num_noise": config["num_noise"], "restarts": config.get("restarts", 1), "examples": len(examples),
        "clean_accuracy": sum(e["prediction"] == e["label"] for e in examples) / len(examples),
        "certified": len(attacked), "saturated": document["saturated"],
        "mean_radius": sum(e["radius"] for e in attacked) / len(attacked) if attacked else None,
        "deepfool_median": sorted(radii)[len(radii) // 2] if radii else None, "factors": factors,
    }  # fmt: skip


def rate(row: dict[str, Any], factor: str) -> str:
    """``success rate [low, high]`` of a factor, or a dash."""
    entry = row["factors"].get(factor)
    if not entry or entry["success_rate"] is None:
        return "-"
    return f"{entry['success_rate']:.2f} [{entry['ci_low']:.2f}, {entry['ci_high']:.2f}]"


def split(row: dict[str, Any], factor: str) -> str:
    """Successes / attempts of a factor among the unsaturated and the saturated certified examples."""
    entry = row["factors"].get(factor)
    if not entry:
        return "-"
    return ", ".join(f"{entry[name][0]}/{entry[name][1]}" for name in ("unsaturated", "saturated"))


def markdown(rows: list[dict[str, Any]]) -> str:
    """The study's table."""
    head = ("| part | size | d | setting | certified / examples | saturated | mean R | DeepFool median (undefended) "
            "| 0.5R | 1R | 1.5R | 2R | 1.5R: unsaturated, saturated |")
    lines = [head, "|" + " --- |" * (head.count("|") - 1)]
    for row in rows:
        mean = "-" if row["mean_radius"] is None else f"{row['mean_radius']:.3f}"
        deepfool = "-" if row["deepfool_median"] is None else f"{row['deepfool_median']:.3f}"
        lines.append(
            f"| {row['part']} | {row['size']} | {row['dimension']:,} | {row['label']} | "
            f"{row['certified']} / {row['examples']} | {row['saturated']} | {mean} | {deepfool} | "
            + " | ".join(rate(row, f) for f in ("0.5", "1.0", "1.5", "2.0")) + f" | {split(row, '1.5')} |"
        )
    return "\n".join(lines)


PAPER_LOGS = Path(__file__).resolve().parents[1] / "tests" / "data" / "cohen2019" / "data" / "certify"
"""The paper's released certification logs (a copy of the authors' files, kept for the tests)."""


def paper_saturation(root: Path = PAPER_LOGS, n: int = 100_000, alpha: float = 0.01) -> str:
    """A markdown table: in each of the paper's ImageNet logs, how many images were certified correct and how many
    of them at the largest radius its CERTIFY (``n``, ``alpha``: the settings its largest radii fit) could give."""
    from rs_plugin.analysis import saturated
    from rs_plugin.results import read_results

    lines = [
        "| paper's log (ImageNet, ResNet-50) | sigma | largest radius | certified correct | at the largest radius |",
        "| --- | --- | --- | --- | --- |",
    ]
    for path in sorted(root.glob("imagenet/*/noise_*/test/sigma_*")):
        results = read_results(path)
        noise = Gaussian(float(path.name.split("_")[1]))
        cap = largest_radius(noise, n, alpha)
        certified = int(((results["correct"] == 1) & (results["radius"] > 0)).sum())
        at_cap = int(saturated(results, cap).sum())
        lines.append(f"| {path.parents[1].name}/{path.name} | {noise.sigma:g} | {cap:.3f} | {certified} | "
                     f"{at_cap} ({at_cap / max(certified, 1):.0%}) |")
    return "\n".join(lines)


def save_plot(path: Path, rows: list[dict[str, Any]]) -> None:
    """Success within 1.5R and 2R against d (with 95% intervals), the saturated fraction beside it, and the
    paper's ImageNet points."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(9, 3.6))
    left, right = figure.subplots(1, 2)
    styles = {"dimension": "-o", "scaled": "--s"}
    for part, style in styles.items():
        series = sorted((r for r in rows if r["part"] == part), key=lambda r: r["dimension"])
        if not series:
            continue
        d = [r["dimension"] for r in series]
        for factor, color in (("1.5", "C0"), ("2.0", "C1")):
            points = [(x, r["factors"][factor]) for x, r in zip(d, series, strict=True) if factor in r["factors"]
                      and r["factors"][factor]["success_rate"] is not None]
            if not points:
                continue
            xs, entries = zip(*points, strict=True)
            ys = [e["success_rate"] for e in entries]
            errors = [[y - e["ci_low"] for y, e in zip(ys, entries, strict=True)],
                      [e["ci_high"] - y for y, e in zip(ys, entries, strict=True)]]
            left.errorbar(xs, ys, yerr=errors, fmt=style, color=color, capsize=3,
                          label=f"{factor}R, {series[0]['label'] if part == 'dimension' else 'sigma scaled'}")
        right.plot(d, [r["saturated"] / max(r["certified"], 1) for r in series], style, color="C2",
                   label="sigma fixed" if part == "dimension" else "sigma scaled")
    for factor, color in (("1.5", "C0"), ("2.0", "C1")):
        left.plot([PAPER_DIMENSION], [PAPER_SUCCESS[factor]], "*", color=color, markersize=14,
                  label=f"{factor}R, Cohen et al. ImageNet")
    left.set(xscale="log", xlabel="input dimension d", ylabel="attack success rate", ylim=(-0.02, 1.02),
             title="attacks within factor x R")
    left.legend(fontsize=7, loc="lower left")
    right.set(xscale="log", xlabel="input dimension d", ylabel="fraction of certified examples", ylim=(-0.02, 1.02),
              title="certified at the largest radius n allows")
    right.legend(fontsize=7)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out-dir", type=Path, default=Path("runs/tightness_dimension"), help="rows, results, plot")
    parser.add_argument("--quick", action="store_true", help="smaller runs (minutes)")
    parser.add_argument("--sizes", type=size_argument, nargs="+", help=f"input sizes (default {' '.join(SIZES)})")
    parser.add_argument("--parts", nargs="+", choices=("dimension", "scaled", "attack", "settings"),
                        default=["dimension", "scaled", "attack", "settings"], help="which parts run (default all)")
    parser.add_argument("--attack-size", type=size_argument, default=ATTACK_SIZE,
                        help=f"the size of the attack and settings parts (default {ATTACK_SIZE})")
    parser.add_argument("--num-examples", type=int,
                        help="test examples per run (default 60, 30 above d = 4,096 and at n = 100,000; quick 30)")
    parser.add_argument("--sigma", type=float, default=0.25, help="the noise level (default 0.25)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    preset = QUICK if args.quick else FULL
    if args.num_examples is not None:
        preset = dataclasses.replace(preset, num_examples=args.num_examples,
                                     paper_examples=min(preset.paper_examples, args.num_examples))
    runs = plan(preset, tuple(args.sizes or preset.sizes), args.sigma, set(args.parts), args.attack_size)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    rows = [summary_row(run, execute(run, args, preset)) for run in runs]
    table = markdown(rows) + "\n\n" + paper_saturation()
    print("\n" + table)
    (args.out_dir / "summary.md").write_text(table + "\n")
    (args.out_dir / "summary.json").write_text(json.dumps(rows, indent=1))
    save_plot(args.out_dir / "tightness_dimension.png", rows)
    print(f"\nplot: {args.out_dir / 'tightness_dimension.png'}; table: {args.out_dir / 'summary.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
