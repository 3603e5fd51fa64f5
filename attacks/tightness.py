"""The empirical tightness of the certificate (Cohen et al. 2019, section 4): certify, attack each certified
example at a multiple of its radius, and judge the attack with PREDICT."""

from __future__ import annotations

import dataclasses
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from scipy.stats import binomtest
from torch import nn

from rs_plugin import analysis, checks, diagnostics
from rs_plugin.certificate import ABSTAIN
from rs_plugin.checks import positive_int, probability
from rs_plugin.checks import seed as check_seed
from rs_plugin.core import SmoothedClassifier
from rs_plugin.executors import Executor
from rs_plugin.plugins import make_noise
from rs_plugin.results import RecordsWriter, Results, ResultsError
from rs_plugin.runs import run
from rs_plugin.seeding import stream_seed

from ..adapters.torch import SmoothedModule, check_batch, check_labels, num_logits
from .smoothadv import SmoothAdvPGD


@dataclass(frozen=True)
class TightnessConfig:
    """The settings of :func:`tightness_experiment`: CERTIFY (``n0``, ``n``, ``alpha``) with ``noise`` of level
    ``sigma``; :class:`SmoothAdvPGD` (``steps``, ``num_noise`` draws per step, ``reuse_noise``) within each of
    ``factors`` times the certified radius, ``restarts`` times (the first from the input, the others from random
    starts; the one where the soft smoothed classifier gives the label the least probability, estimated on
    ``predict_n`` draws of a stream of its own, is judged); PREDICT (``predict_n``, ``predict_alpha``) on the attacked
    input; intervals at level ``confidence``; every random stream derived from ``seed``. With ``radius_tolerance``,
    CERTIFY is sequential (see :meth:`rs_plugin.SmoothedClassifier.certify`). Checked on construction."""

    sigma: float
    factors: tuple[float, ...] = (1.5, 2.0)
    n0: int = 100
    n: int = 10_000
    alpha: float = 0.001
    radius_tolerance: float | None = None
    predict_n: int = 1000
    predict_alpha: float = 0.001
    steps: int = 20
    num_noise: int = 32
    reuse_noise: bool = False
    restarts: int = 1
    noise: str = "gaussian"
    batch_size: int = 1000
    seed: int = 0
    confidence: float = 0.95

    def __post_init__(self) -> None:
        object.__setattr__(self, "factors", _factors(self.factors))
        for name in ("n0", "n", "predict_n", "steps", "num_noise", "batch_size", "restarts"):
            positive_int(name, getattr(self, name))
        for name in ("alpha", "predict_alpha", "confidence"):
            probability(name, getattr(self, name))
        if check_seed("seed", self.seed) is None:
            raise ValueError("seed must be a non-negative int, got None")
        object.__setattr__(self, "sigma", make_noise(self.noise, self.sigma).sigma)
        object.__setattr__(self, "reuse_noise", bool(self.reuse_noise))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (``factors`` as a list; ``restarts`` only when there are several, so that the records of
        earlier versions, made with one, stay valid)."""
        document = {**dataclasses.asdict(self), "factors": list(self.factors)}
        if self.restarts == 1:
            del document["restarts"]
        return document


@dataclass(frozen=True)
class AttackResult:
    """The attack on one example within ``eps`` (``factor`` times its radius): the l2 ``distance`` it moved the
    input, PREDICT's ``prediction`` on the attacked input, and the ``outcome``: ``success`` (a wrong class),
    ``abstain`` or ``held`` (the label)."""

    eps: float
    distance: float
    prediction: int
    outcome: str


@dataclass(frozen=True)
class ExampleResult:
    """One example: its ``index`` (e.g. its position in the dataset), ``label``, CERTIFY's ``prediction``,
    ``radius`` and ``p_lower``, and the ``attacks`` by factor key (``str(factor)``, e.g. ``"1.5"``) when it was
    attacked (certified correct with a radius > 0)."""

    index: int
    label: int
    prediction: int
    radius: float
    p_lower: float
    attacks: dict[str, AttackResult] = field(default_factory=dict)

    @property
    def attacked(self) -> bool:
        """Whether the example was certified correct with radius > 0, and so attacked."""
        return self.prediction == self.label and self.radius > 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the fields, ``attacked``, and each attack as a dict."""
        return {
            "index": self.index,
            "label": self.label,
            "prediction": self.prediction,
            "radius": self.radius,
            "p_lower": self.p_lower,
            "attacked": self.attacked,
            "attacks": {key: dataclasses.asdict(attack) for key, attack in self.attacks.items()},
        }

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> ExampleResult:
        """The inverse of :meth:`to_dict`."""
        attacks = {key: AttackResult(**attack) for key, attack in record["attacks"].items()}
        fields = ("index", "label", "prediction", "radius", "p_lower")
        return cls(**{name: record[name] for name in fields}, attacks=attacks)


@dataclass(frozen=True)
class FactorResult:
    """The attack within ``factor`` times each certified radius: of ``attempted`` examples, PREDICT returned
    a wrong class for ``succeeded`` and abstained on ``abstained`` (never counted as a success)."""

    factor: float
    attempted: int
    succeeded: int
    abstained: int
    confidence: float = 0.95

    @property
    def success_rate(self) -> float:
        """``succeeded / attempted`` (NaN when nothing was attempted; None in :meth:`to_dict`)."""
        return self.succeeded / self.attempted if self.attempted else math.nan

    @property
    def interval(self) -> tuple[float, float]:
        """Exact (Clopper-Pearson) two-sided interval on the success probability at level ``confidence``."""
        if not self.attempted:
            return (math.nan, math.nan)
        ci = binomtest(self.succeeded, self.attempted).proportion_ci(self.confidence, method="exact")
        return (float(ci.low), float(ci.high))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (``None`` for the rate and interval when nothing was attempted)."""
        low, high = self.interval if self.attempted else (None, None)
        return {
            "factor": self.factor,
            "attempted": self.attempted,
            "succeeded": self.succeeded,
            "abstained": self.abstained,
            "held": self.attempted - self.succeeded - self.abstained,
            "success_rate": self.success_rate if self.attempted else None,
            "ci_low": low,
            "ci_high": high,
            "confidence": self.confidence,
        }


@dataclass
class TightnessResult:
    """What :func:`tightness_experiment` found: one row per example, and per-factor counts drawn from them."""

    config: TightnessConfig
    rows: list[ExampleResult]
    num_classes: int
    dimension: int = 0
    """Coordinates per input (d)."""

    @property
    def largest_radius(self) -> float:
        """The largest radius fixed-n CERTIFY's ``n`` and ``alpha`` can give (every sample voting for the class;
        :func:`rs_plugin.diagnostics.largest_radius`, 0 when it can only abstain)."""
        config = self.config
        return diagnostics.largest_radius(make_noise(config.noise, config.sigma), config.n, config.alpha)

    @property
    def saturated(self) -> int:
        """Attacked examples certified at :attr:`largest_radius` (:func:`rs_plugin.analysis.saturated`): their true
        radius may be far larger."""
        if self.largest_radius == 0:  # CERTIFY can only abstain: nothing was attacked
            return 0
        return int(analysis.saturated(self.results(), self.largest_radius, digits=None).sum())

    @property
    def factors(self) -> dict[str, FactorResult]:
        """Per factor, keyed by ``str(factor)`` (e.g. ``"1.5"``): the attacked examples' outcomes."""
        attacked = [row for row in self.rows if row.attacked]
        results = {}
        for factor in self.config.factors:
            outcomes = [row.attacks[str(factor)].outcome for row in attacked]
            results[str(factor)] = FactorResult(
                factor, len(outcomes), outcomes.count("success"), outcomes.count("abstain"), self.config.confidence
            )
        return results

    def results(self) -> Results:
        """The certificates as a results table (``idx label predict radius correct``) for :mod:`rs_plugin.analysis`."""
        columns = ("idx", "label", "predict", "radius", "correct")
        data = {
            "idx": np.array([row.index for row in self.rows], dtype=np.int64),
            "label": np.array([row.label for row in self.rows], dtype=np.int64),
            "predict": np.array([row.prediction for row in self.rows], dtype=np.int64),
            "radius": np.array([row.radius for row in self.rows], dtype=np.float64),
        }
        data["correct"] = (data["predict"] == data["label"]).astype(np.int64)
        return Results("tightness experiment", columns, data)

    def certified_accuracy(self, radii: float | Sequence[float]) -> np.ndarray:
        """The fraction of all examples certified correct at radius at least each of ``radii``
        (:func:`rs_plugin.analysis.certified_accuracy`)."""
        return analysis.certified_accuracy(self.results(), radii)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``{"config": ..., "factors": {"1.5": {"attempted": ..., ...}}, "examples": rows}``."""
        return {
            "config": {**self.config.to_dict(), "num_examples": len(self.rows), "num_classes": self.num_classes,
                       "dimension": self.dimension},
            "factors": {key: result.to_dict() for key, result in self.factors.items()},
            "examples": [row.to_dict() for row in self.rows],
        }


def _factors(factors: Any) -> tuple[float, ...]:
    values = tuple(float(f) for f in checks.positive_numbers("factors", factors))
    if len(set(values)) != len(values):
        raise ValueError(f"factors must be distinct, got {list(values)}")
    return values


class _Experiment:
    """The per-example work of :func:`tightness_experiment`; every random stream is ``stream_seed(seed, purpose,
    index)`` of the example's index: CERTIFY's, each factor's attack (``attack-1.5``) and PREDICT on its output
    (``predict-1.5``), so that an example's row does not depend on which others run, or in which run."""

    def __init__(self, base: nn.Module, num_classes: int, config: TightnessConfig) -> None:
        self.base, self.config = base, config
        options = {"noise": config.noise, "batch_size": config.batch_size}
        self.smoothed = SmoothedClassifier(base, num_classes, config.sigma, seed=config.seed, **options)
        self.judges = {
            str(factor): SmoothedClassifier(
                base, num_classes, config.sigma, seed=stream_seed(config.seed, f"predict-{factor}"), **options
            )
            for factor in config.factors
        }

    def __call__(self, x: torch.Tensor, label: int, index: int) -> ExampleResult:
        config = self.config
        certificate = self.smoothed.certify(
            x, config.n0, config.n, config.alpha, radius_tolerance=config.radius_tolerance, index=index
        )
        row = ExampleResult(index, label, certificate.prediction, certificate.radius, certificate.p_lower)
        if not row.attacked:
            return row
        return dataclasses.replace(row, attacks={str(factor): self.attack(x, row, factor) for factor in config.factors})

    def attack(self, x: torch.Tensor, row: ExampleResult, factor: float) -> AttackResult:
        """SmoothAdvPGD within ``factor * radius`` of ``x`` (the best of ``restarts``), judged by PREDICT on fresh
        noise."""
        config = self.config
        eps = factor * row.radius
        candidates = []
        for restart in range(config.restarts):
            purpose = f"attack-{factor}" if restart == 0 else f"attack-{factor}-restart{restart}"
            attack = SmoothAdvPGD(
                self.base, config.sigma, eps, steps=config.steps, num_noise=config.num_noise,
                random_start=restart > 0, reuse_noise=config.reuse_noise, noise=config.noise,
                batch_size=config.batch_size, seed=stream_seed(config.seed, purpose, row.index),
            )  # fmt: skip
            candidates.append(attack(x[None], torch.tensor([row.label]))[0].cpu())
        adversarial = candidates[0] if len(candidates) == 1 else self.weakest(candidates, row, factor)
        prediction = self.judges[str(factor)].predict(
            adversarial, config.predict_n, config.predict_alpha, index=row.index
        )
        outcome = "abstain" if prediction == ABSTAIN else "held" if prediction == row.label else "success"
        return AttackResult(eps, float((adversarial - x).norm()), int(prediction), outcome)


    def weakest(self, candidates: list[torch.Tensor], row: ExampleResult, factor: float) -> torch.Tensor:
        """The candidate where the soft smoothed classifier gives the label the least probability (``predict_n``
        draws per candidate from a stream of its own, so that PREDICT's judgement stays on noise never seen)."""
        config = self.config
        smoothed = SmoothedModule(self.base, config.sigma, num_noise=config.predict_n, noise=config.noise,
                                  batch_size=config.batch_size, seed=stream_seed(config.seed, f"select-{factor}",
                                                                                 row.index))
        with torch.no_grad():
            log_probs = smoothed(torch.stack(candidates))[:, row.label]
        return candidates[int(log_probs.argmin())]


@dataclass(frozen=True)
class ArraySource:
    """The examples of an experiment held in memory: the base classifier, inputs ``x`` (a tensor batch in
    ``[0, 1]``), labels ``y`` and each example's name (its index in the results, e.g. its dataset position), checked
    on construction (the base's number of classes by one forward pass)."""

    base: nn.Module
    x: torch.Tensor
    y: torch.Tensor
    names: tuple[int, ...]
    num_classes: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "num_classes", _check_examples(self.base, self.x, self.y, self.names))

    def load(self) -> tuple[nn.Module, torch.Tensor, torch.Tensor, tuple[int, ...], int]:
        """``(base, x, y, names, num_classes)``."""
        return self.base, self.x, self.y, self.names, self.num_classes


@dataclass(frozen=True)
class TightnessTask:
    """The tightness experiment as a task the executors run (:mod:`rs_plugin.executors`, ``--executor ray``) and
    :func:`rs_plugin.runs.run` resumes: one JSON record per example (:meth:`ExampleResult.to_dict`), whose
    ``index`` is the example's name. ``source.load()`` gives the base classifier, the inputs, labels, names
    and the number of classes (:class:`ArraySource`); ``identity`` is recorded with
    the settings (what the rows depend on besides ``config``: the model and the data)."""

    config: TightnessConfig
    source: Any
    identity: Mapping[str, Any] = field(default_factory=dict)
    mode: str = "tightness"

    def prepare(self) -> int:
        """Check the settings and the data; return one more than the largest example name."""
        diagnostics.check_certify(make_noise(self.config.noise, self.config.sigma), self.config.n, self.config.alpha)
        return max(self.source.load()[3]) + 1

    def setup(self) -> tuple[_Experiment, torch.Tensor, torch.Tensor, dict[int, int]]:
        base, x, y, names, num_classes = self.source.load()
        return _Experiment(base, num_classes, self.config), x, y, {name: k for k, name in enumerate(names)}

    def __call__(self, state: tuple, index: int) -> dict[str, Any]:
        experiment, x, y, position = state
        k = position[index]
        return experiment(x[k], int(y[k]), index).to_dict()

    def open_writer(self, out: str | os.PathLike) -> RecordsWriter:
        return RecordsWriter(out, self.settings())

    def settings(self) -> dict[str, Any]:
        """What the records depend on: the config and the identity."""
        return {**self.config.to_dict(), **self.identity}


def _check_examples(base: nn.Module, x: torch.Tensor, y: torch.Tensor, names: Sequence[int]) -> int:
    """Check inputs, labels and names; return the number of classes of ``base``."""
    check_batch("x", x, unit_range=True)
    num_classes = num_logits(base, x)
    check_labels("y", y, len(x), num_classes)
    if len(names) != len(x) or len(set(names)) != len(names) or min(names) < 0:
        raise ValueError(f"indices must hold {len(x)} distinct non-negative ints, one per example")
    return num_classes


def tightness_experiment(
    base: nn.Module,
    x: Any,
    y: Any,
    config: TightnessConfig,
    *,
    indices: Sequence[int] | None = None,
    out: str | os.PathLike | None = None,
    identity: Mapping[str, Any] | None = None,
    executor: Executor | None = None,
    progress: bool = True,
) -> TightnessResult:
    """Cohen et al.'s tightness experiment on the smoothed classifier of ``base`` (logits; inputs in ``[0, 1]``).

    CERTIFY every example of ``x`` (a batch ``(N, *shape)``, labels ``y``); attack each example certified correct
    with radius ``R > 0`` by :class:`SmoothAdvPGD` within ``factor * R`` for each of ``config.factors``; judge
    each attacked input with PREDICT on fresh samples. A success is a class other than the label; an abstention
    is counted apart. Below factor 1 a success contradicts the certificate, which happens with probability at
    most ``alpha + predict_alpha`` per example. With ``radius_tolerance``, CERTIFY is sequential (a fraction of
    the samples, R within about that tolerance of fixed-n's; see :meth:`SmoothedClassifier.certify`).

    Example ``k`` is named ``indices[k]`` (default ``k``; e.g. its position in the dataset) and its row depends
    only on ``config`` and that index. The examples run as a :class:`TightnessTask` through ``executor`` (default:
    this process) and :func:`rs_plugin.runs.run`: with ``out``, each row is appended to that file (JSON Lines, the
    first line recording ``config`` and ``identity``, e.g. the model and data) as soon as it is done, and the rows
    already there are reused: rerunning after a crash (even ``kill -9``) completes the experiment with the rows of
    one uninterrupted run; a file made with other settings or other labels, or not by this function, is refused
    (:class:`rs_plugin.results.RecordsWriter`).
    """
    if not isinstance(config, TightnessConfig):
        raise TypeError(f"config must be a TightnessConfig, got {type(config).__name__}")
    x = torch.as_tensor(x, dtype=torch.float32) if not isinstance(x, torch.Tensor) else x.detach().float()
    y = torch.as_tensor(y) if not isinstance(y, torch.Tensor) else y.detach()
    check_batch("x", x, unit_range=True)
    x = x.cpu()
    names = tuple(range(len(x))) if indices is None else tuple(int(i) for i in indices)
    source = ArraySource(base, x, y, names)
    task = TightnessTask(config, source, dict(identity or {}))
    with tempfile.TemporaryDirectory() as scratch:
        path = os.path.join(scratch, "rows.jsonl") if out is None else out
        run(task, path, indices=list(names), executor=executor, progress=progress)
        with task.open_writer(path) as records:
            rows = [ExampleResult.from_dict(records.records[name]) for name in names]
    for row, label in zip(rows, y.tolist(), strict=True):
        if row.label != label:
            raise ResultsError(f"{path}: example {row.index} has label {row.label} there but {label} here: the rows "
                               "were made on other data; give another file")
    return TightnessResult(config, rows, source.num_classes, math.prod(x.shape[1:]))
