"""Off-the-shelf networks on digits: an undefended network with and without a denoiser trained for it, a
Gaussian-trained network, and an ensemble of Gaussian-trained networks, certified side by side.

The experiment behind ``benchmarks/denoised_smoothing.py`` and its test: the denoiser is trained with Salman et
al.'s stability objective by the ``denoiser`` trainer plugin, in the loop every training method shares.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from rs_plugin.adapters.denoise import Denoised, Ensemble
from rs_plugin.adapters.training import digits_denoiser, digits_model
from rs_plugin.core import SmoothedClassifier
from rs_plugin.results import Results

UNDEFENDED, DENOISED, ENSEMBLE = "undefended", "undefended + denoiser", "ensemble"


@dataclass(frozen=True)
class OffTheShelfConfig:
    """The experiment's settings: smoothing ``sigma``; CERTIFY's ``n0``, ``n``, ``alpha`` on the first
    ``num_examples`` digits of the test split (noise ``seed``); the ensemble's member ``seeds``."""

    sigma: float = 0.25
    n0: int = 100
    n: int = 2000
    alpha: float = 0.001
    num_examples: int = 360
    seeds: tuple[int, ...] = (0, 1, 2)
    denoiser_epochs: int = 60
    batch_size: int = 1000
    seed: int = 0


@dataclass
class OffTheShelfResult:
    """Per model (named :data:`UNDEFENDED`, :data:`DENOISED`, :func:`member_name` of each seed, :data:`ENSEMBLE`):
    CERTIFY's predictions and radii on the same examples, and the seconds spent training it (or loading it from
    the model cache)."""

    config: OffTheShelfConfig
    labels: np.ndarray
    predictions: dict[str, np.ndarray] = field(default_factory=dict)
    radii: dict[str, np.ndarray] = field(default_factory=dict)
    train_seconds: dict[str, float] = field(default_factory=dict)

    def certified_radii(self, name: str) -> np.ndarray:
        """Each example's certified radius, 0 where the prediction is wrong or abstains."""
        return np.where(self.predictions[name] == self.labels, self.radii[name], 0.0)

    def certified_accuracy(self, name: str, radius: float) -> float:
        """The fraction of examples certified correct with a radius of at least ``radius``."""
        correct = self.predictions[name] == self.labels
        return float(np.mean(correct & (self.radii[name] >= radius)))

    def acr(self, name: str) -> float:
        """The average certified radius (Zhai et al. 2020): the mean over examples of the certified radius,
        0 for a wrong or abstained prediction."""
        return float(np.mean(self.certified_radii(name)))

    def criteria(self) -> dict[str, float]:
        """The issue's criteria at radius sigma: the denoised undefended network's certified accuracy as a fraction
        of the first Gaussian-trained member's and its gain over the undefended network; the ensemble's ACR as a
        fraction of its best member's."""
        sigma, members = self.config.sigma, [member_name(s) for s in self.config.seeds]
        denoised = self.certified_accuracy(DENOISED, sigma)
        return {
            "denoised / gaussian": denoised / max(self.certified_accuracy(members[0], sigma), 1e-12),
            "denoised - undefended": denoised - self.certified_accuracy(UNDEFENDED, sigma),
            "ensemble ACR / best member's": self.acr(ENSEMBLE) / max(max(self.acr(m) for m in members), 1e-12),
        }

    def results(self, name: str) -> Results:
        """The rows of ``name`` as :class:`~rs_plugin.results.Results` (for :mod:`rs_plugin.analysis`)."""
        data = {
            "idx": np.arange(len(self.labels)),
            "label": self.labels,
            "predict": self.predictions[name],
            "radius": self.radii[name],
            "correct": (self.predictions[name] == self.labels).astype(np.int64),
        }
        return Results(name, tuple(data), data)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the config, and per model its ACR, certified accuracy at sigma and training seconds."""
        sigma = self.config.sigma
        return {
            "config": asdict(self.config),
            "models": {
                name: {"acr": self.acr(name), f"certified_accuracy@{sigma:g}": self.certified_accuracy(name, sigma),
                       "train_seconds": self.train_seconds.get(name, 0.0)}
                for name in self.predictions
            },
        }


def member_name(seed: int) -> str:
    """The name of the Gaussian-trained ensemble member of ``seed`` in an :class:`OffTheShelfResult`."""
    return f"gaussian (seed {seed})"


def _timed(build: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    return build(), time.perf_counter() - start


def off_the_shelf_experiment(config: OffTheShelfConfig, *, progress: bool = True) -> OffTheShelfResult:
    """Train (digits classifiers are cached) and certify: the undefended digits CNN (``digits_model(0)``), it
    behind a denoiser trained for it, the Gaussian-trained CNN of each of ``config.seeds``
    (``digits_model(sigma, seed=s)``) and their :class:`Ensemble`. Every model is certified with the same noise
    seed on the same examples."""
    from rs_plugin.datasets import digits_arrays

    x, y = digits_arrays("test")
    x, y = x[: config.num_examples], y[: config.num_examples]
    result = OffTheShelfResult(config, y)
    undefended, result.train_seconds[UNDEFENDED] = _timed(lambda: digits_model(0.0, progress=progress))
    denoiser, result.train_seconds[DENOISED] = _timed(
        lambda: digits_denoiser(undefended, config.sigma, epochs=config.denoiser_epochs, seed=config.seed,
                                progress=progress)
    )
    models = {UNDEFENDED: undefended, DENOISED: Denoised(denoiser, undefended)}
    for s in config.seeds:
        name = member_name(s)
        models[name], result.train_seconds[name] = _timed(lambda s=s: digits_model(config.sigma, seed=s,
                                                                                   progress=progress))
    models[ENSEMBLE] = Ensemble([models[member_name(s)] for s in config.seeds])
    for name, model in models.items():
        smoothed = SmoothedClassifier(model, 10, config.sigma, batch_size=config.batch_size, seed=config.seed)
        certificates = smoothed.certify_many(x, config.n0, config.n, config.alpha, progress=progress)
        result.predictions[name] = np.array([c.prediction for c in certificates])
        result.radii[name] = np.array([c.radius for c in certificates])
    return result
