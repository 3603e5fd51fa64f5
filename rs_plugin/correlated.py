"""Correlated and anisotropic Gaussian noise N(0, Sigma), with the ellipsoid certificate that goes with it.

``Sigma = B diag(stds^2) B^T`` for an orthonormal basis ``B`` fixed before any input is seen (never chosen per input:
that breaks the guarantee). Whitening turns the noise into N(0, I): ``x -> Sigma^(-1/2) x`` maps the smoothed classifier
under N(0, Sigma) to one under N(0, I) of the whitened base classifier, so Cohen et al.'s argument certifies the
**ellipsoid** ``{delta : ||Sigma^(-1/2) delta||_2 < Phi^-1(p_A)}`` (and the soft classifier's argument, Salman et al.,
the ellipsoid of Mahalanobis radius ``(Phi^-1(G_A) - Phi^-1(G_B)) / 2``). Its semi-axes are ``stds * Phi^-1(p_A)``
along the basis directions, so the largest l2 ball inside it has radius ``min(stds) * Phi^-1(p_A)``: the l2 radius a
certificate reports; :attr:`rs_plugin.certificate.Certificate.ellipsoid` holds the ellipsoid itself.

``sigma`` keeps its meaning across families: the mean variance per coordinate, ``mean(stds^2) = sigma^2``, is that of
i.i.d. Gaussian noise at ``sigma`` (equal total power). Two families, written as a plugin would write them:

* ``"diagonal"``: anisotropic noise, ``B = I``, per-coordinate standard deviations proportional to ``profile``;
* ``"lowpass"``: the 2-D DCT basis (orthonormal, per channel, on the last two axes), standard deviation ``ratio``
  times larger on the frequencies below ``cutoff`` than on the others.

This module is a built-in plugin that provides them through ``rs_plugin_add_noises``; a spec string names them with
their options, e.g. ``"lowpass:shape=1x8x8,cutoff=0.25,ratio=4"`` (:func:`rs_plugin.plugins.make_noise`).
"""

from __future__ import annotations

import math
from abc import abstractmethod
from pathlib import Path
from typing import Any

import numpy as np
from scipy.fft import dctn, idctn
from scipy.stats import norm

from .certificate import Ellipsoid
from .hookspecs import hookimpl
from .noises import Noise


class Correlated(Noise):
    """Gaussian noise N(0, Sigma) on inputs of :attr:`shape`, ``Sigma = B diag(stds^2) B^T`` (``B`` orthonormal, given
    by :meth:`to_input` and :meth:`to_basis`), certifying an ellipsoid (see the module).

    Subclasses set :attr:`shape` and :attr:`stds` (an array of that shape, per basis direction) by calling
    :meth:`_set_stds` with a relative profile; the scale is fixed by ``sigma`` (mean variance ``sigma^2``).
    """

    norm = "l2"
    shape: tuple[int, ...]
    stds: np.ndarray

    def __repr__(self) -> str:
        return f"{type(self).__name__}(sigma={self.sigma}, shape={self.shape})"

    def _set_stds(self, profile: np.ndarray) -> None:
        """Set :attr:`shape` and :attr:`stds` from a relative profile (positive, finite), scaled to mean variance
        ``sigma^2``; ``ValueError`` naming ``profile`` otherwise."""
        profile = np.asarray(profile, dtype=np.float64)
        if profile.ndim == 0 or profile.size == 0 or not np.isfinite(profile).all() or profile.min() <= 0:
            raise ValueError(f"profile must be a non-empty array of positive finite numbers, got shape {profile.shape}")
        self.shape = tuple(int(s) for s in profile.shape)
        self.stds = profile * (self.sigma / math.sqrt(float(np.mean(profile**2))))

    @property
    def row_size(self) -> int:
        return math.prod(self.shape)

    @property
    def smallest_std(self) -> float:
        """The smallest standard deviation along a basis direction: the l2 radius per unit of Mahalanobis radius."""
        return float(self.stds.min())

    @abstractmethod
    def to_input(self, z: np.ndarray) -> np.ndarray:
        """``B z`` for a batch ``(rows, *shape)`` of basis coefficients (may work in place and return ``z``)."""

    @abstractmethod
    def to_basis(self, delta: np.ndarray) -> np.ndarray:
        """``B^T delta`` for a batch ``(rows, *shape)`` of perturbations (a new array)."""

    def sample(self, rng: np.random.Generator, out: np.ndarray) -> None:
        """Fill ``out`` (a whole number of rows of :attr:`shape`: ``(rows, *shape)``, or flat) with N(0, Sigma) draws:
        i.i.d. standard normals in row order, scaled by :attr:`stds` and mapped to the input space row by row, so that
        drawing ``a`` rows then ``b`` rows gives the same rows as ``a + b`` at once."""
        self.check_fill(tuple(out.shape))
        rows = np.empty((out.size // self.row_size, *self.shape), dtype=np.float32)
        rng.standard_normal(dtype=np.float32, out=rows)
        rows *= self.stds.astype(np.float32)
        out[...] = self.to_input(rows).reshape(out.shape)

    def check_fill(self, shape: tuple[int, ...]) -> None:
        """``ValueError`` naming ``x`` unless an array of ``shape`` is a whole number of rows: ``(rows, *shape)``, or
        flat."""
        flat = len(shape) == 1 and shape[0] % self.row_size == 0
        if not flat and tuple(shape[1:]) != self.shape:
            raise ValueError(f"x: the {self.name} noise has shape {self.shape}; cannot fill an array {shape}")

    def radius(self, p_lower: float) -> float:
        """The l2 radius: the smallest semi-axis of the certified ellipsoid, ``min(stds) Phi^-1(p_lower)``."""
        return self.smallest_std * float(norm.ppf(p_lower))

    def p_needed(self, radius: float) -> float:
        return float(norm.cdf(radius / self.smallest_std))

    def soft_radius(self, p_lower: float, p_upper: float) -> float:
        """The l2 radius of the soft classifier's ellipsoid: ``min(stds) / 2 (Phi^-1(p_lower) - Phi^-1(p_upper))``
        (``x -> Phi^-1(G_c(x))`` is 1-Lipschitz in the norm ``||Sigma^(-1/2) .||_2``)."""
        return self.smallest_std / 2 * float(norm.ppf(p_lower) - norm.ppf(p_upper))

    def ellipsoid(self, radius: float) -> Ellipsoid:
        """The certified ellipsoid whose l2 radius (smallest semi-axis) is ``radius``."""
        return Ellipsoid(self, radius / self.smallest_std)

    def mahalanobis(self, delta: Any) -> np.ndarray:
        """``||Sigma^(-1/2) delta||_2`` of one perturbation shaped like :attr:`shape` (a number) or of each of a batch
        ``(B, *shape)`` (shape ``(B,)``); ``ValueError`` naming ``delta`` for another shape."""
        delta = np.asarray(delta, dtype=np.float64)
        single = delta.shape == self.shape
        if not single and delta.shape[1:] != self.shape:
            raise ValueError(f"delta must have shape {self.shape} or (B, *{self.shape}), got {delta.shape}")
        rows = delta.reshape(-1, *self.shape)
        white = self.to_basis(rows) / self.stds
        lengths = np.sqrt((white.reshape(len(rows), -1) ** 2).sum(axis=1))
        return lengths[0] if single else lengths


class Diagonal(Correlated):
    """Anisotropic noise: coordinate ``i`` has standard deviation proportional to ``profile[i]`` (``B = I``).

    ``profile``: an array shaped like the inputs, or the path of a ``.npy`` file holding one (from a spec string:
    ``"diagonal:profile=stds.npy"``).
    """

    name = "diagonal"

    def __init__(self, sigma: float, profile: np.ndarray | str | Path) -> None:
        super().__init__(sigma)
        if isinstance(profile, (str, Path)):
            try:
                profile = np.load(profile, allow_pickle=False)
            except (OSError, ValueError) as err:
                raise ValueError(f"profile: cannot read a numpy array from {str(profile)!r}: {err}") from err
        self._set_stds(profile)

    def to_input(self, z: np.ndarray) -> np.ndarray:
        return z

    def to_basis(self, delta: np.ndarray) -> np.ndarray:
        return np.array(delta)


class LowPass(Correlated):
    """Low-pass noise on images ``shape = (..., H, W)``: independent on the orthonormal 2-D DCT coefficients of each
    channel, with standard deviation ``ratio`` times larger on the frequencies ``(u, v)`` with
    ``sqrt((u / H)^2 + (v / W)^2) < cutoff`` (the lowest, ``u = v = 0`` always among them) than on the others.

    Options (numbers or strings, as a spec string gives them): ``shape`` (``"1x8x8"`` or a tuple; at least 2
    dimensions), ``cutoff`` in ``(0, sqrt(2)]`` (default 0.25), ``ratio`` >= 1 (default 4).
    """

    name = "lowpass"

    def __init__(
        self, sigma: float, shape: str | tuple[int, ...], cutoff: float | str = 0.25, ratio: float | str = 4.0
    ) -> None:
        super().__init__(sigma)
        dims = _shape(shape)
        cutoff, ratio = _number("cutoff", cutoff), _number("ratio", ratio)
        if not 0 < cutoff <= math.sqrt(2):
            raise ValueError(f"cutoff must lie in (0, sqrt(2)], got {cutoff}")
        if not ratio >= 1:
            raise ValueError(f"ratio must be at least 1, got {ratio}")
        self.cutoff, self.ratio = cutoff, ratio
        height, width = dims[-2:]
        u, v = np.meshgrid(np.arange(height) / height, np.arange(width) / width, indexing="ij")
        low = np.hypot(u, v) < cutoff
        self.low = np.broadcast_to(low, dims)
        """Which basis directions (DCT coefficients) are the low frequencies."""
        self._set_stds(np.where(self.low, ratio, 1.0))

    def __repr__(self) -> str:
        return f"LowPass(sigma={self.sigma}, shape={self.shape}, cutoff={self.cutoff}, ratio={self.ratio})"

    def to_input(self, z: np.ndarray) -> np.ndarray:
        return idctn(z, axes=(-2, -1), norm="ortho", overwrite_x=True, workers=1)

    def to_basis(self, delta: np.ndarray) -> np.ndarray:
        return dctn(delta, axes=(-2, -1), norm="ortho", workers=1)


def _shape(value: str | tuple[int, ...]) -> tuple[int, ...]:
    """An image shape from ``"1x8x8"`` or a tuple: at least two positive ints; ``ValueError`` naming ``shape``."""
    try:
        dims = tuple(int(d) for d in (value.split("x") if isinstance(value, str) else value))
    except (TypeError, ValueError):
        dims = ()
    if len(dims) < 2 or min(dims) < 1:
        raise ValueError(f"shape must be an image shape such as 1x8x8 (at least H and W), got {value!r}")
    return dims


def _number(name: str, value: float | str) -> float:
    """``value`` (a number or its text) as a finite float; ``ValueError`` naming ``name`` otherwise."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return number


@hookimpl
def rs_plugin_add_noises() -> dict[str, type[Noise]]:
    return {cls.name: cls for cls in (Diagonal, LowPass)}
