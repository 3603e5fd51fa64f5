"""The result of CERTIFY."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

ABSTAIN = -1
"""The class returned by PREDICT and CERTIFY when they abstain."""

COUNTING_NORMS = ("l0", "columns", "patch")
"""The norms of ablation (:mod:`rs_plugin.ablation`), which count changed positions, columns or a patch's side."""


class Whitening(Protocol):
    """A noise N(0, Sigma) that measures perturbations in its own norm (:class:`rs_plugin.correlated.Correlated`)."""

    shape: tuple[int, ...]

    def mahalanobis(self, delta: Any) -> np.ndarray:
        """``||Sigma^(-1/2) delta||_2`` of one perturbation (a number) or of each of a batch ``(B, *shape)``."""


@dataclass(frozen=True)
class Ellipsoid:
    """The ellipsoid ``{delta : ||Sigma^(-1/2) delta||_2 < radius}`` of a noise N(0, Sigma): ``radius`` is the certified
    radius in the noise's own (Mahalanobis) norm, ``Phi^-1(p_lower)`` for the vote."""

    noise: Whitening
    radius: float

    def contains(self, delta: Any) -> bool | np.ndarray:
        """Whether ``delta`` (one perturbation shaped like the input: a bool) or each of a batch ``(B, *shape)`` (a
        ``(B,)`` bool array) lies inside the ellipsoid."""
        inside = self.noise.mahalanobis(delta) < self.radius
        return bool(inside) if np.ndim(inside) == 0 else inside


@dataclass(frozen=True)
class Certificate:
    """What CERTIFY returns for one input.

    With probability at least ``1 - alpha`` over the noise, ``prediction`` is the smoothed classifier's (hard or
    soft: :attr:`smoothing`) class at the input and it returns that class everywhere within ``radius`` (in ``norm``).
    On abstention, ``prediction`` is :data:`ABSTAIN` and ``radius`` is ``0.0``.

    The norms of ablation (:mod:`rs_plugin.ablation`) count: ``"l0"``, positions changed (at most ``radius``);
    ``"columns"``, any change within ``radius`` consecutive columns; ``"patch"``, any change within a ``radius x
    radius`` square (both wrapping around). The columns and patch certificates come from exact counts
    (derandomized smoothing): they hold with certainty, not with probability ``1 - alpha``.
    """

    prediction: int
    radius: float
    norm: str
    p_lower: float
    """One-sided lower confidence bound on the probability of the selected class."""
    num_samples: int
    """Base-classifier evaluations used: selection samples plus estimation samples."""
    count: int
    """Estimation samples that voted for the selected class."""
    n: int
    """Estimation samples drawn (``n`` for fixed-n CERTIFY; fewer when a sequential test stopped early)."""
    selected: int
    """The class picked by the selection samples (kept also when CERTIFY abstains)."""
    radii: dict[str, float] = field(default_factory=dict)
    """The certified radius in every norm it implies (``l1``, ``l2``, ``linf``; for ablation, its counting norms)."""
    smoothing: str = "hard"
    """Which smoothed classifier the certificate is about: ``"hard"``, the majority vote ``g`` (Cohen et al.), or
    ``"soft"``, ``G = argmax E[softmax(f(x + noise))]`` (Salman et al.); their classes can differ."""
    p_upper: float | None = None
    """For ``"soft"``: an upper bound on every other class's mean softmax (``p_lower`` bounds the selected one's)."""
    ellipsoid: Ellipsoid | None = None
    """For a correlated noise N(0, Sigma) (:mod:`rs_plugin.correlated`): the certified ellipsoid, which contains the
    ball of ``radius`` (its smallest semi-axis) and reaches further along the noise's large directions."""
    input_shape: tuple[int, ...] = ()
    """The shape of the certified input (what :meth:`certifies` reads a perturbation against)."""

    def certifies(self, delta: Any) -> bool | np.ndarray:
        """Whether the smoothed classifier is certified to return :attr:`prediction` at ``x + delta``, for one
        perturbation ``delta`` shaped like the input (a bool) or each of a batch ``(B, *input_shape)`` (a ``(B,)``
        bool array): inside :attr:`ellipsoid` when there is one, otherwise inside one of the balls of :attr:`radii`
        (each lies inside the certified ball; for the counting norms of ablation, at most ``radius`` changed
        positions, or changes within ``radius`` columns or a ``radius x radius`` patch). Always False when CERTIFY
        abstained. The guarantee is the certificate's: it holds with probability at least ``1 - alpha``."""
        delta = np.asarray(delta, dtype=np.float64)
        single = delta.shape == tuple(self.input_shape)
        if not single and delta.shape[1:] != tuple(self.input_shape):
            raise ValueError(f"delta must have shape {self.input_shape} or (B, *{self.input_shape}), got {delta.shape}")
        if self.abstained:
            return False if single else np.zeros(len(delta), dtype=bool)
        if self.ellipsoid is not None:
            return self.ellipsoid.contains(delta)
        rows = delta.reshape(1 if single else len(delta), -1)
        orders = {"l1": 1, "l2": 2, "linf": np.inf}
        inside = np.zeros(len(rows), dtype=bool)
        for name, radius in self.radii.items():
            if name in orders:
                inside |= np.linalg.norm(rows, ord=orders[name], axis=1) < radius
            else:
                inside |= _counted(name, delta.reshape(len(rows), *self.input_shape) != 0, int(radius))
        return bool(inside[0]) if single else inside

    @property
    def abstained(self) -> bool:
        """Whether CERTIFY abstained."""
        return self.prediction == ABSTAIN


def _counted(norm: str, changed: np.ndarray, radius: int) -> np.ndarray:
    """Whether each of a batch of changes ``(B, *shape)`` (bool) lies within ``radius`` in the counting norm ``norm``:
    ``"l0"``, at most ``radius`` changed positions (a pixel of an image ``(C, H, W)``, all channels together, or a
    coordinate); ``"columns"``, all changes within ``radius`` consecutive columns; ``"patch"``, within a ``radius x
    radius`` square (consecutive with wrapping around, as the bands of :mod:`rs_plugin.ablation`)."""
    if norm == "l0":
        positions = changed.any(axis=1) if changed.ndim == 4 else changed
        return positions.reshape(len(changed), -1).sum(axis=1) <= radius
    pixels = changed.reshape(len(changed), -1, *changed.shape[-2:]).any(axis=1)  # (B, H, W)
    fits_columns = _within(pixels.any(axis=1), radius)
    return fits_columns if norm == "columns" else fits_columns & _within(pixels.any(axis=2), radius)


def _within(used: np.ndarray, width: int) -> np.ndarray:
    """Whether the used indices ``(B, L)`` (bool) of each row lie within ``width`` consecutive ones, wrapping around."""
    length = used.shape[1]
    windows = (np.arange(length)[None, :] - np.arange(length)[:, None]) % length < width  # windows[start, index]
    return (~(used[:, None, :] & ~windows[None])).all(axis=2).any(axis=1)
