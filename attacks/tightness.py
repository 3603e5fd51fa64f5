"""The empirical tightness of the certificate (Cohen et al. 2019, section 4): certify, attack each certified
example at a multiple of its radius, and judge the attack with PREDICT."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from scipy.stats import binomtest
from torch import nn
from tqdm.auto import tqdm

from rs_plugin import checks
from rs_plugin.certificate import ABSTAIN
from rs_plugin.checks import positive_int, probability
from rs_plugin.core import SmoothedClassifier

from ..adapters.torch import num_logits
from .smoothadv import SmoothAdvPGD


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
    """What :func:`tightness_experiment` found: per-factor counts and one row per example."""

    config: dict[str, Any]
    factors: dict[str, FactorResult]
    """Keyed by ``str(float(factor))``, e.g. ``"1.5"``."""
    rows: list[dict[str, Any]] = field(default_factory=list)
    """Per example: ``index``, ``label``, CERTIFY's ``prediction``, ``radius``, ``p_lower``, ``attacked``, and
    ``attacks`` (per factor: ``eps``, l2 ``distance`` moved, PREDICT's ``prediction`` on the adversarial input,
    ``outcome`` one of ``success``, ``abstain``, ``held``)."""

    def certified_accuracy(self, radii: float | Sequence[float]) -> np.ndarray:
        """The fraction of all examples certified correct at radius at least each of ``radii``."""
        radii = np.atleast_1d(np.asarray(radii, dtype=float))
        correct = np.array([row["prediction"] == row["label"] for row in self.rows])
        radius = np.array([row["radius"] for row in self.rows])
        return (correct[None, :] & (radius[None, :] >= radii[:, None])).mean(axis=1)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``{"config": ..., "factors": {"1.5": {"attempted": ..., ...}}, "examples": rows}``."""
        return {
            "config": self.config,
            "factors": {key: result.to_dict() for key, result in self.factors.items()},
            "examples": self.rows,
        }


def _factors(factors: Any) -> list[float]:
    values = [factors] if isinstance(factors, numbers.Real) else list(factors)
    if not values or not all(
        isinstance(f, numbers.Real) and not isinstance(f, bool) and math.isfinite(f) and f > 0 for f in values
    ):
        raise ValueError(f"factors must be one or more finite numbers > 0, got {factors!r}")
    if len(set(map(float, values))) != len(values):
        raise ValueError(f"factors must be distinct, got {values}")
    return [float(f) for f in values]


def tightness_experiment(
    base: nn.Module,
    x: Any,
    y: Any,
    sigma: float,
    *,
    factors: float | Sequence[float] = (1.5, 2.0),
    n0: int = 100,
    n: int = 10_000,
    alpha: float = 0.001,
    radius_tolerance: float | None = None,
    predict_n: int = 1000,
    predict_alpha: float = 0.001,
    steps: int = 20,
    num_noise: int = 32,
    reuse_noise: bool = False,
    attack_batch: int = 100,
    noise: str = "gaussian",
    batch_size: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
    indices: Sequence[int] | None = None,
    progress: bool = True,
) -> TightnessResult:
    """Cohen et al.'s tightness experiment on the smoothed classifier of ``base`` (logits; inputs in ``[0, 1]``).

    CERTIFY (``n0``, ``n``, ``alpha``) every example of ``x`` (a batch ``(N, *shape)``, labels ``y``); attack each
    example certified correct with radius ``R > 0`` by :class:`SmoothAdvPGD` (``steps``, ``num_noise``,
    ``reuse_noise``) within ``factor * R`` for each of ``factors``; judge each adversarial input with PREDICT
    (``predict_n`` fresh samples, ``predict_alpha``). A success is a class other than the label; an abstention
    is counted apart. Below factor 1 a success contradicts the certificate, which happens with probability at
    most ``alpha + predict_alpha`` per example. With ``radius_tolerance``, CERTIFY is sequential (a fraction of
    the samples, R within about that tolerance of fixed-n's; see :meth:`SmoothedClassifier.certify`).

    Reproducible for a given ``seed``: example ``k`` is named ``indices[k]`` (default ``k``; e.g. its position
    in the dataset) in the rows and certified with the noise of that index; each factor's attack and PREDICT on
    its outputs draw their own streams.
    """
    factor_list = _factors(factors)
    steps, num_noise, attack_batch = (
        positive_int(name, value)
        for name, value in (("steps", steps), ("num_noise", num_noise), ("attack_batch", attack_batch))
    )
    predict_n = positive_int("predict_n", predict_n)
    for name, value in (("alpha", alpha), ("predict_alpha", predict_alpha), ("confidence", confidence)):
        probability(name, value)
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    x = torch.as_tensor(x, dtype=torch.float32) if not isinstance(x, torch.Tensor) else x.detach().float()
    y = torch.as_tensor(y) if not isinstance(y, torch.Tensor) else y.detach()
    checks.batch("x", x, unit_range=True)
    num_classes = num_logits(base, x)
    checks.labels("y", y, len(x), num_classes)
    names = list(range(len(x))) if indices is None else [int(i) for i in indices]
    if len(names) != len(x) or len(set(names)) != len(names) or min(names) < 0:
        raise ValueError(f"indices must hold {len(x)} distinct non-negative ints, one per example")
    smoothed = SmoothedClassifier(base, num_classes, sigma, noise=noise, batch_size=batch_size, seed=seed)
    certificates = smoothed.certify_many(
        x, n0, n, alpha, radius_tolerance=radius_tolerance, indices=names, progress=progress
    )
    rows = [
        {
            "index": names[i],
            "label": int(y[i]),
            "prediction": cert.prediction,
            "radius": cert.radius,
            "p_lower": cert.p_lower,
            "attacked": cert.prediction == int(y[i]) and cert.radius > 0,
            "attacks": {},
        }
        for i, cert in enumerate(certificates)
    ]
    attacked = [i for i, row in enumerate(rows) if row["attacked"]]
    radius = torch.tensor([rows[i]["radius"] for i in attacked], dtype=torch.float32)
    results = {}
    for k, factor in enumerate(factor_list):
        attack_seed = int(np.random.SeedSequence([seed, k]).generate_state(1)[0] >> 1)
        attack = SmoothAdvPGD(
            base,
            sigma,
            1.0,
            steps=steps,
            num_noise=num_noise,
            reuse_noise=reuse_noise,
            noise=noise,
            batch_size=batch_size,
            seed=attack_seed,
        )
        adversarial = []
        for start in tqdm(
            range(0, len(attacked), attack_batch), desc=f"attack {factor:g}R", disable=not progress, unit="batch"
        ):
            chosen = attacked[start : start + attack_batch]
            attack.eps = factor * radius[start : start + attack_batch]
            adversarial.append(attack(x[chosen], y[chosen]).cpu())
        adversarial_x = torch.cat(adversarial) if adversarial else x[:0]
        predictions = smoothed.predict_many(
            adversarial_x,
            predict_n,
            predict_alpha,
            indices=[(k + 1) * (max(names) + 1) + names[i] for i in attacked],
            progress=progress,
        )
        distances = (adversarial_x - x[attacked]).flatten(1).norm(dim=1)
        key = str(factor)
        for i, eps, distance, prediction in zip(attacked, radius * factor, distances, predictions, strict=True):
            outcome = "abstain" if prediction == ABSTAIN else "held" if prediction == rows[i]["label"] else "success"
            rows[i]["attacks"][key] = {
                "eps": float(eps),
                "distance": float(distance),
                "prediction": int(prediction),
                "outcome": outcome,
            }
        outcomes = [rows[i]["attacks"][key]["outcome"] for i in attacked]
        results[key] = FactorResult(
            factor, len(attacked), outcomes.count("success"), outcomes.count("abstain"), confidence
        )
    config = {
        "sigma": smoothed.sigma,
        "noise": noise,
        "num_examples": len(x),
        "num_classes": num_classes,
        "factors": factor_list,
        "n0": n0,
        "n": n,
        "alpha": alpha,
        "radius_tolerance": radius_tolerance,
        "predict_n": predict_n,
        "predict_alpha": predict_alpha,
        "steps": steps,
        "num_noise": num_noise,
        "reuse_noise": reuse_noise,
        "attack_batch": attack_batch,
        "seed": seed,
        "confidence": confidence,
    }
    return TightnessResult(config, results, rows)
