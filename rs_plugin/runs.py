"""Running a per-example task over a dataset: CERTIFY or PREDICT (:class:`DatasetTask`), or a plugin's task (the
tightness experiment), through an executor, with resumable output.

A task is picklable and deterministic per example (noise seeded by ``(seed, idx)``), so any executor
(:mod:`rs_plugin.executors`) can run it on any split of the dataset and a resumed or distributed run writes the
rows of one uninterrupted local run (the ``time`` column aside). :func:`run` is the driver: it skips the rows
already in the output (the task's writer knows them), runs the others through the executor and writes each row as
it comes back.
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from tqdm.auto import tqdm

from . import calibration, diagnostics, sequential
from .checks import positive_int, probability, radii
from .checks import seed as check_seed
from .core import SMOOTHINGS, SmoothedClassifier
from .datasets import load_dataset, num_classes
from .executors import Executor, LocalExecutor
from .models import ModelRequest, load_model, model_options
from .plugins import make_noise
from .results import CERTIFY_COLUMNS, PREDICT_COLUMNS, SAMPLES_COLUMN, ResultsWriter
from .results.settings import file_sha256, plain_settings

MODES = ("certify", "predict")
UNRECORDED = frozenset({"batch_size", "device", "data_dir", "report", "model_options"})
"""Fields of :class:`DatasetTask` that do not change what its rows mean (how many inputs per forward pass, where it
runs, where the dataset is read from, what is reported at start); the model options are recorded one by one."""


class Writer(Protocol):
    """Where :func:`run` puts a task's rows: the indices already done, and each new row as it comes."""

    done: set[int]

    def write(self, row: Mapping[str, Any]) -> None: ...

    def close(self, *, sort: bool = False) -> None: ...


class ResumableTask(Protocol):
    """A :class:`~rs_plugin.executors.Task` that :func:`run` can drive: it checks itself and says how many examples
    there are (:meth:`prepare`, on the driver), and opens the writer that resumes its output."""

    def prepare(self) -> int: ...

    def open_writer(self, out: str | os.PathLike) -> Writer: ...


def model_settings(options: Mapping[str, Any]) -> dict[str, Any]:
    """Every model option's value (its default where not given), each file-naming option's files with their
    SHA-256 (a file is identified by its content: it may move)."""
    settings: dict[str, Any] = {}
    for option in model_options():
        value = options.get(option.dest, option.argparse.get("default"))
        settings[option.dest] = value
        if option.files and value is not None:
            paths = [os.fspath(p) for p in ([value] if isinstance(value, (str, os.PathLike)) else value)]
            if all(os.path.isfile(p) for p in paths):
                digests = [file_sha256(p) for p in paths]
                settings[option.dest] = paths[0] if len(paths) == 1 else paths
                settings[f"{option.dest}_sha256"] = digests[0] if len(digests) == 1 else digests
    return settings


@dataclass(frozen=True)
class DatasetTask:
    """CERTIFY (``mode="certify"``) or PREDICT on one example of a dataset, as the paper's scripts run them.

    ``smoothing="soft"`` certifies the soft smoothed classifier (:meth:`SmoothedClassifier.certify`; None: the
    vote, recorded as None so that settings written before the option existed still match). The base classifier is
    described by ``model_options`` (:func:`rs_plugin.models.load_model`: ``model``, and the
    options plugins add such as ``checkpoint``). :meth:`setup` loads the dataset and the base classifier once per
    worker; calling the task with an index returns that example's row (a dict of the output columns). The noise of
    example ``idx`` depends only on ``(seed, idx)``: rows do not depend on how examples are split between workers
    or runs.
    """

    dataset: str
    sigma: float
    mode: str = "certify"
    model_options: Mapping[str, Any] = field(default_factory=dict)
    split: str = "test"
    data_dir: str | None = None
    noise: str = "gaussian"
    n0: int = 100
    n: int = 100_000
    alpha: float = 0.001
    batch_size: int | None = None
    seed: int = 0
    target_radius: float | tuple[float, ...] | None = None
    radius_tolerance: float | None = None
    sequence: str = "betting"
    smoothing: str | None = None
    device: str | None = None
    report: bool = True

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        num_classes(self.dataset)  # a known dataset
        if self.split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {self.split!r}")
        for name in ("n0", "n"):
            positive_int(name, getattr(self, name))
        if self.batch_size is not None:
            positive_int("batch_size", self.batch_size)
        probability("alpha", self.alpha)
        make_noise(self.noise, self.sigma)  # a known noise family, a valid sigma
        if check_seed("seed", self.seed) is None:
            raise ValueError("seed must be a non-negative int, got None")
        if self.target_radius is not None:
            if self.mode != "certify":
                raise ValueError("target_radius applies to certify only")
            object.__setattr__(self, "target_radius", tuple(radii("target_radius", self.target_radius)))
        if self.radius_tolerance is not None:
            if self.mode != "certify":
                raise ValueError("radius_tolerance applies to certify only")
            object.__setattr__(self, "radius_tolerance", sequential.radius_tolerance(self.radius_tolerance))
        sequential.make_sequence(self.sequence, self.alpha, self.n)  # a known sequence
        if self.smoothing not in (None, *SMOOTHINGS) or (self.smoothing == "soft" and self.mode != "certify"):
            raise ValueError(f"smoothing must be None, 'hard' or 'soft' (soft: certify only), got {self.smoothing!r}")
        object.__setattr__(self, "model_options", {k: v for k, v in self.model_options.items() if v is not None})

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

    def settings(self) -> dict[str, Any]:
        """What the rows depend on: every field but :data:`UNRECORDED`, and the model options
        (:func:`model_settings`), as plain JSON values."""
        fields = {name: getattr(self, name) for name in self.__dataclass_fields__ if name not in UNRECORDED}
        return plain_settings({**fields, **model_settings(self.model_options)})

    def load_dataset(self) -> Any:
        """The dataset, a sequence of ``(x in [0, 1], label)``."""
        return load_dataset(self.dataset, self.split, self.data_dir)

    def load_base(self, sample: Sequence[Any] = ()) -> Any:
        """The base classifier (:func:`rs_plugin.models.load_model`)."""
        request = ModelRequest(self.dataset, num_classes(self.dataset), self.sigma, self.noise, self.model_options,
                               sample, self.report)
        return load_model(request)

    def setup(self) -> tuple[SmoothedClassifier, Any]:
        """Load the dataset and the base classifier (on ``device``; default ``"auto"``: a torch model on CUDA when
        available); report the batch size chosen when it is measured."""
        dataset = self.load_dataset()
        base = self.load_base([dataset[i][0] for i in range(min(8, len(dataset)))])
        smoothed = SmoothedClassifier(
            base, num_classes(self.dataset), self.sigma, noise=self.noise, batch_size=self.batch_size,
            seed=self.seed, device=self.device or "auto",
        )
        if self.batch_size is None and len(dataset) and self.report:
            size = smoothed.batch_size_for(smoothed.backend.prepare(dataset[0][0]))
            print(f"rs-plugin: batch size {size} to start with, then the fastest measured during the run "
                  "(--batch-size sets it)", file=sys.stderr)
        return smoothed, dataset

    def __call__(self, state: tuple[SmoothedClassifier, Any], index: int) -> dict[str, Any]:
        return self.rows(state, [index])[0]

    def pack_size(self, state: tuple[SmoothedClassifier, Any]) -> int:
        """How many examples :meth:`rows` should take at once to fill the forward passes: enough for two batches of
        their first requests at the batch size in use now (the executor asks again before each group)."""
        smoothed, dataset = state
        per_input = self.n if self.mode == "predict" else min(self.n0, self.n)
        return max(1, 2 * smoothed.batch_size_for(smoothed.backend.prepare(dataset[0][0])) // per_input)

    def rows(self, state: tuple[SmoothedClassifier, Any], indices: Sequence[int]) -> list[dict[str, Any]]:
        """The rows of the examples ``indices``, several sharing each forward pass: the rows of one example at a
        time (``time`` is the group's time split evenly)."""
        smoothed, dataset = state
        examples = [dataset[i] for i in indices]
        xs, labels = [x for x, _ in examples], [int(label) for _, label in examples]
        sizer = calibration.sizer_for(smoothed.backend, smoothed.backend.prepare(xs[0]))
        moves = len(sizer.moves)
        start = time.perf_counter()
        with warnings.catch_warnings():  # run() gave the pre-flight warnings once, for the whole dataset
            warnings.simplefilter("ignore", diagnostics.PreflightWarning)
            predictions, certificates = self._answers(smoothed, xs, indices)
        seconds = (time.perf_counter() - start) / len(indices)
        if self.report and self.batch_size is None:
            for before, after, speedup in sizer.moves[moves:]:
                why = f"{speedup:.2f}x as fast measured during the run" if speedup else "the device ran out of memory"
                print(f"rs-plugin: batch size {before} -> {after}, {why}", file=sys.stderr)
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
            radius_tolerance=self.radius_tolerance, sequence=self.sequence, smoothing=self.smoothing or "hard",
            indices=indices, progress=False,
        )
        return [c.prediction for c in certificates], certificates

    def prepare(self) -> int:
        """Check on the driver what can be checked before any worker starts (settings that can only abstain, the
        dataset loads, the model builds; a built-in model is trained and cached once); return the dataset's size.
        A deterministic randomization (derandomized smoothing) counts every copy once: no n and alpha to check."""
        noise = make_noise(self.noise, self.sigma)

        def check_settings() -> None:
            diagnostics.check_run(self.mode, noise, self.n, self.alpha, self.target_radius,
                                  sequence=self.sequence if self.stops_early else None)

        if noise.additive:  # random: checked before the model loads (a built-in one may train)
            check_settings()
        self.load_base()
        dataset = self.load_dataset()
        if not noise.additive and (not len(dataset) or noise.enumerated(tuple(np.shape(dataset[0][0]))) is None):
            check_settings()
        return len(dataset)

    def open_writer(self, out: str | os.PathLike) -> ResultsWriter:
        """The paper's TSV at ``out``, resumed when it holds rows of the same settings."""
        return ResultsWriter(out, self.columns, settings=self.settings())


def select(size: int, skip: int = 1, max_examples: int | None = None) -> range:
    """The paper's selection of examples: every ``skip``-th index of the dataset, at most ``max_examples``."""
    if skip < 1:
        raise ValueError(f"skip must be at least 1, got {skip}")
    if max_examples is not None and max_examples < 1:
        raise ValueError(f"max_examples must be at least 1, got {max_examples}")
    return range(0, size, skip)[:max_examples]


def run(
    task: ResumableTask,
    out: str | os.PathLike,
    *,
    skip: int = 1,
    max_examples: int | None = None,
    indices: Sequence[int] | None = None,
    executor: Executor | None = None,
    progress: bool = True,
) -> int:
    """Run ``task`` on the selected examples (``indices``, or :func:`select`'s) and write a row per example to
    ``out``; return the number of rows written.

    Resumes: rows already in ``out`` are skipped and a half-written last line is cut off, so running the same
    command again after a crash (even ``kill -9``) completes the output with no row lost or doubled. Rows are
    written as they arrive (in any order); a completed file is sorted by index. The task's settings are recorded
    with its rows and a resume with other ones is refused (the task's writer); settings that can certify nothing
    are refused before any work (:meth:`DatasetTask.prepare`).
    """
    size = task.prepare()
    if indices is None:
        indices = select(size, skip, max_examples)
    elif any(not 0 <= i < size for i in indices):
        raise ValueError(f"indices must lie in [0, {size}) for this dataset")
    executor = executor or LocalExecutor()
    writer = task.open_writer(out)
    try:
        todo = [i for i in indices if i not in writer.done]
        with tqdm(total=len(indices), initial=len(indices) - len(todo), desc=getattr(task, "mode", "run"), unit="ex",
                  disable=not progress) as bar:
            for row in executor.map(task, todo) if todo else ():
                writer.write(row)
                bar.update()
        writer.close(sort=True)
    finally:
        writer.close()
    return len(todo)
