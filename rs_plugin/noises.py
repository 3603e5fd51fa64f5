"""Noise families for smoothing, each with the certified radius its Neyman-Pearson argument gives.

``sigma`` is always the per-coordinate standard deviation, so the three families are comparable.
This module is also the built-in plugin that provides them through ``rs_plugin_add_noises``.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np
from scipy.stats import norm

from .hookspecs import hookimpl


class Noise(ABC):
    """An i.i.d. noise distribution with standard deviation ``sigma`` per coordinate.

    Subclasses fill buffers in place (numpy with :meth:`sample`, torch with :meth:`sample_torch`, so that
    backends never hold more than one batch of noise) and turn a lower bound on the top class's
    probability into a radius in their norm.
    """

    name: ClassVar[str]
    norm: ClassVar[str]

    def __init__(self, sigma: float) -> None:
        if isinstance(sigma, bool) or not isinstance(sigma, (int, float, np.floating, np.integer)):
            raise TypeError(f"sigma must be a number, got {type(sigma).__name__}")
        if not (math.isfinite(sigma) and sigma > 0):
            raise ValueError(f"sigma must be a positive finite number, got {sigma}")
        self.sigma = float(sigma)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(sigma={self.sigma})"

    @abstractmethod
    def sample(self, rng: np.random.Generator, out: np.ndarray) -> None:
        """Fill the float32 array ``out`` with i.i.d. noise drawn from ``rng``."""

    @abstractmethod
    def sample_torch(self, out: Any, generator: Any) -> None:
        """Fill the torch tensor ``out`` in place with i.i.d. noise drawn from the ``torch.Generator``."""

    @abstractmethod
    def radius(self, p_lower: float) -> float:
        """The radius certified when the top class has probability at least ``p_lower`` (>= 1/2)."""

    @abstractmethod
    def p_needed(self, radius: float) -> float:
        """The smallest ``p_lower`` whose certified radius is at least ``radius`` (may exceed 1)."""

    def radii(self, radius: float, dim: int) -> dict[str, float]:
        """``radius`` in each of l1, l2 and linf, using ``||d||_2 <= ||d||_1 <= sqrt(dim) ||d||_2``
        and ``||d||_inf <= ||d||_2 <= sqrt(dim) ||d||_inf`` on inputs of ``dim`` coordinates."""
        root = math.sqrt(dim)
        if self.norm == "l2":
            return {"l1": radius, "l2": radius, "linf": radius / root}
        return {"l1": radius, "l2": radius / root, "linf": radius / dim}


class Gaussian(Noise):
    """N(0, sigma^2 I): l2 radius ``sigma * Phi^-1(p)`` (Cohen, Rosenfeld & Kolter 2019)."""

    name = "gaussian"
    norm = "l2"

    def sample(self, rng: np.random.Generator, out: np.ndarray) -> None:
        rng.standard_normal(dtype=np.float32, out=out)
        out *= self.sigma

    def sample_torch(self, out: Any, generator: Any) -> None:
        out.normal_(0.0, self.sigma, generator=generator)

    def radius(self, p_lower: float) -> float:
        return self.sigma * float(norm.ppf(p_lower))

    def p_needed(self, radius: float) -> float:
        return float(norm.cdf(radius / self.sigma))


class Laplace(Noise):
    """Laplace with scale ``sigma / sqrt(2)``: l1 radius ``-scale * ln(2 (1 - p))`` (Teng et al. 2020)."""

    name = "laplace"
    norm = "l1"

    @property
    def scale(self) -> float:
        return self.sigma / math.sqrt(2.0)

    def sample(self, rng: np.random.Generator, out: np.ndarray) -> None:
        # The difference of two standard exponentials is a standard Laplace variable.
        rng.standard_exponential(dtype=np.float32, out=out)
        out -= rng.standard_exponential(size=out.shape, dtype=np.float32)
        out *= self.scale

    def sample_torch(self, out: Any, generator: Any) -> None:
        other = out.new_empty(out.shape).exponential_(1.0, generator=generator)
        out.exponential_(1.0, generator=generator).sub_(other).mul_(self.scale)

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

    def sample_torch(self, out: Any, generator: Any) -> None:
        out.uniform_(-self.half_width, self.half_width, generator=generator)

    def radius(self, p_lower: float) -> float:
        return 2.0 * self.half_width * (p_lower - 0.5)

    def p_needed(self, radius: float) -> float:
        return 0.5 + radius / (2.0 * self.half_width)


@hookimpl
def rs_plugin_add_noises() -> dict[str, type[Noise]]:
    return {cls.name: cls for cls in (Gaussian, Laplace, Uniform)}
