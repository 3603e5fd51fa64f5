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
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tqdm.auto import tqdm

from . import diagnostics
from .checks import positive_int, probability, radii
from .core import SmoothedClassifier
from .executors import Executor, LocalExecutor
from .plugins import make_noise
from .results import CERTIFY_COLUMNS, PREDICT_COLUMNS, SAMPLES_COLUMN, ResultsWriter, task_settings

MODES = ("certify", "predict")


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
    dataset: str, sigma: float, *, model: str | None = None, checkpoint: str | None = None
) -> Any:
    """The base classifier, in eval mode: ``model()`` for a ``module:function`` spec, the network of a
    checkpoint in the paper's format, or (digits only, neither given) the embedded digits CNN trained
    with Gaussian noise ``sigma`` (trained once, cached)."""
    from .adapters.datasets import NUM_CLASSES

    if model is not None and checkpoint is not None:
        raise ValueError("model and checkpoint: give one of them, not both")
    if model is not None:
        network = load_callable(model)()
    elif checkpoint is not None:
        from .adapters.models import ARCHITECTURES, load_checkpoint

        network, arch = load_checkpoint(checkpoint)
        if ARCHITECTURES[arch][3] != NUM_CLASSES[dataset]:
            raise ValueError(
                f"checkpoint: {arch} has {ARCHITECTURES[arch][3]} classes, {dataset} has {NUM_CLASSES[dataset]}"
            )
    elif dataset == "digits":
        from .adapters.training import digits_model

        network = digits_model(sigma)
    else:
        raise ValueError(f"model: give a model or a checkpoint for {dataset} (only digits has a built-in one)")
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
    checkpoint: str | None = None
    split: str = "test"
    data_dir: str | None = None
    noise: str = "gaussian"
    n0: int = 100
    n: int = 100_000
    alpha: float = 0.001
    batch: int = 1000
    seed: int = 0
    target_radius: float | tuple[float, ...] | None = None
    device: str | None = None

    def __post_init__(self) -> None:
        from .adapters.datasets import NUM_CLASSES

        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.dataset not in NUM_CLASSES:
            raise ValueError(f"dataset: unknown dataset {self.dataset!r}; known: {', '.join(NUM_CLASSES)}")
        if self.split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {self.split!r}")
        for name in ("n0", "n", "batch"):
            positive_int(name, getattr(self, name))
        probability("alpha", self.alpha)
        make_noise(self.noise, self.sigma)  # a known noise family, a valid sigma
        if self.seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {self.seed}")
        if self.target_radius is not None:
            if self.mode != "certify":
                raise ValueError("target_radius applies to certify only")
            object.__setattr__(self, "target_radius", tuple(radii("target_radius", self.target_radius)))

    @property
    def columns(self) -> tuple[str, ...]:
        """The output columns: the paper's, plus ``samples`` for CERTIFY with target radii."""
        if self.mode == "predict":
            return PREDICT_COLUMNS
        return CERTIFY_COLUMNS if self.target_radius is None else (*CERTIFY_COLUMNS, SAMPLES_COLUMN)

    def load_dataset(self) -> Any:
        """The dataset, a sequence of ``(x in [0, 1], label)``."""
        from .adapters.datasets import load_dataset

        return load_dataset(self.dataset, self.split, self.data_dir)

    def setup(self) -> tuple[SmoothedClassifier, Any]:
        """Load the base classifier (on ``device``, default: CUDA when available) and the dataset."""
        import torch

        from .adapters.datasets import NUM_CLASSES

        device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
        base = load_base_classifier(self.dataset, self.sigma, model=self.model, checkpoint=self.checkpoint)
        smoothed = SmoothedClassifier(
            base, NUM_CLASSES[self.dataset], self.sigma, noise=self.noise, batch_size=self.batch, seed=self.seed,
            device=device,
        )
        return smoothed, self.load_dataset()

    def __call__(self, state: tuple[SmoothedClassifier, Any], index: int) -> dict[str, Any]:
        smoothed, dataset = state
        x, label = dataset[index]
        label = int(label)
        start = time.perf_counter()
        if self.mode == "certify":
            certificate = smoothed.certify(
                x, self.n0, self.n, self.alpha, target_radius=self.target_radius, index=index
            )
            prediction = certificate.prediction
            row = {"idx": index, "label": label, "predict": prediction, "radius": certificate.radius}
            if self.target_radius is not None:
                row[SAMPLES_COLUMN] = certificate.num_samples
        else:
            prediction = smoothed.predict(x, self.n, self.alpha, index=index)
            row = {"idx": index, "label": label, "predict": prediction}
        row["correct"] = int(prediction == label)
        row["time"] = time.perf_counter() - start
        return row

    def prepare(self) -> int:
        """Check on the driver what can be checked before any worker starts (the dataset loads, the model
        builds; the embedded digits model is trained and cached once); return the dataset's size."""
        load_base_classifier(self.dataset, self.sigma, model=self.model, checkpoint=self.checkpoint)
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
    diagnostics.check_run(task.mode, make_noise(task.noise, task.sigma), task.n, task.alpha, task.target_radius)
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
