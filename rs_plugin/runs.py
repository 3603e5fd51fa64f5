"""Certifying (or predicting on) a whole dataset: the per-example task and the driver that writes the results.

:class:`DatasetTask` is picklable and deterministic per example (noise seeded by ``(seed, idx)``), so
any executor (:mod:`rs_plugin.executors`) can run it on any split of the dataset and a resumed or
distributed run writes the rows of one uninterrupted local run (the ``time`` column aside).
:func:`run` is the driver: it skips the rows already in the output file, runs the others through the
executor and appends each row as it comes back.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tqdm.auto import tqdm

from . import diagnostics, sequential
from .calibration import best_batch_size
from .checks import positive_int, probability, radii
from .core import SmoothedClassifier
from .datasets import NUM_CLASSES, load_dataset
from .executors import Executor, LocalExecutor
from .extras import require
from .plugins import make_noise
from .results import CERTIFY_COLUMNS, PREDICT_COLUMNS, SAMPLES_COLUMN, ResultsWriter, task_settings

MODES = ("certify", "predict")
PRECISIONS = ("fp32", "bf16", "fp16")


def load_callable(spec: str) -> Any:
    """The object named by ``module:attribute`` (an importable module) or ``path/to/file.py:attribute``."""
    module_name, sep, attribute = spec.rpartition(":")
    if not sep or not module_name or not attribute:
        raise ValueError(f"model: expected module:function or file.py:function, got {spec!r}")
    if module_name.endswith(".py"):
        if not os.path.isfile(module_name):
            raise FileNotFoundError(f"model: no such file: {module_name!r}")
        module_spec = importlib.util.spec_from_file_location(os.path.basename(module_name)[:-3], module_name)
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
    else:
        try:
            module = importlib.import_module(module_name)
        except ImportError as err:
            raise ValueError(f"model: cannot import module {module_name!r}: {err}") from err
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise ValueError(f"model: module {module_name!r} has no attribute {attribute!r}") from None


def load_base_classifier(
    dataset: str,
    sigma: float,
    *,
    model: str | None = None,
    checkpoint: str | Sequence[str] | None = None,
    noise: str = "gaussian",
    denoiser: str | None = None,
) -> Any:
    """The base classifier, in eval mode: ``model()`` for a ``module:function`` spec (any base classifier a backend
    accepts: a numpy callable, a torch module, an ART classifier), the network of a checkpoint in the paper's
    format (torch extra; several checkpoints: their :class:`~rs_plugin.adapters.denoise.Ensemble`), or (digits
    only, neither given) the embedded digits CNN trained with ``noise`` of standard deviation ``sigma`` (trained
    once, cached). With ``denoiser`` (see :func:`rs_plugin.plugins.make_denoiser`), a torch classifier is composed
    behind that denoiser (:class:`~rs_plugin.adapters.denoise.Denoised`)."""
    if model is not None and checkpoint is not None:
        raise ValueError("model and checkpoint: give one of them, not both")
    if model is not None:
        network = load_callable(model)()
    elif checkpoint is not None:
        require("torch", "torch", "--checkpoint")
        from .adapters.models import ARCHITECTURES, load_checkpoint

        members = []
        for path in [checkpoint] if isinstance(checkpoint, str) else checkpoint:
            network, arch = load_checkpoint(path)
            if ARCHITECTURES[arch][3] is None:
                raise ValueError(f"checkpoint: {path} holds the denoiser {arch}; give it with --denoiser")
            if ARCHITECTURES[arch][3] != NUM_CLASSES[dataset]:
                raise ValueError(
                    f"checkpoint: {arch} has {ARCHITECTURES[arch][3]} classes, {dataset} has {NUM_CLASSES[dataset]}"
                )
            members.append(network)
        if len(members) > 1:
            from .adapters.denoise import Ensemble

            network = Ensemble(members)
    elif dataset == "digits":
        require("torch", "torch", "the built-in digits model (or give --model MODULE:FUNCTION)")
        from .adapters.training import digits_model

        network = digits_model(sigma, noise=noise)
    else:
        raise ValueError(f"model: give a model or a checkpoint for {dataset} (only digits has a built-in one)")
    if denoiser is not None:
        require("torch", "torch", "--denoiser")
        from .adapters.denoise import Denoised
        from .plugins import make_denoiser

        network = Denoised(make_denoiser(denoiser, sigma), network)
    if hasattr(network, "eval"):
        network.eval()
    return network


@dataclass(frozen=True)
class DatasetTask:
    """CERTIFY (``mode="certify"``) or PREDICT on one example of a dataset, as the paper's scripts run them.

    A :class:`~rs_plugin.executors.Task`: :meth:`setup` loads the dataset and the base classifier once
    per worker; calling it with an index returns that example's row (a dict of the output columns).
    The noise of example ``idx`` depends only on ``(seed, idx)``: rows do not depend on how examples
    are split between workers or runs.
    """

    dataset: str
    sigma: float
    mode: str = "certify"
    model: str | None = None
    checkpoint: str | tuple[str, ...] | None = None
    denoiser: str | None = None
    split: str = "test"
    data_dir: str | None = None
    noise: str = "gaussian"
    n0: int = 100
    n: int = 100_000
    alpha: float = 0.001
    batch: int | None = None
    seed: int = 0
    target_radius: float | tuple[float, ...] | None = None
    radius_tolerance: float | None = None
    sequence: str = "betting"
    device: str | None = None
    precision: str = "fp32"
    channels_last: bool = False
    report: bool = True

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.dataset not in NUM_CLASSES:
            raise ValueError(f"dataset: unknown dataset {self.dataset!r}; known: {', '.join(NUM_CLASSES)}")
        if self.checkpoint is not None and not isinstance(self.checkpoint, str):
            paths = tuple(os.fspath(path) for path in self.checkpoint)
            if not paths:
                raise ValueError("checkpoint: give at least one checkpoint file")
            object.__setattr__(self, "checkpoint", paths[0] if len(paths) == 1 else paths)
        if self.split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {self.split!r}")
        for name in ("n0", "n"):
            positive_int(name, getattr(self, name))
        if self.batch is not None:
            positive_int("batch", self.batch)
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        probability("alpha", self.alpha)
        make_noise(self.noise, self.sigma)  # a known noise family, a valid sigma
        if self.seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {self.seed}")
        if self.target_radius is not None:
            if self.mode != "certify":
                raise ValueError("target_radius applies to certify only")
            object.__setattr__(self, "target_radius", tuple(radii("target_radius", self.target_radius)))
        if self.radius_tolerance is not None:
            if self.mode != "certify":
                raise ValueError("radius_tolerance applies to certify only")
            object.__setattr__(self, "radius_tolerance", sequential.tolerance(self.radius_tolerance))
        sequential.make_sequence(self.sequence, self.alpha, self.n)  # a known sequence

    @property
    def columns(self) -> tuple[str, ...]:
        """The output columns: the paper's, plus ``samples`` for sequential CERTIFY (target radii or a tolerance)."""
        if self.mode == "predict":
            return PREDICT_COLUMNS
        return CERTIFY_COLUMNS if not self.stops_early else (*CERTIFY_COLUMNS, SAMPLES_COLUMN)

    @property
    def stops_early(self) -> bool:
        """Whether CERTIFY stops early (target radii or a radius tolerance given)."""
        return self.target_radius is not None or self.radius_tolerance is not None

    def load_dataset(self) -> Any:
        """The dataset, a sequence of ``(x in [0, 1], label)``."""
        return load_dataset(self.dataset, self.split, self.data_dir)

    def load_base(self) -> Any:
        """The base classifier (see :func:`load_base_classifier`)."""
        return load_base_classifier(
            self.dataset, self.sigma, model=self.model, checkpoint=self.checkpoint, noise=self.noise,
            denoiser=self.denoiser,
        )

    def setup(self) -> tuple[SmoothedClassifier, Any]:
        """Load the base classifier (on ``device``; default ``"auto"``: a torch model on CUDA when available) and
        the dataset."""
        base = reference = self.load_base()
        if self.precision != "fp32" or self.channels_last:
            require("torch", "torch", "--precision and --channels-last")
            from .adapters.torch import FastModel

            base = FastModel(reference, self.precision, self.channels_last)
        smoothed = SmoothedClassifier(
            base, NUM_CLASSES[self.dataset], self.sigma, noise=self.noise, batch_size=self.batch,
            seed=self.seed, device=self.device or "auto",
        )
        dataset = self.load_dataset()
        if self.precision != "fp32" and len(dataset) and self.report:
            from .adapters.torch import label_agreement

            sample = [dataset[i][0] for i in range(min(8, len(dataset)))]
            agreement = label_agreement(reference, base, sample, smoothed.noise, 100, self.seed)
            print(f"rs-plugin: {self.precision} predicts the float32 label on {agreement:.1%} of "
                  f"{100 * len(sample)} noisy inputs of the first {len(sample)} examples", file=sys.stderr)
        if self.batch is None and len(dataset) and self.report:
            size, rate = best_batch_size(smoothed.backend, smoothed.noise, smoothed.backend.prepare(dataset[0][0]))
            print(f"rs-plugin: batch size {size}, the fastest measured ({rate:,.0f} noisy inputs/s; --batch sets it)",
                  file=sys.stderr)
        return smoothed, dataset

    def __call__(self, state: tuple[SmoothedClassifier, Any], index: int) -> dict[str, Any]:
        return self.rows(state, [index])[0]

    def pack_size(self, state: tuple[SmoothedClassifier, Any]) -> int:
        """How many examples :meth:`rows` should take at once to fill the forward passes."""
        smoothed, dataset = state
        per_example = self.n if self.mode == "predict" else min(self.n0, self.n)
        return max(1, smoothed.batch_size_for(smoothed.backend.prepare(dataset[0][0])) // per_example)

    def rows(self, state: tuple[SmoothedClassifier, Any], indices: Sequence[int]) -> list[dict[str, Any]]:
        """The rows of the examples ``indices``, several sharing each forward pass: the rows of one example at a
        time (``time`` is the group's time split evenly)."""
        smoothed, dataset = state
        examples = [dataset[i] for i in indices]
        xs, labels = [x for x, _ in examples], [int(label) for _, label in examples]
        start = time.perf_counter()
        with warnings.catch_warnings():  # run() gave the pre-flight warnings once, for the whole dataset
            warnings.simplefilter("ignore", diagnostics.PreflightWarning)
            predictions, certificates = self._answers(smoothed, xs, indices)
        seconds = (time.perf_counter() - start) / len(indices)
        rows = []
        for k, (index, label, prediction) in enumerate(zip(indices, labels, predictions, strict=True)):
            row = {"idx": index, "label": label, "predict": prediction}
            if self.mode == "certify":
                row["radius"] = certificates[k].radius
                if self.stops_early:
                    row[SAMPLES_COLUMN] = certificates[k].num_samples
            rows.append({**row, "correct": int(prediction == label), "time": seconds})
        return rows

    def _answers(self, smoothed: SmoothedClassifier, xs: list[Any], indices: Sequence[int]) -> tuple[list, list]:
        """PREDICT's answers, or CERTIFY's predictions and certificates, for the examples ``xs``."""
        if self.mode == "predict":
            return smoothed.predict_many(xs, self.n, self.alpha, indices=indices, progress=False).tolist(), []
        certificates = smoothed.certify_many(
            xs, self.n0, self.n, self.alpha, target_radius=self.target_radius,
            radius_tolerance=self.radius_tolerance, sequence=self.sequence, indices=indices, progress=False,
        )
        return [c.prediction for c in certificates], certificates

    def prepare(self) -> int:
        """Check on the driver what can be checked before any worker starts (the dataset loads, the model
        builds; the embedded digits model is trained and cached once); return the dataset's size."""
        self.load_base()
        return len(self.load_dataset())


def select(size: int, skip: int = 1, max_examples: int | None = None) -> range:
    """The paper's selection of examples: every ``skip``-th index of the dataset, at most ``max_examples``."""
    if skip < 1:
        raise ValueError(f"skip must be at least 1, got {skip}")
    if max_examples is not None and max_examples < 1:
        raise ValueError(f"max_examples must be at least 1, got {max_examples}")
    return range(0, size, skip)[:max_examples]


def run(
    task: DatasetTask,
    out: str | os.PathLike,
    *,
    skip: int = 1,
    max_examples: int | None = None,
    indices: Sequence[int] | None = None,
    executor: Executor | None = None,
    progress: bool = True,
) -> int:
    """Run ``task`` on the selected examples (``indices``, or :func:`select`'s) and append a row per example
    to ``out``; return the number of rows written.

    Resumes: rows already in ``out`` are skipped and a half-written last line is cut off, so running
    the same command again after a crash (even ``kill -9``) completes the file with no row lost or
    doubled. Rows are flushed as they arrive (in any order); a completed file is sorted by ``idx``. The task's
    settings are recorded next to ``out`` and a resume with other ones is refused (:class:`ResultsWriter`);
    settings that can certify nothing are refused before any work (:mod:`rs_plugin.diagnostics`).
    """
    diagnostics.check_run(task.mode, make_noise(task.noise, task.sigma), task.n, task.alpha, task.target_radius,
                          sequence=task.sequence if task.stops_early else None)
    size = task.prepare()
    if indices is None:
        indices = select(size, skip, max_examples)
    elif any(not 0 <= i < size for i in indices):
        raise ValueError(f"indices must lie in [0, {size}) for this dataset")
    executor = executor or LocalExecutor()
    with ResultsWriter(out, task.columns, settings=task_settings(task)) as writer:
        todo = [i for i in indices if i not in writer.done]
        with tqdm(total=len(indices), initial=len(indices) - len(todo), desc=task.mode, unit="ex",
                  disable=not progress) as bar:
            if todo:
                for row in executor.map(task, todo):
                    writer.write(row)
                    bar.update()
        writer.close(sort=True)
    return len(todo)
