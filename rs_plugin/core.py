"""The smoothed classifier: PREDICT and CERTIFY of Cohen, Rosenfeld & Kolter (ICML 2019)."""

from __future__ import annotations

import itertools
import math
import numbers
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from . import diagnostics, sequential
from .bounds import lower_confidence_bound, top_two_differ
from .certificate import ABSTAIN, Certificate
from .checks import positive_int, probability, radii
from .checks import seed as check_seed
from .plugins import make_backend, make_noise

# Independent random streams: calls without an index, and per-example streams for each purpose.
_CALL, _CERTIFY, _PREDICT, _COUNTS = range(4)


class SmoothedClassifier:
    """The smoothed classifier ``g(x) = argmax_c P(f(x + noise) = c)`` of a base classifier ``f``.

    ``base`` is anything a backend plugin accepts: a callable mapping a float32 batch ``(B, *shape)``
    to labels ``(B,)`` or scores ``(B, K)``, a ``torch.nn.Module`` returning logits, an ART classifier.
    Noise is added to the raw input, so put any normalisation inside the base classifier.

    With an integer ``seed`` the results are reproducible: the k-th call on a fresh instance, or any
    call given ``index=i`` (a dataset position), always draws the same noise.
    """

    def __init__(
        self,
        base: Any,
        num_classes: int,
        sigma: float,
        *,
        noise: str = "gaussian",
        batch_size: int = 1000,
        seed: int | None = None,
        device: Any = None,
    ) -> None:
        if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral):
            raise TypeError(f"num_classes must be an int, got {type(num_classes).__name__}")
        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}")
        check_seed("seed", seed)
        self.noise = make_noise(noise, sigma)
        self.batch_size = positive_int("batch_size", batch_size)
        self.num_classes = int(num_classes)
        self.sigma = self.noise.sigma
        self.seed = seed
        self.base = base
        self.backend = make_backend(base, self.num_classes, device)
        self._entropy = np.random.SeedSequence(seed).entropy
        self._calls = 0

    def __repr__(self) -> str:
        return (
            f"SmoothedClassifier({type(self.base).__name__}, num_classes={self.num_classes}, "
            f"noise={self.noise!r}, seed={self.seed})"
        )

    def _generator(self, purpose: int, index: int | None) -> Any:
        if check_seed("index", index) is None:
            key: tuple[int, ...] = (_CALL, self._calls)
            self._calls += 1
        else:
            key = (purpose, int(index))
        state = np.random.SeedSequence(self._entropy, spawn_key=key).generate_state(1, np.uint64)
        return self.backend.generator(int(state[0]))

    def _counts(self, x: Any, num: int, generator: Any) -> np.ndarray:
        return self.backend.counts(x, num, self.noise, generator, self.batch_size)

    def counts(self, x: Any, num: int, *, index: int | None = None) -> np.ndarray:
        """Class counts (length ``num_classes``) of the base classifier on ``num`` noisy copies of ``x``."""
        num = positive_int("num", num)
        prepared = self.backend.prepare(x)
        return self._counts(prepared, num, self._generator(_COUNTS, index))

    def predict(self, x: Any, n: int, alpha: float, *, index: int | None = None) -> int:
        """PREDICT: g's class at ``x``, or :data:`ABSTAIN`.

        With probability at least ``1 - alpha`` a returned class is g(x) (two-sided binomial test of the
        top two counts among ``n`` samples; abstains when its p-value exceeds ``alpha``).
        """
        n, alpha = positive_int("n", n), probability("alpha", alpha)
        prepared = self.backend.prepare(x)
        counts = self._counts(prepared, n, self._generator(_PREDICT, index))
        first, second = np.argsort(counts, kind="stable")[::-1][:2]
        return int(first) if top_two_differ(int(counts[first]), int(counts[second]), alpha) else ABSTAIN

    def certify(
        self,
        x: Any,
        n0: int,
        n: int,
        alpha: float,
        *,
        target_radius: float | Sequence[float] | None = None,
        index: int | None = None,
    ) -> Certificate:
        """CERTIFY: g's class at ``x`` and a radius within which g is constant.

        ``n0`` samples select the class; ``n`` fresh samples bound its probability from below
        (one-sided Clopper-Pearson at level ``alpha``); the radius follows from the noise. With
        probability at least ``1 - alpha`` the returned class is g(x) and g returns it within the radius.
        Abstains when the bound is below 1/2.

        With ``target_radius`` (a radius or a list of radii) sampling stops as soon as it is decided
        whether the radius is certified, drawing at most ``n`` estimation samples, with the same
        guarantee (see :mod:`rs_plugin.sequential`); ``num_samples`` reports what was used.
        """
        n0, n, alpha = positive_int("n0", n0), positive_int("n", n), probability("alpha", alpha)
        targets = None if target_radius is None else radii("target_radius", target_radius)
        prepared = self.backend.prepare(x)
        generator = self._generator(_CERTIFY, index)
        selected = int(np.argmax(self._counts(prepared, n0, generator)))
        if targets is None:
            count, used = int(self._counts(prepared, n, generator)[selected]), n
            p_lower = lower_confidence_bound(count, n, alpha)
        else:
            count, used, p_lower = sequential.estimate(
                lambda m: int(self._counts(prepared, m, generator)[selected]),
                n,
                alpha,
                [self.noise.p_needed(r) for r in targets],
            )
        if p_lower < 0.5:
            prediction, radius = ABSTAIN, 0.0
        else:
            prediction, radius = selected, self.noise.radius(p_lower)
        return Certificate(
            prediction=prediction,
            radius=radius,
            norm=self.noise.norm,
            p_lower=p_lower,
            num_samples=n0 + used,
            count=count,
            n=used,
            selected=selected,
            radii=self.noise.radii(radius, math.prod(np.shape(x))),
        )

    def predict_many(
        self,
        xs: Iterable[Any],
        n: int,
        alpha: float,
        *,
        indices: Iterable[int] | None = None,
        progress: bool = True,
    ) -> np.ndarray:
        """PREDICT on every input of ``xs`` with a progress bar; example ``k`` is seeded by ``indices[k]``
        (default ``k``), so that any split of a dataset gives the same answers. Refuses an ``n`` and ``alpha``
        that always abstain, before any sample (:mod:`rs_plugin.diagnostics`)."""
        diagnostics.check_predict(n, alpha)
        diagnostics.check_input_scale(xs, self.sigma)
        return np.array(
            [
                self.predict(x, n, alpha, index=i)
                for x, i in _numbered(xs, indices, progress, "predict")
            ],
            dtype=np.int64,
        )

    def certify_many(
        self,
        xs: Iterable[Any],
        n0: int,
        n: int,
        alpha: float,
        *,
        target_radius: float | Sequence[float] | None = None,
        indices: Iterable[int] | None = None,
        progress: bool = True,
    ) -> list[Certificate]:
        """CERTIFY on every input of ``xs`` with a progress bar, seeded per example as in :meth:`predict_many`.
        Refuses an ``n`` and ``alpha`` that cannot certify any radius, before any sample, and warns when a target
        radius cannot be certified (:mod:`rs_plugin.diagnostics`)."""
        diagnostics.check_certify(self.noise, n, alpha, target_radius)
        diagnostics.check_input_scale(xs, self.sigma)
        return [
            self.certify(x, n0, n, alpha, target_radius=target_radius, index=i)
            for x, i in _numbered(xs, indices, progress, "certify")
        ]


def _numbered(xs: Iterable[Any], indices: Iterable[int] | None, progress: bool, desc: str) -> Iterable:
    total = len(xs) if hasattr(xs, "__len__") else None
    if indices is None:
        pairs = zip(xs, itertools.count())
    else:
        indices = list(indices)
        if total is not None and len(indices) != total:
            raise ValueError(f"indices has {len(indices)} entries for {total} inputs")
        pairs = zip(xs, indices, strict=True)
    return tqdm(pairs, total=total, desc=desc, disable=not progress, unit="ex")
