"""Noise families for smoothing, each with the certified radius its Neyman-Pearson argument gives.

``sigma`` is always the per-coordinate standard deviation, so the three families are comparable.
This module is also the built-in plugin that provides them through ``rs_plugin_add_noises``.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np
from scipy.stats import norm

from .certificate import COUNTING_NORMS, Ellipsoid
from .hookspecs import hookimpl


class Noise(ABC):
    """An i.i.d. noise distribution with standard deviation ``sigma`` per coordinate, certifying in ``norm``.

    A noise is framework-neutral: it fills numpy buffers in place (:meth:`sample`, so that backends never hold
    more than one batch of noise) and turns a lower bound on the top class's probability into a radius.
    Backends of other frameworks draw it through their own fast samplers for the built-in noises and fall
    back to :meth:`sample` for any other. ``norm`` is ``"l<p>"`` (e.g. ``"l1"``, ``"l2"``) or ``"linf"``, or one of
    the counting norms of ablation (:data:`rs_plugin.certificate.COUNTING_NORMS`).
    """

    name: ClassVar[str]
    norm: ClassVar[str]
    additive: ClassVar[bool] = True
    """Whether a randomized copy is ``x`` plus a draw of :meth:`sample` (the loops add ``x`` themselves, on the
    device for the built-in noises, and gradients flow through the addition). A randomization that maps ``x``
    otherwise (ablation, :mod:`rs_plugin.ablation`) sets it False and overrides :meth:`randomize`."""
    _spec: str | None = None

    def __init__(self, sigma: float) -> None:
        if isinstance(sigma, bool) or not isinstance(sigma, (int, float, np.floating, np.integer)):
            raise TypeError(f"sigma must be a number, got {type(sigma).__name__}")
        if not (math.isfinite(sigma) and sigma > 0):
            raise ValueError(f"sigma must be a positive finite number, got {sigma}")
        if self.norm not in COUNTING_NORMS:
            norm_order(self.norm)
        self.sigma = float(sigma)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(sigma={self.sigma})"

    @property
    def spec(self) -> str:
        """The spec string :func:`rs_plugin.plugins.make_noise` made this noise from (``"name:key=value,..."``), or
        the family's name for a noise made directly."""
        return self._spec or self.name

    @property
    def row_size(self) -> int:
        """:meth:`sample` fills arrays of a whole number of rows of this many values (1: any array; a correlated
        noise draws whole inputs)."""
        return 1

    @abstractmethod
    def sample(self, rng: np.random.Generator, out: np.ndarray) -> None:
        """Fill the float32 array ``out`` with noise drawn from ``rng``; drawing ``a`` then ``b`` values (whole rows,
        :attr:`row_size`) must give the same values as drawing ``a + b`` at once (so results do not depend on the
        batch size)."""

    def randomize(self, rng: np.random.Generator, x: np.ndarray, out: np.ndarray, first: int) -> None:
        """Fill the float32 array ``out`` (``(rows, *x.shape)``) with randomized copies of the input ``x``, the copies
        ``first, first + 1, ...`` of a stream (``first``: how many it gave before; an enumeration reads it, a random
        randomization draws from ``rng``). As for :meth:`sample`, drawing ``a`` then ``b`` copies gives the copies of
        drawing ``a + b`` at once. The default: a draw of :meth:`sample` plus ``x``."""
        self.sample(rng, out)
        out += x

    def enumerated(self, shape: tuple[int, ...]) -> int | None:
        """For a deterministic randomization that enumerates finitely many copies of an input of ``shape`` (the
        bands of :mod:`rs_plugin.ablation`): how many (copies ``0 .. count - 1`` of a fresh stream are all of them,
        each once, so that counting them gives the smoothed classifier exactly, without sampling; such a
        randomization also has ``votes_radius(counts) -> (class, radius)``, the certificate of the exact counts, which
        CERTIFY uses instead of :meth:`radius`). None (the default): a random randomization, which is sampled."""
        return None

    @abstractmethod
    def radius(self, p_lower: float) -> float:
        """The radius certified when the top class has probability at least ``p_lower`` (>= 1/2)."""

    @abstractmethod
    def p_needed(self, radius: float) -> float:
        """The smallest ``p_lower`` whose certified radius is at least ``radius`` (may exceed 1)."""

    def soft_radius(self, p_lower: float, p_upper: float) -> float:
        """The radius within which the soft smoothed classifier ``G = E[softmax(f(x + noise))]`` keeps its class when
        ``G_A >= p_lower`` and every other class has ``G_c <= p_upper`` (``p_lower > p_upper``). A noise without such a
        certificate raises ``NotImplementedError`` (the default)."""
        raise NotImplementedError(f"{self.name} noise has no certificate for the soft smoothed classifier")

    def ellipsoid(self, radius: float) -> Ellipsoid | None:
        """The region certified along with the ball of ``radius`` when it is larger than that ball (a correlated noise's
        ellipsoid, :mod:`rs_plugin.correlated`); None (the default) when the ball is the certificate."""
        return None

    def radii(self, radius: float, dim: int) -> dict[str, float]:
        """``radius`` (in :attr:`norm`) as a certified radius in each of l1, l2 and linf on inputs of ``dim``
        coordinates: a ball of radius ``r`` in norm p lies inside the certified one when
        ``r * dim ** max(0, 1/q - 1/p) <= radius`` (q the noise's norm), since ``||d||_q <= dim ** (1/q - 1/p) ||d||_p``
        for q < p and ``||d||_q <= ||d||_p`` otherwise."""
        q = norm_order(self.norm)
        orders = {"l1": 1.0, "l2": 2.0, "linf": math.inf}
        return {name: radius / dim ** max(0.0, 1 / q - 1 / p) for name, p in orders.items()}


def norm_order(norm: str) -> float:
    """The order p of a norm named ``"l<p>"`` or ``"linf"``; ``ValueError`` for any other name."""
    if norm == "linf":
        return math.inf
    try:
        p = float(norm[1:]) if norm.startswith("l") else math.nan
    except ValueError:
        p = math.nan
    if not p >= 1 or math.isinf(p):
        raise ValueError(f"norm must be 'l<p>' with p >= 1 (e.g. 'l1', 'l2') or 'linf', got {norm!r}")
    return p


class Gaussian(Noise):
    """N(0, sigma^2 I): l2 radius ``sigma * Phi^-1(p)`` (Cohen, Rosenfeld & Kolter 2019)."""

    name = "gaussian"
    norm = "l2"

    def sample(self, rng: np.random.Generator, out: np.ndarray) -> None:
        rng.standard_normal(dtype=np.float32, out=out)
        out *= self.sigma

    def radius(self, p_lower: float) -> float:
        return self.sigma * float(norm.ppf(p_lower))

    def p_needed(self, radius: float) -> float:
        return float(norm.cdf(radius / self.sigma))

    def soft_radius(self, p_lower: float, p_upper: float) -> float:
        """``sigma / 2 * (Phi^-1(p_lower) - Phi^-1(p_upper))``: ``x -> Phi^-1(G_c(x))`` is ``1 / sigma``-Lipschitz in l2
        for every class (Salman et al. 2019, appendix A)."""
        return self.sigma / 2 * float(norm.ppf(p_lower) - norm.ppf(p_upper))


class Laplace(Noise):
    """Laplace with scale ``sigma / sqrt(2)``: l1 radius ``-scale * ln(2 (1 - p))`` (Teng et al. 2020)."""

    name = "laplace"
    norm = "l1"

    @property
    def scale(self) -> float:
        return self.sigma / math.sqrt(2.0)

    def sample(self, rng: np.random.Generator, out: np.ndarray) -> None:
        # The difference of two standard exponentials is a standard Laplace variable (drawn in pairs, so that
        # the values do not depend on how a draw is split).
        pairs = rng.standard_exponential(size=(*out.shape, 2), dtype=np.float32)
        np.subtract(pairs[..., 0], pairs[..., 1], out=out)
        out *= self.scale

    def radius(self, p_lower: float) -> float:
        return -self.scale * math.log(2.0 * (1.0 - p_lower))

    def p_needed(self, radius: float) -> float:
        return 1.0 - 0.5 * math.exp(-radius / self.scale)


class Uniform(Noise):
    """Uniform on ``[-sigma sqrt(3), sigma sqrt(3)]``: l1 radius ``2 sigma sqrt(3) (p - 1/2)`` (Yang et al. 2020)."""

    name = "uniform"
    norm = "l1"

    @property
    def half_width(self) -> float:
        return self.sigma * math.sqrt(3.0)

    def sample(self, rng: np.random.Generator, out: np.ndarray) -> None:
        rng.random(dtype=np.float32, out=out)
        out -= 0.5
        out *= 2.0 * self.half_width

    def radius(self, p_lower: float) -> float:
        return 2.0 * self.half_width * (p_lower - 0.5)

    def p_needed(self, radius: float) -> float:
        return 0.5 + radius / (2.0 * self.half_width)


@hookimpl
def rs_plugin_add_noises() -> dict[str, type[Noise]]:
    return {cls.name: cls for cls in (Gaussian, Laplace, Uniform)}
