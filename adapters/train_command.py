"""``rs-plugin train``: a training method, a dataset and an architecture, resumable through its checkpoint.
Torch is imported when the command runs, not when the command line is built."""

from __future__ import annotations

import argparse

from rs_plugin.cli import DeprecatedFlag, positive_int_argument
from rs_plugin.datasets import datasets
from rs_plugin.extras import require


class TrainCommand:
    """The ``train`` subcommand (:class:`rs_plugin.commands.Command`)."""

    help = "train a base classifier (or a denoiser) for smoothing; resumable"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        data = parser.add_argument_group("data and model")
        data.add_argument("--dataset", default="digits", help=f"{', '.join(datasets())} (default: digits)")
        data.add_argument("--data-dir", help="folder holding the dataset (cifar-10-batches-py, imagenet's train/)")
        data.add_argument("--arch", help="architecture (default: digits_cnn, cifar_resnet110 or resnet50; a denoiser: "
                                         "dncnn_DATASET)")
        data.add_argument("--classifier", metavar="FILE",
                          help="denoiser: the frozen classifier, a checkpoint in the paper's format")
        method = parser.add_argument_group("method")
        method.add_argument("--method", required=True,
                            help="standard, gaussian, smoothadv, consistency, macer, smoothmix, denoiser or a plugin's")
        method.add_argument("--sigma", type=float, help="training noise level (standard deviation); not for standard")
        method.add_argument("--noise", default="gaussian",
                            help="training noise family, with its options as NAME:KEY=VALUE,... (default: gaussian)")
        method.add_argument("--option", action="append", default=[], metavar="NAME=VALUE",
                            help="a hyperparameter of the method (e.g. lbd=5 for consistency); repeatable")
        method.add_argument("--objective", choices=("stability", "mse"), help="denoiser: the training objective")
        run = parser.add_argument_group("optimisation")
        run.add_argument("--epochs", type=positive_int_argument, default=30,
                         help="passes over the training set (default: 30)")
        run.add_argument("--inputs-per-step", "--batch", dest="inputs_per_step", type=positive_int_argument,
                         default=64, action=DeprecatedFlag, old="--batch",
                         help="inputs per optimisation step (default: 64; each method evaluates its noisy copies of "
                              "every one)")
        run.add_argument("--lr", type=float, default=1e-3, help="Adam's learning rate (default: 0.001)")
        run.add_argument("--seed", type=int, default=0, help="seed of the initial weights and every random stream")
        run.add_argument("--device", help="torch device (default: cuda when available, else cpu)")
        run.add_argument("--no-progress", action="store_true", help="hide the progress bars")
        run.add_argument("--out", required=True, metavar="FILE",
                         help="checkpoint, written after every epoch; rerunning with the same FILE resumes")

    def run(self, args: argparse.Namespace) -> None:
        options = {}
        for item in args.option:
            name, sep, value = item.partition("=")
            if not sep or not name:
                raise ValueError(f"option: expected NAME=VALUE, got {item!r}")
            options[name] = value
        if args.objective is not None:
            options["objective"] = args.objective
        require("torch", "torch", "rs-plugin train")
        from .trainers import TrainConfig
        from .trainers.run import train_dataset

        config = TrainConfig(epochs=args.epochs, inputs_per_step=args.inputs_per_step, lr=args.lr, seed=args.seed)
        checkpoint = train_dataset(
            args.dataset, args.method, args.sigma, args.out, noise=args.noise, options=options,
            data_dir=args.data_dir, arch=args.arch, classifier=args.classifier, config=config, device=args.device,
            progress=not args.no_progress,
        )
        last = checkpoint["history"][-1]
        print(f"{args.out}: {checkpoint['method']}, {checkpoint['arch']}, epoch {checkpoint['epoch']}/{args.epochs}: "
              f"loss {last['loss']:.4f}, accuracy under noise {last['accuracy']:.3f}")
