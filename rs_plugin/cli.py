"""The ``rs-plugin`` command: ``certify``, ``predict``, ``analyze`` and ``plugins``, and the subcommands plugins add
(hook ``rs_plugin_add_commands``: ``train`` from the torch plugin, ``tightness`` from the attacks).

User mistakes (missing files, malformed results, unknown names, bad numbers) end with a one-line
message on stderr and exit status 1 (2 for command-line syntax), never a traceback; warnings are one line each.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from . import __version__
from .allocator import retain_freed_memory
from .datasets import datasets
from .models import model_options
from .plugins import collect, executors, make_executor
from .runs import DatasetTask, run


def plugin_commands() -> dict[str, Any]:
    """The subcommands plugins add, by name."""
    return collect("rs_plugin_add_commands")

EXIT_ERROR, EXIT_INTERRUPTED = 1, 130


def positive_int_argument(text: str) -> int:
    """``argparse`` type of an int >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """The model options of every plugin (:func:`rs_plugin.models.model_options`) as a group of flags."""
    group = parser.add_argument_group("model")
    for option in model_options():
        group.add_argument(option.flag, dest=option.dest, help=option.help, **option.argparse)


def given_model_options(args: argparse.Namespace) -> dict[str, Any]:
    """The model options in ``args`` (see :func:`add_model_arguments`)."""
    return {option.dest: getattr(args, option.dest) for option in model_options()}


def _add_run_arguments(parser: argparse.ArgumentParser, mode: str) -> None:
    data = parser.add_argument_group("data")
    data.add_argument("--dataset", default="digits",
                      help=f"{', '.join(datasets())} (default: digits; nothing is downloaded)")
    data.add_argument("--split", choices=("train", "test"), default="test", help="dataset split (default: test)")
    data.add_argument("--data-dir", help="folder holding the dataset (e.g. cifar-10-batches-py, ImageNet's val/)")
    add_model_arguments(parser)
    smoothing = parser.add_argument_group("smoothing")
    smoothing.add_argument("--sigma", type=float, required=True, help="noise level (standard deviation)")
    smoothing.add_argument("--noise", default="gaussian",
                           help="noise family, with its options as NAME:KEY=VALUE,... "
                                "(e.g. lowpass:shape=1x8x8,ratio=4; default: gaussian)")
    if mode == "certify":
        smoothing.add_argument("--n0", "--N0", type=int, default=100, help="selection samples (default: 100)")
    smoothing.add_argument("--n", "--N", type=int, default=100_000, help="estimation samples (default: 100000)")
    smoothing.add_argument("--alpha", type=float, default=0.001, help="failure probability (default: 0.001)")
    if mode == "certify":
        smoothing.add_argument("--target-radius", type=float, nargs="+", metavar="R",
                               help="stop sampling as soon as each radius R is decided (sequential CERTIFY); "
                                    "adds a trailing 'samples' column")
        smoothing.add_argument("--radius-tolerance", type=float, metavar="EPS",
                               help="stop sampling once more samples (up to --n) are not expected to raise the "
                                    "radius by more than EPS (sequential CERTIFY); adds a 'samples' column")
        smoothing.add_argument("--sequence", default="betting",
                               help="anytime-valid bound of sequential CERTIFY: betting (default) or bonferroni")
        smoothing.add_argument("--smoothing", choices=("hard", "soft"),
                               help="certify the vote (hard, the default) or the mean softmax (soft; Gaussian noise, "
                                    "--sequence betting; recorded in FILE.settings.json, and analyze labels the file "
                                    "'(soft)')")
    smoothing.add_argument("--seed", type=int, default=0,
                           help="noise seed; example idx gets noise fixed by (seed, idx) (default: 0)")
    work = parser.add_argument_group("examples and execution")
    work.add_argument("--skip", type=positive_int_argument, default=1, help="take every SKIP-th example (default: 1)")
    work.add_argument("--max-examples", type=positive_int_argument, metavar="M", help="take at most M examples")
    add_execution_arguments(work)
    work.add_argument("--out", required=True, metavar="FILE",
                      help="results file (TSV); rerunning with the same FILE resumes")


def add_execution_arguments(group: argparse._ArgumentGroup) -> None:
    """``--batch-size`` (old: ``--batch``), ``--device``, ``--executor``, ``--workers``, ``--address``,
    ``--no-progress``: how a run is computed, never what it computes."""
    group.add_argument("--batch-size", "--batch", dest="batch_size", type=positive_int_argument,
                       action=DeprecatedFlag, old="--batch",
                       help="noisy copies per forward pass (default: the fastest, measured at start)")
    group.add_argument("--device", help="device of a framework's model, e.g. cuda:1 (default: cuda when available)")
    group.add_argument("--executor", default="local", help=f"{', '.join(executors())} (default: local)")
    group.add_argument("--workers", type=int, help="number of workers of the executor (ray: one model per worker)")
    group.add_argument("--address", help="ray: the cluster to connect to (e.g. auto, HOST:6379, ray://HOST:10001)")
    group.add_argument("--no-progress", action="store_true",
                       help="hide the progress bar and the start-up report (batch size, precision agreement)")


def make_executor_from(args: argparse.Namespace) -> Any:
    """The executor ``--executor`` names, with ``--workers`` and ``--address``."""
    options = {k: v for k, v in (("workers", args.workers), ("address", args.address)) if v is not None}
    return make_executor(args.executor, **options)


class DeprecatedFlag(argparse.Action):
    """Stores the value; given by its old spelling ``old``, also warns (``DeprecationWarning``) once."""

    def __init__(self, *args: Any, old: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.old = old

    def __call__(self, parser: Any, namespace: Any, values: Any, option_string: str | None = None) -> None:
        if option_string == self.old:
            new = next(flag for flag in self.option_strings if flag != self.old)
            warnings.warn(f"{self.old} is deprecated, use {new}", DeprecationWarning, stacklevel=2)
        setattr(namespace, self.dest, values)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rs-plugin", description="Certified robustness by randomized smoothing (Cohen et al. 2019)."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    certify = commands.add_parser("certify", help="CERTIFY every selected example; the paper's TSV")
    _add_run_arguments(certify, "certify")
    predict = commands.add_parser("predict", help="PREDICT every selected example; the paper's TSV")
    _add_run_arguments(predict, "predict")

    analyze = commands.add_parser("analyze", help="certified accuracy at radii: tables, JSON, plot")
    analyze.add_argument("files", nargs="+", metavar="FILE", help="results files written by certify")
    analyze.add_argument("--radii", type=float, nargs="+", metavar="R",
                         default=[0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5],
                         help="radii of the table's columns (default: 0 to 1.5 by 0.25)")
    analyze.add_argument("--labels", nargs="+", metavar="LABEL",
                         help="one row label per file, written as is (default: the file names)")
    output = analyze.add_mutually_exclusive_group()
    output.add_argument("--format", choices=("text", "markdown", "latex", "csv"), default="text",
                        help="table format; markdown and latex are the paper's (default: text)")
    output.add_argument("--json", action="store_true", help="print {FILE: {radius: accuracy}}")
    analyze.add_argument("--plot", metavar="FILE", help="also save a plot of certified accuracy against radius")
    analyze.add_argument("--max-radius", type=float, help="plot up to this radius (default: the largest one)")
    analyze.add_argument("--high-prob", action="store_true",
                         help="report the appendix-D lower bound on true certified accuracy instead")
    analyze.add_argument("--alpha", type=float, default=0.001, help="--high-prob: CERTIFY's alpha (default: 0.001)")
    analyze.add_argument("--rho", type=float, default=0.001, help="--high-prob: the bound's failure probability")

    commands.add_parser("plugins", help="list the plugins found and what each provides")
    for name, command in sorted(plugin_commands().items()):
        command.add_arguments(commands.add_parser(name, help=command.help))
    return parser


def _run(args: argparse.Namespace) -> None:
    task = DatasetTask(
        dataset=args.dataset,
        sigma=args.sigma,
        mode=args.command,
        model_options=given_model_options(args),
        split=args.split,
        data_dir=args.data_dir,
        noise=args.noise,
        n0=getattr(args, "n0", 100),
        n=args.n,
        alpha=args.alpha,
        batch_size=args.batch_size,
        seed=args.seed,
        target_radius=tuple(args.target_radius) if getattr(args, "target_radius", None) else None,
        radius_tolerance=getattr(args, "radius_tolerance", None),
        sequence=getattr(args, "sequence", "betting"),
        smoothing=getattr(args, "smoothing", None),
        device=args.device,
        report=not args.no_progress,
    )
    run(task, args.out, skip=args.skip, max_examples=args.max_examples, executor=make_executor_from(args),
        progress=not args.no_progress)


def _label(path: str) -> str:
    """A results file's default label: its name, with ``(soft)`` when its settings record says it certifies the
    soft smoothed classifier (so that the two classifiers stay apart in one table), and the norm when its radii
    count (``(l0)``, ``(columns)``, ``(patch)``: ablation, :mod:`rs_plugin.ablation`)."""
    from .certificate import COUNTING_NORMS
    from .plugins import make_noise
    from .results.settings import read_settings, settings_path

    try:
        recorded = read_settings(settings_path(path)) or {}
    except ValueError:  # not ours: the name alone
        recorded = {}
    label = f"{path} (soft)" if recorded.get("smoothing") == "soft" else path
    try:
        norm = make_noise(recorded["noise"], recorded["sigma"]).norm
    except (KeyError, TypeError, ValueError):  # no record, or a noise no longer installed
        norm = None
    return f"{label} ({norm})" if norm in COUNTING_NORMS else label


def _analyze(args: argparse.Namespace) -> None:
    import numpy as np

    from . import analysis
    from .checks import positive_number, probability
    from .results import read_results

    labels = args.labels or [_label(path) for path in args.files]
    if len(labels) != len(args.files):
        raise ValueError(f"labels: got {len(labels)} labels for {len(args.files)} files")
    probability("alpha", args.alpha)  # checked even without --high-prob, the only one to use them
    probability("rho", args.rho)
    if args.max_radius is not None:
        positive_number("max_radius", args.max_radius)
    results = [read_results(path) for path in args.files]
    if args.high_prob:
        accuracies = np.array([analysis.high_probability_accuracy(r, args.radii, args.alpha, args.rho)
                               for r in results])
    else:
        accuracies = np.array([analysis.certified_accuracy(r, args.radii) for r in results])
    if args.json:
        table = {path: {str(r): float(a) for r, a in zip(args.radii, row, strict=True)}
                 for path, row in zip(args.files, accuracies, strict=True)}
        print(json.dumps(table, indent=2))
    else:
        sys.stdout.write(analysis.FORMATS[args.format](labels, args.radii, accuracies))
    if args.plot:
        analysis.plot_certified_accuracy(
            results, labels, args.plot, max_radius=args.max_radius,
            high_prob=(args.alpha, args.rho) if args.high_prob else None,
        )


def _plugins() -> None:
    from .plugins import describe_plugins, get_plugin_manager

    pm = get_plugin_manager()
    for name, origin, hooks in describe_plugins():
        print(name if origin == name else f"{name} ({origin})")
        plugin = pm.get_plugin(name)
        for hook in hooks:
            impl = next(i for i in getattr(pm.hook, hook).get_hookimpls() if i.plugin is plugin)
            if hook.startswith("rs_plugin_add_"):
                answer = impl.function()
                names = [getattr(item, "flag", item) for item in answer]  # names of a mapping, flags of options
                print(f"  {hook.removeprefix('rs_plugin_add_')}: {', '.join(sorted(names)) or '(none)'}")
            else:
                print(f"  {hook.removeprefix('rs_plugin_')}")


def _one_line_warning(command: str) -> Callable[..., None]:
    """Warnings (e.g. the pre-flight diagnostics) as one line on stderr each, like errors."""

    def show(message: Warning | str, *args: object, **kwargs: object) -> None:
        print(f"rs-plugin {command}: warning: {message}", file=sys.stderr)

    return show


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    retain_freed_memory()  # a network's temporaries reused batch after batch (rs_plugin.allocator)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _one_line_warning(args.command)
            if args.command in ("certify", "predict"):
                _run(args)
            elif args.command == "analyze":
                _analyze(args)
            elif args.command == "plugins":
                _plugins()
            else:
                plugin_commands()[args.command].run(args)
    except KeyboardInterrupt:
        print("rs-plugin: interrupted; rerun the same command to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    except ImportError as err:
        print(f"rs-plugin {args.command}: error: {err} (pip install 'rs-plugin[all]' installs every extra)",
              file=sys.stderr)
        return EXIT_ERROR
    except (ValueError, TypeError, OSError) as err:
        print(f"rs-plugin {args.command}: error: {err}", file=sys.stderr)
        return EXIT_ERROR
    return 0


if __name__ == "__main__":
    sys.exit(main())
