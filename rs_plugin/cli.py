"""The ``rs-plugin`` command: ``certify``, ``predict``, ``analyze``, ``train`` and ``plugins``.

User mistakes (missing files, malformed results, unknown names, bad numbers) end with a one-line
message on stderr and exit status 1 (2 for command-line syntax), never a traceback; warnings are one line each.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Callable, Sequence

from . import __version__

EXIT_ERROR, EXIT_INTERRUPTED = 1, 130


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _add_run_arguments(parser: argparse.ArgumentParser, mode: str) -> None:
    data = parser.add_argument_group("data and model")
    data.add_argument("--dataset", default="digits", help="digits (built in), cifar10 or imagenet (default: digits)")
    data.add_argument("--split", choices=("train", "test"), default="test", help="dataset split (default: test)")
    data.add_argument("--data-dir", help="folder holding cifar10 (cifar-10-batches-py) or imagenet (val/, train/)")
    data.add_argument("--model", metavar="MODULE:FUNCTION",
                      help="a function returning the base classifier (an nn.Module taking inputs in [0, 1]); "
                           "MODULE may be a file.py")
    data.add_argument("--checkpoint", metavar="FILE", nargs="+",
                      help="a checkpoint in the paper's format {arch, state_dict}; several: their ensemble "
                           "(the members' averaged softmax)")
    data.add_argument("--denoiser", metavar="FILE|NAME[:SOURCE]",
                      help="put a denoiser in front of the model: a denoiser checkpoint (e.g. arch dncnn_digits) "
                           "or a denoiser plugin's name (see rs-plugin plugins)")
    smoothing = parser.add_argument_group("smoothing")
    smoothing.add_argument("--sigma", type=float, required=True, help="noise level (standard deviation)")
    smoothing.add_argument("--noise", default="gaussian", help="noise family (default: gaussian)")
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
    smoothing.add_argument("--seed", type=int, default=0,
                           help="noise seed; example idx gets noise fixed by (seed, idx) (default: 0)")
    work = parser.add_argument_group("examples and execution")
    work.add_argument("--skip", type=_positive_int, default=1, help="take every SKIP-th example (default: 1)")
    work.add_argument("--max-examples", type=_positive_int, metavar="M", help="take at most M examples")
    work.add_argument("--batch", type=_positive_int,
                      help="noisy copies per forward pass (default: the fastest, measured at start)")
    work.add_argument("--device", help="torch device (default: cuda when available, else cpu)")
    work.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32",
                      help="torch: evaluate the network in reduced precision (reports its agreement with float32 "
                           "at start; default: fp32)")
    work.add_argument("--channels-last", action="store_true",
                      help="torch: run a convolutional network in the channels_last memory format")
    work.add_argument("--executor", default="local", help="local (default) or ray (with the ray extra)")
    work.add_argument("--workers", type=int, help="number of workers of the executor (ray: one model per worker)")
    work.add_argument("--address", help="ray: the cluster to connect to (e.g. auto, HOST:6379, ray://HOST:10001)")
    work.add_argument("--out", required=True, metavar="FILE",
                      help="results file (TSV); rerunning with the same FILE resumes")
    work.add_argument("--no-progress", action="store_true",
                      help="hide the progress bar and the start-up report (batch size, precision agreement)")


def _add_train_arguments(parser: argparse.ArgumentParser) -> None:
    data = parser.add_argument_group("data and model")
    data.add_argument("--dataset", default="digits", help="digits (built in), cifar10 or imagenet (default: digits)")
    data.add_argument("--data-dir", help="folder holding cifar10 (cifar-10-batches-py) or imagenet (train/)")
    data.add_argument("--arch", help="architecture (default: digits_cnn, cifar_resnet110 or resnet50; a denoiser: "
                                     "dncnn_DATASET)")
    data.add_argument("--classifier", metavar="FILE",
                      help="denoiser: the frozen classifier, a checkpoint in the paper's format")
    method = parser.add_argument_group("method")
    method.add_argument("--method", required=True,
                        help="standard, gaussian, smoothadv, consistency, macer, smoothmix, denoiser or a plugin's")
    method.add_argument("--sigma", type=float, help="training noise level (standard deviation); not for standard")
    method.add_argument("--noise", default="gaussian", help="training noise family (default: gaussian)")
    method.add_argument("--option", action="append", default=[], metavar="NAME=VALUE",
                        help="a hyperparameter of the method (e.g. lbd=5 for consistency); repeatable")
    method.add_argument("--objective", choices=("stability", "mse"), help="denoiser: the training objective")
    run = parser.add_argument_group("optimisation")
    run.add_argument("--epochs", type=_positive_int, default=30, help="passes over the training set (default: 30)")
    run.add_argument("--batch", type=_positive_int, default=64, help="inputs per step (default: 64)")
    run.add_argument("--lr", type=float, default=1e-3, help="Adam's learning rate (default: 0.001)")
    run.add_argument("--seed", type=int, default=0, help="seed of the initial weights and every random stream")
    run.add_argument("--device", help="torch device (default: cuda when available, else cpu)")
    run.add_argument("--out", required=True, metavar="FILE",
                     help="checkpoint, written after every epoch; rerunning with the same FILE resumes")
    run.add_argument("--no-progress", action="store_true", help="hide the progress bars")


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

    train = commands.add_parser("train", help="train a base classifier (or a denoiser) for smoothing; resumable")
    _add_train_arguments(train)

    commands.add_parser("plugins", help="list the plugins found and what each provides")
    return parser


def _run(args: argparse.Namespace) -> None:
    from .plugins import make_executor
    from .runs import DatasetTask, run

    task = DatasetTask(
        dataset=args.dataset,
        sigma=args.sigma,
        mode=args.command,
        model=args.model,
        checkpoint=args.checkpoint,
        denoiser=args.denoiser,
        split=args.split,
        data_dir=args.data_dir,
        noise=args.noise,
        n0=getattr(args, "n0", 100),
        n=args.n,
        alpha=args.alpha,
        batch=args.batch,
        seed=args.seed,
        target_radius=tuple(args.target_radius) if getattr(args, "target_radius", None) else None,
        radius_tolerance=getattr(args, "radius_tolerance", None),
        sequence=getattr(args, "sequence", "betting"),
        device=args.device,
        precision=args.precision,
        channels_last=args.channels_last,
        report=not args.no_progress,
    )
    options = {k: v for k, v in (("workers", args.workers), ("address", args.address)) if v is not None}
    executor = make_executor(args.executor, **options)
    run(task, args.out, skip=args.skip, max_examples=args.max_examples, executor=executor,
        progress=not args.no_progress)


def _analyze(args: argparse.Namespace) -> None:
    import numpy as np

    from . import analysis
    from .results import read_results

    labels = args.labels or args.files
    if len(labels) != len(args.files):
        raise ValueError(f"labels: got {len(labels)} labels for {len(args.files)} files")
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


def _train(args: argparse.Namespace) -> None:
    from .extras import require

    options = {}
    for item in args.option:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ValueError(f"option: expected NAME=VALUE, got {item!r}")
        options[name] = value
    if args.objective is not None:
        options["objective"] = args.objective
    require("torch", "torch", "rs-plugin train")
    from .adapters.trainers import TrainConfig
    from .adapters.trainers.run import train_dataset

    config = TrainConfig(epochs=args.epochs, batch_size=args.batch, lr=args.lr, seed=args.seed)
    checkpoint = train_dataset(
        args.dataset, args.method, args.sigma, args.out, noise=args.noise, options=options, data_dir=args.data_dir,
        arch=args.arch, classifier=args.classifier, config=config, device=args.device,
        progress=not args.no_progress,
    )
    last = checkpoint["history"][-1]
    print(f"{args.out}: {checkpoint['method']}, {checkpoint['arch']}, epoch {checkpoint['epoch']}/{args.epochs}: "
          f"loss {last['loss']:.4f}, accuracy under noise {last['accuracy']:.3f}")


def _plugins() -> None:
    from .plugins import describe_plugins, get_plugin_manager

    pm = get_plugin_manager()
    for name, origin, hooks in describe_plugins():
        print(name if origin == name else f"{name} ({origin})")
        plugin = pm.get_plugin(name)
        for hook in hooks:
            impl = next(i for i in getattr(pm.hook, hook).get_hookimpls() if i.plugin is plugin)
            if hook.startswith("rs_plugin_add_"):
                provided = ", ".join(sorted(impl.function())) or "(none)"
                print(f"  {hook.removeprefix('rs_plugin_add_')}: {provided}")
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
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _one_line_warning(args.command)
            if args.command in ("certify", "predict"):
                _run(args)
            elif args.command == "analyze":
                _analyze(args)
            elif args.command == "train":
                _train(args)
            else:
                _plugins()
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
